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

What is read is checked in content too, and a file may hold anything:
`UNREADABLE` is every exception a parser (json, tomllib, numpy, zipfile,
pydantic) raises on hostile content, so a reader's one ``except UNREADABLE``
turns any of them into its one warning or one line; `why` says in a few
words what was wrong.  A reader converts and checks what it parsed inside that
same ``try`` (`numbers` for arrays), so a value of the wrong type is caught there too.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pipeline.core.errors import BadInputError

if TYPE_CHECKING:
    import numpy as np


class NotRegularFile(BadInputError, ValueError):
    """A path that is a FIFO, a directory, a device or a socket where a file is read.

    Also a ValueError, so the readers that catch `UNREADABLE` treat it like any damaged file.
    """


# What reading a file that is damaged, cut short, of the wrong kind or hostile may raise: any OSError of the read;
# ValueError (not JSON, TOML, UTF-8 or an array; pydantic's ValidationError; Python's 4,300-digit limit on an int
# in JSON or TOML); KeyError, IndexError, TypeError (JSON of the wrong shape: a list where an object is expected,
# an array without the key asked for); EOFError, BadZipFile, zlib.error, NotImplementedError (a zip cut short,
# damaged or of another compression); RecursionError (lists nested thousands deep); OverflowError (a number too
# large for a float, an array header's shape too large for C); MemoryError (a header asking for terabytes).
UNREADABLE: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RecursionError,
    OverflowError,
    MemoryError,
)


def why(error: BaseException) -> str:
    """What an `UNREADABLE` error says about the file, in a few words for a message."""
    from pipeline.core.text import one_line

    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8"
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON ({error.msg} at line {error.lineno}, column {error.colno})"
    if isinstance(error, MemoryError):
        return "it asks for more memory than there is"
    if isinstance(error, ValueError) and "integer string conversion" in str(error):
        return "an integer of thousands of digits"
    errors = getattr(error, "errors", None)  # pydantic's ValidationError: the first field at fault
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return one_line(f"field {where}: {first['msg']}" if where else first["msg"], 200)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return one_line(f"{type(error).__name__}: {error}", 200)


INT_LIMIT = 2**63  # no count, size or reference the job keeps needs more; numpy and C need no more


def bounded(data: Any) -> Any:
    """`data` parsed from JSON, if every integer in it fits in 64 bits; a ValueError otherwise.

    Python reads a count of 4,000 digits (under its 4,300-digit limit) without a word; numpy, a float and
    the formatting of a table would raise on it later.  Iterative: the data may be nested a thousand deep.
    """
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool) and not -INT_LIMIT <= item < INT_LIMIT:
            raise ValueError(f"a number of {len(str(abs(item))):,} digits, too large for a count")
    return data


def numbers(array: Any, name: str, dtype: Any = None) -> np.ndarray:
    """`array` read from a file, if it holds numbers (or booleans) in at least one dimension; as `dtype` if given.

    A ValueError otherwise, inside the reader's ``except UNREADABLE``: strings or bytes where numbers are
    expected, a single value where a row is, a structured record.
    """
    import numpy as np

    array = np.asarray(array)
    if array.ndim == 0 or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{name} holds {array.dtype} {'values' if array.ndim else 'scalar'}, not an array of numbers")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{name} holds complex numbers")
    if dtype is None:
        return array
    with np.errstate(over="ignore", invalid="ignore"):  # 1e308 as float32 is inf: the reader's finite check says so
        return array.astype(dtype)


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
