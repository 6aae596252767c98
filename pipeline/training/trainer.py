"""Training runs, new or resumed, one or several at once (a sweep), on an executor.

    data -> splits -> executor(train_fold) -> fold files -> soft vote -> run record

`train` trains one run; `train_runs` trains several whose folds go to the
executor (`create` picks it from the config: this process, worker processes
on this machine's cores, or Ray) as one pool.  The output directory's lock is
held throughout.  A signal stops the training at the next batch: finished
folds stay saved, the record says "interrupted" and the exit code is 4.  The
night's budget (`plan.budget`) stops it at an epoch's end: the record says
"paused", and the next night continues it.  Any other failure marks the
record "failed" with the reason, so no run stays "running" for ever; a run
that keeps failing is set aside (`pipeline.training.resume`).  Every command
that trains a run adds an `Attempt` to its record: its progress across nights.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from pipeline.competition import dataset as data_mod
from pipeline.core import atomic_files, predictions
from pipeline.core import config as cfg
from pipeline.core.errors import BadInputError, DigitsError, InterruptedRun
from pipeline.core.progress import Progress
from pipeline.core.text import one_line
from pipeline.store import fold_files, record, run_folders
from pipeline.store.record import RunRecord
from pipeline.training import executor as executor_mod
from pipeline.training import hardware, plan, splits
from pipeline.training import resume as resuming
from pipeline.training.interrupt import stop_on_signals
from pipeline.training.pool import OpenRun, train_pool


def draw_seed() -> int:
    """A fresh seed for a run that was given none: each night trains new models."""
    return random.SystemRandom().randrange(2**31)


def train(
    config: cfg.Config,
    progress: Progress | None = None,
    resume: str | bool | None = None,
    hold_lock: bool = True,
) -> Path:
    """Train every fold of a new run (or finish an unfinished one); returns the run folder.

    `resume`: a run id/path to finish, or True for "the newest unfinished run
    with the same config and data, else a new run".  The record's status says
    how it ended: "complete", or "paused" when ``plan.budget`` ran out first.
    """
    return train_runs([config], progress, resume=resume, hold_lock=hold_lock)[0]


def train_night(
    config: cfg.Config, progress: Progress | None = None, resume: bool = False, hold_lock: bool = True
) -> list[Path]:
    """A night's training: the runs the budget paused (with `resume`: every unfinished run) with tonight's
    config and data, else a new run of the plan's choosing.  Where runs span nights (one was continued),
    new runs follow while ``plan.budget`` lasts, in the same pool so that no worker idles; a run that fits
    a night is the night's only one.  Returns the runs it trained, oldest first; each record's status says
    whether it is complete or paused.
    """
    progress = progress or Progress()
    budget = config.plan.budget
    with run_folders.Lock(config.output_dir) if hold_lock else contextlib.nullcontext():
        data, load_seconds = _load(config, progress)
        opened: list[OpenRun] = []
        with stop_on_signals() as stop:
            # with a budget runs follow runs, so every core has folds to train; without, one run's folds
            executor = create(config.executor, config.train.threads, None if budget > 0 else config.train.folds)
            try:
                with _recorded(opened):
                    opened.append(open_run(config, data, resume or None, progress, continue_paused=True))
                    while (also := _continued(config, data, opened, progress)) is not None:
                        opened.append(also)  # a second run the budget paused mid-pool last night
                    for run in opened:
                        run.record.stage_seconds["load"] = load_seconds

                    def more() -> OpenRun | None:
                        opened.append(open_run(config, data, None, progress))
                        return opened[-1]

                    def done(run: OpenRun) -> None:
                        finish(run, data, progress)

                    train_pool(opened, data, executor, stop, progress, done, budget, more if budget > 0 else None)
                    for run in opened:
                        if not run.trained:
                            pause(run, progress)
            finally:
                executor.close()
        return [run.dir for run in opened]


def _continued(config: cfg.Config, data: data_mod.Dataset, opened: list[OpenRun], progress: Progress) -> OpenRun | None:
    """Another paused run with tonight's config and data, besides those already opened."""
    taken = {run.dir.resolve() for run in opened}
    found = resuming.target(config, data, None, progress, continue_paused=True, skip=taken)
    return None if found is None else open_run(config, data, str(found), progress)


def _load(config: cfg.Config, progress: Progress, folds: int | None = None) -> tuple[data_mod.Dataset, float]:
    t = time.perf_counter()
    data = data_mod.load(config.data.dir, folds or config.train.folds, log=progress.warn)
    progress.info(f"data: {len(data.y):,} training rows, {len(data.x_test):,} test rows from {config.data.dir}")
    return data, round(time.perf_counter() - t, 3)


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
        data, load_seconds = _load(first, progress, max(c.train.folds for c in configs))
        opened: list[OpenRun] = []
        with stop_on_signals() as stop:
            threads = max(c.train.threads for c in configs)
            folds = sum(c.train.folds for c in configs)
            executor = create(first.executor, threads, folds)  # a cluster that cannot be reached costs no run folder
            try:
                with _recorded(opened):
                    for i, config in enumerate(configs):
                        label = labels[i] if i < len(labels) else ""
                        opened.append(open_run(config, data, resume, progress, label, sweep))
                        opened[-1].record.stage_seconds["load"] = load_seconds

                    def done(run: OpenRun) -> None:
                        finish(run, data, progress)

                    train_pool(opened, data, executor, stop, progress, done, first.plan.budget)
                    for run in opened:
                        if not run.trained:
                            pause(run, progress)
            finally:
                executor.close()
        return [run.dir for run in opened]


