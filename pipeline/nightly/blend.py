"""Blending finished runs: which runs the submission averages, and with what weights.

Every finished run keeps its out-of-fold probabilities (each row predicted by
a model that never saw it) and its test probabilities.  The blend chooses
among compatible runs (same train.csv and test.csv, every fold finished) by
greedy forward selection with replacement on the out-of-fold probabilities
(Caruana et al., 2004, "Ensemble selection from libraries of models"): it
starts from the best single run and keeps adding the run that improves the
blend most, until none does.  A run picked k times has weight k.

The score is out-of-fold accuracy first and log loss second, and a run is
added only when it strictly improves it, so a useless run gets no weight and
a duplicate adds nothing.  Only arrays and run records are read here, never
models.

What the blend is worth is not the score it was chosen by: greedy selection
scored on the rows it chose on only goes up as candidates are added, noise
included.  `cross_validated` gives the honest figure, the estimate: choose on
k-1 parts of the rows, predict the part left out, rotate, pool.  The
submission still uses the weights chosen on all rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import BadInputError
from pipeline.store import record, run_arrays, run_folders
from pipeline.store.record import Blend, BlendMember, RunRecord

MAX_ROUNDS = 100
EPS = 1e-7
ESTIMATE_SEED = 20261130  # which rows fall in which part: the same candidates always give the same estimate


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


def candidates(
    output_dir: str | Path,
    anchor_dir: Path,
    limit: int,
    warn: Callable[[str], None] = lambda s: None,
    note: Callable[[str], None] = lambda s: None,
) -> tuple[np.ndarray, list[Candidate]]:
    """The anchor run and up to ``limit - 1`` of the newest other runs compatible with it, with their arrays.

    A run whose out-of-fold figure is in-sample (`RunRecord.oof_in_sample`: its folds chose their epoch
    on those rows) is never one: the selection and its estimate would trust rows it was tuned on.  As
    the anchor it is refused; among the others it is left out, said once through `note`.
    """
    anchor = record.read(anchor_dir)
    if anchor.oof_in_sample:
        raise BadInputError(
            f"run {anchor.run_id}: its out-of-fold figures are in-sample (its folds chose their epoch on those "
            "rows, as digits did before schema 3), so no honest blend or estimate can be made of it; train a new run"
        )
    missing = [name for name in ("train.csv", "test.csv") if name not in anchor.data]
    if missing:
        raise BadInputError(
            f"{anchor_dir / record.REPORT}: field data: no {missing[0]} entry (the data the run trained on is "
            "not recorded); cannot blend this run"
        )
    rows = anchor.data["train.csv"].rows
    test_rows = anchor.data["test.csv"].rows
    try:
        labels, oof = run_arrays.load_oof(anchor_dir, rows, finite=True)
    except BadInputError as e:
        raise BadInputError(f"{e}; cannot blend this run") from None
    try:
        test: np.ndarray | None = run_arrays.load_test(anchor_dir, test_rows)
    except BadInputError:
        test = None  # its fold models predict test.csv again
    found = [Candidate(anchor_dir, anchor, oof, test)]
    in_sample = []
    for run_dir, other in run_folders.newest_first(output_dir, exclude=anchor.run_id):
        if len(found) >= limit:
            break
        if not compatible(anchor, other):
            continue
        if other.oof_in_sample:
            in_sample.append(other.run_id)
            continue
        try:
            other_labels, other_oof = run_arrays.load_oof(run_dir, rows, finite=True)
            other_test = run_arrays.load_test(run_dir, test_rows)
        except BadInputError as e:
            warn(f"{e}; run {other.run_id} is left out of the blend")
            continue
        if not np.array_equal(other_labels, labels):
            continue
        found.append(Candidate(run_dir, other, other_oof, other_test))
    if in_sample:
        note(
            f"{len(in_sample)} compatible run(s) left out of the blend, their out-of-fold figures in-sample "
            f"(trained before schema 3, their folds chose epochs on those rows): {', '.join(in_sample[:5])}"
            + (", ..." if len(in_sample) > 5 else "")
        )
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


@dataclass
class Estimate:
    """The blend's out-of-sample accuracy, and each row's prediction behind it."""

    accuracy: float
    predictions: np.ndarray  # (rows,): each row predicted by a blend chosen without looking at it
    method: str


def parts_of(labels: np.ndarray, parts: int, seed: int = ESTIMATE_SEED) -> np.ndarray:
    """Each row's part, 0..parts-1, stratified by label: every part holds about 1/parts of each digit."""
    order = np.lexsort((np.random.default_rng(seed).permutation(len(labels)), labels))
    part = np.empty(len(labels), dtype=np.int64)
    part[order] = np.arange(len(labels)) % parts
    return part


