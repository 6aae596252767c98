"""``digits gc``: delete old run folders, keeping the newest N (readable ones: a folder without a report never counts).

Never removes a run that a submission of the ledger blends (every member)
or made (`pipeline.store.ledger`), the run that made
``submissions/submission.csv`` (matched by sha256, or by the run's own copy
of it when its record is unreadable) nor any member of its blend, nor any
run while another digits uses
the runs (training, predicting, reading, submitting: `runs_in_use`): then gc
removes nothing and exits 5.  gc holds the output directory's lock and the
runs exclusively while deleting, so no run starts and no command reads
meanwhile.

Each folder is first renamed out of the runs' namespace (``runs/.gc-<id>``)
and then deleted, so an interrupted gc never leaves half a run that looks
like a run; such leftovers are removed by the next gc.  Files in
``submissions/`` are left alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core import atomic_files
from pipeline.core import console as ui
from pipeline.core.errors import BadInputError, BusyError, StorageError
from pipeline.core.text import size
from pipeline.store import ledger, run_folders, runs_in_use
from pipeline.store.record import RunRecord, read

if TYPE_CHECKING:
    from rich.console import Console

TRASH = ".gc-"  # prefix of a folder being deleted


@dataclass
class GcEntry:
    """One run folder and what gc does with it, and why."""

    run_id: str
    path: Path
    status: str
    bytes: int
    remove: bool
    reason: str


def gc(
    output_dir: str | Path = ".",
    keep: int = run_folders.DEFAULT_LAST,
    dry_run: bool = False,
    out: Console | None = None,
) -> list[GcEntry]:
    """``digits gc``: remove all but the newest `keep` runs (see the module docstring); returns the plan."""
    if keep < 0:
        raise BadInputError(f"option --keep: must not be negative, got {keep}")
    con = out or ui.console()
    leftovers = trash_folders(output_dir)
    if not run_folders.list_runs(output_dir) and not leftovers:
        con.print(f"no runs in {run_folders.runs_root(output_dir)}; nothing to remove")
        return []
    with contextlib.ExitStack() as stack:
        busy = _lock(stack, output_dir, dry_run)
        if not dry_run:  # no other digits may be using a run while gc deletes: exit 5 at once when one is
            stack.enter_context(runs_in_use.exclusive(output_dir))
        if not dry_run and not busy:  # only the lock holder may delete: another gc may be renaming right now
            _remove_leftovers(leftovers, con)
        plan = plan_gc(output_dir, keep, lock_busy=busy)
        if dry_run:
            ui.heading(con, "Dry run: nothing is deleted")
            if leftovers:
                con.print(
                    f"would remove {len(leftovers)} folder(s) an interrupted gc left in {run_folders.runs_root(output_dir)}"
                )
        else:
            for entry in plan:
                if entry.remove:
                    remove_run(entry.path)
        _print_plan(con, plan, dry_run, busy)
    return plan


def _lock(stack: contextlib.ExitStack, output_dir: str | Path, dry_run: bool) -> bool:
    """Take the output directory's lock for the rest of `stack`; True when another digits holds it."""
    try:
        stack.enter_context(run_folders.Lock(output_dir, use_runs=False))  # gc holds the runs exclusively instead
    except BusyError:
        return True
    except StorageError:
        if not dry_run:
            raise
        return True  # a read-only output dir can still be looked at; assume the worst about who holds it
    return False


def plan_gc(output_dir: str | Path, keep: int, lock_busy: bool) -> list[GcEntry]:
    """Decide which runs go: all but the newest `keep`, sparing what submissions rest on and live runs."""
    ids = run_folders.list_runs(output_dir)
    current = run_folders.current_submission_sha(output_dir)
    submitted = ledger.protected_runs(ledger.read(output_dir, warn=ui.warn))
    root = run_folders.runs_root(output_dir)
    records = {run_id: _read(root / run_id) for run_id in ids}
    # The newest `keep` readable runs: folders without a readable report never take their place (300 empty
    # folders newer than every run would have had gc delete the runs).  An unreadable folder is kept where it
    # was before (among the newest `keep` folders), and wherever it is newer than a run kept.
    readable = [run_id for run_id in ids if records[run_id] is not None]
    newest = set(readable[-keep:]) | set(ids[-keep:]) if keep > 0 else set()
    if newest:
        oldest = min(newest)
        newest |= {run_id for run_id in ids if records[run_id] is None and run_id > oldest}
    made = {run_id for run_id, rec in records.items() if current and _made_submission(output_dir, run_id, rec, current)}
    # every member of the current submission's blend: predicting it again (or comparing with it) needs them all
    blended = {m.run_id for run_id in made if (rec := records[run_id]) and rec.blend for m in rec.blend.members}
    plan = []
    for run_id in ids:
        path, rec = root / run_id, records[run_id]
        status = rec.status if rec is not None else "unreadable"
        remove, reason = _decide(
            run_id in newest, run_id in made, run_id in blended, lock_busy, rec, keep, run_id in submitted
        )
        if path.is_symlink():
            reason += f"; a link to {os.readlink(path)}: only the link goes" if remove else ""
        plan.append(GcEntry(run_id, path, status, 0 if path.is_symlink() else folder_size(path), remove, reason))
    return plan


