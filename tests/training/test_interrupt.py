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
def test_the_first_signal_only_sets_the_flag_and_a_second_raises_inside_a_fold(sig):
    with stop_on_signals() as stop:
        os.kill(os.getpid(), sig)
        assert stop.is_set() and stop.signal == sig.name
        with pytest.raises(KeyboardInterrupt), stop.interruptible():  # a fold computing in this process
            os.kill(os.getpid(), sig)


def test_a_second_signal_outside_a_fold_raises_nothing():
    """Raised anywhere, a KeyboardInterrupt broke what it landed in: a record being serialized (pydantic turned it
    into a PydanticSerializationError traceback, exit 1) or concurrent.futures' wait halfway through taking its
    futures' locks (the pool's shutdown then waited for ever).  Outside a fold the stop under way ends the work."""
    with stop_on_signals() as stop:
        for _ in range(5):
            os.kill(os.getpid(), signal.SIGINT)
        assert stop.is_set() and stop.signal == "SIGINT"


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
