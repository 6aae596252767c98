"""Training runs, new or resumed, one or several at once (a sweep), on an executor.

    data -> splits -> executor(train_fold) -> fold files -> soft vote -> run record

`train` trains one run; `train_runs` trains several whose folds go to the
executor (`create` picks it from the config) as one pool.  The output directory's lock is held throughout.  A
signal stops the training at the next batch: finished folds stay saved, the
record says "interrupted" and the exit code is 4.  Any other failure marks
the record "failed" with the reason, so no run stays "running" for ever.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.competition import dataset as data_mod
from pipeline.core import atomic_files, predictions
from pipeline.core import config as cfg
from pipeline.core.errors import BadInputError, DigitsError, InterruptedRun
from pipeline.core.progress import Progress
from pipeline.core.text import one_line
from pipeline.store import fold_files, record, run_folders
from pipeline.store.fold_files import FoldResult
from pipeline.store.record import RunRecord
from pipeline.training import checkpoint, hardware, plan, splits
from pipeline.training import executor as executor_mod
from pipeline.training.interrupt import StopRequest, stop_on_signals
from pipeline.training.splits import FoldTask


@dataclass
class OpenRun:
    """A run being trained: its folder, its record, its fold tasks and the folds finished so far."""

    dir: Path
    record: RunRecord
    tasks: list[FoldTask]
    done: dict[int, FoldResult] = field(default_factory=dict)
    label: str = ""  # shown before its fold lines (a sweep's variant name)

    @property
    def config(self) -> cfg.Config:
        return self.record.config

    @property
    def todo(self) -> list[FoldTask]:
        return [t for t in self.tasks if t.index not in self.done]


def draw_seed() -> int:
    """A fresh seed for a run that was given none: each night trains new models."""
    return random.SystemRandom().randrange(2**31)


def train(
    config: cfg.Config, progress: Progress | None = None, resume: str | bool | None = None, hold_lock: bool = True
) -> Path:
    """Train every fold of a new run (or finish an interrupted one); returns the run folder.

    `resume`: a run id/path to finish, or True for "the newest unfinished run
    with the same config and data, else a new run".
    """
    return train_runs([config], progress, resume=resume, hold_lock=hold_lock)[0]


def train_runs(
    configs: Sequence[cfg.Config],
    progress: Progress | None = None,
    resume: str | bool | None = None,
    hold_lock: bool = True,
    labels: Sequence[str] = (),
    sweep: str | None = None,
) -> list[Path]:
    """Train several runs on the same data; all their folds go to one executor as one pool of tasks."""
    progress = progress or Progress()
    first = configs[0]
    if any(c.data.dir != first.data.dir for c in configs):
        raise BadInputError("option data.dir: every run trained together must use the same data")
    # a run is locked through the folder it lives in, also when --resume names it by a path elsewhere
    lock_dir = run_folders.home(first.output_dir, resume) if isinstance(resume, str) else first.output_dir
    lock = run_folders.Lock(lock_dir) if hold_lock else contextlib.nullcontext()
    with lock:
        t = time.perf_counter()
        data = data_mod.load(first.data.dir, max(c.train.folds for c in configs), log=progress.warn)
        load_seconds = round(time.perf_counter() - t, 3)
        progress.info(f"data: {len(data.y):,} training rows, {len(data.x_test):,} test rows from {first.data.dir}")
        opened: list[OpenRun] = []
        with stop_on_signals() as stop:
            executor = create(first.executor)  # a cluster that cannot be reached costs no run folder
            try:
                with _recorded(opened):
                    for i, config in enumerate(configs):
                        label = labels[i] if i < len(labels) else ""
                        run = open_run(config, data, resume, progress, label=label, sweep=sweep)
                        run.record.stage_seconds["load"] = load_seconds
                        opened.append(run)
                    _train_pool(opened, data, executor, stop, progress)
                    for run in opened:
                        finish(run, data, progress)
            finally:
                executor.close()
        return [run.dir for run in opened]


def create(config: cfg.ExecutorConfig) -> executor_mod.Executor:
    """The executor the config names; Ray is imported only when asked for."""
    if config.kind == "ray":
        from pipeline.training.ray_executor import RayExecutor

        return RayExecutor(config)
    return executor_mod.LocalExecutor()


def _train_pool(
    opened: list[OpenRun],
    data: data_mod.Dataset,
    executor: executor_mod.Executor,
    stop: StopRequest,
    progress: Progress,
) -> None:
    """Every unfinished fold of every run to the executor; each result saved, and recorded, as it arrives."""
    todo = [t for run in opened for t in run.todo]
    progress.start_folds(sum(len(r.tasks) for r in opened), skipped=sum(len(r.done) for r in opened))
    by_id = {run.record.run_id: run for run in opened}

    def on_result(task: FoldTask, result: FoldResult) -> None:
        run = by_id[task.run_id]
        fold_files.save_fold(run.dir, result)
        checkpoint.remove(
            fold_files.checkpoint_path(run.dir, result.index)
        )  # the fold's own files are the resume point now
        run.done[result.index] = result
        run.record.folds = [run.done[k].record for k in sorted(run.done)]
        record.write(run.dir, run.record)
        progress.fold_done(result, label=run.label, run_dir=run.dir)

    t = time.perf_counter()
    try:
        executor.run(todo, data, on_result, stop, on_epoch=progress.epoch)
    finally:
        progress.close()
        spent = time.perf_counter() - t
        for run in opened:  # a pool's time, shared by the runs' numbers of folds trained
            share = spent * sum(task.run_id == run.record.run_id for task in todo) / max(1, len(todo))
            run.record.stage_seconds["train"] = round(run.record.stage_seconds.get("train", 0) + share, 3)


@contextlib.contextmanager
def _recorded(opened: list[OpenRun]) -> Iterator[None]:
    """Whatever ends the block early, the runs' records say how they ended."""
    try:
        yield
    except KeyboardInterrupt:
        unfinished = [run for run in opened if run.record.status != "complete"]
        for run in unfinished:
            _close(run, "interrupted", None)
        if not unfinished:
            raise InterruptedRun("interrupted after training; the runs are saved") from None
        first = unfinished[0]
        done = sum(len(r.done) for r in unfinished)
        total = sum(len(r.tasks) for r in unfinished)
        resume = (
            f"digits train --resume {first.record.run_id}" if len(unfinished) == 1 else "digits sweep --resume FILE"
        )
        raise InterruptedRun(
            f"interrupted after {done} of {total} folds; run {', '.join(r.record.run_id for r in unfinished)} is "
            f"saved: `{resume}` (or `digits run --resume`) trains only the rest"
        ) from None
    except BaseException as e:
        for run in opened:
            if run.record.status != "complete":
                _close(
                    run, "failed", one_line(e) if isinstance(e, DigitsError) else f"{type(e).__name__}: {one_line(e)}"
                )
        raise