def create(config: cfg.ExecutorConfig, threads: int = 1, folds: int | None = 1) -> executor_mod.Executor:
    """The executor the config names; Ray is imported only when asked for.

    Locally, `workers` processes train folds side by side (auto: the cores this process may use // `threads`,
    at most one per fold of the `folds` to train, None: no bound); with one worker the folds train in this
    process, one after another.
    """
    if config.kind == "ray":
        from pipeline.training.ray_executor import RayExecutor

        return RayExecutor(config)
    workers = hardware.cores() // threads if config.workers == "auto" else config.workers
    workers = max(1, min(workers, folds or workers))
    if workers == 1:
        return executor_mod.LocalExecutor()
    from pipeline.training.workers import WorkerExecutor

    return WorkerExecutor(workers)


@contextlib.contextmanager
def _recorded(opened: list[OpenRun]) -> Iterator[None]:
    """Whatever ends the block early, the runs' records say how they ended."""
    try:
        yield
    except KeyboardInterrupt:
        unfinished = [run for run in opened if run.record.status not in ("complete", "paused")]
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
        error = one_line(e) if isinstance(e, DigitsError) else f"{type(e).__name__}: {one_line(e)}"
        set_aside = []
        for run in opened:
            if run.record.status not in ("complete", "paused"):
                _close(run, "failed", error)
                reason = resuming.set_aside_reason(run.record)
                if reason is not None:
                    set_aside.append(run.record.run_id)
                    _close(run, "set-aside", f"{reason}; set aside, kept for inspection", attempt=False)
        if set_aside and isinstance(e, DigitsError):  # said once, on the night it happens (and so notified)
            told = copy.copy(e)
            told.args = (
                f"{one_line(e)}; run {', '.join(set_aside)} failed this way before: set aside (kept for "
                "inspection), the next night starts a new run",
            )
            raise told from None
        raise


def _close(run: OpenRun, status: record.Status, error: str | None, attempt: bool = True) -> None:
    run.record.status = status
    run.record.error = error
    run.record.finished_at = record.now()
    if attempt:
        _end_attempt(run, status, error)
    with contextlib.suppress(DigitsError):  # the original failure is the one to report
        record.write(run.dir, run.record)


def _end_attempt(run: OpenRun, ended: str, error: str | None = None) -> None:
    """This command's part in the run, added to the record's attempts."""
    run.attempt.ended, run.attempt.error = ended, error
    run.attempt.folds_done = len(run.done)
    run.attempt.epochs = {k: p.epoch for k, p in sorted(run.paused.items())}
    run.record.attempts.append(run.attempt)


def pause(run: OpenRun, progress: Progress) -> None:
    """The budget ran out before the run's end: say where it stands; the next night continues it."""
    _close(run, record.PAUSED, None)
    budget = run.config.plan.budget
    progress.info(
        f"run {run.record.run_id}{f' ({run.label})' if run.label else ''}: paused by plan.budget ({budget:g} min) at "
        f"an epoch's end; the next `digits run` continues it ({record.standing(run.record)})"
    )


def open_run(
    config: cfg.Config,
    data: data_mod.Dataset,
    resume_from: str | bool | None,
    progress: Progress,
    label: str = "",
    sweep: str | None = None,
    continue_paused: bool = False,
) -> OpenRun:
    """A new run folder with its record, or an unfinished one to resume, with its tasks and finished folds."""
    run_dir = resuming.target(config, data, resume_from, progress, continue_paused)
    continued = False
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
        resuming.found_killed(rec)
        continued = rec.status == record.PAUSED
        if continued:
            progress.info(f"run {rec.run_id}: continuing ({record.standing(rec)})")
        rec.status, rec.error, rec.finished_at = "running", None, None
        record.write(run_dir, rec)
    tasks = splits.make_tasks(rec.config, data.y, rec.run_id)
    if config.executor.kind == "local":  # a fold in this process can resume inside itself; a Ray worker's cannot
        tasks = [dataclasses.replace(t, checkpoint=str(fold_files.checkpoint_path(run_dir, t.index))) for t in tasks]
    run = OpenRun(run_dir, rec, tasks, label=label, continued=continued)
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
    _end_attempt(run, "complete")
    record.write(run.dir, rec)
    progress.info(
        f"run {rec.run_id}{f' ({run.label})' if run.label else ''}: out-of-fold accuracy {rec.oof_accuracy:.4%} "
        f"(folds {rec.fold_accuracy_mean:.4%} ± {rec.fold_accuracy_std:.4%})"
    )
    progress.run_finished(run.dir, rec)
