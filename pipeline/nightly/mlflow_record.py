"""What a run record becomes in MLflow: its params, metrics and tags, and its submission file.

Plain functions of a `RunRecord`, without MLflow: `pipeline.nightly.mlflow_sync`
logs what they return.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core import config as cfg
from pipeline.store import run_folders
from pipeline.store.record import RunRecord
from pipeline.views.runset import elapsed

RUN_TAG = "digits.run_id"
UNTRACKED_SECTIONS = ("notify", "tracking")  # where results go, not what they are; their URLs may hold secrets
TAG_LIMIT = 5000  # MLflow keeps 8000 characters of a tag


def params_of(rec: RunRecord) -> dict[str, str]:
    """The resolved config, flattened (``train.epochs``...; the drawn seed, the recipe as ``model.kind``)."""
    flat = cfg.flatten(cfg.to_dict(rec.config))
    return {k: str(v) for k, v in sorted(flat.items()) if k.split(".")[0] not in UNTRACKED_SECTIONS}


def metrics_of(rec: RunRecord) -> dict[str, float]:
    """The run's figures: per fold, out-of-fold, the blend's estimate and in-sample figure, the public score."""
    seconds = elapsed(rec)
    values: dict[str, float | None] = {
        "oof_accuracy": rec.oof_accuracy,
        "fold_accuracy_mean": rec.fold_accuracy_mean,
        "fold_accuracy_std": rec.fold_accuracy_std,
        "blend_estimate": rec.submission_estimate,
        "blend_in_sample_accuracy": rec.blend.in_sample_accuracy if rec.blend else None,
        "blend_runs": rec.submission_runs,
        "leaderboard_public_score": rec.lb_score,
        "minutes": None if seconds is None else seconds / 60,
        **{f"fold_accuracy/{f.index}": f.val_accuracy for f in rec.folds},
    }
    return {k: float(v) for k, v in values.items() if v is not None}


def tags_of(rec: RunRecord) -> dict[str, str]:
    """Data hashes, versions, the plan's and the submit decision's reasons, the score's state: as tags."""
    tags = {RUN_TAG: rec.run_id, "digits.status": rec.status, "digits.recipe": rec.config.model.kind or ""}
    tags["digits.code_version"] = rec.code_version
    for name, entry in rec.data.items():
        tags[f"digits.data.{name}.sha256"] = entry.sha256
        tags[f"digits.data.{name}.rows"] = str(entry.rows)
    tags.update({f"digits.version.{name}": version for name, version in rec.versions.items()})
    if rec.plan is not None:
        tags.update({"digits.plan.rule": rec.plan.rule, "digits.plan.reason": rec.plan.reason})
    decision = rec.submit_decision
    if decision is not None:
        tags["digits.submit.decision"] = "submitted" if decision.submitted else "not submitted"
        tags["digits.submit.reason"] = decision.reason
    if rec.blend is not None:
        tags["digits.blend.members"] = ", ".join(f"{m.run_id} x{m.weight:.2f}" for m in rec.blend.members)
    if rec.leaderboard is not None:
        tags["digits.leaderboard.status"] = rec.lb_status or ""
        if rec.leaderboard.message or rec.leaderboard.error:
            tags["digits.leaderboard.message"] = rec.leaderboard.error or rec.leaderboard.message or ""
    for key, value in (("digits.error", rec.error), ("digits.sweep", rec.sweep), ("digits.variant", rec.variant)):
        if value:
            tags[key] = value
    return {k: v[:TAG_LIMIT] for k, v in tags.items()}


def submission_file(run_dir: Path, rec: RunRecord) -> Path | None:
    """The run's own submission CSV, where its output directory keeps it (the recorded path may be relative)."""
    if rec.submission is None:
        return None
    own = run_dir.parent.parent / run_folders.SUBMISSIONS / f"{rec.run_id}.csv"
    return own if own.is_file() else None