def _read(path: Path) -> RunRecord | None:
    try:
        return read(path)
    except BadInputError:
        return None


def _made_submission(output_dir: str | Path, run_id: str, rec: RunRecord | None, current: str) -> bool:
    """Whether the run wrote the current submission.csv: by its record, else by its own copy of it."""
    if rec is not None and rec.submission is not None and rec.submission.sha256 == current:
        return True
    own = Path(output_dir) / run_folders.SUBMISSIONS / f"{run_id}.csv"
    return own.is_file() and atomic_files.sha256(own) == current


def _decide(
    newest: bool,
    made_it: bool,
    blended: bool,
    lock_busy: bool,
    rec: RunRecord | None,
    keep: int,
    submitted: bool,
) -> tuple[bool, str]:
    if newest:
        return (
            False,
            f"among the newest {keep}" if rec is not None else f"unreadable, among or newer than the newest {keep}",
        )
    if submitted:
        return False, "in a submission of submissions/ledger.jsonl (its blend or the run that made it)"
    if made_it:
        return False, "made the current submissions/submission.csv"
    if blended:
        return False, "in the blend of the current submissions/submission.csv"
    running = rec is not None and rec.status == "running"
    if lock_busy and running:
        return False, "running (the output directory is locked by another digits)"
    if lock_busy and rec is None:
        return False, "no report yet while another digits holds the lock (may be starting)"
    stale = " (stale: status running, but no digits holds the lock)" if running else ""
    return True, f"older than the newest {keep}{stale}"


def _print_plan(con: Console, plan: list[GcEntry], dry_run: bool, busy: bool) -> None:
    verb = "would remove" if dry_run else "removed"
    t = ui.table([("run", "left"), ("status", "left"), ("size", "right"), ("action", "left")])
    t.add_column("why")
    for e in plan:
        action = ui.styled(verb if e.remove else "keep", "red" if e.remove else "green")
        t.add_row(e.run_id, e.status, size(e.bytes), action, e.reason)
    con.print(t)
    if busy:
        con.print("another digits holds the lock on this output directory: its running run is kept")
    doomed = [e for e in plan if e.remove]
    freed = size(sum(e.bytes for e in doomed))
    con.print(f"{verb} {len(doomed)} of {len(plan)} run(s), {freed}; kept {len(plan) - len(doomed)}")


def folder_size(path: Path) -> int:
    """Bytes of the files under `path` (links counted as links, unreadable files as 0)."""
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def trash_folders(output_dir: str | Path) -> list[Path]:
    """The ``runs/.gc-*`` folders an interrupted gc left behind."""
    root = run_folders.runs_root(output_dir)
    if not os.path.isdir(root):  # also False for an output dir no folder can be (too long, a NUL)
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(TRASH) and p.is_dir() and not p.is_symlink())


def _remove_leftovers(leftovers: list[Path], con: Console) -> None:
    for path in leftovers:
        _delete(path)
    if leftovers:
        con.print(
            f"removed {len(leftovers)} folder(s) an interrupted gc left behind: {', '.join(p.name for p in leftovers)}"
        )


def remove_run(path: Path) -> None:
    """Rename the run folder to ``.gc-<id>`` (it stops being a run at once), then delete it.

    A run that is a symlink to a folder elsewhere loses only the link: what
    it points to is the user's, and renaming the link left it behind.
    """
    if path.is_symlink():
        try:
            path.unlink()
        except OSError as e:
            raise StorageError(f"cannot remove {path}: {e.strerror or e}") from None
        return
    trash = path.parent / f"{TRASH}{path.name}"
    if trash.exists():
        _delete(trash)
    try:
        os.replace(path, trash)
    except OSError as e:
        raise StorageError(f"cannot remove {path}: {e.strerror or e}") from None
    _delete(trash)


def _delete(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except OSError as e:
        raise StorageError(f"cannot remove {path}: {e.strerror or e}") from None
