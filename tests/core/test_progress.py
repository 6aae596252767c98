"""What reaches a cron log: TensorFlow's native chatter filtered out, its fatal last words kept."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, sys
from pipeline.core.progress import filter_native_stderr
filter_native_stderr()
os.write(2, b"I0000 00:00:1795740159.623698    2593 cudart_stub.cc:31] Could not find cuda drivers\\n")
os.write(2, b"E0000 00:00:1795740160.854336    2593 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\\n")
os.write(2, b"F0000 00:00:1795740161.000000    2593 op_kernel.cc:1] Check failed: the last words\\n")
{ending}
"""


def _run(ending: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(ending=ending)], capture_output=True, timeout=60)


def test_a_fatal_native_message_reaches_stderr_when_the_process_aborts():
    r = _run("os.abort()")
    assert r.returncode != 0
    assert b"Check failed: the last words" in r.stderr
    assert b"cuda" not in r.stderr  # the expected GPU-less start-up chatter is dropped


def test_python_stderr_and_a_normal_exit_keep_every_line_in_order():
    r = _run('print("python line", file=sys.stderr); sys.exit(3)')
    assert r.returncode == 3
    assert b"the last words" in r.stderr and b"python line" in r.stderr


# ---- observers: they hear every event; one that fails is warned about once and dropped -----------


class Task:
    run_id, index = "20261125-013000", 1


class Listener:
    def __init__(self, fail_on: str = ""):
        self.heard: list[tuple] = []
        self.fail_on = fail_on

    def __getattr__(self, event: str):
        if event not in ("run_started", "epoch", "fold_done", "run_finished", "command_finished"):
            raise AttributeError(event)

        def handler(*args):
            self.heard.append((event, *args))
            if event == self.fail_on:
                raise OSError(28, "No space left on device")

        return handler


def _events(progress) -> None:
    from pipeline.store.record import FoldRecord

    fold = FoldRecord(1, 90, 10, 0.9, 0.3, 2, 2, 1.0, 180.0)
    progress.run_started("runs/x", "record")
    progress.epoch(Task(), 1, 2, {"loss": 0.5})
    progress.epoch(Task(), 2, 2, {"loss": 0.4})
    progress.fold_done(type("Result", (), {"record": fold})(), run_dir="runs/x")
    progress.run_finished("runs/x", "record")
    progress.command_finished(".")


def test_observers_hear_every_event_with_the_run_id_of_each_epoch():
    from pipeline.core.progress import Progress

    progress = Progress()
    progress.observers.append(listener := Listener())
    _events(progress)
    assert [h[0] for h in listener.heard] == [
        "run_started", "epoch", "epoch", "fold_done", "run_finished", "command_finished"
    ]  # fmt: skip
    assert listener.heard[2] == ("epoch", "20261125-013000", 1, 2, {"loss": 0.4})
    assert listener.heard[3][1] == "runs/x" and listener.heard[3][2].val_accuracy == 0.9


def test_a_failing_observer_costs_one_warning_line_and_hears_nothing_more():
    import logging

    from pipeline.core.progress import Progress, log

    class Lines(logging.Handler):  # on the logger itself: `setup` elsewhere may have stopped propagation
        records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    progress = Progress()
    failing, healthy = Listener(fail_on="epoch"), Listener()
    progress.observers += [failing, healthy]
    lines = Lines()
    log.addHandler(lines)
    try:
        _events(progress)
    finally:
        log.removeHandler(lines)
    assert [h[0] for h in failing.heard] == ["run_started", "epoch"]  # dropped after its first failure
    assert len(healthy.heard) == 6 and progress.observers == [healthy]
    warnings = [r.getMessage() for r in lines.records if r.levelname == "WARNING"]
    assert warnings == [
        "warning: Listener: OSError: [Errno 28] No space left on device; off for the rest of this command"
    ]


def test_an_interrupt_inside_an_observer_still_stops_the_command():
    import pytest

    from pipeline.core.progress import Progress

    class Interrupted:
        def run_started(self, *args):
            raise KeyboardInterrupt

    progress = Progress()
    progress.observers.append(Interrupted())
    with pytest.raises(KeyboardInterrupt):
        progress.run_started("runs/x", "record")
