"""When to retry a failed request, how long to wait, and how to name what went wrong.

Backoff is ``BACKOFF_BASE * 2**attempt`` seconds, at most ``BACKOFF_MAX``; a
server's Retry-After is honoured up to ``BACKOFF_MAX`` too.  Tests shrink both.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
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
    """The seconds a response's Retry-After header asks for (seconds, or an HTTP date), or None."""
    value = response.headers.get("Retry-After") if response is not None else None
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def not_sent(exc: BaseException) -> bool:
    """True when the request certainly never reached Kaggle (safe to retry a non-idempotent call).

    That is when the connection itself failed: refused, unresolvable, unreachable,
    timed out while connecting, or the proxy failed.
    """
    import requests
    from urllib3.exceptions import ConnectTimeoutError

    never = (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError, ConnectTimeoutError)
    return any(isinstance(e, never) for e in causes(exc))


def is_timeout(exc: BaseException) -> bool:
    """True when the request failed because the server did not answer in time."""
    return _kind(exc) == "timeout"


def net_reason(exc: BaseException, timeout: float) -> str:
    """A few words on why a request got no usable answer."""
    kind = _kind(exc)
    if kind == "timeout":
        return f"timed out after {timeout:g}s"
    return _REASONS.get(kind, type(exc).__name__)


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and every exception it wraps, outermost first.

    requests wraps urllib3's errors (in ``args`` and ``__context__``); urllib3's
    MaxRetryError holds the cause in ``reason``, ProtocolError the OS error in
    ``args``; NewConnectionError is raised ``from`` the socket error.
    """
    found: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if any(e is seen for seen in found):
            continue
        found.append(e)
        wrapped = (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args)
        todo.extend(w for w in wrapped if isinstance(w, BaseException))
    return found


_REASONS = {
    "proxy": "the proxy refused or failed the connection",
    "resolve": "the host name could not be resolved",
    "refused": "connection refused",
    "unreachable": "network unreachable",
    "dropped": "the connection was dropped",
    "broken": "the connection broke off",
    "garbled": "the answer was not HTTP",
    "tls": "TLS/SSL failed",
}


def _kind(exc: BaseException) -> str:
    """What went wrong, from the types in the exception chain, most telling first."""
    import errno
    import http.client
    import socket

    import requests
    from urllib3 import exceptions as u3

    chain = causes(exc)

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(requests.exceptions.ProxyError, u3.ProxyError):
        return "proxy"
    if has(u3.NameResolutionError, socket.gaierror):
        return "resolve"
    if has(ConnectionRefusedError):
        return "refused"
    if any(isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH) for e in chain):
        return "unreachable"
    timeouts = (requests.exceptions.Timeout, u3.TimeoutError, TimeoutError)
    if any(isinstance(e, timeouts) and not isinstance(e, u3.NewConnectionError) for e in chain):
        return "timeout"
    if has(ConnectionResetError, ConnectionAbortedError, BrokenPipeError):  # RemoteDisconnected too
        return "dropped"
    if has(
        http.client.IncompleteRead, u3.IncompleteRead, u3.InvalidChunkLength, requests.exceptions.ChunkedEncodingError
    ):
        return "broken"
    if has(http.client.HTTPException, u3.HeaderParsingError):  # BadStatusLine, LineTooLong
        return "garbled"
    if has(requests.exceptions.SSLError, u3.SSLError):
        return "tls"
    if has(u3.ProtocolError, ConnectionError):
        return "dropped"
    return "other"
