"""MLflow tracking, switched on by ``[tracking] mlflow = true`` or ``--mlflow``: the observer and its switch.

`tracked` wraps the commands that train or submit.  With tracking off it
does nothing, and MLflow is never imported.  With tracking on it adds a
`Tracker` to the command's `Progress` observers
(`pipeline.core.progress`), which logs into MLflow (`pipeline.nightly.mlflow_sync`)
as the events come:

- ``run_started``: the run's MLflow run (found by its tag, else created)
  with the config as params, its tags and config.toml;
- ``epoch``: the epoch's metrics in the fold's nested run, at step = epoch,
  as the fold trains (a fold trained again gets a fresh nested run);
- ``fold_done``: the fold's figures, and its epochs that were not heard
  (all of them for a fold trained on Ray: only this process, the driver,
  talks to MLflow, and a remote fold's epochs come back in its history);
- ``run_finished``: the whole record, its report.html, history plot and
  status;
- ``command_finished``: every other tracked run whose report changed since
  it was last logged (a leaderboard score that came later, a night that
  could not reach the server), so tracking catches up by itself.  Runs from
  before tracking was on are ``digits mlflow-sync``'s to backfill.

Tracking never fails a night: the first fault (an unreachable server, a
locked database, a full disk) is one warning line from `Progress`, the
tracker is dropped for the rest of the command, and the exit code is the
night's.  The next tracked command, or ``digits mlflow-sync``, catches up.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pipeline.core import config as cfg
from pipeline.core.errors import BadInputError, DigitsError, InterruptedRun, StorageError
from pipeline.core.progress import Progress
from pipeline.nightly import mlflow_sync
from pipeline.store import record, run_folders
from pipeline.store.record import FoldRecord, RunRecord

F = TypeVar("F", bound=Callable[..., Any])
CATCH_UP = "; the next tracked command or `digits mlflow-sync` catches up"


def _one_line_fault(method: F) -> F:
    """Whatever the event raises becomes one `StorageError` line naming the store, for Progress to warn with."""

    @functools.wraps(method)
    def wrapper(self: Tracker, *args: Any) -> Any:
        try:
            with mlflow_sync.quiet():
                return method(self, *args)
        except DigitsError as e:  # ours already names the store (or the report that could not be read)
            raise StorageError(f"{e}{CATCH_UP}") from None
        except Exception as e:
            raise StorageError(f"{mlflow_sync.failure(self.uri, e)}{CATCH_UP}") from None

    return wrapper  # type: ignore[return-value]


class Tracker:
    """Logs a command's runs into MLflow as they train: a `Progress` observer."""

    name = "MLflow tracking"

    def __init__(self, output_dir: str | Path, uri: str | None = None):
        self.output_dir = Path(output_dir)
        self.configured = uri
        self.uri = mlflow_sync.checked_uri(output_dir, uri)  # a database in memory: a usage error before any work
        self._runs: mlflow_sync.MlflowRuns | None = None
        self.parents: dict[str, tuple[str, str, mlflow_sync.Found]] = {}  # run id -> experiment, MLflow id, found
        self.live: dict[tuple[str, int], list[Any]] = {}  # (run id, fold) -> [its MLflow run id, epochs logged]

    @property
    def runs(self) -> mlflow_sync.MlflowRuns:
        """The store, connected on the first event (a night that never trains never imports MLflow)."""
        if self._runs is None:
            self._runs = mlflow_sync.connect(self.output_dir, self.configured)
        return self._runs

    @_one_line_fault
    def run_started(self, run_dir: Path, rec: RunRecord) -> None:
        self._open(run_dir, rec)

    @_one_line_fault
    def epoch(self, run_id: str, fold: int, epoch: int, logs: dict[str, Any]) -> None:
        live = self.live.get((run_id, fold)) or self._start_fold(run_id, fold)
        self.runs.log_epoch(live[0], epoch, logs)
        live[1] = max(live[1], epoch)

    @_one_line_fault
    def fold_done(self, run_dir: Path, fold: FoldRecord) -> None:
        run_id = Path(run_dir).name
        live = self.live.pop((run_id, fold.index), None) or self._start_fold(run_id, fold.index)
        self.runs.finish_fold(live[0], fold, live[1])

    @_one_line_fault
    def run_finished(self, run_dir: Path, rec: RunRecord) -> None:
        sha = mlflow_sync.report_sha(run_dir)
        self.runs.sync(run_dir, rec, sha, _history(run_dir.parent.parent, rec.run_id))

    @_one_line_fault
    def command_finished(self, output_dir: str | Path) -> None:
        if run_folders.list_runs(output_dir):
            self.runs.sync_all(output_dir, tracked_only=True)

    def _open(self, run_dir: Path, rec: RunRecord) -> None:
        parent, found = self.runs.open_parent(run_dir, rec)
        self.parents[rec.run_id] = (self.runs.experiment(rec.config.data.competition), parent, found)

    def _start_fold(self, run_id: str, fold: int) -> list[Any]:
        """The fold's fresh nested run, under its parent (opened here if the run started unheard)."""
        if run_id not in self.parents:
            run_dir = run_folders.runs_root(self.output_dir) / run_id
            self._open(run_dir, record.read(run_dir))
        experiment, parent, found = self.parents[run_id]
        existing = found.folds.pop(fold, None)
        live = [self.runs.start_fold(experiment, parent, run_id, fold, existing), 0]
        self.live[(run_id, fold)] = live
        return live


