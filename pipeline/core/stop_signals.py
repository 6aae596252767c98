"""The signals that stop digits, and ignoring them once it is on its way out.

SIGINT (Ctrl-C), SIGTERM (``kill``, a cron or systemd timeout) and SIGHUP
(the terminal or the ssh session went away) all stop a command the same
way: cleanly, saving what finished, with exit code 4.  A signal that was
ignored when digits started stays ignored (``nohup digits run`` keeps
running when the session ends).

Once digits is on its way out after a stop (the records being written, the
one line being printed), further stop signals are ignored: a second quick
Ctrl-C used to land in the middle of that and end in a traceback, exit 130,
or a run left "running".  `exiting` says so; it has an effect only in the
``digits`` process itself (`install`), never in a test runner that calls the
library.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_state = {"installed": False, "exiting": False}


def ignored_at_start(sig: signal.Signals) -> bool:
    """Whether `sig` is ignored now (so, left ignored: nohup's SIGHUP, a background job's SIGINT)."""
    return signal.getsignal(sig) is signal.SIG_IGN


def install(handler: Callable[[int, FrameType | None], None]) -> None:
    """In the ``digits`` process: SIGTERM and SIGHUP call `handler` (SIGINT keeps Python's KeyboardInterrupt)."""
    _state["installed"] = True
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if not ignored_at_start(sig):
            signal.signal(sig, handler)


def exiting() -> None:
    """The process is ending after a stop: from now on SIGINT, SIGTERM and SIGHUP are ignored."""
    if not _state["installed"] or threading.current_thread() is not threading.main_thread():
        return
    _state["exiting"] = True
    for sig in STOP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, signal.SIG_IGN)


def is_exiting() -> bool:
    return _state["exiting"]
