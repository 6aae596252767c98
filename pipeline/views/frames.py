"""The runs as pandas DataFrames, for a notebook: ``pipeline.runs_frame``, ``folds_frame`` and ``epochs_frame``.

Read from the run folders (``report.json`` through `pipeline.store.record`),
never from MLflow.  Accuracies are fractions, as in the reports.  A run
whose report cannot be read is left out with a Python warning naming it, as
``digits compare`` warns and shows the others.

- `runs_frame`: one row per run, indexed by run id;
- `folds_frame`: one row per fold, its learning curves in the ``history``
  column (a DataFrame per fold, indexed by epoch);
- `epochs_frame`: the same curves in long format, one row per epoch of each
  fold, for ``groupby`` and plotting libraries.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.store import run_folders
from pipeline.views import runset
from pipeline.views.differences import config_diff

if TYPE_CHECKING:
    import pandas as pd

# shown as their own columns (recipe, seed), so not again among the config values that differ
SHOWN = ("model.kind", "train.seed")


def _records(output_dir: str | Path) -> runset.RunSet:
    if not run_folders.list_runs(output_dir):
        return runset.RunSet()
    found = runset.load(output_dir, last=None)
    for note in found.notes:
        warnings.warn(note, stacklevel=3)
    return found


def runs_frame(output_dir: str | Path = ".") -> pd.DataFrame:
    """One row per run, oldest first, indexed by ``run_id``.

    Columns: ``started``, ``status``, ``recipe``, ``seed``, ``fold_0`` ...
    (each fold's validation accuracy), ``fold_mean``, ``fold_std``, ``oof_accuracy``,
    ``blend_estimate`` (what the run's submission is worth on rows it never
    saw), ``blend_runs``, ``leaderboard_score``, ``minutes``, then every
    config value that differs between the runs (``train.epochs``...).
    """
    import pandas as pd

    found = _records(output_dir)
    folds = sorted({f.index for rec in found.records for f in rec.folds})
    differing = {k: v for k, v in config_diff(found.records)["config"].items() if k not in SHOWN}
    rows: list[dict[str, Any]] = []
    for position, rec in enumerate(found.records):
        started = runset.started(rec)
        seconds = runset.elapsed(rec)
        row: dict[str, Any] = {
            "run_id": rec.run_id,
            "started": pd.Timestamp(started) if started else pd.NaT,
            "status": rec.status,
            "recipe": rec.config.model.kind,
            "seed": rec.config.train.seed,
            **{f"fold_{k}": rec.fold_accuracy.get(k) for k in folds},
            "fold_mean": rec.fold_accuracy_mean,
            "fold_std": rec.fold_accuracy_std,
            "oof_accuracy": rec.oof_accuracy,
            "blend_estimate": rec.submission_estimate,
            "blend_runs": rec.submission_runs,
            "leaderboard_score": rec.lb_score,
            "minutes": None if seconds is None else seconds / 60,
        }
        row.update({key: _cell(values[position]) for key, values in differing.items()})
        rows.append(row)
    columns = ["run_id", "started", "status", "recipe", "seed", *(f"fold_{k}" for k in folds)]
    columns += ["fold_mean", "fold_std", "oof_accuracy", "blend_estimate", "blend_runs", "leaderboard_score"]
    columns += ["minutes", *differing]
    frame = pd.DataFrame(rows, columns=columns).set_index("run_id")
    for name in ("fold_mean", "fold_std", "oof_accuracy", "blend_estimate", "leaderboard_score", "minutes"):
        frame[name] = frame[name].astype("float64")
    for name in ("seed", "blend_runs"):
        frame[name] = frame[name].astype("Int64")  # a run without one shows <NA>, not a float
    return frame


def folds_frame(output_dir: str | Path = ".") -> pd.DataFrame:
    """One row per fold of every run: ``run_id``, ``fold``, ``recipe``, its figures, and its ``history``.

    ``history`` holds a DataFrame per fold, indexed by ``epoch`` (from 1),
    with a column per curve (``loss``, ``accuracy``, ``val_loss``,
    ``val_accuracy``, ``learning_rate``).
    """
    import pandas as pd

    rows = []
    for rec in _records(output_dir).records:
        for fold in rec.folds:
            rows.append(
                {
                    "run_id": rec.run_id,
                    "fold": fold.index,
                    "recipe": rec.config.model.kind,
                    "val_accuracy": fold.val_accuracy,
                    "val_loss": fold.val_loss,
                    "epochs": fold.epochs_run,
                    "train_rows": fold.train_rows,
                    "val_rows": fold.val_rows,
                    "seconds": fold.seconds,
                    "samples_per_second": fold.samples_per_second,
                    "history": _history(fold.history),
                }
            )
    columns = ["run_id", "fold", "recipe", "val_accuracy", "val_loss", "epochs", "train_rows", "val_rows"]
    return pd.DataFrame(rows, columns=[*columns, "seconds", "samples_per_second", "history"])


def epochs_frame(output_dir: str | Path = ".") -> pd.DataFrame:
    """The folds' learning curves in long format: one row per epoch, ``run_id``, ``fold``, ``epoch``, the curves."""
    import pandas as pd

    folds = folds_frame(output_dir)
    parts = [
        history.reset_index().assign(run_id=run_id, fold=fold)
        for run_id, fold, history in zip(folds["run_id"], folds["fold"], folds["history"])
    ]
    if not parts:
        return pd.DataFrame(columns=["run_id", "fold", "epoch"])
    frame = pd.concat(parts, ignore_index=True)
    first = ["run_id", "fold", "epoch"]
    return frame[first + [c for c in frame.columns if c not in first]]


def _history(history: dict[str, list[float | None]]) -> pd.DataFrame:
    import pandas as pd

    epochs = max((len(v) for v in history.values()), default=0)
    columns = {k: [*v, *[None] * (epochs - len(v))] for k, v in history.items()}
    frame = pd.DataFrame(columns, index=pd.RangeIndex(1, epochs + 1, name="epoch"), dtype="float64")
    return frame


def _cell(value: Any) -> Any:
    """A config value as a cell: a list (widths) becomes a tuple, which pandas keeps whole and can compare."""
    return tuple(value) if isinstance(value, list) else value
