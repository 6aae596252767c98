"""Blending finished runs: which runs the submission averages, and with what weights.

Every finished run keeps its out-of-fold probabilities (each row predicted by
a model that never saw it) and its test probabilities.  The blend chooses
among compatible runs (same train.csv and test.csv, every fold finished) by
greedy forward selection with replacement on the out-of-fold probabilities
(Caruana et al., 2004, "Ensemble selection from libraries of models"): it
starts from the best single run and keeps adding the run that improves the
blend most, until none does.  A run picked k times has weight k.

The score is out-of-fold accuracy first and log loss second, and a run is
added only when it strictly improves it, so the blend is never worse than
the best single run, a useless run gets no weight and a duplicate adds
nothing.  Only arrays and run records are read here, never models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import BadInputError, DigitsError
from pipeline.core.file_reads import UNREADABLE, NotRegularFile, open_regular
from pipeline.store import record, run_folders
from pipeline.store.record import Blend, BlendMember, RunRecord

MAX_ROUNDS = 100
EPS = 1e-7


@dataclass
class Candidate:
    """A finished run's record and probabilities."""

    dir: Path
    record: RunRecord
    oof: np.ndarray  # (train rows, 10)
    test: np.ndarray | None  # (test rows, 10); None when unreadable: the run's models predict instead

    @property
    def run_id(self) -> str:
        return self.record.run_id


def compatible(anchor: RunRecord, other: RunRecord) -> bool:
    """Same train.csv and test.csv contents, and every fold finished."""
    return other.complete and other.train_sha == anchor.train_sha and other.test_sha == anchor.test_sha


def load_oof(run_dir: Path, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, out-of-fold probabilities) of a run; ValueError if they do not fit."""
    with open_regular(run_dir / "oof.npz") as f, np.load(f, allow_pickle=False) as z:
        labels, oof = np.asarray(z["labels"]), np.asarray(z["proba"], dtype=np.float32)
    if oof.shape != (rows, 10) or labels.shape != (rows,) or not np.isfinite(oof).all():
        raise ValueError(f"out-of-fold probabilities of shape {oof.shape} do not fit {rows} rows")
    if labels.dtype.kind not in "iu" or (rows and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError("its labels are not all digits 0-9")
    return labels.astype(np.int64), oof


def load_test(run_dir: Path, test_rows: int) -> np.ndarray:
    """The run's soft vote on test.csv; ValueError if it does not fit."""
    with open_regular(run_dir / "test_proba.npy") as f:
        test = np.load(f, allow_pickle=False)
    if test.shape != (test_rows, 10) or not np.isfinite(test).all():
        raise ValueError(f"test probabilities of shape {test.shape} do not fit {test_rows} rows")
    return test.astype(np.float32)


def candidates(
    output_dir: str | Path, anchor_dir: Path, limit: int, warn: Callable[[str], None] = lambda s: None
) -> tuple[np.ndarray, list[Candidate]]:
    """The anchor run and up to ``limit - 1`` of the newest other runs compatible with it, with their arrays."""
    anchor = record.read(anchor_dir)
    missing = [name for name in ("train.csv", "test.csv") if name not in anchor.data]
    if missing:
        raise BadInputError(
            f"{anchor_dir / record.REPORT}: field data: no {missing[0]} entry (the data the run trained on is "
            "not recorded); cannot blend this run"
        )
    rows = anchor.data["train.csv"].rows
    test_rows = anchor.data["test.csv"].rows
    try:
        labels, oof = load_oof(anchor_dir, rows)
    except UNREADABLE as e:
        why = (
            str(e)
            if isinstance(e, NotRegularFile)
            else f"{anchor_dir / 'oof.npz'}: unreadable ({type(e).__name__}: {e})"
        )
        raise BadInputError(f"{why}; cannot blend this run") from None
    try:
        test: np.ndarray | None = load_test(anchor_dir, test_rows)
    except UNREADABLE:
        test = None
    found = [Candidate(anchor_dir, anchor, oof, test)]
    for run_id in reversed(run_folders.list_runs(output_dir)):
        if len(found) >= limit:
            break
        run_dir = run_folders.runs_root(output_dir) / run_id
        if run_id == anchor.run_id:
            continue
        try:
            other = record.read(run_dir)
        except DigitsError:
            continue  # compare and runs name unreadable reports; the blend just leaves them out
        if not compatible(anchor, other):
            continue
        try:
            other_labels, other_oof = load_oof(run_dir, rows)
            other_test = load_test(run_dir, test_rows)
        except UNREADABLE as e:
            warn(f"{run_dir}: its probabilities are unreadable ({type(e).__name__}); left out of the blend")
            continue
        if not np.array_equal(other_labels, labels):
            continue
        found.append(Candidate(run_dir, other, other_oof, other_test))
    return labels, found


def score(labels: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """(accuracy, minus log loss): larger is better in both, compared in that order."""
    total = proba.sum(axis=1, keepdims=True)
    p = proba / np.where(total > 0, total, 1)
    accuracy = float(np.mean(p.argmax(axis=1) == labels))
    log_loss = float(-np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], EPS, 1.0))))
    return accuracy, -log_loss


def select(labels: np.ndarray, oofs: list[np.ndarray], max_rounds: int = MAX_ROUNDS) -> np.ndarray:
    """Greedy forward selection with replacement; returns how many times each candidate was picked.

    Ties go to the earlier candidate, so the result does not depend on luck.
    """
    counts = np.zeros(len(oofs), dtype=np.int64)
    total = np.zeros_like(oofs[0], dtype=np.float64)
    best: tuple[float, float] | None = None
    for _ in range(max_rounds):
        scored = [score(labels, total + oof) for oof in oofs]
        pick = max(range(len(oofs)), key=lambda j: (scored[j], -j))
        if best is not None and scored[pick] <= best:
            break
        best = scored[pick]
        counts[pick] += 1
        total += oofs[pick]
    return counts


def choose(labels: np.ndarray, found: list[Candidate]) -> tuple[Blend, list[tuple[Candidate, float]]]:
    """Choose the members among `found` (the anchor first): the record's `Blend`, and (member, weight) pairs."""
    t = time.perf_counter()
    counts = select(labels, [c.oof for c in found])
    weights = counts / counts.sum()
    chosen = [(c, float(w)) for c, w in zip(found, weights) if w > 0]
    oof = sum(w * c.oof.astype(np.float64) for c, w in chosen)
    singles = [(score(labels, c.oof)[0], c) for c in found]
    best_accuracy, best_single = max(singles, key=lambda s: s[0])
    info = Blend(
        members=[BlendMember(c.run_id, round(w, 6), score(labels, c.oof)[0]) for c, w in chosen],
        oof_accuracy=score(labels, np.asarray(oof))[0],
        best_single_run=best_single.run_id,
        best_single_oof_accuracy=best_accuracy,
        candidates=[c.run_id for c in found],
        seconds=round(time.perf_counter() - t, 3),
    )
    return info, chosen
