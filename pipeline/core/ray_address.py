"""What a Ray cluster address may look like: checked before anything tries to parse or reach it.

``auto`` (the cluster ``ray start --head`` started on this machine),
``ray://HOST[:PORT]`` (Ray Client) or ``HOST[:PORT]`` (the head's GCS), with a
host name and a port in 1..65535.  Anything else (``localhost:abc``,
``127.0.0.1:99999``, ``ray://[::1``) made urllib raise ValueError deep inside
the executor; here it is one line naming the option.
"""

from __future__ import annotations

from urllib.parse import urlsplit

FORMS = "auto, ray://HOST:PORT or HOST:PORT with a port in 1..65535"


def problem(address: str) -> str | None:
    """Why `address` is not a Ray cluster address, or None when it is one."""
    if address == "auto":
        return None
    got = f"got {address!r}"
    if not address.strip() or any(ch.isspace() for ch in address):
        return f"must be {FORMS}; {got}"
    scheme, sep, rest = address.partition("://")
    if sep and scheme != "ray":
        return f"must be {FORMS} (Ray's client speaks ray://, not {scheme}://); {got}"
    try:
        parts = urlsplit("tcp://" + (rest if sep else address))
        port = parts.port
    except ValueError as e:  # a port that is not a number or out of range, an unclosed [
        return f"must be {FORMS} ({e}); {got}"
    if not parts.hostname:
        return f"must be {FORMS} (no host); {got}"
    if port == 0 or parts.path.strip("/") or parts.query or parts.fragment:
        return f"must be {FORMS}; {got}"
    return None
