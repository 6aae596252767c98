"""Atomic writes and content hashes: every file a user keeps goes through here.

A file is written to a temporary name in its own folder, flushed, fsynced and
renamed over the target, so a kill or a full disk leaves either the old file
or the new one, never half of one.  OS failures become `StorageError` with the
path at fault.
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
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes `path`.

    For writers that want a file name (Keras' ``model.save``, ``np.save``).
    A regular file (or a new one) is replaced atomically: the temporary file
    sits beside it, is fsynced and renamed over it, keeping the old file's
    permissions.  Anything else is written through (see `destination`).
    """
    shown = Path(path)
    target, atomic = destination(shown)
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


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path`: atomically for a regular file, straight through for a device or FIFO."""
    target, atomic = destination(path)
    if not atomic:
        try:
            with open(target, "wb") as out:
                out.write(data)
        except OSError as e:
            raise storage_error(path, e) from None
        return
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=json_default) + "\n")


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
