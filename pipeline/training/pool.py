"""One pool of fold tasks across runs: drawn as workers free up, each result saved as it comes.

The runs being trained (`OpenRun`) hand their unfinished folds to the
executor as one stream of tasks, drawn lazily: each task leaves with the
night's deadline and the time an epoch of its run has taken so far, so a
fold that starts late knows whether another epoch still fits.  A fold's
result is saved by the driver the moment it arrives (`pipeline.store.fold_files`);
a run whose last fold arrives is finished at once (`on_complete`), so the
plan's next choice sees it.

Where runs span nights, a pool with a `more` callback opens the next run
when every task of the runs it has is drawn: the workers never idle while
the budget has room for another epoch.  At the deadline every fold stops at
an epoch's end (`FoldPaused`), and the next night continues the runs.  A run
that fits a night is a night of its own: `more` is asked only once a run
continued from an earlier night is among those training, and no more once a
run opened tonight has finished inside the budget.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.competition import dataset as data_mod
from pipeline.core import config as cfg
from pipeline.core.progress import Progress
from pipeline.store import fold_files, record
from pipeline.store.fold_files import FoldResult
from pipeline.store.record import Attempt, RunRecord
from pipeline.training import checkpoint
from pipeline.training import executor as executor_mod
from pipeline.training.fold import FoldOutcome, FoldPaused
from pipeline.training.interrupt import StopRequest
from pipeline.training.splits import FoldTask


def _new_attempt() -> Attempt:
    return Attempt(started_at=record.now(), ended="running")


@dataclass
class OpenRun:
    """A run being trained: its folder, its record, its fold tasks and the folds finished so far."""

    dir: Path
    record: RunRecord
    tasks: list[FoldTask]
    done: dict[int, FoldResult] = field(default_factory=dict)
    paused: dict[int, FoldPaused] = field(default_factory=dict)  # folds the budget stopped tonight
    label: str = ""  # shown before its fold lines (a sweep's variant name)
    continued: bool = False  # paused by an earlier night's budget, continued tonight
    attempt: Attempt = field(default_factory=_new_attempt)
    began: float = field(default_factory=time.perf_counter)  # when this command started training it

    @property
    def config(self) -> cfg.Config:
        return self.record.config

    @property
    def todo(self) -> list[FoldTask]:
        return [t for t in self.tasks if t.index not in self.done]

    @property
    def trained(self) -> bool:
        """Every fold finished."""
        return len(self.done) == len(self.tasks)

    def epoch_seconds(self) -> float | None:
        """Seconds an epoch of this run takes: tonight's paused folds' last epochs, else its finished folds' mean."""
        tonight = [p.epoch_seconds for p in self.paused.values() if p.epoch_seconds]
        if tonight:
            return max(tonight)
        epochs = sum(f.epochs_run for f in self.record.folds)
        return sum(f.seconds for f in self.record.folds) / epochs if epochs else None

    def spent(self) -> None:
        """This command's training time of the run, into its attempt and its record's stage seconds."""
        seconds = round(time.perf_counter() - self.began, 3)
        self.attempt.seconds = seconds
        self.record.stage_seconds["train"] = round(self.record.stage_seconds.get("train", 0) + seconds, 3)


def train_pool(
    opened: list[OpenRun],
    data: data_mod.Dataset,
    executor: executor_mod.Executor,
    stop: StopRequest,
    progress: Progress,
    on_complete: Callable[[OpenRun], None],
    budget: float = 0.0,
    more: Callable[[], OpenRun | None] | None = None,
) -> None:
    """Every unfinished fold of every run to the executor; each result saved, and recorded, as it arrives.

    With a `budget` (minutes), each fold that can resume inside itself stops at the epoch's end after which
    another epoch would end too late; it comes back as a `FoldPaused`.  `more` opens another run (into
    `opened`) when every task is drawn, a run continued from an earlier night is among them (runs of this
    recipe span nights), no run opened tonight has finished yet (else runs fit a night again) and the budget
    has room for an epoch; it returns None when it has no more.
    """
    progress.start_folds(sum(len(r.tasks) for r in opened), skipped=sum(len(r.done) for r in opened))
    deadline = time.time() + budget * 60 if budget > 0 else None
    by_id = {run.record.run_id: run for run in opened}

    def drawn() -> Iterator[FoldTask]:
        """The tasks as folds start, each with the deadline and the epoch time its run has shown so far.

        A run's first fold tonight trains at least one epoch: a budget shorter than an epoch still moves it on.
        """
        started: set[str] = set()
        k = 0
        while True:
            if k == len(opened):
                spanning = any(run.continued for run in opened)
                # a run opened tonight that finished inside the budget: runs fit a night again, no more follow
                fits = any(run.trained and not run.continued for run in opened)
                if more is None or deadline is None or not spanning or fits or not _room(opened, deadline):
                    return
                if more() is None:
                    return
            run = opened[k]
            k += 1
            run.began = time.perf_counter()
            by_id[run.record.run_id] = run
            for task in run.todo:
                if deadline is None or not task.checkpoint:  # a fold without a checkpoint cannot stop half-way
                    yield task
                    continue
                first = task.run_id not in started
                started.add(task.run_id)
                yield dataclasses.replace(
                    task, deadline=deadline, epoch_seconds=run.epoch_seconds(), start_anyway=first
                )

    def on_result(task: FoldTask, outcome: FoldOutcome) -> None:
        run = by_id[task.run_id]
        if isinstance(outcome, FoldPaused):
            run.paused[outcome.index] = outcome
            return
        result = outcome
        fold_files.save_fold(run.dir, result)
        # the fold's own files are the resume point now
        checkpoint.remove(fold_files.checkpoint_path(run.dir, result.index))
        run.done[result.index] = result
        run.record.folds = [run.done[k].record for k in sorted(run.done)]
        record.write(run.dir, run.record)
        progress.fold_done(result, label=run.label, run_dir=run.dir)
        if run.trained:
            run.spent()
            on_complete(run)

    try:
        executor.run(drawn(), data, on_result, stop, on_epoch=progress.epoch)
    finally:
        progress.close()
        for run in opened:
            if not run.trained:
                run.spent()


def _room(opened: list[OpenRun], deadline: float) -> bool:
    """Whether an epoch still fits before the deadline, by the longest epoch the pool's runs have shown."""
    known = [s for run in opened if (s := run.epoch_seconds()) is not None]
    return not known or time.time() + max(known) <= deadline
