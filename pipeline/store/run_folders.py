"""Run folders and their ids, and the lock on an output directory.

Layout of one output directory::

    runs/<run-id>/report.json          the run record (`pipeline.store.record`)
    runs/<run-id>/config.toml          the config actually used, re-loadable with --config
    runs/<run-id>/folds/fold-<k>.*     each finished fold (`pipeline.store.fold_files`)
    runs/<run-id>/oof.npz              labels and out-of-fold probabilities of all rows
    runs/<run-id>/misclassified.npz    images, true and predicted labels of OOF mistakes
    runs/<run-id>/test_proba.npy       the run's soft vote on test.csv
    submissions/<run-id>.csv, submissions/submission.csv
    .digits.lock                       held while a command writes here
    .digits.runs.lock                  held shared while a command uses runs, exclusively by gc (`runs_in_use`)
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.core import atomic_files, file_reads
from pipeline.core.errors import BadInputError, BusyError, StorageError
from pipeline.core.text import quoted
from pipeline.store import record, runs_in_use
from pipeline.store.record import REPORT, RUN_ID, RunRecord

RUNS = "runs"
SUBMISSIONS = "submissions"
LOCK = ".digits.lock"
DEFAULT_LAST = 10  # the newest runs `digits compare` shows, and `gc` keeps, when not told how many


def runs_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / RUNS


DEMO_MARK = ".digits-demo"  # in an output dir (as in a data dir) that --demo wrote: its own


def claim_for_demo(output_dir: str | Path) -> None:
    """Let ``--demo`` write its runs and submission into `output_dir` only if that replaces no real submission.

    An output directory given to the demo that holds a submission.csv and
    is not the demo's own is refused; one the demo may use is marked as its own.
    """
    folder = Path(output_dir)
    if (folder / SUBMISSIONS / "submission.csv").exists() and not (folder / DEMO_MARK).exists():
        raise BadInputError(
            f"{folder}: holds a submissions/submission.csv that --demo would replace; the demo writes only into "
            "a new or empty output directory or its own: give another --output-dir"
        )
    atomic_files.write_text(folder / DEMO_MARK, "written by digits run --demo; it may write here again\n")


def current_submission_sha(output_dir: str | Path) -> str | None:
    """The sha256 of ``submissions/submission.csv``, or None when there is none."""
    try:
        return atomic_files.sha256(Path(output_dir) / SUBMISSIONS / "submission.csv")
    except (OSError, BadInputError):  # missing, unreadable, or not a regular file: no current submission known
        return None


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
        raise atomic_files.storage_error(root, e) from None
    raise StorageError(f"cannot create a run folder in {root}: too many runs started in one second")


def list_runs(output_dir: str | Path) -> list[str]:
    """Run ids in the output directory, oldest first."""
    root = runs_root(output_dir)
    if not os.path.isdir(root):
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and RUN_ID.fullmatch(p.name))


def newest_first(output_dir: str | Path, exclude: str = "") -> Iterator[tuple[Path, RunRecord]]:
    """Every readable run, newest first, with its folder; unreadable reports are skipped (the views name them)."""
    for run_id in reversed(list_runs(output_dir)):
        if run_id == exclude:
            continue
        run_dir = runs_root(output_dir) / run_id
        try:
            yield run_dir, record.read(run_dir)
        except BadInputError:
            continue


def _is_path(ref: str | Path) -> bool:
    """Whether `ref` names a run folder by its path (rather than an id, a prefix or ``latest``).

    Through ``os.path``, which answers False for a name no file can have (too long, a NUL, a path through a
    FIFO or a file): such a name is then looked up as an id, and is "not found" like any other unknown run.
    """
    path = os.fspath(ref)
    return os.path.isfile(os.path.join(path, REPORT)) or (
        os.path.isdir(path) and Path(path).parent.name == RUNS and _usable(path)
    )


def _usable(path: str) -> bool:
    """Whether a folder's path can be resolved and named: not when it is longer than the system allows."""
    try:
        os.path.realpath(path, strict=True)
    except (OSError, ValueError, RuntimeError):
        return False
    return True


