"""Runs in MLflow: one MLflow run per digits run, a nested one per fold, found again by their tags.

The run folder and its ``report.json`` stay the record; MLflow is a view of
them, written so that writing it again changes nothing:

- **Identity.**  Every MLflow run carries the tag ``digits.run_id``, and a
  fold's run also ``digits.fold``.  Runs are found by these tags, never by an
  id remembered somewhere, so a later night, a resume or ``digits
  mlflow-sync`` updates a run instead of adding a second one.
- **What changed.**  A fully synced run carries ``digits.report_sha256``, the
  hash of the report it was synced from; `MlflowRuns.sync_all` syncs only the
  runs whose report changed since (a leaderboard score that came later, a
  resumed run, a night that could not reach the server).
- **Writes that repeat nothing.**  Params are logged once (MLflow never
  changes one), a summary metric only when its value changed, a fold's
  epochs only when the fold's MLflow run does not hold them all (a fold that
  is trained again replaces its MLflow run); tags and artifacts overwrite.

`connect` bounds MLflow's patience with an unreachable server and quiets
its logging, so a fault costs seconds and one line (`pipeline.nightly.tracking`);
every call into MLflow has a total deadline (`call_deadline`), so a server
that answers a byte at a time costs no more.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import logging
import os
import re
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core import deadline, file_reads
from pipeline.core.errors import StorageError, UsageError
from pipeline.core.text import ascii_int, quoted
from pipeline.nightly import mlflow_record
from pipeline.nightly.mlflow_record import metrics_of, params_of, submission_file, tags_of
from pipeline.store import record, run_folders
from pipeline.store.record import FoldRecord, RunRecord

DB = "mlflow.db"  # the default store, beside runs/ (MLflow's own default name)
ARTIFACTS = "mlartifacts"  # artifacts of a SQLite store, beside its database file
RUN_TAG = mlflow_record.RUN_TAG
FOLD_TAG = "digits.fold"
SHA_TAG = "digits.report_sha256"
EPOCHS_TAG = "digits.epochs_logged"
PARENT_TAG = "mlflow.parentRunId"  # what makes a run nested in MLflow's UI
STATUS = {"running": "RUNNING", "complete": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
# MLflow's defaults retry an unreachable server for minutes (7 retries, 120 s timeout): a tracker that must never
# hold up a night gives up after seconds.  The environment still wins: these are defaults only.
BOUNDS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_LOGGING_LEVEL": "ERROR",  # its INFO lines (database migrations) and warnings; a fault is our one line
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # "View run at" lines on stdout, where digits prints its result
    "MLFLOW_DISABLE_TELEMETRY": "true",  # a batch job sends nothing anywhere it was not told to
}


def tracking_uri(output_dir: str | Path, configured: str | None = None) -> str:
    """``[tracking] uri``, else MLFLOW_TRACKING_URI, else a SQLite file beside the run folders."""
    return (
        configured
        or os.environ.get("MLFLOW_TRACKING_URI")
        or "sqlite:///" + (Path(output_dir).resolve() / DB).as_posix()
    )


def in_memory(uri: str) -> bool:
    """Whether `uri` names an SQLite database that lives in memory: gone, with all it holds, when digits ends.

    As SQLAlchemy (MLflow's store) reads it: no database (``sqlite://``, ``sqlite:///``), ``:memory:``,
    or an SQLite URI filename in memory (``file::memory:``, ``mode=memory``).
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.split("+")[0].lower() != "sqlite":
        return False
    where, _, query = rest.partition("?")
    database = where[1:] if where.startswith("/") else ""  # `sqlite://host`: no database file either
    modes = urllib.parse.parse_qs(query).get("mode", [])
    return database in ("", ":memory:") or database.startswith("file::memory:") or "memory" in modes


def checked_uri(output_dir: str | Path, configured: str | None = None, option: str = "[tracking] uri") -> str:
    """`tracking_uri`, refused (a usage error naming where it came from) when it is a database in memory."""
    uri = tracking_uri(output_dir, configured)
    if in_memory(uri):
        source = option if configured else "MLFLOW_TRACKING_URI"
        raise UsageError(
            f"{source} {quoted(uri)} is an SQLite database in memory: what is logged there is gone when digits "
            "ends; give a file (sqlite:///mlflow.db) or a server's URL"
        )
    return uri


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside the database of a SQLite store; a server decides its own."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///").split("?")[0])
    return (database.resolve().parent / ARTIFACTS).as_uri()


