"""Where fold tasks run: in this process (`LocalExecutor`), or on a Ray cluster (`pipeline.executor_ray`).

An executor knows nothing of what a fold does.  It trains each task and
hands every result to ``on_result(task, result)`` as soon as it exists, in
whatever order tasks finish, so the driver saves each fold at once and
resume works the same everywhere.  A sweep is just more tasks in the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pipeline.competition.dataset import Dataset
from pipeline.core.config import ExecutorConfig
from pipeline.folds import FoldTask
from pipeline.interrupt import StopRequest
from pipeline.train import EpochCallback, FoldResult

OnResult = Callable[[FoldTask, FoldResult], None]


class Executor(Protocol):
    def run(
        self,
        tasks: Sequence[FoldTask],
        data: Dataset,
        on_result: OnResult,
        stop: StopRequest,
        on_epoch: EpochCallback | None = None,
    ) -> None:
        """Train every task; raise KeyboardInterrupt once `stop` is set, after handing over what finished."""

    def close(self) -> None:
        """Release what the executor started (a local Ray, say)."""


class LocalExecutor:
    """One task after another in this process: both cores go to each fold's matrix products."""

    def run(
        self,
        tasks: Sequence[FoldTask],
        data: Dataset,
        on_result: OnResult,
        stop: StopRequest,
        on_epoch: EpochCallback | None = None,
    ) -> None:
        from pipeline.train import train_fold

        for task in tasks:
            stop.check()
            on_result(task, train_fold(task, data, on_epoch, stop.is_set))

    def close(self) -> None:
        pass


def create(config: ExecutorConfig) -> Executor:
    """The executor the config names; Ray is imported only when asked for."""
    if config.kind == "ray":
        from pipeline.executor_ray import RayExecutor

        return RayExecutor(config)
    return LocalExecutor()
