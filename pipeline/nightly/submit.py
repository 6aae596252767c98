"""Submitting to Kaggle, and the ledger of what was submitted.

`submit` is what ``digits submit`` calls, and what ``digits run --submit``
calls when the gate says so (`pipeline.nightly.gate`): validate the file as
Kaggle would, write its ledger entry (``sending``), upload it, then write
the entry again with Kaggle's reference and, once scored, its public score;
the run's record gets the score too.  `refresh` is what every night that
reaches Kaggle does first: it reads Kaggle's list of submissions, fills in
scores still pending and records the submissions this job did not make, so
the gate compares against them too.  Neither ever rewrites an entry; they
append its new state (`pipeline.store.ledger`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from pipeline.competition import dataset as data_mod
from pipeline.competition import submission_file
from pipeline.core import atomic_files
from pipeline.core import config as cfg
from pipeline.core.errors import BadInputError, DigitsError, KaggleError
from pipeline.core.progress import Progress
from pipeline.core.text import pct
from pipeline.store import ledger, record, run_arrays, run_folders
from pipeline.store.record import RunRecord


def submit(
    output_dir: str | Path,
    target: str,
    message: str | None = None,
    competition: str | None = None,
    progress: Progress | None = None,
    wait: float = 600.0,
) -> dict:
    """Validate and upload a run's submission (or any CSV file), wait for its score, record it in the ledger and run."""
    from pipeline import kaggle_client

    progress = progress or Progress()
    path = Path(target)
    run_dir, rec = None, None
    # os.path: a name too long or with a NUL is no file, and is then looked up (and not found) as a run
    if path.suffix == ".csv" and os.path.exists(path):  # a FIFO or a folder named .csv is refused by validate_file
        if os.path.isfile(path):  # hashing a FIFO would wait for ever
            run_dir, rec = _run_that_wrote(output_dir, path)
        data_dir = run_folders.recorded_path(run_dir, rec.config.data.dir) if run_dir and rec else None
        data_dir = data_dir or Path(cfg.DataConfig().dir)
        message = message or (_message(rec) if rec else f"digits submission {path.name}")
    else:
        run_dir = run_folders.resolve(output_dir, target)
        rec = record.read(run_dir)
        if rec.submission is None:
            raise BadInputError(f"run {rec.run_id} has no submission yet; run `digits predict {rec.run_id}` first")
        path = run_folders.recorded_path(run_dir, rec.submission.path)  # older records: relative to their start
        data_dir = run_folders.recorded_path(run_dir, rec.config.data.dir)
        message = message or _message(rec)
    competition = competition or (rec.config.data.competition if rec else cfg.DataConfig().competition)
    test_csv = data_dir / "test.csv"
    expected = len(data_mod.load_array(test_csv, data_mod.TEST_COLUMNS)[0]) if test_csv.is_file() else None
    if expected is None:
        progress.warn(f"{test_csv} not found: the submission's row count is checked against nothing")
    submission_file.validate_file(path, expected_rows=expected)
    entry = ledger.append(output_dir, _entry(output_dir, path, competition, message, run_dir, rec))
    try:
        result = kaggle_client.submit(path, competition, message, wait=wait, log=progress.info)
    except KaggleError as e:
        refused = getattr(e, "submission", None)  # Kaggle took the file but failed to score it
        if isinstance(refused, dict):
            _record(output_dir, entry, refused, run_dir, path)
        elif "may have been made" not in str(e):  # nothing reached Kaggle; an unsure create stays "sending"
            ledger.append(output_dir, dataclasses.replace(entry, status="error", error=str(e)))
        raise
    _record(output_dir, entry, result, run_dir, path)
    score = result.get("public_score")
    progress.info(
        f"submitted {path}: " + (f"public score {score}" if score is not None else f"status {result.get('status')}")
    )
    return result


def _message(rec: RunRecord) -> str:
    estimate = rec.submission_estimate
    return f"digits run {rec.run_id}" + (f", estimate {pct(estimate, 3)}%" if estimate is not None else "")


def _run_that_wrote(output_dir: str | Path, path: Path) -> tuple[Path | None, RunRecord | None]:
    """The run whose submission this file is (by its hash), so a file submitted by hand keeps its blend's figures."""
    try:
        sha = atomic_files.sha256(path)
    except OSError:
        return None, None
    for run_dir, rec in run_folders.newest_first(output_dir):
        if rec.submission is not None and rec.submission.sha256 == sha:
            return run_dir, rec
    return None, None


def _entry(
    output_dir: str | Path, path: Path, competition: str, message: str, run_dir: Path | None, rec: RunRecord | None
) -> ledger.Entry:
    """The ledger entry of a submission about to be sent: what the file is, and what it is worth."""
    sha = atomic_files.sha256(path)
    entry = ledger.Entry(
        id=ledger.new_id(sha),
        competition=competition,
        status="sending",
        sent_at=ledger.now(),
        sha256=sha,
        file=str(path.resolve()),
        message=message,
    )
    if rec is None or run_dir is None:
        return entry
    members = (
        [ledger.Member(m.run_id, m.weight) for m in rec.blend.members]
        if rec.blend
        else [ledger.Member(rec.run_id, 1.0)]
    )
    kept = None
    arrays = _estimate_arrays(run_dir, rec)
    if arrays is not None and rec.submission is not None and rec.submission.sha256 == sha:
        kept = ledger.save_predictions(output_dir, *arrays)
    return dataclasses.replace(
        entry,
        run_id=rec.run_id,
        members=members,
        estimate=rec.submission_estimate,
        estimate_method=None
        if rec.submission_estimate is None
        else (rec.blend.estimate_method if rec.blend else "the run's out-of-fold accuracy"),
        train_sha=rec.train_sha,
        predictions=kept,
    )


