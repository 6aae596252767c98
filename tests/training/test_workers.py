"""Folds side by side in worker processes (executor.workers): the same bytes, stops, deaths and resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.store import record, run_folders
from tests.helpers import ROOT, digits, write_competition

KILL_SITE = ROOT / "tests" / "kill_site"
# 4 folds of 300 rows, 5 batches an epoch: small, but every fold has epochs and batches to stop or die in
ARGS = [
    "--data-dir",
    "data",
    "--model",
    "mlp",
    "--folds",
    "4",
    "--hidden",
    "32",
    "--batch-size",
    "64",
    "--set",
    "train.warmup_epochs=0",
    "--seed",
    "7",
]


def _run_dir(out: Path) -> Path:
    (run_id,) = run_folders.list_runs(out)
    return out / "runs" / run_id


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working folder is `folder` (the driver's workers inherit it)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")) == folder:
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def _same_bytes(a: Path, b: Path, folds: int = 4) -> None:
    for name in ["test_proba.npy", "oof.npz", *(f"folds/fold-{k}.npz" for k in range(folds))]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def one_after_another(tmp_path_factory) -> Path:
    """The reference: the folds trained one after another in the driver's process (one worker)."""
    where = tmp_path_factory.mktemp("one")
    write_competition(where / "data", n_train=400)
    done = digits("train", *ARGS, "--epochs", "3", "--set", "executor.workers=1", cwd=where)
    assert done.returncode == 0, done.stderr
    return _run_dir(where)


@pytest.mark.slow
def test_two_workers_write_the_bytes_of_one(tmp_path, one_after_another):
    write_competition(tmp_path / "data", n_train=400)
    done = digits("train", *ARGS, "--epochs", "3", "--set", "executor.workers=2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("val accuracy") == 4  # each fold's line reached the driver's log
    run_dir = _run_dir(tmp_path)
    _same_bytes(run_dir, one_after_another)
    assert record.read(run_dir).status == "complete"


@pytest.mark.slow
def test_a_worker_that_dies_is_one_line_and_resume_finishes_the_run(tmp_path, one_after_another):
    write_competition(tmp_path / "data", n_train=400)
    once = tmp_path / "killed-once"
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(KILL_SITE), os.environ.get("PYTHONPATH")])),
        "DIGITS_KILL_AT": "2:1",  # a worker SIGKILLs itself in epoch 2 of its first fold, as the OOM killer would
        "DIGITS_KILL_ONCE": str(once),
    }
    args = [*ARGS, "--epochs", "3", "--set", "executor.workers=2"]
    died = digits("train", *args, cwd=tmp_path, env=env)
    assert died.returncode == 7 and once.exists(), died.stderr
    last = died.stderr.strip().splitlines()[-1]
    assert last.startswith("digits: a worker process died") and "--resume" in last, died.stderr
    assert "Traceback" not in died.stderr
    run_dir = _run_dir(tmp_path)
    assert record.read(run_dir).status == "failed"

    resumed = digits("train", "--resume", run_dir.name, *args, cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    _same_bytes(run_dir, one_after_another)


@pytest.mark.slow
@pytest.mark.parametrize("to", ["driver", "group"])
def test_sigterm_stops_every_worker_within_seconds_and_resume_finishes(tmp_path, to):
    """`kill PID` reaches the driver alone; systemd and `timeout` signal the whole group, workers included."""
    write_competition(tmp_path / "data", n_train=400)
    args = [*ARGS, "--epochs", "40", "--set", "executor.workers=2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "pipeline", "train", *args]
    proc = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    folds = tmp_path / "runs"
    deadline = time.monotonic() + 240
    while not list(folds.glob("*/folds/*.resume.npz")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)
    assert list(folds.glob("*/folds/*.resume.npz")), "no fold saved an epoch in four minutes"
    if to == "group":
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 10, f"SIGTERM took {time.monotonic() - sent:.0f}s"
    assert proc.returncode == 4, err
    assert "interrupted" in err.strip().splitlines()[-1] and "Traceback" not in err
    run_dir = _run_dir(tmp_path)
    assert record.read(run_dir).status == "interrupted"
    assert not _processes_in(tmp_path), "a worker outlived the driver"

    resumed = digits("train", "--resume", run_dir.name, *args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    fresh = digits("train", *args, "--output-dir", "fresh", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    _same_bytes(run_dir, _run_dir(tmp_path / "fresh"))