def connect(output_dir: str | Path, configured: str | None = None, option: str = "[tracking] uri") -> MlflowRuns:
    """An `MlflowRuns` on the tracking URI (MLflow imported here, bounded and quiet); `StorageError` if impossible.

    A database in memory is a `UsageError` naming `option` (or MLFLOW_TRACKING_URI), before MLflow is imported.
    """
    uri = checked_uri(output_dir, configured, option)
    for name, value in BOUNDS.items():
        os.environ.setdefault(name, value)
    try:
        with quiet():
            from mlflow import MlflowClient

            seconds = call_deadline()
            client = deadline.call(lambda: MlflowClient(uri), seconds, "MLflow's client")  # SQLite: migrations
            return MlflowRuns(Bounded(client, seconds), uri)
    except ImportError:
        raise StorageError(
            "MLflow tracking needs MLflow, which is not installed: pip install 'digits[mlflow]'"
        ) from None
    except Exception as e:  # a bad URI, a database that cannot be created or migrated: one line
        raise failure(uri, e) from None


def call_deadline() -> float:
    """Seconds one call into MLflow may take in all: twice what MLflow's own settings let a request take.

    A request may take ``MLFLOW_HTTP_REQUEST_TIMEOUT`` per attempt, 1 +
    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` attempts, and urllib3's backoff
    between them (factor x 2^n plus the jitter, at most 120 s each); twice
    that, because a call may make two requests (``log_artifact`` finds the
    run, then uploads).  76 s with the `BOUNDS` above.  Those settings bound
    only a connect and each read: a server that sends a byte a second never
    trips them, and this deadline is what ends such a call.
    """
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_BACKOFF_JITTER,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    retries = max(0, int(MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()))
    factor, jitter = float(MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get()), float(MLFLOW_HTTP_REQUEST_BACKOFF_JITTER.get())
    backoff = sum(min(120.0, factor * 2**n + jitter) for n in range(1, retries + 1))
    return 2 * (float(MLFLOW_HTTP_REQUEST_TIMEOUT.get()) * (retries + 1) + backoff)


class Bounded:
    """An `MlflowClient` whose every method returns within `seconds` or raises `deadline.Expired`."""

    def __init__(self, client: Any, seconds: float) -> None:
        self._client = client
        self.seconds = seconds

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def bounded(*args: Any, **kwargs: Any) -> Any:
            return deadline.call(lambda: method(*args, **kwargs), self.seconds, f"MLflow's {name}")

        return bounded


def failure(uri: str, error: BaseException) -> StorageError:
    """One line for whatever MLflow raised: where, what kind, and the gist of its message.

    A failed request's message nests urllib3's, whose gist ("Connection refused") is at its end.
    """
    if isinstance(error, deadline.Expired):
        return StorageError(
            f"cannot write to MLflow at {uri}: no answer within {error.seconds:g} s in all (twice what "
            "MLFLOW_HTTP_REQUEST_TIMEOUT and _MAX_RETRIES allow one request)"
        )
    text = str(error).strip()
    reason = re.search(r"\[Errno -?\d+\] ([^'\"()]+)|(Read timed out|timed out)", text)
    gist = (reason.group(1) or reason.group(2)).strip() if reason else (text.splitlines() or [""])[0][:200]
    return StorageError(f"cannot write to MLflow at {uri}: {type(error).__name__}: {gist}")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No retry warnings from urllib3, no Python warnings from MLflow: a fault is reported once, by us."""
    pool = logging.getLogger("urllib3.connectionpool")
    level = pool.level
    pool.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pool.setLevel(level)


def report_sha(run_dir: Path) -> str:
    """The hash of the run's report.json as it is now: what `SHA_TAG` compares."""
    return hashlib.sha256(file_reads.read_bytes(run_dir / record.REPORT)).hexdigest()


