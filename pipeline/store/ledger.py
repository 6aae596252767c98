"""The ledger of submissions, ``submissions/ledger.jsonl``: what Kaggle holds, and what each submission was.

One JSON object per line, only ever appended: a crash can cut the line being
written, never an earlier one.  A submission's entry is written when it is
sent (status ``sending``), again when Kaggle takes it (its ``ref``,
``pending``), and when Kaggle scores it (``complete``, the public score) or
refuses it (``error``); the last line of an entry's id is its state.  Kaggle's
own list of submissions refreshes pending scores and adds the submissions
this job did not make (``origin = "kaggle"``), so the gate compares against
them too.

What an entry says is its own: the blend's members and weights, the estimate
and a copy of the per-row predictions the estimate counted
(``submissions/ledger/predictions-<sha256>.npz``, named by its own content,
so two blends that wrote identical files keep their own rows), so ``digits
predict`` rewriting a run's blend later changes nothing here, and ``gc``
keeps every run an entry blends.

A damaged line (a crash while writing it, an editor) is reported by line
number, one warning each, and skipped; the rest of the ledger still counts.
The ledger is a regular file of its own: a FIFO or a symlink where it goes
is refused, read or appended to, and left as it is (`atomic_files.append_line`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ConfigDict, TypeAdapter, ValidationError

from pipeline.core import atomic_files, file_reads
from pipeline.core.errors import BadInputError
from pipeline.store import run_folders

LEDGER = "ledger.jsonl"
ARRAYS = "ledger"  # submissions/ledger/predictions-<sha256>.npz: the per-row predictions an entry's estimate counted
Status = Literal["sending", "pending", "complete", "error"]
Origin = Literal["digits", "kaggle"]


# Every number an entry holds is finite: a NaN or inf score read back would win or lose every comparison of the gate.
FINITE = ConfigDict(allow_inf_nan=False)


@dataclass
class Member:
    """A run in the submitted blend, and its weight."""

    run_id: str
    weight: float
    __pydantic_config__ = FINITE


@dataclass
class Entry:
    """One submission, as far as this job knows it."""

    id: str  # "<time>-<sha8>" for a submission this job sent; "kaggle-<ref>" for one found on Kaggle
    competition: str
    status: Status
    origin: Origin = "digits"
    sent_at: str | None = None  # when it was sent (Kaggle's date for one found there)
    sha256: str | None = None  # of the submitted file
    file: str | None = None
    run_id: str | None = None  # the run whose submission it was
    members: list[Member] = field(default_factory=list)
    estimate: float | None = None  # the blend's out-of-sample accuracy estimate when it was submitted
    estimate_method: str | None = None
    train_sha: str | None = None  # the train.csv the estimate was made on: only then are predictions paired
    predictions: str | None = None  # file in submissions/ledger/ with the rows' labels and estimated predictions
    message: str | None = None
    ref: int | None = None  # Kaggle's reference
    public_score: float | None = None
    error: str | None = None
    updated_at: str | None = None
    __pydantic_config__ = FINITE

    @property
    def accepted(self) -> bool:
        """Kaggle took it (a ref) and did not refuse it: scored, or still being scored."""
        return self.ref is not None and self.status in ("pending", "complete")


@cache
def _adapter() -> TypeAdapter[Entry]:
    return TypeAdapter(Entry)


def path(output_dir: str | Path) -> Path:
    return Path(output_dir) / run_folders.SUBMISSIONS / LEDGER


def read(output_dir: str | Path, warn: Callable[[str], None] = lambda s: None) -> list[Entry]:
    """Every entry in its latest state, in the order they were first written; damaged lines are warned about."""
    where = path(output_dir)
    try:
        raw = file_reads.read_bytes(where)  # a FIFO would hang the night, a folder cannot be read
    except FileNotFoundError:
        return []
    except file_reads.NotRegularFile:
        raise BadInputError(f"{where}: not a regular file; the ledger must be a file") from None
    except OSError as e:
        raise BadInputError(f"{where}: cannot read the ledger: {e.strerror or e}") from None
    entries: dict[str, Entry] = {}
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = _adapter().validate_python(file_reads.bounded(json.loads(line.decode("utf-8"))))
        except file_reads.UNREADABLE as e:  # not JSON, nested thousands deep, a 5,000-digit number, a wrong field
            last = number == len(lines) or (number == len(lines) - 1 and not lines[-1])
            why = "cut short (a crash while it was written?)" if last and not raw.endswith(b"\n") else _why(e)
            warn(f"{where}: line {number} is damaged ({why}); it is left out")
            continue
        entries[entry.id] = entry
    return list(entries.values())


def _why(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"field {'.'.join(str(p) for p in first['loc']) or 'entry'}: {first['msg']}"
    if isinstance(error, json.JSONDecodeError):
        return "not JSON"
    return file_reads.why(error)


def append(output_dir: str | Path, entry: Entry) -> Entry:
    """Write the entry's new state as one line at the end (after a cut-short last line, on a line of its own)."""
    entry = replace(entry, updated_at=now())
    line = json.dumps(_adapter().dump_python(entry, mode="json"), separators=(",", ":"), sort_keys=True) + "\n"
    where = path(output_dir)
    with _locked(where):  # the folder exists now; a FIFO or a symlink where the ledger is: refused, left as it is
        atomic_files.append_line(where, line.encode("utf-8"))
    return entry


