"""The notebook API: pipeline.runs_frame, folds_frame and epochs_frame, pandas DataFrames of the run folders."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pandas as pd
import pytest

import pipeline
from pipeline.store import record
from tests import runfactory as rf
from tests.helpers import ROOT

T0 = dt.datetime(2026, 11, 20, 1, 30)


@pytest.fixture
def runs(tmp_path):
    """Three runs: two MLPs of 3 folds (the second blended and scored), a wider CNN of 2 folds half-trained."""
    first = rf.make_run(tmp_path, T0, folds=3, epochs=4, seed=1, submission=True)
    second = rf.make_run(tmp_path, T0 + dt.timedelta(days=1), folds=3, epochs=4, seed=2, submission=True, leaderboard=0.971)  # fmt: skip
    record.update(second, blend=rf.blend_of((second, 0.5, 0.97), (first, 0.5, 0.96), estimate=0.9725))
    cnn = rf.make_run(
        tmp_path,
        T0 + dt.timedelta(days=2),
        folds=2,
        folds_done=1,
        epochs=6,
        seed=3,
        config_overrides={"model": {"kind": "cnn", "filters": [16, 32]}, "train": {"epochs": 6}},
    )
    return tmp_path, [record.read(d) for d in (first, second, cnn)]


def test_runs_frame_has_a_row_per_run_with_its_figures_and_the_config_that_differs(runs):
    out, recs = runs
    frame = pipeline.runs_frame(out)
    assert list(frame.index) == [r.run_id for r in recs] and frame.index.name == "run_id"
    first, second, cnn = (frame.loc[r.run_id] for r in recs)
    assert list(frame["recipe"]) == ["mlp", "mlp", "cnn"] and list(frame["status"]) == ["complete", "complete", "interrupted"]  # fmt: skip
    assert list(frame["seed"]) == [r.config.train.seed for r in recs]
    assert [first[f"fold_{k}"] for k in range(3)] == [f.val_accuracy for f in recs[0].folds]
    assert pd.isna(cnn["fold_1"]) and pd.isna(cnn["fold_2"]) and cnn["fold_0"] == recs[2].folds[0].val_accuracy
    assert first["oof_accuracy"] == recs[0].oof_accuracy and first["fold_mean"] == recs[0].fold_accuracy_mean
    assert second["blend_estimate"] == 0.9725 and second["blend_runs"] == 2 and first["blend_runs"] == 1
    assert second["leaderboard_score"] == 0.971 and pd.isna(first["leaderboard_score"])
    assert first["minutes"] == pytest.approx(recs[0].seconds / 60)
    assert first["started"] == pd.Timestamp(recs[0].started_at)
    # the config values that differ, and only those (the seed and the recipe have their own columns)
    assert "train.epochs" in frame.columns and list(frame["train.epochs"]) == [40, 40, 6]
    assert frame.loc[recs[2].run_id, "model.filters"] == (16, 32)
    assert "train.folds" in frame.columns and "augment.rotation" not in frame.columns
    assert "model.kind" not in frame.columns and "train.seed" not in frame.columns
    assert frame["oof_accuracy"].dtype == "float64" and str(frame["seed"].dtype) == "Int64"


def test_folds_frame_has_a_row_per_fold_and_its_learning_curves(runs):
    out, recs = runs
    folds = pipeline.folds_frame(out)
    assert len(folds) == 3 + 3 + 1
    assert list(folds.columns[:4]) == ["run_id", "fold", "recipe", "val_accuracy"]
    row = folds[(folds.run_id == recs[1].run_id) & (folds.fold == 2)].iloc[0]
    fold = recs[1].folds[2]
    assert row["val_accuracy"] == fold.val_accuracy and row["epochs"] == fold.epochs_run
    history = row["history"]
    assert list(history.index) == [1, 2, 3, 4] and history.index.name == "epoch"
    assert list(history.columns) == ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    assert list(history["val_accuracy"]) == fold.history["val_accuracy"]


def test_epochs_frame_is_the_curves_in_long_format(runs):
    out, recs = runs
    epochs = pipeline.epochs_frame(out)
    assert list(epochs.columns[:3]) == ["run_id", "fold", "epoch"] and len(epochs) == 3 * 4 + 3 * 4 + 6
    cnn = epochs[epochs.run_id == recs[2].run_id]
    assert list(cnn["epoch"]) == [1, 2, 3, 4, 5, 6] and list(cnn["loss"]) == recs[2].folds[0].history["loss"]
    best = epochs.groupby(["run_id", "fold"])["val_accuracy"].max()  # what the long format is for
    assert best[(recs[0].run_id, 0)] == max(recs[0].folds[0].history["val_accuracy"])


def test_an_unreadable_run_is_a_warning_and_an_empty_folder_an_empty_frame(runs, tmp_path_factory):
    out, recs = runs
    rf.corrupt_report(out / "runs" / recs[0].run_id)
    with pytest.warns(UserWarning, match="report is corrupt"):
        frame = pipeline.runs_frame(out)
    assert list(frame.index) == [r.run_id for r in recs[1:]]
    empty = tmp_path_factory.mktemp("empty")
    assert pipeline.runs_frame(empty).empty and pipeline.folds_frame(empty).empty
    assert pipeline.epochs_frame(empty).empty


def test_import_pipeline_stays_light_and_the_frames_load_on_first_use():
    script = (
        "import json, sys, pipeline; heavy = lambda: sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pandas', 'mlflow', 'matplotlib') or m.startswith('pipeline.views')); before = heavy(); "
        "pipeline.runs_frame; print(json.dumps([before, heavy()]))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout)
    assert before == [] and "pipeline.views.frames" in after
    assert not [m for m in after if m.split(".")[0] in ("pandas", "mlflow", "matplotlib")]  # pandas: when called
    assert pipeline.runs_frame is pipeline.views.frames.runs_frame
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        pipeline.nothing  # noqa: B018
