"""Run folders, their ids, their `report.json`, and the lock on an output directory.

Layout of one output directory::

    runs/<run-id>/report.json          the run report (schema below)
    runs/<run-id>/config.toml          the config actually used, re-loadable with --config
    runs/<run-id>/folds/fold-<k>.keras the fold's model
    runs/<run-id>/folds/fold-<k>.npz   val_idx, val_proba, test_proba of the fold
    runs/<run-id>/oof.npz              labels and out-of-fold probabilities of all rows
    runs/<run-id>/misclassified.npz    images, true and predicted labels of OOF mistakes
    runs/<run-id>/test_proba.npy       the soft vote on test.csv
    submissions/<run-id>.csv, submissions/submission.csv
    .digits.lock                       held while a run writes here

`report.json` (schema version 1) holds: ``schema_version, run_id, status``
(running | complete | interrupted | failed), ``started_at, finished_at,
code_version, data`` (per file: sha256, rows), ``config`` (nested dict),
``folds`` (list of: index, train_rows, val_rows, val_accuracy, val_loss,
best_epoch, epochs_run, seconds, samples_per_second, history{loss, accuracy,
val_loss, val_accuracy, learning_rate}), ``fold_accuracy_mean,
fold_accuracy_std, oof_accuracy, per_class_accuracy`` (10 floats),
``confusion_matrix`` (10x10, rows = true label), ``stage_seconds``
(load, train, predict, ...), ``seconds, versions, submission``
(path, sha256, rows) or null, and ``leaderboard`` (public_score, message,
submitted_at, ref, status, error) or null.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any

from pipeline import files
from pipeline.errors import BadInputError, BusyError, StorageError

SCHEMA_VERSION = 1
REPORT = "report.json"
RUNS = "runs"
SUBMISSIONS = "submissions"
LOCK = ".digits.lock"
_ID = re.compile(r"\d{8}-\d{6}(-\d+)?")


def now() -> str:
    return _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")


def runs_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / RUNS


def new_run(output_dir: str | Path, when: _dt.datetime | None = None) -> tuple[str, Path]:
    """Create a fresh run folder; ids sort by start time (``20261125-233000``)."""
    when = when or _dt.datetime.now()
    base = when.strftime("%Y%m%d-%H%M%S")
    root = runs_root(output_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            run_id = base if n == 1 else f"{base}-{n}"
            try:
                (root / run_id).mkdir()
            except FileExistsError:
                continue
            return run_id, root / run_id
    except OSError as e:
        raise files.storage_error(root, e) from None
    raise StorageError(f"cannot create a run folder in {root}: too many runs started in one second")


def list_runs(output_dir: str | Path) -> list[str]:
    """Run ids in the output directory, oldest first."""
    root = runs_root(output_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _ID.fullmatch(p.name))


def resolve(output_dir: str | Path, ref: str) -> Path:
    """A run folder from an id, a unique id prefix, ``latest``, or a path to the folder."""
    path = Path(ref)
    if (path / REPORT).is_file() or (path.is_dir() and path.parent.name == RUNS):
        return path
    ids = list_runs(output_dir)
    if ref == "latest":
        if not ids:
            raise BadInputError(f"no runs in {runs_root(output_dir)}")
        return runs_root(output_dir) / ids[-1]
    matches = [i for i in ids if i == ref] or [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return runs_root(output_dir) / matches[0]
    if not matches:
        raise BadInputError(f"run {ref!r} not found in {runs_root(output_dir)}")
    raise BadInputError(f"run {ref!r} is ambiguous: {', '.join(matches[:5])}")


def migrate(report: dict[str, Any]) -> dict[str, Any]:
    """Bring a report written by an older version up to `SCHEMA_VERSION`.

    Version 0 (before versioning) lacked status, leaderboard and the fold
    mean/std; they are derived or defaulted so readers need one shape only.
    """
    version = report.get("schema_version", 0)
    if version > SCHEMA_VERSION:
        raise BadInputError(
            f"report schema {version} is newer than this digits understands ({SCHEMA_VERSION}); upgrade digits"
        )
    if version < 1:
        report.setdefault("status", "complete" if report.get("oof_accuracy") is not None else "unknown")
        report.setdefault("leaderboard", None)
        report.setdefault("submission", None)
        accs = [f.get("val_accuracy") for f in report.get("folds", []) if f.get("val_accuracy") is not None]
        if accs and "fold_accuracy_mean" not in report:
            import statistics

            report["fold_accuracy_mean"] = statistics.fmean(accs)
            report["fold_accuracy_std"] = statistics.pstdev(accs)
        report["schema_version"] = 1
    return report


def read_report(run_dir: str | Path) -> dict[str, Any]:
    """The run's report, migrated to the current schema; a clear error if missing or corrupt."""
    path = Path(run_dir) / REPORT
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{path}: report missing (run never finished its first stage?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInputError(f"{path}: report is corrupt: {e}") from None
    except OSError as e:
        raise BadInputError(f"{path}: cannot read report: {e.strerror}") from None
    if not isinstance(data, dict) or "run_id" not in data:
        raise BadInputError(f"{path}: not a digits run report")
    if not isinstance(data["run_id"], str) or not _ID.fullmatch(data["run_id"]):
        # a run id names files (submissions/<run-id>.csv): never trust one read back
        raise BadInputError(f"{path}: run_id {str(data['run_id'])[:40]!r} is not a run id (like 20261125-233000)")
    return migrate(data)


def write_report(run_dir: str | Path, report: dict[str, Any]) -> None:
    report["schema_version"] = SCHEMA_VERSION
    files.write_json(Path(run_dir) / REPORT, report)


def update_report(run_dir: str | Path, **changes: Any) -> dict[str, Any]:
    """Read, change some top-level keys, write back atomically."""
    report = read_report(run_dir)
    report.update(changes)
    write_report(run_dir, report)
    return report


class Lock:
    """An exclusive lock on an output directory, held for a whole run.

    Built on `filelock` (an OS file lock): the kernel drops it when its holder
    dies, so a lock left by a killed run is taken over without any stale-pid
    guessing.  The holder's pid is written beside it for the error message.
    """

    def __init__(self, output_dir: str | Path):
        import filelock

        self.dir = Path(output_dir)
        self.path = self.dir / LOCK
        self._lock = filelock.FileLock(str(self.path), timeout=0)
        self._timeout = filelock.Timeout

    def __enter__(self) -> Lock:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except self._timeout:
            holder = self._holder()
            raise BusyError(
                f"{self.dir}: another digits run{holder} is using this output directory; wait for it or use another --output-dir"
            ) from None
        except OSError as e:
            raise files.storage_error(self.path, e) from None
        try:
            (self.dir / (LOCK + ".pid")).write_text(f"{os.getpid()}\n")
        except OSError:
            pass  # the lock itself is what matters
        return self

    def _holder(self) -> str:
        try:
            return f" (pid {int((self.dir / (LOCK + '.pid')).read_text())})"
        except (OSError, ValueError):
            return ""

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()
