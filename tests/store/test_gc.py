"""digits gc: what it keeps, what it removes, and the leftovers of an interrupted gc."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest

from pipeline.cli import view_commands
from pipeline.core import atomic_files
from pipeline.core.errors import BusyError
from pipeline.store import gc as gc_mod
from pipeline.store import run_folders
from tests import runfactory as rf

T0 = dt.datetime(2026, 11, 20, 23, 30, 0)
invoke = rf.invoke


@pytest.fixture(autouse=True)
def plain_console(monkeypatch):
    rf.plain_terminal(monkeypatch)


def _ids(out: Path) -> list[str]:
    return run_folders.list_runs(out)


def test_gc_keeps_newest_and_the_submission_run(tmp_path):
    made = rf.nightly(tmp_path, 6)
    sub = rf.make_run(tmp_path, T0 - dt.timedelta(days=30), seed=20, current_submission=True)  # the oldest run
    before = _ids(tmp_path)
    dry = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 2, "--dry-run")
    assert dry.exit_code == 0 and "would remove" in dry.stdout and _ids(tmp_path) == before
    result = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 2)
    assert result.exit_code == 0, result.output
    assert _ids(tmp_path) == [sub.name] + [p.name for p in made[-2:]]
    assert "made the current submissions/submission.csv" in result.stdout
    assert (tmp_path / "submissions" / "submission.csv").exists()
    assert (tmp_path / "submissions" / f"{sub.name}.csv").exists()
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]  # no half-deleted leftovers


def test_gc_keeps_the_submission_run_even_if_its_report_is_broken(tmp_path):
    sub = rf.make_run(tmp_path, T0, current_submission=True)
    rf.corrupt_report(sub)
    rf.nightly(tmp_path, 3, start=T0 + dt.timedelta(days=1))
    invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 1)
    assert sub.name in _ids(tmp_path) and len(_ids(tmp_path)) == 2


def test_gc_spares_a_running_run_while_the_lock_is_held(tmp_path):
    live = rf.make_run(tmp_path, T0, status="running", seed=1)
    starting = rf.make_run(tmp_path, T0 + dt.timedelta(hours=1), seed=2)
    rf.remove_report(starting)
    rf.nightly(tmp_path, 3, start=T0 + dt.timedelta(days=1))
    before = _ids(tmp_path)
    with run_folders.Lock(tmp_path):  # a digits of this version: it holds the runs too, so gc removes nothing
        busy = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 1)
        dry = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 1, "--dry-run")
    assert isinstance(busy.exception, BusyError) and "gc removes nothing" in str(busy.exception)
    assert _ids(tmp_path) == before
    assert dry.exit_code == 0 and "running (the output directory is locked by another digits)" in dry.stdout
    with run_folders.Lock(tmp_path, use_runs=False):  # only the lock, as an older digits held it
        result = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 1)
    assert result.exit_code == 0, result.output
    assert live.name in _ids(tmp_path) and starting.name in _ids(tmp_path) and len(_ids(tmp_path)) == 3
    assert "running" in result.stdout
    # once nobody holds the lock, the stale "running" run goes like any other
    result = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 1)
    assert live.name not in _ids(tmp_path) and "stale" in result.stdout
    assert len(_ids(tmp_path)) == 1


def test_gc_keep_zero_and_negative(tmp_path):
    rf.nightly(tmp_path, 2)
    assert invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", -1).exit_code == 2  # usage error
    assert invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 0).exit_code == 0
    assert _ids(tmp_path) == []
    assert "nothing to remove" in invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 0).stdout


def test_an_interrupted_gc_leaves_no_run_behind_and_the_next_gc_removes_its_leftovers(tmp_path, monkeypatch):
    made = rf.nightly(tmp_path, 4)
    real_rmtree = shutil.rmtree

    def interrupted(path, *args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C after the rename, before the folder is gone

    monkeypatch.setattr(gc_mod.shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gc_mod.gc(tmp_path, keep=3)
    leftover = tmp_path / "runs" / f".gc-{made[0].name}"
    assert leftover.is_dir() and (leftover / "report.json").is_file()
    assert _ids(tmp_path) == [p.name for p in made[1:]]  # the half-deleted run is not a run any more
    with run_folders.Lock(tmp_path):  # the lock was released on the way out
        pass

    monkeypatch.setattr(gc_mod.shutil, "rmtree", real_rmtree)
    dry = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 3, "--dry-run")
    assert dry.exit_code == 0 and leftover.is_dir()
    assert "would remove 1 folder(s) an interrupted gc left" in dry.stdout
    again = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 3)
    assert again.exit_code == 0, again.output
    assert (
        not leftover.exists() and f"removed 1 folder(s) an interrupted gc left behind: {leftover.name}" in again.stdout
    )
    assert _ids(tmp_path) == [p.name for p in made[1:]]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [p.name for p in made[1:]]


def test_leftovers_alone_are_removed_too(tmp_path):
    stale = tmp_path / "runs" / ".gc-20261101-233000" / "folds"
    stale.mkdir(parents=True)
    (stale / "fold-0.keras").write_bytes(b"x" * 100)
    result = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 1)
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "runs").iterdir()) == []


def test_leftovers_stay_while_another_digits_holds_the_lock(tmp_path):
    rf.nightly(tmp_path, 2)
    stale = tmp_path / "runs" / ".gc-20250101-000000"
    stale.mkdir()
    with run_folders.Lock(tmp_path, use_runs=False):  # another gc may be renaming this very folder
        result = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 1)
    assert result.exit_code == 0 and stale.is_dir()
    with run_folders.Lock(tmp_path):
        result = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 1)
    assert isinstance(result.exception, BusyError) and stale.is_dir()


# ---- gc never deletes a run another digits is using --------------------------------------------------------------


@pytest.mark.parametrize("reader", ["compare", "report", "history", "runs", "submit"])
def test_gc_removes_nothing_while_a_read_only_command_uses_the_runs(tmp_path, monkeypatch, reader):
    """`digits gc --keep 0` while `digits <reader>` runs: the reader's runs stay, gc says why and exits 5."""
    from pipeline.cli import cli
    from pipeline.views import compare, history, report

    made = rf.nightly(tmp_path, 3)
    before = _ids(tmp_path)
    seen: list = []

    def gc_meanwhile(*args, **kwargs):
        seen.append(rf.invoke(cli, "gc", "--output-dir", tmp_path, "--keep", 0))
        raise SystemExit(0)  # the reader's own work is not what this test is about

    target = {
        "compare": (compare, "compare"),
        "report": (report, "build_report"),
        "history": (history, "history"),
        "runs": (history, "list_runs"),
        "submit": (__import__("pipeline.nightly.submit", fromlist=["submit"]), "submit"),
    }[reader]
    monkeypatch.setattr(*target, gc_meanwhile)
    args = [reader, "--output-dir", tmp_path] + ([made[0]] if reader in ("report", "submit", "compare") else [])
    rf.invoke(cli, *args)
    (busy,) = seen
    assert busy.exit_code == 5 and "gc removes nothing" in busy.output, busy.output
    assert _ids(tmp_path) == before