def _close(run: OpenRun, status: record.Status, error: str | None) -> None:
    run.record.status = status
    run.record.error = error
    run.record.finished_at = record.now()
    with contextlib.suppress(DigitsError):  # the original failure is the one to report
        record.write(run.dir, run.record)


def open_run(
    config: cfg.Config,
    data: data_mod.Dataset,
    resume: str | bool | None,
    progress: Progress,
    label: str = "",
    sweep: str | None = None,
) -> OpenRun:
    """A new run folder with its record, or an unfinished one to resume, with its tasks and finished folds."""
    run_dir = _resume_target(config, data, resume, progress)
    if run_dir is None:
        settled, choice = settle(config)
        seeded = settled if settled.train.seed is not None else _with_seed(settled, draw_seed())
        # recorded absolute: predict and submit read it from any folder later
        seeded = dataclasses.replace(
            seeded, data=dataclasses.replace(seeded.data, dir=os.path.abspath(seeded.data.dir))
        )
        run_id, run_dir = run_folders.new_run(config.output_dir)
        rec = RunRecord(
            run_id=run_id,
            status="running",
            config=seeded,
            started_at=record.now(),
            code_version=record.code_version(),
            data={name: record.DataFile(**entry) for name, entry in data.files.items()},
            versions=record.library_versions(),
            sweep=sweep,
            variant=label or None,
            plan=choice,
        )
        record.write(run_dir, rec)
        atomic_files.write_text(
            run_dir / "config.toml", "# the config this run used; reuse it with --config\n" + cfg.to_toml(seeded)
        )
        progress.info(f"run {run_id}: {describe(seeded)}" + (f" ({label})" if label else ""))
        if choice.rule != "named":
            progress.info(f"recipe {choice.recipe}: {choice.reason}")
    else:
        rec = record.read(run_dir)
        removed = fold_files.remove_leftovers(run_dir)
        if removed:
            progress.warn(f"removed {len(removed)} temporary file(s) a killed run left in {run_dir}")
        rec.status, rec.error, rec.finished_at = "running", None, None
        record.write(run_dir, rec)
    tasks = splits.make_tasks(rec.config, data.y, rec.run_id)
    if config.executor.kind == "local":  # a fold in this process can resume inside itself; a Ray worker's cannot
        tasks = [dataclasses.replace(t, checkpoint=str(fold_files.checkpoint_path(run_dir, t.index))) for t in tasks]
    run = OpenRun(run_dir, rec, tasks, label=label)
    progress.run_started(run_dir, rec)
    for task in run.tasks:
        loaded = fold_files.load_fold(run_dir, task.index, task.val_idx, len(data.x_test), warn=progress.warn)
        if loaded is not None:
            run.done[task.index] = loaded
    return run


def settle(config: cfg.Config) -> tuple[cfg.Config, record.PlanChoice]:
    """The config a new run trains: the recipe (named, or the plan's choice) and its defaults, the precision."""
    if config.model.kind is None:
        chosen = plan.tonight(config.plan, config.output_dir)
        choice = record.PlanChoice(chosen.recipe, chosen.rule, chosen.reason)
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, kind=chosen.recipe))
    else:
        choice = record.PlanChoice(config.model.kind, "named", "named by --model or the config")
    config = cfg.validate(cfg.resolve(config))
    precision = hardware.precision_for(cfg.resolved(config.model.kind), config.train.precision)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, precision=precision)), choice