@contextlib.contextmanager
def _locked(where: Path) -> Iterator[None]:
    """Appends from two processes (a night and `digits submit`) never interleave."""
    import filelock

    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(where.parent / f".{where.name}.lock"), timeout=60):
            yield
    except filelock.Timeout:
        raise BadInputError(f"{where}: another digits has held the ledger for a minute; try again") from None
    except OSError as e:
        raise atomic_files.storage_error(where, e) from None


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def new_id(sha256: str) -> str:
    """An id for a submission this job is about to send: the time and the file's hash."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S") + "-" + sha256[:8]


def save_predictions(output_dir: str | Path, labels: np.ndarray, predictions: np.ndarray) -> str:
    """Keep the rows' labels and the estimate's per-row predictions beside the ledger; returns the file's name.

    Named by what it holds, not by the submission file's hash: two blends can write identical
    submission files from different rows behind their estimates, and one must not replace the other's.
    """
    labels, predictions = np.asarray(labels, dtype=np.int8), np.asarray(predictions, dtype=np.int8)
    digest = hashlib.sha256(labels.tobytes() + b"|" + predictions.tobytes()).hexdigest()
    name = f"predictions-{digest}.npz"
    atomic_files.write_npz(
        Path(output_dir) / run_folders.SUBMISSIONS / ARRAYS / name, labels=labels, predictions=predictions
    )
    return name


def load_predictions(output_dir: str | Path, entry: Entry) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, predictions) the entry's estimate counted, or None when it kept none or they are unreadable."""
    if not entry.predictions or "/" in entry.predictions or entry.predictions.startswith("."):
        return None
    where = Path(output_dir) / run_folders.SUBMISSIONS / ARRAYS / entry.predictions
    try:
        with file_reads.open_regular(where) as f, np.load(f, allow_pickle=False) as z:
            labels = file_reads.numbers(z["labels"], "labels", np.int64)
            predictions = file_reads.numbers(z["predictions"], "predictions", np.int64)
    except file_reads.UNREADABLE:  # a FIFO or a folder there is as unusable as a damaged file
        return None
    if labels.shape != predictions.shape or labels.ndim != 1:
        return None
    return labels, predictions


def protected_runs(entries: list[Entry]) -> set[str]:
    """Runs that a submission of the ledger blends (every member) or made: gc never removes them.

    Every entry, whatever its state: accepted or pending ones are what the gate compares against, and
    one that is sending or that Kaggle refused may still be taken, or looked into.
    """
    keep: set[str] = set()
    for entry in entries:
        keep.update(m.run_id for m in entry.members)
        if entry.run_id:
            keep.add(entry.run_id)
    return keep
