"""The submission: the best blend of compatible finished runs, written for Kaggle.

``predict(output_dir, run)`` takes the run as the anchor, lets `blend` choose
among it and the newest compatible runs on their out-of-fold probabilities,
averages the members' saved test probabilities with the chosen weights and
writes ``submissions/<run-id>.csv`` and ``submissions/submission.csv``.  Only
when test.csv changed since the runs predicted it are the members' fold
models loaded to predict it again.  The anchor's record keeps the members,
their weights, the blend's out-of-sample estimate and the in-sample figure;
``estimate.npz`` keeps each row's prediction behind the estimate (the gate
pairs it with the best submission's).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from pipeline.competition import dataset as data_mod
from pipeline.competition import submission_file
from pipeline.core import atomic_files
from pipeline.core.errors import BadInputError
from pipeline.core.progress import Progress
from pipeline.core.text import pct
from pipeline.nightly import blend
from pipeline.store import fold_files, record, run_arrays, run_folders


def predict(
    output_dir: str | Path,
    run: str = "latest",
    data_dir: str | None = None,
    progress: Progress | None = None,
    hold_lock: bool = True,
    ensemble_runs: int | None = None,
) -> Path:
    """Blend, predict test.csv, write the submission files; returns ``submissions/submission.csv``.

    `ensemble_runs` bounds the candidates (the anchor and the newest other
    compatible runs); default: the anchor's ``blend.runs``; 1 is the anchor alone.
    """
    progress = progress or Progress()
    output_dir = run_folders.home(output_dir, run)  # a run named by its path blends, writes and locks at home
    lock = run_folders.Lock(output_dir) if hold_lock else contextlib.nullcontext()
    with lock:
        run_dir = run_folders.resolve(output_dir, run)
        rec = record.read(run_dir)
        if rec.status != "complete":
            raise BadInputError(
                f"run {rec.run_id} is {rec.status}, not complete; finish it with `digits train --resume {rec.run_id}`"
            )
        t = time.perf_counter()
        test_path = Path(data_dir or run_folders.recorded_path(run_dir, rec.config.data.dir)) / "test.csv"
        x_test, digest = data_mod.load_array(test_path, data_mod.TEST_COLUMNS, log=progress.warn)
        limit = ensemble_runs if ensemble_runs is not None else rec.config.blend.runs
        if limit < 1:
            raise BadInputError(f"option --ensemble-runs: must be at least 1, got {limit}")
        labels, found = blend.candidates(output_dir, run_dir, limit, warn=progress.warn, note=progress.info)
        info, chosen, estimate = blend.choose(labels, found, rec.config.blend.estimate_parts)
        changed = digest != rec.test_sha
        if changed:
            progress.warn(
                f"{test_path} changed since run {rec.run_id} predicted it; the fold models of "
                f"{len(chosen)} run(s) predict it again"
            )
        proba = np.zeros((len(x_test), 10))
        for member, weight in chosen:
            test = member.test if member.test is not None and not changed else _from_models(member, x_test)
            proba += weight * test
        labels_out = proba.argmax(axis=1)
        out_dir = Path(output_dir) / run_folders.SUBMISSIONS
        own = out_dir / f"{rec.run_id}.csv"
        sha = submission_file.write(own, labels_out)
        submission_file.validate_file(own, expected_rows=len(x_test))
        latest = out_dir / "submission.csv"
        atomic_files.write_bytes(latest, own.read_bytes())
        rec.stage_seconds["predict"] = round(time.perf_counter() - t, 3)
        rec.submission = record.Submission(path=str(own.absolute()), sha256=sha, rows=int(len(labels_out)))
        rec.blend = info
        atomic_files.write_npz(run_dir / run_arrays.ESTIMATE, labels=labels, predictions=estimate.predictions)
        record.write(run_dir, rec)
        progress.info(describe(info))
        progress.info(f"submission: {latest} ({len(labels_out):,} rows, from run {rec.run_id})")
        return latest


def describe(info: record.Blend) -> str:
    """One line: which runs, with what weights, and what the blend scores against the best single run."""
    members = ", ".join(f"{m.run_id} x{m.weight:.2f}" for m in info.members)
    return (
        f"blend of {len(info.members)} of {len(info.candidates)} compatible run(s) ({members}): estimate "
        f"{pct(info.estimate, 3)}% on rows the selection never saw (in-sample {pct(info.in_sample_accuracy, 3)}%; "
        f"best single run {info.best_single_run}: {pct(info.best_single_oof_accuracy, 3)}%)"
    )


def _from_models(member: blend.Candidate, x_test: np.ndarray) -> np.ndarray:
    """The member's soft vote on `x_test`, from its saved fold models."""
    from pipeline.training.fold import predict_models

    models = [fold_files.fold_paths(member.dir, f.index)["keras"] for f in member.record.folds]
    missing = [str(m) for m in models if not m.is_file()]
    if missing or not models:
        raise BadInputError(
            f"{missing[0] if missing else member.dir}: fold model missing; cannot predict with this run"
        )
    return predict_models(models, x_test, member.record.config.train.threads)
