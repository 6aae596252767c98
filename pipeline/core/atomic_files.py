"""Atomic writes and content hashes: every file a user keeps goes through here.

A file is written to a temporary name in its own folder, flushed, fsynced and
renamed over the target, so a kill or a full disk leaves either the old file
or the new one, never half of one.  OS failures become `StorageError` with the
path at fault.

Two kinds of target, chosen by the caller:

- **The job's own files** (the default): a run's files and checkpoints, the
  ledger, the lock's pid file, reports, plots and submissions where digits
  puts them.  Each is a regular file of its own: written where nothing is,
  or over a regular file.  Anything else at that path (a FIFO, which would
  block the write for ever; a symlink, whose target is someone else's file;
  a device; a folder) is a user's, and is refused (`file_reads.NotRegularFile`,
  exit 1) and left as it is, never blocked on.
- **An output the user named** (``through=True``: ``report --out``,
  ``history --plot``, ``schedule --write``): what they named is what they
  get, so a device (``--out /dev/stdout``) or a FIFO is written straight
  through and a symlink's target is written, the link kept (`destination`).

Appending (`append_line`, the ledger) follows the first rule, opened so that
nothing can block or follow a link: ``O_NONBLOCK | O_NOFOLLOW``, the type
checked on the descriptor, as `file_reads.open_regular` reads.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import file_reads
from pipeline.core.errors import StorageError

_REASONS = {
    errno.EEXIST: "not a directory (a file is in the way where a folder should be)",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "folder does not exist",
}


def storage_error(path: str | Path, error: OSError) -> StorageError:
    """One line naming the path and the reason an OS call failed."""
    reason = _REASONS.get(error.errno or 0, error.strerror or str(error))
    return StorageError(f"cannot write {path}: {reason}")


def in_the_way(path: str | Path) -> file_reads.NotRegularFile | None:
    """The refusal to write the job's own file `path`, when something other than a regular file is there."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # nothing there (or nothing to see): the write itself says what is wrong
        return None
    if stat.S_ISREG(mode):
        return None
    return file_reads.NotRegularFile(
        f"{path}: {_kind(mode)} where digits writes a file of its own; left as it is: move it away"
    )


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder")]
    kinds += [(stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _own(path: str | Path) -> None:
    refusal = in_the_way(path)
    if refusal is not None:
        raise refusal


def destination(path: str | Path) -> tuple[Path, bool]:
    """Where the bytes for `path` go, and whether they may be renamed into place there.

    A symlink is followed to its target, which is written (a dangling one
    creates its target): replacing the link with a file would cut whatever
    the user linked it to.  A path that exists and is not a regular file (a
    device such as /dev/null or /dev/stdout, a FIFO) is written straight
    through: renaming a file over it would replace the device node, which as
    root destroys it for the whole machine.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return path, True
    except OSError:
        return path, True  # let the write itself report what is wrong
    return path, stat.S_ISREG(mode)


@contextlib.contextmanager
def atomic_path(path: str | Path, through: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes `path`.

    For writers that want a file name (Keras' ``model.save``, ``np.save``).
    A regular file (or a new one) is replaced atomically: the temporary file
    sits beside it, is fsynced and renamed over it, keeping the old file's
    permissions.  Anything else is refused, or with `through` (an output the
    user named) written through (see `destination`).
    """
    shown = Path(path)
    if not through:
        _own(shown)
    target, atomic = destination(shown) if through else (shown, True)
    folder = target.parent if atomic else Path(tempfile.gettempdir())
    try:
        if atomic:
            folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=folder)
        os.fchmod(fd, _mode_for(target))  # mkstemp's 0600 would make reports private to their writer
        os.close(fd)
    except OSError as e:
        raise storage_error(shown, e) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if atomic:
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp_path, target)
        else:
            with open(tmp_path, "rb") as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    except OSError as e:
        raise storage_error(shown, e) from None
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def _mode_for(target: Path) -> int:
    """An existing file keeps its permissions; a new one gets the umask's."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes, through: bool = False) -> None:
    """Write `data` to the job's own file `path`, atomically; with `through` (a path the user named), also
    straight through a device or FIFO, and into a symlink's target."""
    if not through:
        _own(path)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return
    target, atomic = destination(path)
    if not atomic:
        try:
            with open(target, "wb") as out:
                out.write(data)
        except OSError as e:
            raise storage_error(path, e) from None
        return
    with atomic_path(target, through=True) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str, through: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), through)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=json_default) + "\n")


def append_line(path: str | Path, line: bytes) -> None:
    """Append `line` (ending in a newline) to the job's own file `path`, made if missing, and fsync it.

    After a last line cut short (a crash while it was written), the new line
    starts on a line of its own.  Opened without blocking and without
    following a link, the type checked on the descriptor: a FIFO, a symlink
    or a device there is refused (`in_the_way`) and left as it is.
    """
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as e:
        raise (in_the_way(path) or storage_error(path, e)) from None  # ELOOP: a symlink; ENXIO: a FIFO
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise in_the_way(path) or file_reads.not_regular(path)
        os.set_blocking(fd, True)
        if opened.st_size and os.pread(fd, 1, opened.st_size - 1) != b"\n":
            line = b"\n" + line
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as e:
        raise storage_error(path, e) from None
    finally:
        os.close(fd)


def write_npy(path: str | Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    write_bytes(path, buf.getvalue())


def write_npz(path: str | Path, compress: bool = True, **arrays: np.ndarray) -> None:
    """Arrays as one .npz file; `compress` off for files written often and read once (checkpoints)."""
    buf = io.BytesIO()
    save = np.savez_compressed if compress else np.savez
    save(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub takes the first ** as allow_pickle
    write_bytes(path, buf.getvalue())


def json_default(value: Any) -> Any:
    """JSON for numpy scalars and arrays and paths (``json.dumps(..., default=json_default)``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a regular file's bytes (`file_reads.NotRegularFile` for a FIFO, which would never end)."""
    h = hashlib.sha256()
    with file_reads.open_regular(path) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
