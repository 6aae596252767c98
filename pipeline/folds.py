"""Stratified folds, and the fold task: the unit of work an executor runs.

A `FoldTask` is plain, picklable data, so an executor can train it in this
process today and ship it to another process or a cluster later; a fold's
result on disk is a resume point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from pipeline.config import Config


@dataclass(frozen=True)
class FoldTask:
    """Everything a fold needs besides the arrays: train on `train_idx`, validate on `val_idx`."""

    config: Config
    index: int
    train_idx: np.ndarray
    val_idx: np.ndarray
    run_dir: str

    @property
    def seed(self) -> int:
        """Each fold draws its own stream from the run's one seed."""
        return self.config.train.seed * 1000 + self.index


def make_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train_idx, val_idx) pairs: every row validated exactly once, classes balanced."""
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(tr.astype(np.int64), va.astype(np.int64)) for tr, va in skf.split(np.zeros(len(y)), y)]


def make_tasks(config: Config, y: np.ndarray, run_dir: str) -> list[FoldTask]:
    """One task per fold of the configured stratified split."""
    splits = make_folds(y, config.train.folds, config.train.seed)
    return [FoldTask(config, k, tr, va, str(run_dir)) for k, (tr, va) in enumerate(splits)]
