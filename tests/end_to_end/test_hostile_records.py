"""Damaged run files read by every command that reads runs: one line or a note, never a traceback.

A run folder is the user's to damage: its report.json may lack a section, its
oof.npz may hold labels out of range or probabilities of the wrong width, and
so on.  Each mutation below is applied to the newest of two runs; every
reader then either works (exit 0, with a note where it must) or says in one
line what is wrong with which file (exit 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import cli
from pipeline.core import atomic_files
from tests import runfactory as rf
from tests.helpers import write_competition

ROWS, TEST_ROWS = 600, 280


def _oof(run: Path, labels: np.ndarray | None = None, proba: np.ndarray | None = None) -> None:
    with np.load(run / "oof.npz") as z:
        old_labels, old_proba = z["labels"], z["proba"]
    atomic_files.write_npz(
        run / "oof.npz",
        labels=old_labels if labels is None else labels,
        proba=old_proba if proba is None else proba,
    )


def _report(run: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = rf.read(run)
    change(data)
    rf.write_raw(run, data)


def _misclassified(run: Path, **arrays: np.ndarray) -> None:
    with np.load(run / "misclassified.npz") as z:
        current = {k: z[k] for k in z.files}
    current.update(arrays)
    atomic_files.write_npz(run / "misclassified.npz", **current)


MUTATIONS = {
    "oof labels above 9": lambda run: _oof(run, labels=np.full(ROWS, 12)),
    "oof labels negative": lambda run: _oof(run, labels=np.full(ROWS, -3)),
    "oof labels not integers": lambda run: _oof(run, labels=np.full(ROWS, 0.5)),
    "oof proba 12 wide": lambda run: _oof(run, proba=np.full((ROWS, 12), 0.1, dtype=np.float32)),
    "oof proba 9 wide": lambda run: _oof(run, proba=np.full((ROWS, 9), 0.1, dtype=np.float32)),
    "oof proba one column": lambda run: _oof(run, proba=np.full(ROWS, 0.1, dtype=np.float32)),
    "oof labels 2-d": lambda run: _oof(run, labels=np.zeros((ROWS, 2), dtype=np.int64)),
    "oof of fewer rows": lambda run: _oof(
        run, labels=np.zeros(5, dtype=np.int64), proba=np.full((5, 10), 0.1, dtype=np.float32)
    ),
    "oof proba of strings": lambda run: _oof(run, proba=np.full((ROWS, 10), "x")),
    "oof labels above 9 and no confusion matrix": lambda run: (
        _oof(run, labels=np.full(ROWS, 12)),
        _report(run, lambda d: d.update(confusion_matrix=None, per_class_accuracy=None)),
    ),
    "oof proba 12 wide and no confusion matrix": lambda run: (
        _oof(run, proba=np.full((ROWS, 12), 0.1, dtype=np.float32)),
        _report(run, lambda d: d.update(confusion_matrix=None, per_class_accuracy=None)),
    ),
    "report without data": lambda run: _report(run, lambda d: d.pop("data")),
    "report with empty data": lambda run: _report(run, lambda d: d.update(data={})),
    "report without test.csv": lambda run: _report(run, lambda d: d["data"].pop("test.csv")),
    "report with a 2x2 confusion matrix": lambda run: _report(
        run, lambda d: d.update(confusion_matrix=[[1, 2], [3, 4]])
    ),
    "report with negative rows": lambda run: _report(run, lambda d: d["data"]["train.csv"].update(rows=-5)),
    "report with an empty blend": lambda run: _report(
        run,
        lambda d: d.update(
            blend={"members": [], "oof_accuracy": 0.9, "best_single_run": d["run_id"], "best_single_oof_accuracy": 0.9}
        ),
    ),
    "report with a fold index out of range": lambda run: _report(run, lambda d: d["folds"][0].update(index=99)),
    "report with no folds planned": lambda run: _report(run, lambda d: d["config"]["train"].update(folds=0)),
    "misclassified labels out of range": lambda run: _misclassified(
        run, true=np.full(len(np.load(run / "misclassified.npz")["true"]), 42), pred=np.full(1, -7)
    ),
    "misclassified images of floats": lambda run: _misclassified(
        run, images=np.full((len(np.load(run / "misclassified.npz")["true"]), 784), np.nan)
    ),
    "test_proba 12 wide": lambda run: atomic_files.write_npy(
        run / "test_proba.npy", np.full((TEST_ROWS, 12), 0.1, dtype=np.float32)
    ),
}


@pytest.fixture
def damaged(tmp_path, monkeypatch, request):
    write_competition(tmp_path / "data", n_test=TEST_ROWS)
    sha = atomic_files.sha256(tmp_path / "data" / "test.csv")
    runs = rf.nightly(tmp_path, 2, config_overrides={"data": {"dir": str(tmp_path / "data")}})
    for run in runs:  # both predicted this test.csv, so predict reads their saved probabilities
        atomic_files.write_npy(run / "test_proba.npy", np.full((TEST_ROWS, 10), 0.1, dtype=np.float32))
        _report(run, lambda d: d["data"]["test.csv"].update(sha256=sha))
    MUTATIONS[request.param](runs[-1])
    monkeypatch.chdir(tmp_path)
    return runs[-1]


READERS = [
    ["predict"],
    ["predict", "--ensemble-runs", "1"],
    ["predict", "20261101-233000"],
    ["report"],
    ["compare"],
    ["compare", "20261101-233000", "20261102-233000"],
    ["compare", "--format", "json"],
    ["history", "--no-plot"],
    ["history"],
    ["runs"],
    ["gc", "--keep", "1", "--dry-run"],
]


@pytest.mark.parametrize("damaged", sorted(MUTATIONS), indirect=True)
def test_a_damaged_run_is_one_line_or_a_note_never_a_traceback(damaged):
    failed = []
    for args in READERS:
        r = rf.invoke(cli, *args)
        lines = [line for line in r.output.splitlines() if line.startswith("digits: ")]
        crashed = r.exception is not None and not isinstance(r.exception, SystemExit)
        if crashed or "Traceback" in r.output or (r.exit_code != 0 and (r.exit_code != 1 or len(lines) != 1)):
            failed.append((" ".join(args), r.exit_code, repr(r.exception), r.output[-300:]))
    assert not failed, failed
