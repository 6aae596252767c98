"""What ``digits compare`` computes, before any formatting: runs side by side, and two runs tested.

A `Comparison` holds the runs' records, what differs between them (config
keys, data files, code and library versions) and, for exactly two runs, the
per-fold deltas and McNemar's test on their paired out-of-fold predictions.
`pipeline.views.compare` prints it as a table, markdown, csv or json.

Accuracies are fractions here; the formats turn them into percentages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import config as cfg
from pipeline.core.errors import BadInputError
from pipeline.core.mcnemar import ALPHA, mcnemar
from pipeline.core.text import signed_pct
from pipeline.store import run_arrays
from pipeline.store.record import RunRecord
from pipeline.views import runset

SECTIONS = ("config", "data", "code")  # what `config_diff` compares, in this order


@dataclass
class Comparison:
    """Runs side by side: records and folders in order, notes on unreadable runs, differences, the pair."""

    records: list[RunRecord]
    dirs: list[Path]
    notes: list[str]
    diff: dict[str, dict[str, list[Any]]]
    pair: dict[str, Any] | None

    def fold_indices(self) -> list[int]:
        """Every fold index any of the runs recorded, in order."""
        return sorted(set().union(*(r.fold_accuracy for r in self.records)))

    def diff_rows(self) -> list[tuple[str, str, list[Any]]]:
        """(section, key, one value per run) of everything that differs, config first."""
        return [(section, key, values) for section in SECTIONS for key, values in self.diff[section].items()]

    def as_dict(self) -> dict[str, Any]:
        """The comparison as the JSON of ``digits compare --format json``."""
        ids = [r.run_id for r in self.records]
        return {
            "runs": [summary(r, d) for d, r in zip(self.dirs, self.records)],
            "differences": {section: {k: dict(zip(ids, v)) for k, v in d.items()} for section, d in self.diff.items()},
            "pair": self.pair,
            "notes": self.notes,
        }


def build(found: runset.RunSet) -> Comparison:
    """Find what differs between the runs, and test the pair when there are two."""
    pair = None
    if len(found) == 2:
        (a_dir, a), (b_dir, b) = found
        pair = compare_pair(a_dir, a, b_dir, b)
    return Comparison(found.records, found.dirs, found.notes, config_diff(found.records), pair)


def summary(rec: RunRecord, run_dir: Path) -> dict[str, Any]:
    """One run as a flat record: the JSON object and CSV row of ``digits compare``.

    ``blend_estimate`` and ``blend_runs`` describe the submission the run
    wrote (`RunRecord.submission_estimate`: out-of-sample), so the blend's
    gain shows beside the run's own ``oof_accuracy``.
    """
    return {
        "run_id": rec.run_id,
        "started_at": rec.started_at or None,
        "finished_at": rec.finished_at,
        "status": rec.status,
        "folds_planned": rec.folds_planned,
        "folds_done": len(rec.folds),
        "fold_accuracy": {str(k): v for k, v in rec.fold_accuracy.items()},
        "fold_accuracy_mean": rec.fold_accuracy_mean,
        "fold_accuracy_std": rec.fold_accuracy_std,
        "oof_accuracy": rec.oof_accuracy,
        "blend_estimate": rec.submission_estimate,
        "blend_runs": rec.submission_runs,
        "recipe": rec.config.model.kind,
        "plan": rec.plan.reason if rec.plan else None,
        "leaderboard_score": rec.lb_score,
        "leaderboard_status": rec.lb_status,
        "seconds": runset.elapsed(rec),
        "train_sha256": rec.train_sha,
        "path": str(run_dir),
    }


def config_diff(records: Sequence[RunRecord]) -> dict[str, dict[str, list[Any]]]:
    """What differs between runs, by section: config keys, data files, code and library versions.

    Returns ``{"config": {"train.epochs": [40, 30, ...]}, "data": {...}, "code": {...}}``
    with one value per run, in run order (None where a record lacks the key).
    For two runs the config part equals `pipeline.core.config.diff`.
    """
    configs = [cfg.flatten(cfg.to_dict(r.config)) for r in records]
    data = [{f"{name} sha256": entry.sha256 for name, entry in r.data.items()} for r in records]
    code = [
        {"code_version": r.code_version or None, **{f"versions.{k}": v for k, v in r.versions.items()}} for r in records
    ]
    return {"config": _differing(configs), "data": _differing(data), "code": _differing(code)}


def _differing(flat: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The keys whose values are not all equal, with every run's value."""
    out = {}
    for key in sorted(set().union(*flat)):
        values = [f.get(key) for f in flat]
        if any(v != values[0] for v in values[1:]):
            out[key] = values
    return out


