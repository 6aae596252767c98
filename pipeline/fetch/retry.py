"""When to retry a failed request, how long to wait, and how to name what went wrong.

Backoff is ``BACKOFF_BASE * 2**attempt`` seconds, at most ``BACKOFF_MAX``; a
server's Retry-After is honoured up to ``BACKOFF_MAX`` too.  Tests shrink both.
"""

from __future__ import annotations

from typing import Any

BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` + 1."""
    delay = BACKOFF_BASE * (2**attempt)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, BACKOFF_MAX)


def retry_after(response: Any) -> float | None:
    """The seconds a response's Retry-After header asks for, or None."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def not_sent(exc: Exception) -> bool:
    """True when the request certainly never reached Kaggle (safe to retry a non-idempotent call)."""
    import requests

    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return True
    text = repr(exc)
    return "NewConnectionError" in text or "NameResolutionError" in text


def is_timeout(exc: Exception, timeout: float) -> bool:
    """True when the request failed because the server did not answer in time."""
    import requests

    return isinstance(exc, requests.exceptions.Timeout) or "timed out" in net_reason(exc, timeout)


def net_reason(exc: Exception, timeout: float) -> str:
    """A few words on why a request got no answer."""
    import requests

    text = repr(exc)
    if isinstance(exc, requests.exceptions.ProxyError):
        return "the proxy refused or failed the connection"
    if isinstance(exc, requests.exceptions.Timeout) or "ReadTimeout" in text or "timed out" in text:
        return f"timed out after {timeout:g}s"
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "NameResolution" in text or "Name or service not known" in text or "Temporary failure in name" in text:
        return "the host name could not be resolved"
    if "Network is unreachable" in text or "Errno 101" in text:
        return "network unreachable"
    if "Connection reset" in text or "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the connection was dropped"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS/SSL failed"
    return type(exc).__name__
