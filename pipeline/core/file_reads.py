"""Reading the files a user can put anything in: regular files only, so a FIFO never hangs the job.

Every file the job reads (a config or variants file, kaggle.json, a run's
report.json, oof.npz and fold files, submission.csv while it is hashed, the
competition's CSVs) may be a FIFO, a directory or a device where a file is
expected.  Opening a FIFO for reading blocks until something writes to it,
which for a nightly job means for ever.  So reading goes through here: the
file is opened without blocking (``O_NONBLOCK``, which a FIFO honours), its
type is checked on the open descriptor (no window between a check and the
open), and anything but a regular file is one `BadInputError`,
``<path>: not a regular file``.

`UNREADABLE` is what reading a damaged saved file may raise, for the readers
that turn a damaged file into a warning rather than an error.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from typing import BinaryIO

from pipeline.core.errors import BadInputError


class NotRegularFile(BadInputError, ValueError):
    """A path that is a FIFO, a directory, a device or a socket where a file is read.

    Also a ValueError, so the readers that catch `UNREADABLE` treat it like any damaged file.
    """


# What reading a saved file (npz, npy, json) that is damaged, cut short or of the wrong kind may raise.
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def not_regular(path: str | Path) -> NotRegularFile:
    return NotRegularFile(f"{path}: not a regular file")


def regular_file(path: str | Path) -> Path:
    """`path` when it is a regular file (or a symlink to one); `NotRegularFile` when it is anything else.

    A missing or unreadable path raises the `OSError` of ``os.stat``
    (`FileNotFoundError`...), so callers keep their own message for those.
    For code that must hand a path to a library; `open_regular` closes the
    window between the check and the open.
    """
    path = Path(path)
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise not_regular(path)
    return path


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for reading in binary, if it is a regular file; `NotRegularFile` otherwise.

    Opened with ``O_NONBLOCK`` so a FIFO cannot block the open, checked with
    ``fstat`` on the descriptor, then switched back to blocking reads.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise not_regular(path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | Path) -> bytes:
    with open_regular(path) as f:
        return f.read()


def read_text(path: str | Path, encoding: str = "utf-8", errors: str = "strict") -> str:
    return read_bytes(path).decode(encoding, errors)
