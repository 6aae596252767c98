"""Stop signals during training: the first sets a flag, a second stops at once, an ignored one stays ignored."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from pipeline.training.interrupt import stop_on_signals

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signal handlers need the main thread"
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_first_signal_sets_the_flag_and_later_ones_raise_nothing(sig):
    """A second signal used to raise KeyboardInterrupt wherever Python was; it broke what it landed in: a record
    being serialized (pydantic turned it into a PydanticSerializationError traceback, exit 1), concurrent.futures'
    wait halfway through taking its futures' locks (the pool's shutdown then waited for ever), a fold in this
    process (a Ctrl-C burst held it past two minutes).  The flag alone ends the work: a fold checks it after each batch."""
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
