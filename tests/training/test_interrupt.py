"""Stop signals during training: the first sets a flag, a second stops at once, an ignored one stays ignored."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest

from pipeline.training.interrupt import stop_on_signals

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signal handlers need the main thread"
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_first_signal_sets_the_flag_and_later_ones_raise_nothing(sig):
    """A second signal used to raise KeyboardInterrupt wherever Python was, and broke what it landed in: a record
    being serialized (pydantic turned it into a PydanticSerializationError traceback, exit 1).  The flag alone
    ends the work: a fold checks it after each batch, the driver of workers every half second."""
    with stop_on_signals() as stop:
        os.kill(os.getpid(), sig)
        assert stop.is_set() and stop.signal == sig.name
        for other in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, sig):
            os.kill(os.getpid(), other)
        assert stop.signal == sig.name


def test_a_signal_ignored_at_the_start_stays_ignored():
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with stop_on_signals() as stop:
            os.kill(os.getpid(), signal.SIGHUP)
            assert not stop.is_set()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)


def test_handlers_are_restored_after_the_block():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with stop_on_signals():
        pass
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_the_handler_takes_no_lock():
    """A signal landing while the handler itself runs (a Ctrl-C burst) runs it again inside itself.  It set a
    threading.Event, whose lock the interrupted frame below held: the night waited on itself for ever (found
    with py-spy, six handlers deep).  A handler may take no lock."""
    calls: list[object] = []
    with stop_on_signals():
        handler = signal.getsignal(signal.SIGINT)
        assert callable(handler)
        sys.setprofile(lambda frame, event, arg: calls.append(arg) if event == "c_call" else None)
        try:
            handler(signal.SIGINT, None)
            handler(signal.SIGTERM, None)
        finally:
            sys.setprofile(None)
    assert [c for c in calls if "lock" in repr(c).lower()] == []
