"""The submit gate on synthetic predictions where the answer is known (pipeline.nightly.gate)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.nightly import gate
from pipeline.store.ledger import Entry, Member

COMPETITION = "digit-recognizer"
ROWS = 42_000


def _predictions(labels: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    """Predictions exactly `accuracy` right, wrong on random rows."""
    rng = np.random.default_rng(seed)
    wrong = rng.choice(len(labels), round((1 - accuracy) * len(labels)), replace=False)
    out = labels.copy()
    out[wrong] = (labels[wrong] + rng.integers(1, 10, len(wrong))) % 10
    return out


def _submitted(predictions: np.ndarray, labels: np.ndarray, **kw) -> tuple[Entry, tuple[np.ndarray, np.ndarray]]:
    entry = Entry(
        id=kw.pop("id", "20261128-013000-aaaaaaaa"),
        competition=COMPETITION,
        status=kw.pop("status", "complete"),
        ref=kw.pop("ref", 1),
        run_id="20261128-013000",
        members=[Member("20261128-013000", 1.0)],
        estimate=float(np.mean(predictions == labels)),
        train_sha="abc",
        predictions="x.npz",
        **kw,
    )
    return entry, (labels, predictions)


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 10, ROWS)


def _tonight(labels: np.ndarray, predictions: np.ndarray) -> gate.Tonight:
    return gate.Tonight(float(np.mean(predictions == labels)), labels, predictions, "abc")


def test_a_night_that_adds_only_noise_does_not_pass(labels):
    old = _predictions(labels, 0.9955, 1)
    new = old.copy()
    # a second night of the same model: a few rows change, as many for the better as for the worse
    rng = np.random.default_rng(2)
    broken = rng.choice(np.flatnonzero(old == labels), 5, replace=False)
    fixed = rng.choice(np.flatnonzero(old != labels), 7, replace=False)
    new[broken] = (labels[broken] + 1) % 10
    new[fixed] = labels[fixed]
    entry, kept = _submitted(old, labels)
    decision = gate.decide(_tonight(labels, new), [entry], COMPETITION, lambda e: kept, 0.05, "better")
    assert not decision.submitted and decision.test == "mcnemar" and decision.disagree == 12
    assert decision.p_value > 0.05 and "may be noise" in decision.reason


def test_a_clearly_better_night_passes(labels):
    old = _predictions(labels, 0.9915, 3)
    new = old.copy()
    fixed = np.flatnonzero(old != labels)[:200]  # tonight gets 200 of yesterday's mistakes right
    new[fixed] = labels[fixed]
    entry, kept = _submitted(old, labels)
    decision = gate.decide(_tonight(labels, new), [entry], COMPETITION, lambda e: kept, 0.05, "better")
    assert decision.submitted and decision.p_value < 1e-10 and decision.disagree == 200
    assert decision.ours > decision.previous_oof_accuracy
    assert "200 rows disagree (200 right tonight only, 0 right there only)" in decision.reason


def test_a_night_worse_by_a_lot_is_refused_however_significant(labels):
    old = _predictions(labels, 0.995, 4)
    entry, kept = _submitted(old, labels)
    worse = _predictions(labels, 0.98, 5)
    decision = gate.decide(_tonight(labels, worse), [entry], COMPETITION, lambda e: kept, 0.05, "better")
    assert not decision.submitted and decision.p_value < 0.05


def test_the_reference_is_the_best_accepted_submission_not_the_last(labels):
    strong, weak = _predictions(labels, 0.996, 6), _predictions(labels, 0.990, 7)
    best, best_kept = _submitted(strong, labels, id="a", ref=1, public_score=0.9961)
    last, last_kept = _submitted(weak, labels, id="b", ref=2, public_score=0.9902)
    refused, _ = _submitted(_predictions(labels, 0.999, 8), labels, id="c", ref=3, status="error")
    kept = {"a": best_kept, "b": last_kept}
    tonight = _predictions(labels, 0.9935, 9)
    decision = gate.decide(
        _tonight(labels, tonight), [best, last, refused], COMPETITION, lambda e: kept[e.id], 0.05, "better"
    )
    assert decision.reference == "a" and not decision.submitted


def test_a_submission_made_elsewhere_is_compared_by_its_public_score(labels):
    elsewhere = Entry(
        id="kaggle-9", competition=COMPETITION, status="complete", origin="kaggle", ref=9, public_score=0.9957
    )
    close = _predictions(labels, 0.9960, 10)
    decision = gate.decide(_tonight(labels, close), [elsewhere], COMPETITION, lambda e: None, 0.05, "better")
    assert not decision.submitted and decision.test == "binomial" and "made elsewhere" in decision.reason
    clear = _predictions(labels, 0.9985, 11)
    decision = gate.decide(_tonight(labels, clear), [elsewhere], COMPETITION, lambda e: None, 0.05, "better")
    assert decision.submitted and decision.p_value < 0.05


def test_no_accepted_submission_or_always_submits(labels):
    preds = _predictions(labels, 0.99, 12)
    refused, _ = _submitted(preds, labels, status="error")
    first = gate.decide(_tonight(labels, preds), [refused], COMPETITION, lambda e: None, 0.05, "better")
    assert first.submitted and "no earlier submission" in first.reason
    entry, kept = _submitted(_predictions(labels, 0.999, 13), labels)
    always = gate.decide(_tonight(labels, preds), [entry], COMPETITION, lambda e: kept, 0.05, "always")
    assert always.submitted and always.reason == "--submit always"


def test_another_competition_is_not_the_reference(labels):
    entry, kept = _submitted(_predictions(labels, 0.999, 14), labels)
    entry.competition = "other"
    decision = gate.decide(
        _tonight(labels, _predictions(labels, 0.99, 15)), [entry], COMPETITION, lambda e: kept, 0.05, "better"
    )
    assert decision.submitted and "no earlier submission" in decision.reason


def test_a_pending_submission_is_the_reference_until_it_is_scored(labels):
    """Yesterday's blend, still being scored, beside an older scored one: tonight must beat yesterday's too."""
    old, old_kept = _submitted(_predictions(labels, 0.990, 16), labels, id="a", ref=1, public_score=0.9902)
    strong = _predictions(labels, 0.996, 17)
    pending, pending_kept = _submitted(strong, labels, id="b", ref=2, status="pending")
    kept = {"a": old_kept, "b": pending_kept}
    tonight = strong.copy()
    fixed = np.flatnonzero(strong != labels)[:5]  # five rows better than yesterday's: noise
    tonight[fixed] = labels[fixed]
    decision = gate.decide(_tonight(labels, tonight), [old, pending], COMPETITION, lambda e: kept[e.id], 0.05, "better")
    assert not decision.submitted and decision.reference == "b" and "may be noise" in decision.reason
    clearly = strong.copy()
    fixed = np.flatnonzero(strong != labels)[:120]
    clearly[fixed] = labels[fixed]
    decision = gate.decide(_tonight(labels, clearly), [old, pending], COMPETITION, lambda e: kept[e.id], 0.05, "better")
    assert decision.submitted and decision.reference == "b"


def test_a_pending_submission_made_elsewhere_holds_the_night_until_it_is_scored(labels):
    old, old_kept = _submitted(_predictions(labels, 0.990, 18), labels, id="a", ref=1, public_score=0.9902)
    elsewhere = Entry(id="kaggle-9", competition=COMPETITION, status="pending", origin="kaggle", ref=9)
    tonight = _predictions(labels, 0.9985, 19)
    decision = gate.decide(
        _tonight(labels, tonight),
        [old, elsewhere],
        COMPETITION,
        lambda e: old_kept if e.id == "a" else None,
        0.05,
        "better",
    )
    assert not decision.submitted and decision.reference == "kaggle-9" and "still being scored" in decision.reason


def test_the_predictions_of_a_submission_without_an_honest_estimate_are_never_paired(labels):
    """An entry of a run whose out-of-fold figure was in-sample has no estimate; its kept predictions are in-sample."""
    optimistic = _predictions(labels, 0.999, 20)
    entry, kept = _submitted(optimistic, labels, public_score=0.9900)
    entry.estimate = None
    tonight = _predictions(labels, 0.9960, 21)
    decision = gate.decide(_tonight(labels, tonight), [entry], COMPETITION, lambda e: kept, 0.05, "better")
    assert decision.test == "binomial" and decision.submitted
