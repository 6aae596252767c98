"""Where fold tasks run: the `Executor` protocol, `OnResult`, and `LocalExecutor` (in this process).

The Ray cluster's executor (`pipeline.training.ray_executor`) imports its
types from here; `pipeline.training.trainer.create` picks one of the two, so
this module never imports the Ray one and there is no import circle.

An executor knows nothing of what a fold does.  It trains each task and
hands every result to ``on_result(task, result)`` as soon as it exists, in
whatever order tasks finish, so the driver saves each fold at once and
resume works the same everywhere.  A sweep is just more tasks in the pool.
``on_epoch(task, epoch, epochs, logs)`` hears each epoch where the fold
trains in this process; a remote fold's epochs come back in its result's
history instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from pipeline.competition.dataset import Dataset
from pipeline.core import stop_signals
from pipeline.training.fold import EpochCallback, FoldOutcome
from pipeline.training.interrupt import StopRequest
from pipeline.training.splits import FoldTask

OnResult = Callable[[FoldTask, FoldOutcome], None]  # a finished fold, or one the night's budget paused
OnEpoch = Callable[[FoldTask, int, int, dict], None]  # (task, epoch, epochs, logs): the task names run and fold


class Executor(Protocol):
    def run(
        self,
        tasks: Iterable[FoldTask],
        data: Dataset,
        on_result: OnResult,
        stop: StopRequest,
        on_epoch: OnEpoch | None = None,
    ) -> None:
        """Train every task; raise KeyboardInterrupt once `stop` is set, after handing over what finished.

        `tasks` is drawn from as folds start (a local executor draws one when a process is free), so a task
        can carry what the driver learnt from the folds before it (the time an epoch takes).
        """

    def close(self) -> None:
        """Release what the executor started (a local Ray, say)."""


class LocalExecutor:
    """One task after another in this process: both cores go to each fold's matrix products."""

    def run(
        self,
        tasks: Iterable[FoldTask],
        data: Dataset,
        on_result: OnResult,
        stop: StopRequest,
        on_epoch: OnEpoch | None = None,
    ) -> None:
        from pipeline.training.fold import train_fold

        for task in tasks:
            stop.check()
            try:
                result = train_fold(task, data, _for_task(task, on_epoch), stop.is_set)
            except KeyboardInterrupt:  # stopped for a signal: the job is on its way out
                stop_signals.exiting()
                raise
            on_result(task, result)

    def close(self) -> None:
        pass


def _for_task(task: FoldTask, on_epoch: OnEpoch | None) -> EpochCallback | None:
    """`train_fold`'s per-epoch callback (it knows the fold's index only), calling `on_epoch` with the task."""
    if on_epoch is None:
        return None
    report = on_epoch

    def callback(fold: int, epoch: int, epochs: int, logs: dict) -> None:
        report(task, epoch, epochs, logs)

    return callback