def compare_pair(a_dir: Path, a: RunRecord, b_dir: Path, b: RunRecord, alpha: float = ALPHA) -> dict[str, Any]:
    """Per-fold deltas (B - A) and McNemar's test on the paired out-of-fold predictions.

    The test is skipped, with a note saying why, when the runs trained on
    different data or a run saved no usable out-of-fold predictions.
    """
    notes = _split_notes(a, b)
    result: dict[str, Any] = {
        "a": a.run_id,
        "b": b.run_id,
        "folds": _fold_deltas(a, b),
        "fold_mean": _delta(a.fold_accuracy_mean, b.fold_accuracy_mean),
        "oof": _delta(a.oof_accuracy, b.oof_accuracy),
        "leaderboard": _delta(a.lb_score, b.lb_score),
        "same_data": None,
        "mcnemar": None,
        "notes": notes,
    }
    if a.train_sha and b.train_sha and a.train_sha != b.train_sha:
        result["same_data"] = False
        notes.append(
            f"train.csv differs between the runs (sha256 {a.train_sha[:12]} vs {b.train_sha[:12]}): their "
            "accuracies are on different data, so McNemar's test does not apply"
        )
        return result
    try:
        labels_a, proba_a = run_arrays.load_oof(a_dir)
        labels_b, proba_b = run_arrays.load_oof(b_dir)
    except BadInputError as e:
        notes.append(f"{e}; significance not tested")
        return result
    if len(labels_a) != len(labels_b) or not np.array_equal(labels_a, labels_b):
        result["same_data"] = False
        notes.append(
            "the out-of-fold labels of the two runs differ (not the same train.csv rows): McNemar's test does not apply"
        )
        return result
    result["same_data"] = True
    if not (a.train_sha and b.train_sha):
        notes.append("train.csv hash not recorded in one report; the out-of-fold labels match, so the runs are paired")
    result["mcnemar"] = _paired_test(labels_a, proba_a, proba_b, notes, alpha)
    return result


def _delta(a: float | None, b: float | None) -> dict[str, float | None]:
    return {"a": a, "b": b, "delta": None if a is None or b is None else b - a}


def _fold_deltas(a: RunRecord, b: RunRecord) -> list[dict[str, Any]]:
    acc_a, acc_b = a.fold_accuracy, b.fold_accuracy
    return [{"index": k, **_delta(acc_a.get(k), acc_b.get(k))} for k in sorted(set(acc_a) | set(acc_b))]


def _split_notes(a: RunRecord, b: RunRecord) -> list[str]:
    """A note when fold k of A and fold k of B did not validate the same rows."""
    differing = cfg.diff(cfg.to_dict(a.config), cfg.to_dict(b.config))
    split_keys = [k for k in ("train.folds", "train.seed") if k in differing]
    if not split_keys:
        return []
    return [
        f"{' and '.join(split_keys)} differ, so fold k validates different rows in each run: "
        "per-fold deltas are not paired"
    ]


def _paired_test(
    labels: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, notes: list[str], alpha: float
) -> dict[str, Any] | None:
    """McNemar's test on the rows both runs predicted (an interrupted run predicted only some)."""
    pred_a, has_a = runset.predicted(proba_a)
    pred_b, has_b = runset.predicted(proba_b)
    both = has_a & has_b
    if not both.any():
        notes.append("no row has an out-of-fold prediction in both runs; significance not tested")
        return None
    if not both.all():
        notes.append(
            f"only {int(both.sum())} of {len(labels)} rows have out-of-fold predictions in both runs "
            "(an interrupted run); the test uses those rows"
        )
    return mcnemar(labels[both], pred_a[both], pred_b[both], alpha).as_dict()


def verdict(pair: dict[str, Any]) -> str:
    """One sentence saying whether B differs from A beyond chance."""
    m = pair.get("mcnemar")
    if not m:
        return "significance not tested"
    gained = m["b_only_correct"] - m["a_only_correct"]
    points = gained / m["rows"] if m["rows"] else 0.0
    counts = (
        f"{pair['b']} gets {m['b_only_correct']} rows right that {pair['a']} gets wrong, "
        f"and {m['a_only_correct']} the other way round ({signed_pct(points, 3)} pp on {m['rows']} rows)"
    )
    test = f"McNemar {m['method']} test, p = {m['p_value']:.3g}"
    if m["significant"]:
        winner = pair["b"] if m["better"] == "b" else pair["a"]
        return f"SIGNIFICANT ({test} < {m['alpha']}): {counts}; {winner} is better"
    return f"not significant ({test} >= {m['alpha']}): {counts}; the difference may be noise, not progress"
