"""Folds on a Ray cluster: one Ray task per fold, the arrays in the object store once.

Following Ray's own patterns rather than scheduling anything by hand: the
competition's arrays go into the object store once (``ray.put``), each fold
is a task with its CPU/GPU request, Ray retries a task whose worker died
(``max_retries``), and the driver waits for whichever fold finishes first
(``ray.wait``) and hands it to ``on_result``, which writes its files: workers
never touch the driver's disk, so resume works exactly as it does locally.

Each task runs in a fresh worker process (``max_calls=1``): TensorFlow's
thread count, which the arithmetic depends on, is fixed per process, and a
fold's memory goes back to the machine when it ends.  Our code travels with
the tasks (``runtime_env`` ``py_modules``), so every worker runs the driver's
version; TensorFlow and the other libraries must be installed on the workers.

Ray is an optional extra (``pip install -e '.[ray]'``) and imported only here.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.competition.dataset import Dataset
from pipeline.core import ray_address
from pipeline.core.config import ExecutorConfig
from pipeline.core.errors import ClusterError, DigitsError, UsageError
from pipeline.core.text import one_line
from pipeline.training.executor import OnResult
from pipeline.training.fold import EpochCallback, FoldResult
from pipeline.training.interrupt import StopRequest
from pipeline.training.splits import FoldTask

WAIT_SECONDS = 0.5  # how often the driver looks at the stop flag while folds train


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "--executor ray needs Ray, which is not installed: pip install -e '.[ray]' (or pip install 'ray[client]')"
        ) from None
    return ray


def _train_fold_task(task: FoldTask, data: Dataset) -> FoldResult:
    """The body of a fold's Ray task (a module-level function, so it pickles by reference)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pipeline.training.fold import train_fold

    return train_fold(task, data)


def probe(address: str, timeout: float) -> None:
    """Fail fast, with one line, when a cluster address does not answer at all.

    ``ray.init`` keeps retrying an unreachable head for a long time; a plain
    TCP connect with a timeout tells a dead address from a slow cluster.
    """
    if address == "auto":
        return  # Ray looks for a local head itself and fails at once without one
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    host, port = parts.hostname, parts.port or (10001 if parts.scheme == "ray" else 6379)
    if not host:
        raise ClusterError(f"option --ray-address: {address!r} is not an address (auto, ray://host:10001, host:6379)")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise ClusterError(
            f"cannot reach the Ray cluster at {address} ({host}:{port}: {reason} within {timeout:g}s)"
        ) from None


class RayExecutor:
    """Train fold tasks as Ray tasks: on a local Ray started here, or on the cluster at ``executor.address``."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config
        self.ray = _import_ray()
        self.address = config.address or os.environ.get("RAY_ADDRESS") or None
        problem = ray_address.problem(self.address) if self.address else None
        if problem is not None:  # --ray-address is checked with the config; Ray's own variable here
            raise UsageError(f"environment variable RAY_ADDRESS: {problem}")
        self.started_here = False
        if not self.ray.is_initialized():
            self._connect()

    def _connect(self) -> None:
        import pipeline

        if self.address:
            probe(self.address, self.config.connect_timeout)
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            self.ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,  # workers' TensorFlow chatter stays out of the cron log; errors come back as data
                configure_logging=False,
                runtime_env={"py_modules": [str(Path(pipeline.__file__).parent)]},
            )
        except Exception as e:  # ConnectionError, RuntimeError, ValueError, grpc errors... one line for all
            where = f"at {self.address}" if self.address else "locally"
            hint = ""
            if self.address and isinstance(e, ConnectionError) and os.environ.get("RAY_AUTH_MODE") != "token":
                hint = (
                    "; if the cluster uses token authentication (the default of `ray start`), set "
                    "RAY_AUTH_MODE=token and give the token (RAY_AUTH_TOKEN, or ~/.ray/auth_token)"
                )
            raise ClusterError(f"cannot start or reach Ray {where}: {type(e).__name__}: {one_line(e)}{hint}") from None
        finally:
            if signal.getsignal(signal.SIGTERM) is not sigterm:
                signal.signal(signal.SIGTERM, sigterm)  # ray.init replaces the driver's handler; ours stops cleanly
        self.started_here = True

    def run(
        self,
        tasks: Sequence[FoldTask],
        data: Dataset,
        on_result: OnResult,
        stop: StopRequest,
        on_epoch: EpochCallback | None = None,
    ) -> None:
        """Submit every task at once; hand over results as they finish; cancel the rest on a stop or a failure."""
        if not tasks:
            return
        ray = self.ray
        remote = ray.remote(
            num_cpus=self.config.cpus_per_fold,
            num_gpus=self.config.gpus_per_fold,
            max_retries=self.config.max_retries,
            retry_exceptions=False,  # a fold that raises would raise again: only a dead worker is retried
            max_calls=1,
        )(_train_fold_task)
        data_ref = ray.put(data)  # once, not once per task
        pending = {remote.remote(task, data_ref): task for task in tasks}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                stop.check()
                for ref in ready:
                    task = pending.pop(ref)
                    on_result(task, self._result(ref, task))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def _result(self, ref: Any, task: FoldTask) -> FoldResult:
        ray = self.ray
        try:
            result: FoldResult = ray.get(ref)
            return result
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, DigitsError):
                raise cause from None  # already one line naming the fold, with its own exit code
            shown = f"{type(cause).__name__}: {one_line(cause)}" if cause is not None else one_line(e)
            raise ClusterError(f"fold {task.index} of run {task.run_id} failed on Ray: {shown}") from None
        except ray.exceptions.RayError as e:
            raise ClusterError(
                f"fold {task.index} of run {task.run_id} failed on Ray after {self.config.max_retries} retries: "
                f"{type(e).__name__}: {one_line(e)[:300]}"
            ) from None

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
