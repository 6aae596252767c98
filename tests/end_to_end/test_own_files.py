"""Every file the job writes is a regular file of its own: never through a FIFO, a symlink or a device.

Where a user's FIFO or symlink sits where a command writes (a fold's
checkpoint, the ledger, the lock's pid file, a report, a plot, the
submission), the command refuses with one line naming it, exit 1, never
waits on it, and leaves it and whatever it points to as they were.  Each
case is the command a user would run, in a subprocess.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from pipeline.core import atomic_files
from pipeline.store import run_folders
from tests import runfactory as rf
from tests.helpers import ROOT, TINY, digits, error_line, make_fifo, write_competition

HANG = 120  # a command that waited on a FIFO is ended after this long, and the test fails


def _put(path: Path, kind: str, tmp_path: Path):
    """A user's FIFO, or symlink to a file of theirs, at `path`; returns a check that it is unchanged."""
    if kind == "fifo":
        make_fifo(path, unblock_after=HANG * 4)  # a writer that opened it would still be waiting at the end
        return lambda: stat.S_ISFIFO(os.lstat(path).st_mode)
    users = tmp_path / "users-own.txt"
    users.write_bytes(b"the user's own words\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(users)
    return lambda: path.is_symlink() and users.read_bytes() == b"the user's own words\n"


def _refused(r, path: Path, what: str) -> None:
    line = error_line(r)
    assert r.returncode == 1, r.stderr
    assert f"{path.name}: {what} where digits writes a file of its own" in line, line


KINDS = {"fifo": "a FIFO", "symlink": "a symlink"}


def _predictable(tmp_path: Path) -> Path:
    """A finished run in out/ that `digits predict` blends, with its competition in data/."""
    write_competition(tmp_path / "data", n_test=280)
    run = rf.make_run(tmp_path / "out", "20261101-233000")
    atomic_files.write_npy(run / "test_proba.npy", np.full((280, 10), 0.1, dtype=np.float32))
    report = rf.read(run)
    report["data"]["test.csv"]["sha256"] = atomic_files.sha256(tmp_path / "data" / "test.csv")
    rf.write_raw(run, report)
    return run


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "where", ["submissions/submission.csv", ".digits.lock.pid", "runs/20261101-233000/estimate.npz"]
)
def test_predict_never_writes_through_a_users_fifo_or_symlink(tmp_path, kind, where):
    _predictable(tmp_path)
    path = tmp_path / "out" / where
    unchanged = _put(path, kind, tmp_path)
    r = digits("predict", "--output-dir", "out", "--data-dir", "data", cwd=tmp_path, timeout=HANG)
    _refused(r, path, KINDS[kind])
    assert unchanged()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command, where", [("report", "runs/20261101-233000/report.html"), ("history", "history.png")])
def test_report_and_history_never_write_through_a_users_fifo_or_symlink(tmp_path, kind, command, where):
    rf.make_run(tmp_path / "out", "20261101-233000")
    path = tmp_path / "out" / where
    unchanged = _put(path, kind, tmp_path)
    r = digits(command, "--output-dir", "out", cwd=tmp_path, timeout=HANG)
    _refused(r, path, KINDS[kind])
    assert unchanged()


@pytest.mark.parametrize("kind", KINDS)
def test_submit_never_appends_to_a_users_fifo_or_symlink_where_the_ledger_goes(fake_kaggle, tmp_path, kind):
    path = tmp_path / "submissions" / "ledger.jsonl"
    unchanged = _put(path, kind, tmp_path)
    mine = tmp_path / "mine.csv"
    mine.write_text("ImageId,Label\n" + "".join(f"{i},{i % 10}\n" for i in range(1, 13)))
    r = digits("submit", str(mine), "-m", "mine", cwd=tmp_path, timeout=HANG)
    _refused(r, path, KINDS[kind])
    assert unchanged() and fake_kaggle.uploads == []  # refused before anything reached Kaggle


@pytest.mark.slow
def test_a_fifo_where_a_folds_checkpoint_goes_stops_the_run_with_one_line(tmp_path):
    """The checkpoint is saved after each epoch: a FIFO there hung the save for ever."""
    write_competition(tmp_path / "data", n_train=200)
    once = tmp_path / "killed-once"
    kill = {  # SIGKILL in fold 0's first epoch, before any checkpoint (tests/kill_site)
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests" / "kill_site"), os.environ.get("PYTHONPATH")])),
        "DIGITS_KILL_AT": "1:0",
        "DIGITS_KILL_ONCE": str(once),
    }
    args = ["--data-dir", "data", *TINY]
    assert digits("train", *args, cwd=tmp_path, env=kill).returncode != 0 and once.exists()
    (run_id,) = run_folders.list_runs(tmp_path)
    path = tmp_path / "runs" / run_id / "folds" / "fold-0.resume.npz"
    unchanged = _put(path, "fifo", tmp_path)
    r = digits("train", "--resume", run_id, *args, cwd=tmp_path, timeout=HANG * 3)  # TensorFlow's start, then an epoch
    _refused(r, path, "a FIFO")
    assert unchanged()


def test_a_symlink_where_the_lock_goes_is_refused_and_its_target_left_alone(tmp_path):
    """filelock opens the lock without following a link (O_NOFOLLOW): one line, exit 6, the user's file as it was."""
    _predictable(tmp_path)
    path = tmp_path / "out" / ".digits.lock"
    unchanged = _put(path, "symlink", tmp_path)
    r = digits("predict", "--output-dir", "out", "--data-dir", "data", cwd=tmp_path, timeout=HANG)
    assert r.returncode == 6 and "cannot write out/.digits.lock" in error_line(r), r.stderr
    assert unchanged()
