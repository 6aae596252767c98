"""Folds side by side on this machine's cores: `executor.workers` processes, each training one fold at a time.

`WorkerExecutor` hands the fold tasks to a `concurrent.futures.ProcessPoolExecutor`
of spawned processes, each started with the competition's arrays (once per
worker, not per task) and its own TensorFlow thread pools.  A fold's
arithmetic depends only on its own thread count (`train.threads`), so folds
trained here give the same bytes as folds trained one after another in the
driver's process.

Everything else works as it does in the driver's process:

- epochs and the workers' log lines come back through one queue, so the
  progress display, MLflow and ``--log-file`` hear every fold's epochs;
- each fold keeps its per-epoch checkpoint (the workers share the driver's
  disk), so a stop or a killed worker costs at most the epoch in progress;
- a stop signal to the driver (SIGTERM, SIGINT, SIGHUP) makes every worker
  stop at its next batch; what finished is handed over first; a worker that
  does not stop within `STOP_GRACE` seconds is terminated, since its last
  epoch is saved anyway.  Workers ignore SIGINT and SIGHUP, which a terminal
  sends to the whole group: the driver hears them.  SIGTERM ends a worker at
  once (systemd sends it to the whole cgroup; the pool itself terminates
  workers with it); the driver, stopping too, counts the run interrupted;
- a fold that fails stops the others the same way, then the failure ends the
  run; a worker that dies (killed, out of memory) is one `ClusterError`
  line, and ``--resume`` finishes the run from the checkpoints.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import logging.handlers
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.competition.dataset import Dataset
from pipeline.core.errors import ClusterError
from pipeline.training.executor import OnEpoch, OnResult
from pipeline.training.fold import FoldOutcome
from pipeline.training.interrupt import StopRequest
from pipeline.training.splits import FoldTask

WAIT_SECONDS = 0.5  # how often the driver looks at the stop flag and the workers' epochs while folds train
STOP_GRACE = 3.0  # seconds workers get to stop at their next batch before they are terminated
log = logging.getLogger("digits")


@dataclass(frozen=True)
class _Stopped:
    """What a worker returns for a fold it stopped for a signal (its last finished epoch is saved)."""

    index: int


@dataclass(frozen=True)
class _Epoch:
    run_id: str
    index: int
    epoch: int
    epochs: int
    logs: dict


# ---- the worker's side -------------------------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _start_worker(data: Dataset, events: Any, halt: Any) -> None:
    """Each worker's start: keep the arrays and the queues; forward log lines; leave Ctrl-C to the driver."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for sig in (signal.SIGINT, signal.SIGHUP):  # the driver hears them too, and halts the workers in order
        signal.signal(sig, signal.SIG_IGN)
    threading.Thread(target=_end_with_the_driver, daemon=True).start()
    logger = logging.getLogger("digits")
    logger.handlers = [logging.handlers.QueueHandler(events)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    _worker.update(data=data, events=events, halt=halt)


def _end_with_the_driver() -> None:
    """A worker whose driver died (SIGKILL, out of memory) ends too, rather than wait for work for ever."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        os._exit(1)


def _train(task: FoldTask) -> FoldOutcome | _Stopped:
    """One fold in a worker: its epochs go to the driver as they end; a halt returns `_Stopped`."""
    from pipeline.training.fold import train_fold

    events, halt = _worker["events"], _worker["halt"]

    def on_epoch(index: int, epoch: int, epochs: int, logs: dict) -> None:
        events.put(_Epoch(task.run_id, index, epoch, epochs, {k: float(v) for k, v in logs.items()}))

    try:
        return train_fold(task, _worker["data"], on_epoch, halt.is_set)
    except KeyboardInterrupt:
        return _Stopped(task.index)


# ---- the driver's side -------------------------------------------------------------------------------------


class WorkerExecutor:
    """Train fold tasks in `workers` processes of this machine, handing each result over as it finishes."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(
        self,
        tasks: Iterable[FoldTask],
        data: Dataset,
        on_result: OnResult,
        stop: StopRequest,
        on_epoch: OnEpoch | None = None,
    ) -> None:
        queued: Iterator[FoldTask] = iter(tasks)
        first = next(queued, None)
        if first is None:
            return
        # spawn, not fork: the driver may hold threads (the progress display, MLflow), which fork does not copy
        context = multiprocessing.get_context("spawn")
        events, halt = context.Queue(), context.Event()
        by_key: dict[tuple[str, int], FoldTask] = {}
        pool = cf.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=_start_worker, initargs=(data, events, halt)
        )
        pending: dict[cf.Future, FoldTask] = {}
        cleanly = False

        def start(task: FoldTask | None) -> None:
            if task is not None:
                by_key[(task.run_id, task.index)] = task
                pending[pool.submit(_train, task)] = task

        try:
            start(first)
            while len(pending) < self.workers and (task := next(queued, None)) is not None:
                start(task)  # one fold per worker; the next is drawn when one ends, with what the driver learnt
            failure: BaseException | None = None
            while pending and failure is None and not stop.is_set():
                done, _ = cf.wait(pending, timeout=WAIT_SECONDS, return_when=cf.FIRST_COMPLETED)
                _drain(events, by_key, on_epoch)
                failure = _hand_over(done, pending, on_result, stop)
                if failure is None and not stop.is_set():
                    for _ in done:
                        start(next(queued, None))
            if pending:  # a stop or a failure: every worker stops at its next batch; what finishes is kept
                halt.set()
                done, _ = cf.wait(pending, timeout=STOP_GRACE)
                _drain(events, by_key, on_epoch)
                later = _hand_over(done, pending, on_result, None)
                failure = failure or later
            if failure is not None:
                raise failure
            stop.check()
            cleanly = True
        finally:
            _drain(events, by_key, on_epoch)
            if not cleanly:  # a stop or a failure: a worker still training (or stuck) is ended; its epochs are saved
                _end(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            events.close()

    def close(self) -> None:
        pass


def _hand_over(
    done: set[cf.Future], pending: dict[cf.Future, FoldTask], on_result: OnResult, stop: StopRequest | None
) -> BaseException | None:
    """Every finished fold in `done` to `on_result`; the first failure among them is returned, not raised.

    A worker that died while the driver is stopping (a SIGTERM to the whole group) is part of the stop, not a
    failure; `stop` is None once the driver has halted them all.
    """
    failure: BaseException | None = None
    for future in done:
        task = pending.pop(future)
        try:
            outcome = future.result()
        except cf.process.BrokenProcessPool:
            if _stopping(stop):
                continue
            failure = failure or ClusterError(
                f"a worker process died (killed, or out of memory?) while training fold {task.index + 1} of run "
                f"{task.run_id}; `digits train --resume {task.run_id}` (or `digits run --resume`) finishes the "
                "run from its last saved epochs"
            )
            continue
        except Exception as e:  # a fold's own failure (a DigitsError naming it): the others are handed over
            failure = failure or e
            continue
        if isinstance(outcome, _Stopped):  # halted by the driver
            continue
        on_result(task, outcome)
    return failure


def _stopping(stop: StopRequest | None) -> bool:
    """Whether the driver is on its way out: halted, or a stop signal arrived (its handler may run a moment later,
    since the signal that ended the worker reached the whole group)."""
    if stop is None or stop.is_set():
        return True
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.05)
    return stop.is_set()


def _drain(events: Any, by_key: dict[tuple[str, int], FoldTask], on_epoch: OnEpoch | None) -> None:
    """The workers' epochs to `on_epoch`, their log lines to the driver's logger."""
    while True:
        try:
            item = events.get_nowait()
        except (queue.Empty, OSError, ValueError):  # closed, or nothing more
            return
        if isinstance(item, logging.LogRecord):
            log.handle(item)
        elif isinstance(item, _Epoch) and on_epoch is not None:
            task = by_key.get((item.run_id, item.index))
            if task is not None:
                on_epoch(task, item.epoch, item.epochs, item.logs)


def _end(pool: cf.ProcessPoolExecutor) -> None:
    """End every worker: SIGTERM, then SIGKILL for one still there after a moment.

    Python 3.14 has ``terminate_workers``; 3.11 does not, hence the pool's own list of processes.  The
    pool's shutdown joins its workers, and one left blocked (writing a result nobody reads, seen after a
    sibling died) would hold the command for ever.
    """
    processes = list(getattr(pool, "_processes", {}).values())
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(2)
            if process.is_alive():
                process.kill()
