"""A total deadline for a call that waits on someone else, with the calling thread free to hear a stop.

Why a thread: the clients digits calls (requests under MLflow and kagglesdk,
Apprise, Ray's ``init``) bound the connect and each read from the socket,
never the whole answer.  A server that sends its headers and then a byte a
second keeps every read short and the answer coming for days (urllib3's
``Timeout(total=...)`` does not cover reading the body either), and none of
these calls can be cancelled from outside.  So `call` runs the call in a
daemon thread and waits for it in short slices:

- when the deadline passes it stops waiting and raises `Expired`, leaving
  the thread behind (a daemon thread never holds up the process's exit, and
  a command that gave up on a server calls it no more);
- between slices it looks for a stop signal (`stop_signals.pending`), so
  SIGTERM ends the command at once also where its handler only sets a flag
  (during a training) or where digits is already on its way out; a handler
  that raises (SIGINT's KeyboardInterrupt, SIGTERM elsewhere) interrupts the
  wait itself.

Either way the caller is never inside a socket read when a signal comes.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pipeline.core import stop_signals

T = TypeVar("T")
SLICE = 0.1  # seconds between looks at the stop signals while waiting


class Expired(TimeoutError):
    """The call had not ended when its deadline passed (a TimeoutError, so it is told as a timeout)."""

    def __init__(self, seconds: float, what: str = "") -> None:
        self.seconds = seconds
        self.what = what
        super().__init__(f"no answer within {seconds:g} s" + (f" ({what})" if what else ""))


def call(fn: Callable[[], T], seconds: float, what: str = "") -> T:
    """`fn()` if it ends within `seconds`; its exception if it raises; else `Expired`.

    A stop signal that came, and that nothing acted on yet, ends the wait with
    KeyboardInterrupt, as the signal itself would.
    """
    box: dict[str, Any] = {}
    context = contextvars.copy_context()  # the call sees the caller's context variables

    def work() -> None:
        try:
            box["value"] = context.run(fn)
        except BaseException as e:  # handed to the caller, whatever it is
            box["error"] = e

    worker = threading.Thread(target=work, name=f"digits-deadline: {what or 'call'}", daemon=True)
    worker.start()
    end = time.monotonic() + seconds
    while True:
        worker.join(max(0.0, min(SLICE, end - time.monotonic())))
        if not worker.is_alive():
            break
        if stop_signals.pending():
            stop_signals.exiting()
            raise KeyboardInterrupt
        if time.monotonic() >= end:
            raise Expired(seconds, what)
    if "error" in box:
        error = box.pop("error")
        raise error
    return box["value"]
