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

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.competition.dataset import Dataset
from pipeline.core import deadline, ray_address, stop_signals
from pipeline.core.config import ExecutorConfig
from pipeline.core.errors import ClusterError, DigitsError, UsageError
from pipeline.core.text import one_line
from pipeline.training.executor import OnEpoch, OnResult
from pipeline.training.fold import FoldOutcome, FoldResult
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


def _train_fold_task(task: FoldTask, data: Dataset) -> FoldOutcome:
    """The body of a fold's Ray task (a module-level function, so it pickles by reference)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pipeline.training.fold import train_fold

    return train_fold(task, data)


def probe(address: str, timeout: float) -> None:
    """Fail fast, with one line, when a cluster address does not answer as a Ray cluster within `timeout`.

    ``ray.init`` keeps retrying an unreachable head for a long time, and one
    that accepts the connection and never answers (or answers a byte at a
    time) holds it for minutes inside gRPC's C++ code, where no signal
    handler runs: SIGTERM went unheard.  ``ray.init`` cannot run in another
    thread either (the driver it makes then dies at its first ``ray.put``).
    So before it, in a thread the caller waits on with a deadline
    (`pipeline.core.deadline`, which also hears a stop): a plain TCP connect,
    then gRPC's own handshake (HTTP/2), which every Ray head (GCS or Ray
    Client server) completes at once and nothing else does.
    """
    if address == "auto":
        return  # Ray looks for a local head itself and fails at once without one
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    host, port = parts.hostname, parts.port or (10001 if parts.scheme == "ray" else 6379)
    if not host:
        raise ClusterError(f"option --ray-address: {address!r} is not an address (auto, ray://host:10001, host:6379)")
    started = time.monotonic()
    try:
        deadline.call(lambda: socket.create_connection((host, port), timeout=timeout).close(), timeout, "Ray's head")
    except (OSError, deadline.Expired) as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise ClusterError(
            f"cannot reach the Ray cluster at {address} ({host}:{port}: {reason} within {timeout:g}s)"
        ) from None
    if os.environ.get("RAY_USE_TLS", "0").lower() not in ("0", "false", ""):
        return  # a TLS handshake needs Ray's certificates: ray.init makes it
    left = max(0.5, timeout - (time.monotonic() - started))
    try:
        deadline.call(lambda: _grpc_handshake(f"{host}:{port}", left), left + 5, "Ray's head")
    except (deadline.Expired, TimeoutError):
        raise ClusterError(
            f"cannot reach the Ray cluster at {address} ({host}:{port} accepts connections but does not answer "
            f"as a Ray cluster within {timeout:g}s)"
        ) from None


def _grpc_handshake(target: str, seconds: float) -> None:
    """Return once a gRPC channel to `target` is ready (HTTP/2 set up); TimeoutError if it is not within `seconds`."""
    import grpc

    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=seconds)
    except grpc.FutureTimeoutError:
        raise TimeoutError(target) from None
    finally:
        channel.close()


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
        if stop_signals.pending():  # a stop that came while Ray was imported: no cluster to start or attach to
            stop_signals.exiting()
            raise KeyboardInterrupt
        handlers = {sig: signal.getsignal(sig) for sig in stop_signals.STOP_SIGNALS}
        try:
            self.ray.init(
                # no address: a Ray of our own, as the README says, never a cluster that `ray start` left running
                # on this machine, which ray.init() without an address would attach to
                address=self.address or "local",
                include_dashboard=False,
                log_to_driver=False,  # workers' TensorFlow chatter stays out of the cron log; errors come back as data
                configure_logging=False,
                runtime_env={"py_modules": [str(Path(pipeline.__file__).parent)]},
            )
        except SystemExit as e:
            if e.code != signal.SIGTERM:
                raise
            # ray.init's own SIGTERM handler (sys.exit) while it connects: a stop like any other (exit 4, one line)
            stop_signals.note()
            stop_signals.exiting()
            stop_signals.abandon_at_exit()
            raise KeyboardInterrupt from None
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
            for sig, handler in handlers.items():  # ray.init replaces the driver's handlers; ours stop cleanly
                if handler is not None and signal.getsignal(sig) is not handler:
                    signal.signal(sig, handler)
        self.started_here = True

    def run(
        self,
        tasks: Iterable[FoldTask],
        data: Dataset,
        on_result: OnResult,
        stop: StopRequest,
        on_epoch: OnEpoch | None = None,
    ) -> None:
        """Submit every task at once; hand over results as they finish; cancel the rest on a stop or a failure.

        `on_epoch` is not called: workers report to no one, and a fold's epochs come back in its result's history.
        Whatever finished is handed over first: before a stop is honoured, and
        before a failed fold ends the run.  The cluster lost on the way (a
        `RayError` or `ConnectionError` from ``ray.put``, ``ray.wait``...)
        is a `ClusterError`: one line, exit 7.
        """
        tasks = list(tasks)  # all at once: Ray schedules them
        if not tasks:
            return
        ray = self.ray
        with self._cluster("sending the folds to"):
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
                with self._cluster("waiting for the folds on"):
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                self._hand_over(ready, pending, on_result)
                if stop.is_set():  # what finished meanwhile is saved too, then the rest is cancelled
                    with self._cluster("waiting for the folds on"):
                        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                    self._hand_over(ready, pending, on_result)
                    stop.check()
        finally:
            for ref in pending:
                with contextlib.suppress(Exception):  # a lost cluster must not hide why the run ended
                    ray.cancel(ref, force=True)

    def _hand_over(self, ready: list[Any], pending: dict[Any, FoldTask], on_result: OnResult) -> None:
        """Every finished fold in `ready` to `on_result`; a failed one ends the run once the others are handed over."""
        failure: BaseException | None = None
        for ref in ready:
            task = pending.pop(ref)
            try:
                result = self._result(ref, task)
            except DigitsError as e:
                failure = failure or e
                continue
            on_result(task, result)
        if failure is not None:
            if pending:  # folds that finished while this one failed are kept for --resume
                with self._cluster("waiting for the folds on"):
                    more, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=0)
                with contextlib.suppress(DigitsError):  # the first failure is the one to report
                    self._hand_over([ref for ref in more if ref in pending], pending, on_result)
            raise failure

    @contextlib.contextmanager
    def _cluster(self, doing: str) -> Iterator[None]:
        """A cluster lost while `doing` it (a RayError or ConnectionError after connecting) as one line, exit 7."""
        try:
            yield
        except (self.ray.exceptions.RayError, ConnectionError) as e:
            where = f"at {self.address}" if self.address else "started here"
            raise ClusterError(
                f"lost the Ray cluster {where} while {doing} it: {type(e).__name__}: {one_line(e)[:300]}"
            ) from None

    def _result(self, ref: Any, task: FoldTask) -> FoldResult:
        ray = self.ray
        try:
            result: FoldResult = ray.get(ref)
            return result
        except ConnectionError as e:  # Ray Client: the cluster went away
            raise ClusterError(
                f"lost the Ray cluster while fetching fold {task.index} of run {task.run_id}: {one_line(e)[:300]}"
            ) from None
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
            with contextlib.suppress(Exception):  # a lost cluster must not hide why the run ended
                self.ray.shutdown()