def _history(output_dir: Path, run_id: str) -> list[RunRecord]:
    """The runs up to `run_id`, oldest first: what the run's history plot shows."""
    return [rec for _, rec in reversed(list(run_folders.newest_first(output_dir))) if rec.run_id <= run_id]


@contextlib.contextmanager
def tracked(tracking: cfg.TrackingConfig, output_dir: str | Path, progress: Progress) -> Iterator[Tracker | None]:
    """Track the command's runs in MLflow when `tracking` says so; at its end (even a failed one) catch up.

    An interrupted command (SIGINT/SIGTERM) stops at once, without the catch-up.
    """
    if not tracking.mlflow:
        yield None
        return
    tracker = Tracker(output_dir, tracking.uri)
    progress.observers.append(tracker)
    try:
        yield tracker
    except InterruptedRun:  # a stop means stop: no catch-up that may wait on a server
        raise
    except DigitsError:
        progress.command_finished(output_dir)
        raise
    else:
        progress.command_finished(output_dir)
    finally:
        if tracker in progress.observers:
            progress.observers.remove(tracker)


def for_run(output_dir: str | Path, target: str, switch: bool) -> cfg.TrackingConfig:
    """``digits submit``'s tracking: the submitted run's own ``[tracking]``, switched on by ``--mlflow``."""
    try:
        recorded = record.read(run_folders.resolve(output_dir, target)).config.tracking
    except DigitsError:  # a CSV file, or a run that cannot be read: submit says so itself
        recorded = cfg.TrackingConfig()
    return cfg.TrackingConfig(mlflow=recorded.mlflow or switch, uri=recorded.uri)


def sync(output_dir: str | Path, refs: Sequence[str], uri: str | None, force: bool, progress: Progress) -> str:
    """``digits mlflow-sync``: log the runs never logged or changed since; returns the tracking URI.

    Here MLflow is the command's whole job, so a fault is its error: one line, exit code 6.
    """
    if not refs and not run_folders.list_runs(output_dir):
        raise BadInputError(f"no runs in {run_folders.runs_root(output_dir)}")
    for ref in refs:  # a run that is not there is bad input (exit 1), whether MLflow answers or not
        run_folders.resolve(output_dir, ref)
    store = mlflow_sync.connect(output_dir, uri, option="option --uri")
    try:
        with mlflow_sync.quiet():
            outcome = store.sync_all(output_dir, refs, force=force, log=progress.info)
    except DigitsError:
        raise
    except Exception as e:
        raise mlflow_sync.failure(store.uri, e) from None
    for note in outcome.notes:
        progress.warn(note)
    running = f", {len(outcome.running)} still running (not logged)" if outcome.running else ""
    progress.info(
        f"mlflow: {len(outcome.logged)} run(s) logged, {len(outcome.unchanged)} unchanged{running}, in {store.uri}"
    )
    return store.uri