def test_gc_keep_zero_while_predict_runs_keeps_the_run_and_predict_finishes(tmp_path, monkeypatch):
    """The issue's case: predict A must neither fail nor leave a husk of A because gc ran meanwhile."""
    import numpy as np

    from pipeline.cli import cli
    from pipeline.nightly import blend
    from tests.helpers import write_competition

    write_competition(tmp_path / "data", n_test=280)
    made = rf.nightly(tmp_path, 2, config_overrides={"data": {"dir": str(tmp_path / "data")}})
    for run in made:  # the runs predicted this very test.csv: the blend reads their saved probabilities
        atomic_files.write_npy(run / "test_proba.npy", np.full((280, 10), 0.1, dtype=np.float32))
        report = rf.read(run)
        report["data"]["test.csv"]["sha256"] = atomic_files.sha256(tmp_path / "data" / "test.csv")
        rf.write_raw(run, report)
    seen: list = []
    real = blend.candidates

    def gc_meanwhile(*args, **kwargs):
        seen.append(rf.invoke(cli, "gc", "--output-dir", tmp_path, "--keep", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(blend, "candidates", gc_meanwhile)
    r = rf.invoke(cli, "predict", "--output-dir", tmp_path, made[0].name)
    assert r.exit_code == 0, r.output
    (busy,) = seen
    assert busy.exit_code == 5 and _ids(tmp_path) == [p.name for p in made]
    assert rf.read(made[0])["submission"] is not None and (made[0] / "oof.npz").is_file()


def test_gc_of_a_run_that_is_a_symlink_removes_the_link_and_leaves_its_target(tmp_path):
    made = rf.nightly(tmp_path / "archive", 2)
    rf.nightly(tmp_path / "out", 2, start=T0 + dt.timedelta(days=30))
    link = tmp_path / "out" / "runs" / made[0].name
    link.symlink_to(made[0], target_is_directory=True)
    result = invoke(view_commands.gc, "--output-dir", tmp_path / "out", "--keep", 2)
    assert result.exit_code == 0, result.output
    assert not os.path.lexists(link) and made[0].is_dir() and (made[0] / "report.json").is_file()
    assert not [p for p in (tmp_path / "out" / "runs").iterdir() if p.name.startswith(".")]  # nothing left behind


def test_a_record_is_never_written_into_a_run_folder_that_is_gone(tmp_path):
    """What a predict whose run was deleted under it did: recreate the folder as a husk with a complete report."""
    from pipeline.core.errors import StorageError
    from pipeline.store import record

    run = rf.make_run(tmp_path, T0)
    rec = record.read(run)
    shutil.rmtree(run)
    with pytest.raises(StorageError, match="the run folder is gone"):
        record.write(run, rec)
    assert not run.exists() and _ids(tmp_path) == []


def test_a_command_waits_for_a_gc_that_is_deleting_then_gives_up_in_one_line(tmp_path):
    from pipeline.store import runs_in_use

    rf.nightly(tmp_path, 1)
    with runs_in_use.exclusive(tmp_path):  # a gc deleting right now
        began = time.monotonic()
        with (
            pytest.raises(BusyError, match="digits gc has been removing runs here for 1s"),
            runs_in_use.InUse(tmp_path, wait=1.0),
        ):
            pass
        assert time.monotonic() - began >= 1.0
    with runs_in_use.InUse(tmp_path, wait=1.0):  # and goes ahead once it has ended
        pass


def test_gc_keeps_every_member_of_the_current_submissions_blend(tmp_path):
    """Not only the run that wrote submission.csv: every run its blend averages (predict again needs them all)."""
    members = [rf.make_run(tmp_path, T0 - dt.timedelta(days=40 - k), seed=30 + k) for k in range(2)]
    writer_time = T0 - dt.timedelta(days=30)
    writer_id = writer_time.strftime("%Y%m%d-%H%M%S")
    blend = rf.blend_of((writer_id, 0.5, 0.97), (members[0], 0.25, 0.96), (members[1], 0.25, 0.96), estimate=0.975)
    rf.make_run(tmp_path, writer_time, seed=40, current_submission=True, blend=blend)
    newer = rf.nightly(tmp_path, 3)
    result = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 1)
    assert result.exit_code == 0, result.output
    assert _ids(tmp_path) == [members[0].name, members[1].name, writer_id, newer[-1].name]
    assert "in the blend of the current submissions/submission.csv" in result.stdout


def test_gc_keeps_every_member_of_every_ledger_entrys_blend(tmp_path):
    from pipeline.store import ledger

    old = [rf.make_run(tmp_path, T0 - dt.timedelta(days=40 - k), seed=30 + k) for k in range(4)]
    for k, status in enumerate(("complete", "error")):
        entry = ledger.Entry(
            id=f"e{k}",
            competition="digit-recognizer",
            status=status,
            ref=k + 1,
            run_id=old[2 * k].name,
            members=[ledger.Member(old[2 * k].name, 0.5), ledger.Member(old[2 * k + 1].name, 0.5)],
        )
        ledger.append(tmp_path, entry)
    newer = rf.nightly(tmp_path, 2)
    result = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 1)
    assert result.exit_code == 0, result.output
    assert _ids(tmp_path) == [p.name for p in old] + [newer[-1].name]


def test_gc_keeps_the_newest_readable_runs_and_the_unreadable_folders_newer_than_them(tmp_path):
    """Empty folders newer than every run never count as the runs to keep: the real runs would have gone."""
    made = rf.nightly(tmp_path, 5)
    empty = [tmp_path / "runs" / f"20270101-000000-{k + 2}" for k in range(20)]
    for folder in empty:
        folder.mkdir()
    result = invoke(view_commands.gc, "--output-dir", tmp_path, "--keep", 2)
    assert result.exit_code == 0, result.output
    assert _ids(tmp_path) == sorted([p.name for p in made[-2:]] + [f.name for f in empty])