def _estimate_arrays(run_dir: Path, rec: RunRecord) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, predictions) behind the run's estimate: its blend's, else its own out-of-fold predictions.

    None when there is no honest estimate to pair with: a blend whose estimate.npz is gone (the
    anchor's own predictions are not the blend's), or a run whose out-of-fold figure is in-sample.
    """
    if rec.blend is not None:
        return run_arrays.load_estimate(run_dir) if rec.blend.estimate is not None else None
    if rec.oof_in_sample:
        return None
    try:
        labels, oof = run_arrays.load_oof(run_dir, finite=True)
    except BadInputError:
        return None
    return labels, oof.argmax(axis=1)


def _record(
    output_dir: str | Path, entry: ledger.Entry, result: dict, run_dir: Path | None, path: Path
) -> ledger.Entry:
    """Kaggle's answer into the ledger and, when the file is a run's, into the run's record."""
    entry = ledger.append(
        output_dir,
        dataclasses.replace(
            entry,
            ref=result.get("ref"),
            status=result.get("status") or "pending",
            public_score=result.get("public_score"),
            error=result.get("error"),
            sent_at=result.get("submitted_at") or entry.sent_at,
        ),
    )
    if run_dir is not None:
        try:
            record.update(run_dir, leaderboard=_leaderboard(result, str(path.absolute())))
        except DigitsError:
            pass  # the ledger holds the answer; a run removed meanwhile keeps nothing to update
    return entry


def refresh(output_dir: str | Path, competition: str, progress: Progress) -> list[ledger.Entry]:
    """Bring the ledger up to date with Kaggle's list of submissions; returns the entries, refreshed.

    A score still pending is filled in (and written into its run's record);
    a submission this job did not make joins the ledger with ``origin =
    "kaggle"``; an entry left ``sending`` by a create that may have gone
    through is matched by its message.
    """
    from pipeline import kaggle_client

    listed = kaggle_client.list_submissions(competition, log=None)
    entries = ledger.read(output_dir, warn=progress.warn)
    by_ref = {e.ref: e for e in entries if e.ref is not None}
    unsent = [e for e in entries if e.ref is None and e.status == "sending" and e.competition == competition]
    changed = 0
    for sub in reversed(listed):  # oldest first, so entries found on Kaggle join in the order they were made
        known = by_ref.get(sub["ref"])
        if known is None:
            known = next((e for e in unsent if e.message and e.message == sub["message"]), None)
            if known is not None:
                unsent.remove(known)
        if known is None:
            entry = ledger.Entry(
                id=f"kaggle-{sub['ref']}",
                competition=competition,
                status=sub["status"],
                origin="kaggle",
                sent_at=sub["submitted_at"],
                file=sub["file_name"],
                message=sub["message"],
                ref=sub["ref"],
                public_score=sub["public_score"],
                error=sub["error"],
            )
        elif (known.ref, known.status, known.public_score, known.error) == (
            sub["ref"],
            sub["status"],
            sub["public_score"],
            sub["error"],
        ):
            continue
        else:
            entry = dataclasses.replace(
                known, ref=sub["ref"], status=sub["status"], public_score=sub["public_score"], error=sub["error"]
            )
        ledger.append(output_dir, entry)
        changed += 1
        if entry.run_id and sub["status"] != "pending":
            _score_run(output_dir, entry, sub)
    if changed:
        progress.info(f"ledger: {changed} submission(s) updated from Kaggle's list")
    return ledger.read(output_dir, warn=progress.warn) if changed else entries


def _score_run(output_dir: str | Path, entry: ledger.Entry, sub: dict) -> None:
    run_dir = run_folders.runs_root(output_dir) / str(entry.run_id)
    try:
        rec = record.read(run_dir)
    except DigitsError:
        return  # gc'd or unreadable: the ledger keeps the score
    if rec.submission is None or rec.submission.sha256 != entry.sha256:
        return  # the run predicted again since (a new blend): that score is not this file's
    record.update(run_dir, leaderboard=_leaderboard(sub, entry.file))


def _leaderboard(answer: dict, file: str | None) -> record.Leaderboard:
    """Kaggle's answer (of `submit` or `list_submissions`) as the run record keeps it."""
    return record.Leaderboard(
        status=answer.get("status") or "pending",
        public_score=answer.get("public_score"),
        message=answer.get("message"),
        submitted_at=answer.get("submitted_at"),
        ref=answer.get("ref"),
        error=answer.get("error"),
        competition=answer.get("competition"),
        file=file,
    )
