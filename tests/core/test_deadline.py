"""A total deadline on a call, and a stop signal that ends the wait for it."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.core import deadline, stop_signals


@pytest.fixture
def signals(monkeypatch):
    """The stop-signal counts of this test alone, counted as in the digits process; no handler is touched."""
    monkeypatch.setattr(stop_signals, "_count", {"received": 0, "acted_on": 0})
    monkeypatch.setattr(stop_signals, "_state", {"installed": True, "exiting": False})
    monkeypatch.setattr(stop_signals, "exiting", lambda: None)


def test_outside_the_digits_process_no_stop_is_ever_pending(monkeypatch):
    monkeypatch.setattr(stop_signals, "_count", {"received": 0, "acted_on": 0})
    monkeypatch.setattr(stop_signals, "_state", {"installed": False, "exiting": False})
    stop_signals.note()  # a test runner's own signal to a training it tests
    assert not stop_signals.pending()


def test_a_call_that_ends_gives_its_value_or_its_exception(signals):
    assert deadline.call(lambda: 42, 5) == 42
    with pytest.raises(ZeroDivisionError):
        deadline.call(lambda: 1 / 0, 5)


def test_a_call_that_never_ends_is_left_behind_at_its_deadline(signals):
    never = threading.Event()
    t = time.monotonic()
    with pytest.raises(deadline.Expired, match=r"no answer within 0.5 s \(a server\)") as caught:
        deadline.call(never.wait, 0.5, "a server")
    assert isinstance(caught.value, TimeoutError) and caught.value.seconds == 0.5
    assert time.monotonic() - t < 30  # the deadline, not the call, ended it


def test_a_stop_signal_noted_meanwhile_ends_the_wait_as_the_signal_would(signals):
    never = threading.Event()
    threading.Timer(0.3, stop_signals.note).start()  # what a handler that only sets a flag also does
    t = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        deadline.call(never.wait, 600, "a server")
    assert time.monotonic() - t < 30


def test_the_call_sees_the_callers_context_variables(signals):
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("the caller's")
    assert deadline.call(var.get, 5) == "the caller's"
