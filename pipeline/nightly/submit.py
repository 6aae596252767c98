"""Submitting to Kaggle: validate the file as Kaggle would, upload it, wait for its score, record it in the run.

`submit` is what ``digits submit`` calls, and what ``digits run --submit``
calls when the night decided to submit (`pipeline.nightly.night`).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.competition import dataset as data_mod
from pipeline.competition import submission_file
from pipeline.core import config as cfg
from pipeline.core.errors import BadInputError, KaggleError
from pipeline.core.progress import Progress
from pipeline.store import record, run_folders


def submit(
    output_dir: str | Path,
    target: str,
    message: str | None = None,
    competition: str | None = None,
    progress: Progress | None = None,
    wait: float = 600.0,
) -> dict:
    """Validate and upload a run's submission (or any CSV file), wait for its score, record it in the run."""
    from pipeline import kaggle_client

    progress = progress or Progress()
    path = Path(target)
    run_dir = None
    if path.suffix == ".csv" and path.exists():  # a FIFO or a folder named .csv is refused by validate_file
        data_dir = Path(cfg.DataConfig().dir)
        message = message or f"digits submission {path.name}"
    else:
        run_dir = run_folders.resolve(output_dir, target)
        rec = record.read(run_dir)
        if rec.submission is None:
            raise BadInputError(f"run {rec.run_id} has no submission yet; run `digits predict {rec.run_id}` first")
        path = run_folders.recorded_path(run_dir, rec.submission.path)  # older records: relative to their start
        competition = competition or rec.config.data.competition
        data_dir = run_folders.recorded_path(run_dir, rec.config.data.dir)
        oof = rec.blend_oof_accuracy
        message = message or f"digits run {rec.run_id}" + (f", CV {oof:.4%}" if oof is not None else "")
    competition = competition or cfg.DataConfig().competition
    test_csv = data_dir / "test.csv"
    expected = len(data_mod.load_array(test_csv, data_mod.TEST_COLUMNS)[0]) if test_csv.is_file() else None
    if expected is None:
        progress.warn(f"{test_csv} not found: the submission's row count is checked against nothing")
    submission_file.validate_file(path, expected_rows=expected)
    try:
        result = kaggle_client.submit(path, competition, message, wait=wait, log=progress.info)
    except KaggleError as e:
        refused = getattr(e, "submission", None)  # Kaggle took the file but failed to score it
        if run_dir is not None and isinstance(refused, dict):
            record.update(run_dir, leaderboard=record.Leaderboard(**{**refused, "file": str(path.absolute())}))
        raise
    if run_dir is not None:
        record.update(run_dir, leaderboard=record.Leaderboard(**{**result, "file": str(path.absolute())}))
    score = result.get("public_score")
    progress.info(
        f"submitted {path}: " + (f"public score {score}" if score is not None else f"status {result.get('status')}")
    )
    return result
