"""The nightly job: download, train, blend and predict, then submit when the gate says so.

`nightly` is what ``digits run`` calls.  A night that reaches Kaggle first
refreshes the ledger of submissions from Kaggle's list (scores that were
pending, submissions made elsewhere: `pipeline.nightly.submit.refresh`).
With ``--submit`` (mode "better") it submits only when its blend beats the
best submission Kaggle accepted by a paired test (`pipeline.nightly.gate`),
so the daily allowance is spent on progress, not on noise; "always" submits
every night.  The upload itself is `pipeline.nightly.submit`.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.competition import dataset as data_mod
from pipeline.core import config as cfg
from pipeline.core.errors import BadInputError, KaggleError, UsageError
from pipeline.core.progress import Progress
from pipeline.nightly import gate
from pipeline.nightly.predict import predict
from pipeline.nightly.submit import refresh, submit
from pipeline.store import ledger, record, run_arrays, run_folders
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
) -> Path | None:
    """The whole job: download (unless offline or demo), train, blend and predict, then submit if asked.

    Continues the runs the budget paused last night, if any (with --resume: any unfinished run), and with a
    budget trains new runs while it lasts (`trainer.train_night`).  Returns the submission's path, blended
    around the newest run finished tonight; None when no run finished tonight (the submission stays as it was).
    """
    progress = progress or Progress()
    if submit_mode is not None and submit_mode not in SUBMIT_MODES:
        raise UsageError(f"option --submit: expected one of {', '.join(SUBMIT_MODES)}, got {submit_mode!r}")
    if offline and submit_mode:
        raise UsageError("--offline never contacts Kaggle, so it cannot --submit; drop one of them")
    data_dir = Path(config.data.dir)
    entries: list[ledger.Entry] | None = None
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
        if not (demo or offline):  # under the lock: the refresh writes scores into run records
            entries = _refresh(config, progress)
        trained = [(run_dir, record.read(run_dir)) for run_dir in trainer.train_night(config, progress, resume, False)]
        complete = [run_dir for run_dir, rec in trained if rec.status == "complete"]
        if not complete:  # the blend takes complete runs only: tonight's work waits for the night that finishes it
            for _, rec in trained:
                progress.info(f"run {rec.run_id}: {record.standing(rec)}; no new submission tonight")
            return None
        for _, rec in trained:
            if rec.status == record.PAUSED:
                progress.info(f"run {rec.run_id}: {record.standing(rec)}; it continues on the next night")
        run_dir = complete[-1]  # the newest finished run anchors the blend of every compatible finished run
        path = predict(config.output_dir, str(run_dir), config.data.dir, progress, hold_lock=False)
    if submit_mode:
        _gate_and_submit(config, run_dir, submit_mode, submit_message, entries, progress)
    return path


def _gate_and_submit(
    config: cfg.Config,
    run_dir: Path,
    mode: str,
    message: str | None,
    entries: list[ledger.Entry] | None,
    progress: Progress,
) -> None:
    """Ask the gate; record its decision in the run; submit when it says so."""
    rec = record.read(run_dir)
    kept = run_arrays.load_estimate(run_dir)
    estimate = rec.submission_estimate
    if kept is None or estimate is None:
        raise BadInputError(f"run {rec.run_id} kept no estimate of its blend; predict it again with `digits predict`")
    tonight = gate.Tonight(estimate, kept[0], kept[1], rec.train_sha)
    if entries is None:
        entries = ledger.read(config.output_dir, warn=progress.warn)
    decision = gate.decide(
        tonight,
        entries,
        config.data.competition,
        lambda entry: ledger.load_predictions(config.output_dir, entry),
        config.submit.alpha,
        mode,
    )
    record.update(run_dir, submit_decision=decision)
    if decision.submitted:
        progress.info(f"submitting: {decision.reason}")
        submit(
            config.output_dir,
            str(run_dir),
            message,
            competition=config.data.competition,
            progress=progress,
            wait=config.submit.wait,
        )
    else:
        progress.info(f"not submitting: {decision.reason}")


def _refresh(config: cfg.Config, progress: Progress) -> list[ledger.Entry] | None:
    """The ledger brought up to date from Kaggle's list; on a Kaggle failure one warning and the ledger as it is."""
    try:
        return refresh(config.output_dir, config.data.competition, progress)
    except KaggleError as e:
        progress.warn(f"{e}; the ledger's pending scores stay pending until the next night")
        return None
