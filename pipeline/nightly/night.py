"""The nightly job: download, train, blend and predict, then submit when better.

`nightly` is what ``digits run`` calls.  With ``--submit`` (mode "better") a
night submits only when its blend's out-of-fold accuracy beats that of the
last submission Kaggle accepted (`last_accepted`, `decide`), so the daily
allowance is spent on progress; "always" submits every night.  The upload
itself is `pipeline.nightly.submit`.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.competition import dataset as data_mod
from pipeline.core import config as cfg
from pipeline.core.errors import DigitsError, KaggleError, UsageError
from pipeline.core.progress import Progress
from pipeline.core.text import pct
from pipeline.nightly.predict import predict
from pipeline.nightly.submit import submit
from pipeline.store import record, run_folders
from pipeline.store.record import RunRecord, SubmitDecision
from pipeline.training import trainer

SUBMIT_MODES = ("better", "always")


def nightly(
    config: cfg.Config,
    offline: bool = False,
    demo: bool = False,
    force_download: bool = False,
    resume: bool = False,
    submit_mode: str | None = None,
    submit_message: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """The whole job: download (unless offline or demo), train, blend and predict, then submit if asked."""
    progress = progress or Progress()
    if submit_mode is not None and submit_mode not in SUBMIT_MODES:
        raise UsageError(f"option --submit: expected one of {', '.join(SUBMIT_MODES)}, got {submit_mode!r}")
    if offline and submit_mode:
        raise UsageError("--offline never contacts Kaggle, so it cannot --submit; drop one of them")
    data_dir = Path(config.data.dir)
    if demo:
        if data_mod.prepare_demo(data_dir):  # only into an empty folder or the demo's own
            progress.info(f"demo: wrote a small competition from scikit-learn's digits to {data_dir}")
    elif not offline:
        from pipeline import kaggle_client

        try:
            kaggle_client.download(data_dir, config.data.competition, force=force_download, log=progress.info)
        except KaggleError as e:
            if force_download or not kaggle_client.have_data(data_dir):
                raise
            progress.warn(f"{e}; continuing with the files already in {data_dir}")
    with run_folders.Lock(config.output_dir):
        run_dir = trainer.train(config, progress, resume=resume or None, hold_lock=False)
        path = predict(config.output_dir, str(run_dir), config.data.dir, progress, hold_lock=False)
    if submit_mode:
        rec = record.read(run_dir)
        decision = decide(rec, last_accepted(config.output_dir, config.data.competition, rec.run_id), submit_mode)
        record.update(run_dir, submit_decision=decision)
        if decision.submitted:
            submit(
                config.output_dir, str(run_dir), submit_message, competition=config.data.competition, progress=progress
            )
        else:
            progress.info(f"not submitting: {decision.reason}")
    return path


def last_accepted(output_dir: str | Path, competition: str, exclude: str = "") -> RunRecord | None:
    """The newest run whose submission Kaggle accepted for `competition` (unreadable reports are skipped)."""
    for run_id in reversed(run_folders.list_runs(output_dir)):
        if run_id == exclude:
            continue
        try:
            rec = record.read(run_folders.runs_root(output_dir) / run_id)
        except DigitsError:
            continue
        board = rec.leaderboard
        if board is not None and board.accepted and (board.competition or rec.config.data.competition) == competition:
            return rec
    return None


def decide(rec: RunRecord, previous: RunRecord | None, mode: str) -> SubmitDecision:
    """Submit this run's blend?  "always" does; "better" only above the last accepted submission's OOF accuracy."""
    ours = rec.blend_oof_accuracy
    if mode == "always":
        return SubmitDecision(True, "--submit always", mode)
    if previous is None:
        return SubmitDecision(True, "no earlier submission was accepted by Kaggle", mode)
    theirs = previous.blend_oof_accuracy
    if ours is None or theirs is None:
        return SubmitDecision(
            True, "an out-of-fold accuracy is missing, so no comparison is possible", mode, previous.run_id, theirs
        )
    if ours > theirs:
        reason = f"blend out-of-fold accuracy {pct(ours, 3)}% beats {pct(theirs, 3)}% of run {previous.run_id}, submitted last"
        return SubmitDecision(True, reason, mode, previous.run_id, theirs)
    reason = (
        f"blend out-of-fold accuracy {pct(ours, 3)}% is not higher than {pct(theirs, 3)}% of run {previous.run_id}, "
        "the last submission Kaggle accepted (`--submit always` submits anyway)"
    )
    return SubmitDecision(False, reason, mode, previous.run_id, theirs)
