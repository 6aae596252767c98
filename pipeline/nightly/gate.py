"""The submit gate: does tonight's blend beat the best submission Kaggle holds, beyond noise?

A night's blend is worth one of the day's few submissions only if it is
better than what is already on the leaderboard, and better by more than
luck.  The reference is the best accepted (scored or pending) submission in
the ledger:

- one this job made on the same train.csv kept the per-row predictions its
  estimate counted, so the two blends are compared row by row: McNemar's test
  on the rows where exactly one of them is right (`pipeline.core.mcnemar`);
  tonight's must be right on more of them, at p below ``submit.alpha``;
- one made elsewhere (the web page, another machine) or on other data has
  only Kaggle's public score: tonight's estimate must exceed that score by a
  one-sided binomial test at the same level, the score taken as a fixed bar.

Both figures are out-of-sample (a blend chosen without the rows it is scored
on), so a second night of the same model, which moves a handful of rows,
does not pass.  ``--submit always`` skips the gate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.core.mcnemar import mcnemar
from pipeline.core.text import pct
from pipeline.store.ledger import Entry
from pipeline.store.record import SubmitDecision


@dataclass
class Tonight:
    """What the gate knows of tonight's blend: its estimate and the per-row predictions behind it."""

    estimate: float
    labels: np.ndarray
    predictions: np.ndarray
    train_sha: str | None


Predictions = Callable[[Entry], tuple[np.ndarray, np.ndarray] | None]


def references(entries: list[Entry], competition: str) -> list[Entry]:
    """What tonight must beat: the best scored submission, and every accepted one still being scored.

    A pending submission counts until Kaggle scores it: its score is unknown, so it may be the best
    (typically it is last night's blend).
    """
    accepted = [e for e in entries if e.accepted and e.competition == competition]
    scored = [e for e in accepted if e.public_score is not None]
    pending = [e for e in accepted if e.public_score is None]
    return ([max(scored, key=lambda e: e.public_score or 0.0)] if scored else []) + pending


def decide(
    tonight: Tonight, entries: list[Entry], competition: str, predictions: Predictions, alpha: float, mode: str
) -> SubmitDecision:
    """Submit tonight's blend?  See the module docstring; the decision carries both figures and the test.

    Tonight must pass against every reference (`references`); the decision told is the one against
    the strongest reference it failed, else the strongest it passed.
    """
    if mode == "always":
        return SubmitDecision(True, "--submit always", mode, ours=tonight.estimate)
    found = references(entries, competition)
    if not found:
        return SubmitDecision(True, "no earlier submission was accepted by Kaggle", mode, ours=tonight.estimate)
    decisions = [_against(tonight, reference, predictions, alpha, mode) for reference in found]
    held = [d for d in decisions if not d.submitted]

    def strength(d: SubmitDecision) -> float:  # a reference without a figure (still being scored) may be the best
        return math.inf if d.previous_oof_accuracy is None else d.previous_oof_accuracy

    told = max(held or decisions, key=strength)
    if len(decisions) > 1:
        told.reason += (
            f" (the strongest of {len(decisions)} references: the best scored submission and those still being scored)"
        )
    return told


def _against(tonight: Tonight, reference: Entry, predictions: Predictions, alpha: float, mode: str) -> SubmitDecision:
    """Tonight against one reference: paired (McNemar) when it kept honest predictions, else by its public score."""
    name = _name(reference)
    # Only an entry with an honest estimate kept honest rows: one without (a run whose out-of-fold figure was
    # in-sample, a blend from before the estimate) may have kept in-sample predictions, which are never paired.
    pairable = reference.estimate is not None and reference.train_sha and reference.train_sha == tonight.train_sha
    paired = predictions(reference) if pairable else None
    if paired is not None and np.array_equal(paired[0], tonight.labels):
        test = mcnemar(tonight.labels, paired[1], tonight.predictions, alpha=alpha)
        theirs = reference.estimate
        better = test.b_only > test.a_only and test.p_value < alpha
        figures = (
            f"estimate {pct(tonight.estimate, 3)}% against {pct(theirs, 3)}% of {name}: "
            f"{test.a_only + test.b_only} rows disagree ({test.b_only} right tonight only, {test.a_only} right "
            f"there only), McNemar p = {test.p_value:.3g}"
        )
        verdict = "below" if better else "not below"
        reason = f"{figures}, {verdict} {alpha:g}" + ("" if better else "; the difference may be noise")
        return SubmitDecision(
            better,
            reason,
            mode,
            previous_run=reference.run_id,
            previous_oof_accuracy=theirs,
            ours=tonight.estimate,
            reference=reference.id,
            disagree=test.a_only + test.b_only,
            p_value=test.p_value,
            test="mcnemar",
        )
    if reference.public_score is None:
        # made elsewhere and not scored yet: nothing to compare with; wait for its score rather than guess
        return SubmitDecision(
            False,
            f"{name} is still being scored and has no predictions here to compare with; waiting for its score",
            mode,
            ours=tonight.estimate,
            reference=reference.id,
        )
    bar = reference.public_score
    rows = len(tonight.labels)
    p = _above(tonight.estimate, bar, rows)
    better = tonight.estimate > bar and p < alpha
    reason = (
        f"estimate {pct(tonight.estimate, 3)}% on {rows:,} rows against public score {pct(bar, 3)}% of {name} "
        f"(unpaired: binomial p = {p:.3g}), " + ("below" if better else "not below") + f" {alpha:g}"
    )
    return SubmitDecision(
        better,
        reason,
        mode,
        previous_run=reference.run_id,
        previous_oof_accuracy=bar,
        ours=tonight.estimate,
        reference=reference.id,
        p_value=p,
        test="binomial",
    )


def _above(accuracy: float, bar: float, rows: int) -> float:
    """One-sided p-value of `accuracy` on `rows` rows if the true accuracy were `bar` (normal approximation)."""
    from scipy import special

    bar = min(max(bar, 1e-9), 1 - 1e-9)
    z = (accuracy - bar) / math.sqrt(bar * (1 - bar) / max(rows, 1))
    return float(special.ndtr(-z))


def _name(entry: Entry) -> str:
    where = (
        f"run {entry.run_id}"
        if entry.run_id
        else ("a submission made elsewhere" if entry.origin == "kaggle" else "a submitted file")
    )
    return f"{where} (Kaggle ref {entry.ref})" if entry.ref is not None else where
