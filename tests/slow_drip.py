"""A server that answers and never finishes: its headers at once, then one byte a second.

What an overloaded proxy or a broken server can do, and what held a demo
night for more than 12 minutes: every read of the socket returns within a
second, so neither a connect timeout nor a read timeout ever fires, and a
client with no total deadline waits for as long as the body is long (here
about eleven days).  `dribble` is the answer itself, shared with the fake
Kaggle's ``drip`` knob; the `slow_drip` fixture is a whole server on
127.0.0.1 on an ephemeral port (for MLflow and Apprise) that answers every
request so.  Loaded by ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

LENGTH = 1_000_000  # the body announced: at a byte a second, longer than any test


def dribble(handler: BaseHTTPRequestHandler, stopping: threading.Event, content_type: str = "application/json") -> None:
    """Send a 200 with its headers, then a space a second until the client hangs up or the server stops."""
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(LENGTH))
    handler.end_headers()
    handler.close_connection = True
    try:
        handler.wfile.flush()
        for _ in range(LENGTH):
            if stopping.wait(1.0):
                return
            handler.wfile.write(b" ")  # JSON allows leading white space: nothing ever fails to parse early
            handler.wfile.flush()
    except OSError:  # the client gave up: what the tests want
        return


class SlowDrip:
    """The server: every request (any method, any path) is answered by `dribble`; `requests` counts them."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.requests: list[str] = []  # "METHOD path", in order of arrival
        self.first_request = threading.Event()
        drip = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                drip.requests.append(f"{self.command} {self.path}")
                drip.first_request.set()
                dribble(self, drip.stopping)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # clients hang up
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def wait_for_request(self, timeout: float = 240.0) -> None:
        """Until the first request has come (the client is now waiting on the drip); fails the test after `timeout`."""
        if not self.first_request.wait(timeout):
            pytest.fail(f"no request reached the slow server within {timeout:g} s")


@pytest.fixture
def slow_drip() -> Iterator[SlowDrip]:
    drip = SlowDrip()
    drip.thread.start()
    try:
        yield drip
    finally:
        drip.stopping.set()
        drip.server.shutdown()
        drip.server.server_close()