def best_alone(labels: np.ndarray, oofs: list[np.ndarray]) -> np.ndarray:
    """The other way to choose: the single best run, weight 1 (ties go to the earlier candidate, as in `select`)."""
    counts = np.zeros(len(oofs), dtype=np.int64)
    counts[max(range(len(oofs)), key=lambda j: (score(labels, oofs[j]), -j))] = 1
    return counts


def cross_validated(
    labels: np.ndarray,
    oofs: list[np.ndarray],
    parts: int,
    pick: Callable[[np.ndarray, list[np.ndarray]], np.ndarray] = select,
) -> Estimate:
    """Choose members and weights (by `pick`) on parts-1 parts of the rows, predict the part left out, rotate; pool.

    No row's prediction comes from weights chosen while looking at its label,
    so candidates that add only noise cannot raise the figure.  With one
    candidate it is that run's own out-of-fold accuracy.
    """
    part = parts_of(labels, parts)
    predictions = np.empty(len(labels), dtype=np.int64)
    for k in range(parts):
        held, rest = part == k, part != k
        counts = pick(labels[rest], [o[rest] for o in oofs])
        mix = sum(int(c) * o[held].astype(np.float64) for c, o in zip(counts, oofs) if c)
        predictions[held] = np.asarray(mix).argmax(axis=1)
    how = "forward selection" if pick is select else "the best single run"
    method = f"{how} cross-validated over {parts} stratified parts of the out-of-fold rows"
    return Estimate(float(np.mean(predictions == labels)), predictions, method)


def choose(
    labels: np.ndarray, found: list[Candidate], parts: int
) -> tuple[Blend, list[tuple[Candidate, float]], Estimate]:
    """Choose the members among `found` (the anchor first) on all rows, and estimate the choice out of sample.

    Forward selection (`select`) or the best single run (`best_alone`), whichever
    estimates higher cross-validated (`cross_validated`), the same parts for both.

    Returns the record's `Blend`, the (member, weight) pairs and the estimate.
    """
    t = time.perf_counter()
    oofs = [c.oof for c in found]
    # Two ways to choose, each estimated the same way; the submission takes the one that does better on rows it
    # never chose on.  Greedy selection can win in sample by a row or two and lose out of sample (measured: a CNN
    # night beside a wide-CNN night, benchmarks/RESULTS.md); then the best run alone is the better submission.
    greedy = cross_validated(labels, oofs, parts)
    alone = cross_validated(labels, oofs, parts, pick=best_alone)
    if alone.accuracy >= greedy.accuracy:  # a tie goes to the simpler choice
        counts, estimate = best_alone(labels, oofs), alone
        estimate.method += f"; forward selection, cross-validated the same way: {greedy.accuracy:.3%}"
    else:
        counts, estimate = select(labels, oofs), greedy
        estimate.method += f"; the best single run, cross-validated the same way: {alone.accuracy:.3%}"
    weights = counts / counts.sum()
    chosen = [(c, float(w)) for c, w in zip(found, weights) if w > 0]
    oof = sum(w * c.oof.astype(np.float64) for c, w in chosen)
    singles = [(score(labels, c.oof)[0], c) for c in found]
    best_accuracy, best_single = max(singles, key=lambda s: s[0])
    info = Blend(
        members=[BlendMember(c.run_id, round(w, 6), score(labels, c.oof)[0]) for c, w in chosen],
        in_sample_accuracy=score(labels, np.asarray(oof))[0],
        best_single_run=best_single.run_id,
        best_single_oof_accuracy=best_accuracy,
        candidates=[c.run_id for c in found],
    )
    info.estimate, info.estimate_method = estimate.accuracy, estimate.method
    info.seconds = round(time.perf_counter() - t, 3)
    return info, chosen, estimate