@dataclass
class Found:
    """A digits run's MLflow runs: the parent and the fold runs by index (None/absent when not logged)."""

    parent: Any = None
    folds: dict[int, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What `MlflowRuns.sync_all` did: run ids logged, unchanged, left alone (still running, or never tracked);
    unreadable reports."""

    logged: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class MlflowRuns:
    """The digits runs in one MLflow tracking store."""

    def __init__(self, client: Any, uri: str):
        self.client = client
        self.uri = uri
        self.experiments: dict[str, str] = {}

    # ---- finding ---------------------------------------------------------------------------------

    def experiment(self, competition: str) -> str:
        """The id of the experiment named after the competition; created (artifacts beside SQLite) if new."""
        if competition not in self.experiments:
            found = self.client.get_experiment_by_name(competition)
            if found is None:
                try:
                    ident = self.client.create_experiment(competition, artifact_location=artifact_root(self.uri))
                except Exception:  # created meanwhile by another command
                    found = self.client.get_experiment_by_name(competition)
                    if found is None:
                        raise
                    ident = found.experiment_id
            elif found.lifecycle_stage == "deleted":
                raise StorageError(f"experiment {competition!r} is deleted in MLflow; restore it to track runs there")
            else:
                ident = found.experiment_id
            self.experiments[competition] = ident
        return self.experiments[competition]

    def find_all(self, experiment: str, run_id: str | None = None) -> dict[str, Found]:
        """Every digits run of the experiment (or just `run_id`) with its fold runs, by digits run id."""
        where = f"tags.`{RUN_TAG}` = '{run_id}'" if run_id else f"tags.`{RUN_TAG}` LIKE '%'"
        out: dict[str, Found] = {}
        token = None
        while True:
            page = self.client.search_runs(
                [experiment], where, max_results=1000, order_by=["attributes.start_time ASC"], page_token=token
            )
            for run in page:
                tags = run.data.tags
                found = out.setdefault(tags[RUN_TAG], Found())
                if FOLD_TAG in tags:
                    fold = ascii_int(tags[FOLD_TAG])  # a tag is text anyone with the server can set
                    if fold is not None:
                        found.folds.setdefault(fold, run)  # the oldest, should a race have made two
                elif found.parent is None:
                    found.parent = run
            token = page.token
            if not token:
                return out

    def find(self, experiment: str, run_id: str) -> Found:
        return self.find_all(experiment, run_id).get(run_id, Found())

    # ---- the parent run ----------------------------------------------------------------------------

    def open_parent(self, run_dir: Path, rec: RunRecord) -> tuple[str, Found]:
        """The run's MLflow run (created if new) with its params, tags and config.toml; and its fold runs."""
        experiment = self.experiment(rec.config.data.competition)
        found = self.find(experiment, rec.run_id)
        if found.parent is None:
            found.parent = self.client.create_run(
                experiment, start_time=_ms(rec.started_at), tags={RUN_TAG: rec.run_id}, run_name=rec.run_id
            )
        parent = found.parent.info.run_id
        from mlflow.entities import Param, RunTag

        have = found.parent.data.params
        params = [Param(k, v) for k, v in params_of(rec).items() if k not in have]  # a param is written once
        self.client.log_batch(parent, params=params, tags=[RunTag(k, v) for k, v in tags_of(rec).items()])
        if (run_dir / "config.toml").is_file():
            self.client.log_artifact(parent, str(run_dir / "config.toml"))
        if rec.status == "running" and found.parent.info.status != "RUNNING":
            self.client.update_run(parent, status="RUNNING")  # resumed
        return parent, found

    def sync(self, run_dir: Path, rec: RunRecord, sha: str, history: Sequence[RunRecord] = ()) -> str:
        """Log everything the record holds into its MLflow runs; return the parent's MLflow run id.

        `history`: the runs whose trend the history plot shows (those up to this one).
        """
        parent, found = self.open_parent(run_dir, rec)
        experiment = self.experiment(rec.config.data.competition)
        self.log_changed(parent, metrics_of(rec), found.parent.data.metrics)
        for fold in rec.folds:
            existing = found.folds.get(fold.index)
            if not (existing and existing.info.status == "FINISHED" and _epochs_tag(existing) == _epochs(fold)):
                self.finish_fold(self.start_fold(experiment, parent, rec.run_id, fold.index, existing), fold, 0)
        for index, run in found.folds.items():  # attempts that never finished: their run was stopped
            if index not in rec.fold_accuracy and rec.status != "running" and run.info.status == "RUNNING":
                self.client.set_terminated(run.info.run_id, "KILLED")
        self.log_artifacts(parent, run_dir, rec, history)
        if rec.status != "running":
            self.client.set_terminated(parent, STATUS[rec.status], end_time=_ms(rec.finished_at))
        self.client.set_tag(parent, SHA_TAG, sha)  # last: a sync cut short is done again next time
        return parent

    def log_changed(self, run: str, metrics: dict[str, float], have: dict[str, float]) -> None:
        """Log the metrics whose value is new (step 0): a second sync adds no points to their histories."""
        from mlflow.entities import Metric

        now = _now()
        changed = [Metric(k, v, now, 0) for k, v in metrics.items() if have.get(k) != v]
        if changed:
            self.client.log_batch(run, metrics=changed)

    def log_artifacts(self, run: str, run_dir: Path, rec: RunRecord, history: Sequence[RunRecord]) -> None:
        """report.html (rendered now: the folder's own may be stale or absent), history.png, the submission."""
        from pipeline.views.plots import history_png
        from pipeline.views.report import make_page

        with tempfile.TemporaryDirectory(prefix="digits-mlflow-") as tmp:
            page = Path(tmp) / "report.html"
            page.write_text(make_page(run_dir, rec).html, encoding="utf-8")
            plot = Path(tmp) / "history.png"
            plot.write_bytes(history_png(list(history) or [rec]))
            for path in (page, plot, submission_file(run_dir, rec)):
                if path is not None:
                    self.client.log_artifact(run, str(path))

    # ---- fold runs -------------------------------------------------------------------------------

    def start_fold(self, experiment: str, parent: str, run_id: str, index: int, existing: Any = None) -> str:
        """A fresh MLflow run for a fold about to be logged; an earlier attempt's run is deleted (it is retrained)."""
        if existing is not None:
            self.client.delete_run(existing.info.run_id)
        run = self.client.create_run(
            experiment,
            tags={RUN_TAG: run_id, FOLD_TAG: str(index), PARENT_TAG: parent},
            run_name=f"fold-{index}",
        )
        return str(run.info.run_id)

    def log_epoch(self, fold_run: str, epoch: int, logs: dict[str, Any]) -> None:
        """One epoch's metrics (loss, accuracy, val_loss, val_accuracy, learning_rate...) at step `epoch`."""
        from mlflow.entities import Metric

        now = _now()
        metrics = [Metric(k, float(v), now, epoch) for k, v in logs.items() if _number(v)]
        if metrics:
            self.client.log_batch(fold_run, metrics=metrics)

    def finish_fold(self, fold_run: str, fold: FoldRecord, logged: int) -> None:
        """The fold's epochs after the first `logged` (all of a fold trained elsewhere), its figures; finished."""
        from mlflow.entities import Metric, Param, RunTag

        now = _now()
        metrics = [
            Metric(key, float(value), now, step)
            for key, values in fold.history.items()
            for step, value in enumerate(values, start=1)
            if step > logged and value is not None and _number(value)
        ]
        metrics += [
            Metric(k, float(v), now, 0)
            for k, v in {"fold_val_accuracy": fold.val_accuracy, "fold_val_loss": fold.val_loss}.items()
        ]
        metrics += [
            Metric("seconds", fold.seconds, now, 0),
            Metric("samples_per_second", fold.samples_per_second, now, 0),
        ]
        params = [
            Param("fold", str(fold.index)),
            Param("train_rows", str(fold.train_rows)),
            Param("val_rows", str(fold.val_rows)),
        ]
        self.client.log_batch(fold_run, metrics=metrics, params=params, tags=[RunTag(EPOCHS_TAG, str(_epochs(fold)))])
        self.client.set_terminated(fold_run, "FINISHED")

    # ---- many runs -------------------------------------------------------------------------------

    def sync_all(
        self,
        output_dir: str | Path,
        refs: Sequence[str] = (),
        force: bool = False,
        log: Any = None,
        tracked_only: bool = False,
    ) -> Outcome:
        """Sync the runs named by `refs` (default: every run not still running) whose report changed.

        `force` syncs them even when unchanged.  `tracked_only` (a night's catch-up) leaves alone the runs
        never tracked, trained before tracking was on: backfilling them is `digits mlflow-sync`'s, on
        purpose, not a cost a night takes on unasked.  An unreadable report is a note, not a stop.
        """
        outcome = Outcome()
        records: list[RunRecord] = []
        for run_id in run_folders.list_runs(output_dir):
            try:
                records.append(record.read(run_folders.runs_root(output_dir) / run_id))
            except Exception as e:  # BadInputError: named in the note; the others are synced
                outcome.notes.append(str(e))
        wanted = {run_folders.resolve(output_dir, ref).resolve().name for ref in refs}
        found: dict[str, dict[str, Found]] = {}
        for rec in records:
            if wanted and rec.run_id not in wanted:
                continue
            if not wanted and rec.status == "running":
                outcome.running.append(rec.run_id)  # a live command logs it; syncing it too could race its creation
                continue
            run_dir = run_folders.runs_root(output_dir) / rec.run_id
            sha = report_sha(run_dir)
            experiment = self.experiment(rec.config.data.competition)
            if experiment not in found:
                found[experiment] = self.find_all(experiment)
            parent = found[experiment].get(rec.run_id, Found()).parent
            if tracked_only and parent is None and not rec.config.tracking.mlflow:
                outcome.untracked.append(rec.run_id)
                continue
            if not force and parent is not None and parent.data.tags.get(SHA_TAG) == sha:
                outcome.unchanged.append(rec.run_id)
                continue
            self.sync(run_dir, rec, sha, [r for r in records if r.run_id <= rec.run_id])
            outcome.logged.append(rec.run_id)
            if log is not None:
                log(f"mlflow: logged run {rec.run_id}")
        return outcome


def _epochs(fold: FoldRecord) -> int:
    return max((len(v) for v in fold.history.values()), default=0)


def _epochs_tag(run: Any) -> int | None:
    return ascii_int(run.data.tags.get(EPOCHS_TAG) or "")


def _number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


def _now() -> int:
    return int(time.time() * 1000)


def _ms(stamp: str | None) -> int | None:
    """A record's ISO time as MLflow's milliseconds (a backfilled run shows when it ran); None if unknown."""
    try:
        return int(_dt.datetime.fromisoformat(stamp).timestamp() * 1000) if stamp else None
    except ValueError:
        return None