def describe(config: cfg.Config) -> str:
    """'5 folds x 40 epochs, MLP 1024-512, float32, seed 123'."""
    m = config.model
    shape = (
        f"MLP {'-'.join(map(str, m.hidden or ()))}"
        if m.kind == "mlp"
        else f"{(m.kind or '').upper()} {'-'.join(map(str, m.filters or ()))}"
        + (f" + {'-'.join(map(str, m.hidden))}" if m.hidden else "")
    )
    return (
        f"{config.train.folds} folds x {config.train.epochs} epochs, {shape}, {config.train.precision}, "
        f"seed {config.train.seed}"
    )


def _with_seed(config: cfg.Config, seed: int) -> cfg.Config:
    return dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))


def _as_recorded(config: cfg.Config, rec: RunRecord) -> cfg.Config:
    """`config` with what a run settles for itself (seed, recipe, precision) taken from `rec` where left open."""
    if config.train.seed is None:
        config = _with_seed(config, rec.config.train.seed or 0)
    if config.model.kind is None:
        config = cfg.resolve(
            dataclasses.replace(config, model=dataclasses.replace(config.model, kind=rec.config.model.kind))
        )
    if config.train.precision == "auto":
        config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, precision=rec.config.train.precision)
        )
    return config


def _same_inputs(rec: RunRecord, config: cfg.Config, data: data_mod.Dataset) -> bool:
    """Would this config on this data produce this run?  An unset seed, recipe or precision matches any."""
    wanted = _as_recorded(config, rec)
    same_data = {k: (v.sha256, v.rows) for k, v in rec.data.items()} == {
        k: (v["sha256"], v["rows"]) for k, v in data.files.items()
    }
    return same_data and cfg.result_part(rec.config) == cfg.result_part(wanted)


def _resume_target(
    config: cfg.Config, data: data_mod.Dataset, resume: str | bool | None, progress: Progress
) -> Path | None:
    if not resume:
        return None
    if resume is True:
        for run_dir, rec in run_folders.newest_first(config.output_dir):
            if rec.status in record.UNFINISHED and _same_inputs(rec, config, data):
                return run_dir
        progress.info("no unfinished run with this config and data; starting a new run")
        return None
    run_dir = run_folders.resolve(config.output_dir, str(resume))
    rec = record.read(run_dir)
    if rec.status == "complete":
        raise BadInputError(f"run {rec.run_id} is already complete; nothing to resume")
    if not _same_inputs(rec, config, data):
        wanted = _as_recorded(config, rec)
        changed = ", ".join(cfg.diff(cfg.result_part(rec.config), cfg.result_part(wanted))) or "the data files"
        raise BadInputError(
            f"run {rec.run_id} used a different config or data ({changed}); resume it with its own config: "
            f"--config {run_dir / 'config.toml'}"
        )
    return run_dir


def finish(run: OpenRun, data: data_mod.Dataset, progress: Progress) -> None:
    """Soft-vote the folds; save out-of-fold and test probabilities; complete the record."""
    t = time.perf_counter()
    results = [run.done[k] for k in sorted(run.done)]
    oof = predictions.out_of_fold(len(data.y), [(r.val_idx, r.val_proba) for r in results])
    pred = oof.argmax(axis=1)
    wrong = np.flatnonzero(pred != data.y)
    atomic_files.write_npz(run.dir / "oof.npz", labels=data.y, proba=oof)
    atomic_files.write_npz(
        run.dir / "misclassified.npz", images=data.x[wrong], true=data.y[wrong], pred=pred[wrong], index=wrong
    )
    atomic_files.write_npy(run.dir / "test_proba.npy", predictions.soft_vote([r.test_proba for r in results]))
    summary = predictions.summarise(data.y, oof)
    rec = run.record
    rec.stage_seconds["ensemble"] = round(time.perf_counter() - t, 3)
    rec.folds = [r.record for r in results]
    rec.fold_accuracy_mean, rec.fold_accuracy_std = record.fold_summary(rec.folds)
    rec.oof_accuracy = summary["oof_accuracy"]
    rec.oof_rows = summary["oof_rows"]
    rec.per_class_accuracy = summary["per_class_accuracy"]
    rec.confusion_matrix = summary["confusion_matrix"]
    rec.status, rec.finished_at = "complete", record.now()
    rec.seconds = round(sum(rec.stage_seconds.values()), 3)
    record.write(run.dir, rec)
    progress.info(
        f"run {rec.run_id}{f' ({run.label})' if run.label else ''}: out-of-fold accuracy {rec.oof_accuracy:.4%} "
        f"(folds {rec.fold_accuracy_mean:.4%} ± {rec.fold_accuracy_std:.4%})"
    )
    progress.run_finished(run.dir, rec)
