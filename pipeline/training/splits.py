"""Stratified folds, and the fold task: the unit of work an executor runs.

A `FoldTask` is plain, picklable data: (config, fold index, train rows,
validation rows).  With the competition's arrays it is everything a fold
needs, so an executor can train it in this process or ship it to a cluster;
the result comes back as data and the driver writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from pipeline.core.config import Config, resolved


@dataclass(frozen=True)
class FoldTask:
    """Train on `train_idx`, validate on `val_idx`; `run_id` says which run the result belongs to."""

    config: Config
    index: int
    train_idx: np.ndarray
    val_idx: np.ndarray
    run_id: str = ""
    checkpoint: str | None = None  # where the fold keeps its state at each epoch's end; None: it starts over
    # The night's budget (`plan.budget`): the wall-clock time (time.time()) by which the fold stops at an epoch's
    # end, and the seconds an epoch of this run took so far (None: not known yet).  Only with a checkpoint.
    # `start_anyway`: train one epoch even if it ends late, so that every night moves its run forward.
    deadline: float | None = None
    epoch_seconds: float | None = None
    start_anyway: bool = False

    @property
    def seed(self) -> int:
        return fold_seed(resolved(self.config.train.seed), self.index)


def fold_seed(seed: int, index: int) -> int:
    """Each fold's own seed, below 2**31, mixed from the run's seed and the fold index.

    SeedSequence mixes them so neighbouring seeds give unrelated streams, and
    the result always fits the 32-bit seeds numpy and Keras take (a product
    such as seed * 1000 + index overflowed for large seeds).
    """
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] >> 1)


def make_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train_idx, val_idx) pairs: every row validated exactly once, classes balanced."""
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(tr.astype(np.int64), va.astype(np.int64)) for tr, va in skf.split(np.zeros(len(y)), y)]


def make_tasks(config: Config, y: np.ndarray, run_id: str = "") -> list[FoldTask]:
    """One task per fold of the configured stratified split (the split follows the seed)."""
    splits = make_folds(y, config.train.folds, resolved(config.train.seed))
    return [FoldTask(config, k, tr, va, run_id) for k, (tr, va) in enumerate(splits)]
