"""The signals that stop digits, and ignoring them once it is on its way out.

SIGINT (Ctrl-C), SIGTERM (``kill``, a cron or systemd timeout) and SIGHUP
(the terminal or the ssh session went away) all stop a command the same
way: cleanly, saving what finished, with exit code 4.  A signal that was
ignored when digits started stays ignored (``nohup digits run`` keeps
running when the session ends).

Once digits is on its way out after a stop (the records being written, the
one line being printed), further stop signals interrupt nothing: a second
quick Ctrl-C used to land in the middle of that and end in a traceback, exit
130, or a run left "running".  `exiting` says so; it has an effect only in
the ``digits`` process itself (`install`), never in a test runner that calls
the library.

Every stop signal is also counted (`note`), so that a wait on someone else
(`pipeline.core.deadline`: MLflow, Apprise, Kaggle, Ray) gives up at once
when one came, even where the handler only sets a flag (a training checks
its flag after each batch, not inside an MLflow call) or digits is on its
way out (the notification of an interrupted night): `pending`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_state = {"installed": False, "exiting": False, "abandon": False}
_count = {"received": 0, "acted_on": 0}  # stop signals received; how many of them the way out has taken in


def ignored_at_start(sig: signal.Signals) -> bool:
    """Whether `sig` is ignored now (so, left ignored: nohup's SIGHUP, a background job's SIGINT)."""
    return signal.getsignal(sig) is signal.SIG_IGN


def install(handler: Callable[[int, FrameType | None], None]) -> None:
    """In the ``digits`` process: SIGTERM and SIGHUP call `handler` (SIGINT keeps Python's KeyboardInterrupt)."""
    _state["installed"] = True

    def noted(signum: int, frame: FrameType | None) -> None:
        note()
        handler(signum, frame)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if not ignored_at_start(sig):
            signal.signal(sig, noted)


def note(signum: int | None = None, frame: FrameType | None = None) -> None:
    """A stop signal came (called by every stop handler; on the way out, the whole handler).

    Counted only in the ``digits`` process (`install`): a test runner that sends
    itself signals to test a training would otherwise leave a stop pending
    for every later test.
    """
    if _state["installed"]:
        _count["received"] += 1


def pending() -> bool:
    """Whether a stop signal came that the way out has not taken in: a wait on someone else then gives up.

    Before `exiting`, any stop signal; after it, one that came since.
    """
    return _count["received"] > _count["acted_on"]


def exiting() -> None:
    """The process is ending after a stop: from now on SIGINT, SIGTERM and SIGHUP interrupt nothing.

    They are only counted (`note`): the records are written whatever comes,
    and a wait on someone else (`pending`) still gives up on a further one.
    A signal ignored until now (``nohup``'s SIGHUP) stays ignored.
    """
    if not _state["installed"] or threading.current_thread() is not threading.main_thread():
        return
    if not _state["exiting"]:  # the first call takes in what came so far; later calls take in nothing more
        _count["acted_on"] = _count["received"]
    _state["exiting"] = True
    for sig in STOP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, note)


def is_exiting() -> bool:
    return _state["exiting"]


def abandon_at_exit() -> None:
    """Leave the process without the interpreter's clean-up (`main` calls os._exit once its line is out).

    A stop that lands while ray.init starts Ray's core worker leaves it half-started, and its teardown in the
    interpreter's finalization aborts: exit -6 (SIGABRT) instead of 4, after the right line.  Its agents,
    orphaned, end by themselves within a minute or two (seen: 60-90 s).
    """
    _state["abandon"] = True


def abandoned() -> bool:
    return _state["abandon"]