def home(output_dir: str | Path, ref: str | Path) -> Path:
    """The output directory the run `ref` lives in: for a path to a run folder inside some ``runs/``, the folder
    that holds that ``runs/``; else `output_dir`.  A run is locked, and writes its submissions, there."""
    path = Path(ref)
    if _is_path(ref) and path.absolute().parent.name == RUNS:
        return Path(os.path.normpath(path / os.pardir / os.pardir))  # runs/X -> ., X inside runs/ -> ..
    return Path(output_dir)


def recorded_path(run_dir: str | Path, recorded: str) -> Path:
    """A path a run's record holds (its data dir, its submission), as found from here.

    Records hold absolute paths now; those of older versions hold paths
    relative to the folder the run was started from.  Such a path is taken
    as it is when it exists from here, else under the run's output directory
    (where the run was usually started), else its file name under
    ``submissions/`` there; else as it is, for the caller's "not found".
    """
    path = Path(recorded)
    if path.is_absolute() or os.path.exists(path):  # os.path: a name no file can have is simply not there
        return path
    out = home(run_dir, run_dir)
    for candidate in (out / path, out / SUBMISSIONS / path.name):
        if os.path.exists(candidate):
            return candidate
    return path


def resolve(output_dir: str | Path, ref: str) -> Path:
    """A run folder from an id, a unique id prefix, ``latest``, or a path to the folder.

    Any other name is "not found", also one no file could have (too long, a NUL, not UTF-8) or an empty one.
    """
    path = Path(ref)
    if _is_path(ref):
        if not RUN_ID.fullmatch(path.resolve().name):
            raise BadInputError(f"{path}: not a run folder (its name is not a run id like 20261125-233000)")
        return path
    ids = list_runs(output_dir)
    if ref == "latest":
        if not ids:
            raise BadInputError(f"no runs in {runs_root(output_dir)}")
        return runs_root(output_dir) / ids[-1]
    matches = ([i for i in ids if i == ref] or [i for i in ids if i.startswith(ref)]) if ref else []
    if len(matches) == 1:
        return runs_root(output_dir) / matches[0]
    if not matches:
        raise BadInputError(f"run {quoted(ref)} not found in {runs_root(output_dir)}")
    raise BadInputError(f"run {quoted(ref)} is ambiguous: {', '.join(matches[:5])}")


class Lock:
    """An exclusive lock on an output directory, held for a whole run.

    Built on `filelock` (an OS file lock): the kernel drops it when its holder
    dies, so a lock left by a killed run is taken over without any stale-pid
    guessing.  The holder's pid is written beside it for the error message,
    as a file of its own renamed into place: a symlink there is refused, never
    followed into a user's file.
    """

    def __init__(self, output_dir: str | Path, use_runs: bool = True):
        """`use_runs`: also hold the runs shared (`runs_in_use.InUse`), so gc deletes none while the lock is held."""
        import filelock

        self.dir = Path(output_dir)
        self._use = runs_in_use.InUse(self.dir) if use_runs else None
        self.path = self.dir / LOCK
        self._lock = filelock.FileLock(str(self.path), timeout=0)
        self._timeout = filelock.Timeout

    def __enter__(self) -> Lock:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise atomic_files.storage_error(self.dir, e) from None
        try:
            self._lock.acquire()
        except self._timeout:
            holder = self._holder()
            raise BusyError(
                f"{self.dir}: another digits run{holder} is using this output directory; wait for it or use another --output-dir"
            ) from None
        except OSError as e:  # filelock opens it without following a link: a symlink there is ELOOP, refused
            raise atomic_files.storage_error(self.path, e) from None
        try:  # a file of its own, renamed into place: never through a symlink into a user's file, nor into a FIFO
            atomic_files.write_text(self.dir / (LOCK + ".pid"), f"{os.getpid()}\n")
        except StorageError:
            pass  # the lock itself is what matters; the pid only names the holder in another command's message
        except BaseException:  # something of the user's where the pid goes: refused, named, left as it is
            self._lock.release()
            raise
        if self._use is not None:
            try:
                self._use.__enter__()
            except BaseException:
                self._lock.release()
                raise
        return self

    def _holder(self) -> str:
        try:
            return f" (pid {int(file_reads.read_text(self.dir / (LOCK + '.pid')))})"
        except (OSError, ValueError):
            return ""

    def __exit__(self, *exc: Any) -> None:
        try:
            if self._use is not None:
                self._use.__exit__(*exc)
        finally:
            self._lock.release()
