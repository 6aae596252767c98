"""Runs in use: a shared hold on an output directory's runs, which ``digits gc`` must not delete under anyone.

The choice: a shared/exclusive lock on the output directory, filelock's
`ReadWriteLock` (SQLite transactions on ``.digits.runs.lock``; the kernel drops
them when their process dies, as it drops the `run_folders.Lock` of
``.digits.lock``).  Every command that reads or writes runs (predict, compare,
report, history, runs, submit, and training through `run_folders.Lock`)
holds it shared for its whole life; gc holds it exclusively while it plans
and deletes, taken without waiting: while any other digits uses the runs, gc
removes nothing and says so (exit 5).  Chosen over per-run read locks with gc
skipping the runs in use, because one hold covers every run a command may
still open (the blend's candidates, the run a resume names) with no window
between listing a run and locking it; gc simply runs again another time.

A folder that does not exist yet, or cannot hold the lock file (a read-only
file system, where gc cannot delete anything either), is used without a hold.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.core import atomic_files
from pipeline.core.errors import BadInputError, BusyError

IN_USE = ".digits.runs.lock"
GC_WAIT = 300.0  # seconds a command waits for a gc that is deleting runs before it gives up (exit 5)


class InUse:
    """A shared hold on the runs of `output_dir` for the length of a ``with`` block (nested holds nest)."""

    def __init__(self, output_dir: str | Path, wait: float = GC_WAIT) -> None:
        self.dir = Path(output_dir)
        self.wait = wait
        self._held: Any = None

    def __enter__(self) -> InUse:
        import filelock

        if not os.path.isdir(self.dir):  # os.path: also False for a name no folder can have (too long, a NUL)
            return self  # no runs there yet: nothing gc could remove
        deadline = time.monotonic() + self.wait
        try:
            lock = filelock.ReadWriteLock(str(self.dir / IN_USE))  # one instance per path: nested holds nest
            while True:  # in short waits: SQLite's own wait would hold a Ctrl-C back until it ends
                try:
                    lock.acquire_read(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                    break
                except filelock.Timeout:
                    if time.monotonic() >= deadline:
                        raise
        except filelock.Timeout:
            raise BusyError(
                f"{self.dir}: digits gc has been removing runs here for {self.wait:g}s; run this again when it ends"
            ) from None
        except Exception:  # noqa: BLE001 - OSError, sqlite3.Error: a read-only folder, where no gc deletes either
            return self
        self._held = lock
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            held.release()


@contextlib.contextmanager
def using(output_dir: str | Path, *others: str | Path) -> Iterator[None]:
    """Shared holds on the runs of `output_dir` and of the other output directories a command touches."""
    seen: list[Path] = []
    with contextlib.ExitStack() as stack:
        for folder in (output_dir, *others):
            key = Path(folder).resolve()
            if key not in seen:
                seen.append(key)
                stack.enter_context(InUse(folder))
        yield


@contextlib.contextmanager
def exclusive(output_dir: str | Path) -> Iterator[None]:
    """For gc: no other digits holds the runs, and none can until the block ends; `BusyError` at once if one does."""
    import filelock

    folder = Path(output_dir)
    try:
        lock = filelock.ReadWriteLock(str(folder / IN_USE), is_singleton=False)
        lock.acquire_write(timeout=0)
    except filelock.Timeout:
        raise BusyError(
            f"{folder}: another digits is using these runs (training, predicting, reading or submitting); gc "
            "removes nothing while one does: run gc again when it has ended"
        ) from None
    except OSError as e:
        raise atomic_files.storage_error(folder / IN_USE, e) from None
    except (sqlite3.Error, ValueError):  # filelock's database, damaged or replaced: gc cannot know who uses the runs
        raise BadInputError(
            f"{folder / IN_USE}: not the lock database digits keeps (damaged?); gc removes nothing without it: "
            "delete the file while no digits runs, then run gc again"
        ) from None
    try:
        yield
    finally:
        lock.release()
