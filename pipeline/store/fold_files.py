"""The files of a finished fold, written by the driver: a fold on disk is a resume point.

``<run>/folds/fold-<k>.keras`` (the model), ``fold-<k>.npz`` (validation
rows, their probabilities, the test probabilities) and ``fold-<k>.json`` (its
`FoldRecord`).  The JSON goes last, so its presence marks a finished fold.
Reading a fold back checks it against the fold it claims to be (its index
and validation rows); a fold whose files are damaged or do not fit is
reported and trained again rather than trusted.  `FoldResult` is what a
finished fold holds, whether just trained (`pipeline.training.fold`) or read
back from here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter

from pipeline.core import atomic_files, file_reads
from pipeline.store.record import FoldRecord

FOLDS = "folds"


@dataclass
class FoldResult:
    """What a finished fold holds: its record and probabilities, and its model as bytes when just trained.

    Plain data, so it can travel between processes (back from a Ray worker, say).
    """

    record: FoldRecord
    val_idx: np.ndarray
    val_proba: np.ndarray  # (val rows, 10) float32
    test_proba: np.ndarray  # (test rows, 10) float32
    model: bytes | None = None  # the .keras file; None for a fold read back from disk

    @property
    def index(self) -> int:
        return self.record.index


def checkpoint_path(run_dir: str | Path, index: int) -> Path:
    """Where a fold training in the driver's process keeps its state between epochs (`pipeline.training.checkpoint`)."""
    return Path(run_dir) / FOLDS / f"fold-{index}.resume.npz"


def fold_paths(run_dir: str | Path, index: int) -> dict[str, Path]:
    base = Path(run_dir) / FOLDS
    return {ext: base / f"fold-{index}.{ext}" for ext in ("keras", "npz", "json")}


def save_fold(run_dir: str | Path, result: FoldResult) -> None:
    """Write the fold's model, arrays, then its record (the 'finished' marker)."""
    paths = fold_paths(run_dir, result.index)
    if result.model is not None:
        atomic_files.write_bytes(paths["keras"], result.model)
    atomic_files.write_npz(
        paths["npz"], val_idx=result.val_idx, val_proba=result.val_proba, test_proba=result.test_proba
    )
    atomic_files.write_json(paths["json"], TypeAdapter(FoldRecord).dump_python(result.record, mode="json"))


def load_fold(
    run_dir: str | Path,
    index: int,
    val_idx: np.ndarray,
    test_rows: int,
    warn: Callable[[str], None] = lambda s: None,
) -> FoldResult | None:
    """Fold `index` read back if it finished on the validation rows `val_idx`; None when it must be trained
    (never finished, damaged, or saved for other rows)."""
    paths = fold_paths(run_dir, index)
    if not paths["json"].is_file():
        return None
    try:
        text = file_reads.read_text(paths["json"])
        record = TypeAdapter(FoldRecord).validate_python(file_reads.bounded(json.loads(text)))
        with file_reads.open_regular(paths["npz"]) as f, np.load(f, allow_pickle=False) as z:
            saved_idx = file_reads.numbers(z["val_idx"], "val_idx")
            val_proba = file_reads.numbers(z["val_proba"], "val_proba", np.float32)
            test_proba = file_reads.numbers(z["test_proba"], "test_proba", np.float32)
    except file_reads.UNREADABLE as e:  # damaged, of the wrong shape, nested thousands deep, not numbers...
        warn(f"{paths['npz'].parent}: fold {index} files are damaged ({file_reads.why(e)}); training it again")
        return None
    problem = _mismatch(index, val_idx, record, saved_idx, val_proba, test_proba, test_rows)
    if problem:
        warn(f"{paths['npz']}: {problem}; training fold {index} again")
        return None
    return FoldResult(record, saved_idx, val_proba, test_proba)


def _mismatch(
    index: int,
    val_idx: np.ndarray,
    record: FoldRecord,
    saved_idx: np.ndarray,
    val_proba: np.ndarray,
    test_proba: np.ndarray,
    test_rows: int,
) -> str | None:
    """Why saved arrays cannot be fold `index`'s answer on the rows `val_idx`, or None."""
    if record.index != index:
        return f"it records fold {record.index}"
    if saved_idx.shape != val_idx.shape or not np.array_equal(saved_idx, val_idx):
        return "its validation rows are not this fold's"
    if val_proba.shape != (len(val_idx), 10):
        return f"val_proba has shape {val_proba.shape}, expected {(len(val_idx), 10)}"
    if test_proba.shape != (test_rows, 10):
        return f"test_proba has shape {test_proba.shape}, expected {(test_rows, 10)}"
    if not (np.isfinite(val_proba).all() and np.isfinite(test_proba).all()):
        return "its probabilities are not finite"
    if record.val_rows != len(val_idx):
        return f"it records {record.val_rows} validation rows, not {len(val_idx)}"
    figures = (record.val_accuracy, record.val_loss, record.seconds, record.samples_per_second)
    if not all(math.isfinite(x) and x >= 0 for x in figures) or record.val_accuracy > 1:
        return "its record's accuracy, loss or timings are not finite numbers in range"
    return None


def remove_leftovers(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files a killed writer left in the run folder (never a finished file).

    Call it only while holding the output directory's lock: then no other
    digits is writing here, so every temporary file is a leftover.
    """
    removed = []
    for leftover in Path(run_dir).rglob(".*.tmp*"):
        try:
            if leftover.is_file():
                leftover.unlink()
                removed.append(leftover)
        except OSError:
            pass
    return removed
