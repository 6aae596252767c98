"""The runs the read-only commands show, and what else they read from a run folder.

``digits compare``, ``runs`` and ``history`` show many runs at once: a run
whose report is missing or malformed must not hide the others, so `load`
keeps one note per such run (the one-line `BadInputError` of
`pipeline.store.record.read`, which names the file and the field) and the command
prints it as a warning.  Only when no run at all can be shown is that an
error (`RunSet.require_any`).

Besides the records, the readers share the out-of-fold arrays (``oof.npz``:
McNemar's test, the report's confusion matrix) and two derived values an old
record may lack: when a run started, and how long it took.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core import console
from pipeline.core.errors import BadInputError
from pipeline.core.file_reads import UNREADABLE, open_regular
from pipeline.store import run_folders
from pipeline.store.record import RunRecord, read

if TYPE_CHECKING:
    from rich.console import Console

OOF = "oof.npz"


@dataclass
class RunSet:
    """Readable runs (their records and folders, in the same order) and one note per unreadable run."""

    records: list[RunRecord] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[Path, RunRecord]]:
        return iter(zip(self.dirs, self.records))

    def __len__(self) -> int:
        return len(self.records)

    def require_any(self) -> None:
        """Raise `BadInputError` when not one run could be read (the notes say why, one line each)."""
        if not self.records:
            n = len(self.notes)
            raise BadInputError(f"none of the {n} run(s) could be read" if n > 1 else "no run could be read")


def load(output_dir: str | Path = ".", refs: Sequence[str] = (), last: int | None = run_folders.DEFAULT_LAST) -> RunSet:
    """The runs named by `refs` (ids, unique prefixes, ``latest`` or folders), else the newest `last`.

    A ref that names no run raises `BadInputError`, as does an output
    directory without runs; a run whose report cannot be read becomes a note.
    """
    found = RunSet()
    for path in _folders(output_dir, refs, last):
        try:
            found.records.append(read(path))
            found.dirs.append(path)
        except BadInputError as e:
            found.notes.append(str(e))
    return found


def load_shown(
    output_dir: str | Path = ".",
    refs: Sequence[str] = (),
    last: int | None = run_folders.DEFAULT_LAST,
    err: Console | None = None,
) -> RunSet:
    """`load`, print one warning line per unreadable run, and raise when none is left to show.

    When the only run asked for cannot be read, its reason is the error
    itself: one line, rather than a warning and a vaguer error.
    """
    found = load(output_dir, refs, last)
    if not found.records and len(found.notes) == 1:
        raise BadInputError(found.notes[0])
    console.warn_each(found.notes, err)
    found.require_any()
    return found


def _folders(output_dir: str | Path, refs: Sequence[str], last: int | None) -> list[Path]:
    if refs:
        paths: list[Path] = []
        for ref in refs:
            path = run_folders.resolve(output_dir, ref)
            if path.resolve() not in [p.resolve() for p in paths]:  # `latest` and its id name one run
                paths.append(path)
        return paths
    ids = run_folders.list_runs(output_dir)
    if not ids:
        raise BadInputError(f"no runs in {run_folders.runs_root(output_dir)}")
    if last is not None and last > 0:
        ids = ids[-last:]
    return [run_folders.runs_root(output_dir) / i for i in ids]


def started(rec: RunRecord) -> _dt.datetime | None:
    """When the run started: its record's time, else the time its id was made from (records before schema 2)."""
    if rec.started is not None:
        return rec.started
    try:
        return _dt.datetime.strptime(rec.run_id[:15], "%Y%m%d-%H%M%S")
    except ValueError:
        return None


def elapsed(rec: RunRecord) -> float | None:
    """Seconds the run took: recorded, else from its start and finish times, else None."""
    if rec.seconds is not None:
        return rec.seconds
    begin = started(rec)
    if begin is None or not rec.finished_at:
        return None
    try:
        end = _dt.datetime.fromisoformat(rec.finished_at)
        return (end - begin).total_seconds()
    except (TypeError, ValueError):  # TypeError: one time has a UTC offset and the other not
        return None


def submission_score(rec: RunRecord) -> tuple[float | None, int | None]:
    """The out-of-fold accuracy of the submission the run wrote, and how many runs that submission blends.

    A run that blended reports its blend; a run from before blending that
    wrote a submission submitted its own folds (one run); a run that wrote
    none has no submission score.
    """
    if rec.blend is not None:
        return rec.blend.oof_accuracy, len(rec.blend.members)
    if rec.submission is not None and rec.oof_accuracy is not None:
        return rec.oof_accuracy, 1
    return None, None


def load_oof(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` (N,) and ``proba`` (N, 10) of a run's out-of-fold predictions; `BadInputError` if unusable."""
    path = Path(run_dir) / OOF
    try:
        with open_regular(path) as f, np.load(f, allow_pickle=False) as z:
            labels, proba = np.asarray(z["labels"]), np.asarray(z["proba"], dtype=float)
    except FileNotFoundError:
        raise BadInputError(f"{path}: missing (the run saved no out-of-fold predictions)") from None
    except UNREADABLE as e:
        raise BadInputError(f"{path}: unreadable ({e})") from None
    if labels.ndim != 1 or proba.ndim != 2 or len(labels) != len(proba):
        raise BadInputError(f"{path}: labels {labels.shape} and proba {proba.shape} do not match")
    problem = oof_problem(labels, proba)
    if problem:
        raise BadInputError(f"{path}: {problem}")
    return labels.astype(np.int64), proba


def oof_problem(labels: np.ndarray, proba: np.ndarray) -> str | None:
    """Why out-of-fold arrays of matching length cannot be a run's, or None (NaN rows are folds never trained)."""
    if proba.shape[1:] != (10,):
        return f"proba has {proba.shape[1:] or 'no'} columns, expected one per digit (10)"
    if labels.dtype.kind not in "iu" or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        return "labels are not all digits 0-9"
    return None


def predicted(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class per row, and the mask of rows that have a prediction at all.

    An interrupted run leaves the rows of folds it never trained as NaN (or zeros).
    """
    valid = np.isfinite(proba).all(axis=1) & (np.nan_to_num(proba).sum(axis=1) > 0)
    return np.nan_to_num(proba, nan=-1.0).argmax(axis=1), valid
