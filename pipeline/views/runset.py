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
from pipeline.store import run_folders
from pipeline.store.record import RunRecord, read

if TYPE_CHECKING:
    from rich.console import Console

MAX_NOTES = 10  # warnings about unreadable runs a command prints before it only counts them


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
    """The runs named by `refs` (ids, unique prefixes, ``latest`` or folders), else the newest `last` readable ones.

    A ref that names no run raises `BadInputError`, as does an output
    directory without runs; a run whose report cannot be read becomes a note
    (and, without refs, does not count among the `last`: folders without a
    report newer than every run must not hide them).  Oldest first.
    """
    found = RunSet()
    paths = _folders(output_dir, refs)
    if not refs:
        paths = paths[::-1]  # newest first, until `last` are read
    for path in paths:
        if not refs and last is not None and last > 0 and len(found.records) >= last:
            break
        try:
            found.records.append(read(path))
            found.dirs.append(path)
        except BadInputError as e:
            found.notes.append(str(e))
    if not refs:
        found.records.reverse()
        found.dirs.reverse()
        found.notes.reverse()
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
    notes = found.notes
    if len(notes) > MAX_NOTES:  # hundreds of broken folders are one warning each up to here, then one line
        notes = [*notes[: MAX_NOTES - 1], f"{len(notes) - MAX_NOTES + 1} more run(s) could not be read either"]
    console.warn_each(notes, err)
    found.require_any()
    return found


def _folders(output_dir: str | Path, refs: Sequence[str]) -> list[Path]:
    """The folders `refs` name, else every run's, oldest first."""
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


def predicted(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class per row, and the mask of rows that have a prediction at all.

    An interrupted run leaves the rows of folds it never trained as NaN (or zeros).
    """
    valid = np.isfinite(proba).all(axis=1) & (np.nan_to_num(proba).sum(axis=1) > 0)
    return np.nan_to_num(proba, nan=-1.0).argmax(axis=1), valid
