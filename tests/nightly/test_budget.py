"""Runs that span nights (plan.budget) and runs set aside after failing the same way twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core import config_layers
from pipeline.store import record, run_folders
from pipeline.store.record import Attempt, FoldRecord
from pipeline.training import resume
from tests.helpers import digits, write_competition

TINY = [
    "--offline",
    "--model",
    "mlp",
    "--folds",
    "3",
    "--epochs",
    "12",
    "--hidden",
    "32",
    "--batch-size",
    "64",
    "--set",
    "train.warmup_epochs=0",
    "--seed",
    "5",
]


def _runs(out: Path) -> list[Path]:
    return [out / "runs" / r for r in run_folders.list_runs(out)]


@pytest.mark.slow
def test_a_run_paused_by_the_budget_is_continued_by_the_next_night_and_ends_with_the_same_bytes(tmp_path):
    write_competition(tmp_path / "data", n_train=300)
    # 0.06 s: one epoch of the first fold (a night always moves its run on), then stop; one worker, so one fold
    first = digits("run", *TINY, "--set", "plan.budget=0.001", "--set", "executor.workers=1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = _runs(tmp_path)
    rec = record.read(run_dir)
    assert rec.status == "paused" and not (tmp_path / "submissions" / "submission.csv").exists()
    line = first.stderr.strip().splitlines()[-1]
    assert line.endswith(f"run {rec.run_id}: {record.standing(rec)}; no new submission tonight"), first.stderr
    assert "fold 1 of 3, epoch 1 of 12" in line and first.stdout == ""
    assert list((run_dir / "folds").glob("*.resume.npz")), "the paused folds' epochs were not kept"

    second = digits("run", *TINY, "--set", "plan.budget=0", cwd=tmp_path)  # tomorrow, no budget: only finish it
    assert second.returncode == 0, second.stderr
    assert _runs(tmp_path) == [run_dir], "the next night started a new run instead of continuing"
    rec = record.read(run_dir)
    assert rec.status == "complete" and (tmp_path / "submissions" / "submission.csv").exists()
    assert [a.ended for a in rec.attempts] == ["paused", "complete"]
    assert rec.attempts[0].epochs and rec.attempts[1].folds_done == 3

    whole = digits("train", *TINY[1:], "--output-dir", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    (whole_dir,) = _runs(tmp_path / "whole")
    for name in ("test_proba.npy", "oof.npz"):
        assert (run_dir / name).read_bytes() == (whole_dir / name).read_bytes(), name


@pytest.mark.slow
def test_where_runs_span_nights_a_night_fills_its_budget_with_the_next_runs(tmp_path):
    """A run that fits a night is the night's only one; once runs span nights, runs follow runs on every core."""
    write_competition(tmp_path / "data", n_train=300)
    tiny = ["--offline", "--model", "mlp", "--folds", "3", "--epochs", "4", "--hidden", "16", "--batch-size", "64"]
    tiny += ["--set", "executor.workers=2"]
    first = digits("run", *tiny, "--set", "plan.budget=0.001", cwd=tmp_path)  # one epoch, then paused
    assert first.returncode == 0, first.stderr
    (spanning,) = _runs(tmp_path)
    assert record.read(spanning).status == "paused"

    second = digits("run", *tiny, "--set", "plan.budget=0.75", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    runs = {d.name: record.read(d) for d in _runs(tmp_path)}
    assert runs[spanning.name].status == "complete" and f"run {spanning.name}: continuing" in second.stderr
    following = [k for k in runs if k != spanning.name]
    assert following, "the budget had room, and no run followed the one that spanned nights"
    assert {runs[k].status for k in following} <= {"complete", "paused"}, runs
    # a run opened tonight finished inside the budget: runs fit a night again, and the night stops opening them
    # (at most one more per worker was drawn meanwhile), rather than train run after run for 45 s
    assert len(following) <= 3 and any(runs[k].status == "complete" for k in following), runs
    assert second.stdout.strip().endswith("submission.csv")

    third = digits("run", *tiny, "--set", "plan.budget=0", cwd=tmp_path)  # no budget: the paused runs end, no more
    assert third.returncode == 0, third.stderr
    assert {record.read(d).status for d in _runs(tmp_path)} == {"complete"}
    paused = [k for k in runs if runs[k].status == "paused"]
    # a paused run is finished and nothing opened beside it; with none left, the night is an ordinary one
    assert len(_runs(tmp_path)) == len(runs) + (0 if paused else 1), "a night opened runs beside the paused ones"


@pytest.mark.slow
def test_a_run_that_fails_the_same_way_twice_is_set_aside_and_the_next_night_starts_anew(tmp_path):
    write_competition(tmp_path / "data", n_train=300)
    diverging = [*TINY, "--set", "train.learning_rate=1e30", "--resume"]
    first = digits("run", *diverging, cwd=tmp_path)
    assert first.returncode == 1 and "diverged" in first.stderr, first.stderr
    (run_dir,) = _runs(tmp_path)
    assert record.read(run_dir).status == "failed"

    second = digits("run", *diverging, cwd=tmp_path)  # resumed, and failing again the same way
    assert second.returncode == 1, second.stderr
    last = second.stderr.strip().splitlines()[-1]
    assert "diverged" in last and f"run {run_dir.name} failed this way before: set aside" in last, last
    rec = record.read(run_dir)
    assert rec.status == "set-aside" and "failed twice the same way" in (rec.error or "")
    assert [a.ended for a in rec.attempts] == ["failed", "failed"]

    third = digits("run", *diverging, cwd=tmp_path)  # no longer resumed: a new run, which fails on its own
    assert third.returncode == 1 and "set aside" not in third.stderr.strip().splitlines()[-1], third.stderr
    assert len(_runs(tmp_path)) == 2 and record.read(run_dir).status == "set-aside"
    named = digits("train", "--resume", run_dir.name, *diverging[1:-1], cwd=tmp_path)
    assert named.returncode == 1 and "was set aside" in named.stderr, named.stderr


# ---- the record's side, without training -------------------------------------------------------------------


def _record(attempts: list[Attempt], folds: int = 0) -> record.RunRecord:
    config = config_layers.build(named={"model": {"kind": "mlp"}, "train": {"seed": 1, "folds": 5, "epochs": 45}})
    done = [FoldRecord(k, 10, 2, 0.9, 0.1, 45, 45, 1.0, 10.0) for k in range(folds)]
    return record.RunRecord("20261201-010000", "paused", config, "", folds=done, attempts=attempts)


def test_the_standing_names_the_fold_and_epoch_as_the_issue_does():
    one = _record([Attempt("", "paused", folds_done=2, epochs={2: 12, 3: 0, 4: 0})], folds=2)
    assert record.standing(one) == "fold 3 of 5, epoch 12 of 45; 2 of 5 folds done, 2 not started"
    two = _record([Attempt("", "paused", epochs={0: 12, 1: 10, 2: 0})])
    assert record.standing(two) == "folds 1, 2 of 5 at epochs 12, 10 of 45"
    none = _record([Attempt("", "paused", folds_done=4, epochs={4: 0})], folds=4)
    assert record.standing(none) == "4 of 5 folds done, 1 not started"


@pytest.mark.parametrize(
    "errors, aside",
    [
        (["fold 2 diverged in epoch 3"], False),
        (["fold 2 diverged in epoch 3", "fold 1 diverged in epoch 4"], True),  # the same way, in other numbers
        (["out of memory", "fold 2 diverged in epoch 3"], False),
        (["a", "b", "c"], True),  # three failures of any kind
        ([resume.KILLED, resume.KILLED], True),  # killed twice where it stood: an OOM every night
    ],
)
def test_which_failures_set_a_run_aside(errors, aside):
    rec = _record([Attempt("", "failed", error=e) for e in errors])
    assert (resume.set_aside_reason(rec) is not None) == aside
