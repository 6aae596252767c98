"""The arrays a finished run keeps beside its record, and their one reader each.

``oof.npz`` (``labels``: the training rows' digits; ``proba``: each row's
probabilities from the fold that did not train on it, NaN for folds an
interrupted run never trained), ``test_proba.npy`` (the run's soft vote on
test.csv) and ``estimate.npz`` (``labels`` and ``predictions``: each row's
prediction behind the blend's out-of-sample estimate).  The trainer and the
blend write them; the blend, the gate, the ledger, compare and report read
them through here, so a damaged array is refused in one place, with one
line naming the file and what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.errors import BadInputError
from pipeline.core.file_reads import UNREADABLE, NotRegularFile, numbers, open_regular, why

OOF = "oof.npz"
TEST = "test_proba.npy"
ESTIMATE = "estimate.npz"
CLASSES = 10
__all__ = ["UNREADABLE", "load_estimate", "load_oof", "load_test"]  # UNREADABLE: what numpy raises on a damaged file


def load_oof(run_dir: str | Path, rows: int | None = None, finite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` (N,) and ``proba`` (N, 10) of a run's out-of-fold predictions; `BadInputError` if unusable.

    `rows`: the number of training rows the run's record says it had; `finite`:
    refuse rows without a prediction (the blend needs every row; a report of an
    interrupted run shows what there is).
    """
    path = Path(run_dir) / OOF
    try:
        with open_regular(path) as f, np.load(f, allow_pickle=False) as z:  # a FIFO there never hangs the night
            labels, proba = numbers(z["labels"], "labels"), numbers(z["proba"], "proba", np.float32)
    except FileNotFoundError:
        raise BadInputError(f"{path}: missing (the run saved no out-of-fold predictions)") from None
    except NotRegularFile:
        raise
    except UNREADABLE as e:
        raise BadInputError(f"{path}: unreadable ({why(e)})") from None
    if labels.ndim != 1 or proba.shape != (len(labels), CLASSES):
        raise BadInputError(
            f"{path}: labels {labels.shape} and probabilities {proba.shape} do not fit (N,) and (N, 10)"
        )
    if rows is not None and len(labels) != rows:
        raise BadInputError(f"{path}: {len(labels):,} rows, but the run's record says train.csv had {rows:,}")
    if not np.issubdtype(labels.dtype, np.integer) or (len(labels) and (labels.min() < 0 or labels.max() >= CLASSES)):
        raise BadInputError(f"{path}: labels must be digits 0-9")
    if finite and not np.isfinite(proba).all():
        raise BadInputError(f"{path}: some rows have no prediction (an unfinished run?)")
    return labels.astype(np.int64), proba


def load_test(run_dir: str | Path, rows: int) -> np.ndarray:
    """The run's soft vote on test.csv, (rows, 10); `BadInputError` if missing or unusable."""
    path = Path(run_dir) / TEST
    try:
        with open_regular(path) as f:
            test = numbers(np.load(f, allow_pickle=False), "test probabilities", np.float32)
    except NotRegularFile:
        raise
    except UNREADABLE as e:
        raise BadInputError(f"{path}: unreadable ({why(e)})") from None
    if test.shape != (rows, CLASSES) or not np.isfinite(test).all():
        raise BadInputError(f"{path}: test probabilities of shape {test.shape} do not fit {rows:,} test rows")
    return test


def load_estimate(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, predictions) behind the run's blend estimate; None when the run kept none (or it is unusable)."""
    path = Path(run_dir) / ESTIMATE
    try:
        with open_regular(path) as f, np.load(f, allow_pickle=False) as z:
            labels = numbers(z["labels"], "labels", np.int64)
            predictions = numbers(z["predictions"], "predictions", np.int64)
    except UNREADABLE:
        return None
    if labels.ndim != 1 or labels.shape != predictions.shape:
        return None
    return labels, predictions
