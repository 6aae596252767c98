"""Which run a command continues, and which runs are set aside instead of failing again every night.

- ``digits train --resume RUN`` names the run.
- ``--resume`` (``digits run --resume``, what cron runs) takes the newest
  unfinished run (`record.UNFINISHED`) with the same config and data.
- ``digits run`` without ``--resume`` continues the newest *paused* run with
  the same config and data: one the night's budget stopped at an epoch's end.

A run that failed the same way twice, or `record.FAILURES_TO_SET_ASIDE`
times in all, is set aside: its status says so, its report keeps every
attempt and its error, and no later night resumes it, so a deterministic
failure costs two nights, not every night.  A run found still "running"
(its process was killed before it could say how it ended) counts as a
failure of its own kind.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from pipeline.competition.dataset import Dataset
from pipeline.core import config as cfg
from pipeline.core.errors import BadInputError
from pipeline.core.progress import Progress
from pipeline.store import record, run_folders
from pipeline.store.record import RunRecord

KILLED = "the process ended without saying how (killed, or the machine stopped)"


def target(
    config: cfg.Config,
    data: Dataset,
    resume: str | bool | None,
    progress: Progress,
    continue_paused: bool = False,
    skip: set[Path] | frozenset[Path] = frozenset(),
) -> Path | None:
    """The run folder to continue, or None for a new run (`skip`: folders already taken, resolved)."""
    if isinstance(resume, str):
        return _named(config, data, resume)
    statuses = record.UNFINISHED if resume else (record.PAUSED,) if continue_paused else ()
    if not statuses:
        return None
    for run_dir, rec in run_folders.newest_first(config.output_dir):
        if rec.status in statuses and run_dir.resolve() not in skip and same_inputs(rec, config, data):
            return run_dir
    if resume:
        progress.info("no unfinished run with this config and data; starting a new run")
    return None


def _named(config: cfg.Config, data: Dataset, resume: str) -> Path:
    run_dir = run_folders.resolve(config.output_dir, resume)
    rec = record.read(run_dir)
    if rec.status == "complete":
        raise BadInputError(f"run {rec.run_id} is already complete; nothing to resume")
    if rec.status == "set-aside":
        raise BadInputError(f"run {rec.run_id} was set aside ({rec.error}); start a new run")
    if not same_inputs(rec, config, data):
        wanted = as_recorded(config, rec)
        changed = ", ".join(cfg.diff(cfg.result_part(rec.config), cfg.result_part(wanted))) or "the data files"
        raise BadInputError(
            f"run {rec.run_id} used a different config or data ({changed}); resume it with its own config: "
            f"--config {run_dir / 'config.toml'}"
        )
    return run_dir


def as_recorded(config: cfg.Config, rec: RunRecord) -> cfg.Config:
    """`config` with what a run settles for itself (seed, recipe, precision) taken from `rec` where left open."""
    if config.train.seed is None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=rec.config.train.seed or 0))
    if config.model.kind is None:
        config = cfg.resolve(
            dataclasses.replace(config, model=dataclasses.replace(config.model, kind=rec.config.model.kind))
        )
    if config.train.precision == "auto":
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, precision=rec.config.train.precision)
        )
    return config


def same_inputs(rec: RunRecord, config: cfg.Config, data: Dataset) -> bool:
    """Would this config on this data produce this run?  An unset seed, recipe or precision matches any."""
    wanted = as_recorded(config, rec)
    same_data = {k: (v.sha256, v.rows) for k, v in rec.data.items()} == {
        k: (v["sha256"], v["rows"]) for k, v in data.files.items()
    }
    return same_data and cfg.result_part(rec.config) == cfg.result_part(wanted)


def found_killed(rec: RunRecord) -> None:
    """A run resumed while its record still says "running": its last attempt ended unrecorded; count it."""
    if rec.status == "running":
        rec.attempts.append(record.Attempt(started_at=rec.started_at, ended="failed", error=KILLED))


def set_aside_reason(rec: RunRecord) -> str | None:
    """Why a run that just failed must not be resumed again, or None while one more try is worth it."""
    failures = [a.error or "" for a in rec.attempts if a.ended == "failed"]
    if len(failures) >= 2 and _shape(failures[-1]) == _shape(failures[-2]):
        return f"failed twice the same way ({failures[-1]})"
    if len(failures) >= record.FAILURES_TO_SET_ASIDE:
        return f"failed {len(failures)} times (last: {failures[-1]})"
    return None


def _shape(error: str) -> str:
    """An error with its numbers blanked: the same failure in another fold or epoch is the same way."""
    return re.sub(r"\d+(\.\d+)?", "N", error)
