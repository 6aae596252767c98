"""The parsed-array cache: each competition CSV parsed once, kept in ``data_dir/.cache``, checked when loaded.

Parsing the 76 MB train.csv costs 1-2 s of pyarrow; loading the cached array
costs about 0.015 s.  An entry is keyed on the SHA-256 of the CSV's bytes,
which the caller computes on every run: 0.06 s for the 76 MB train.csv on this
machine (atomic_files.sha256, page cache warm; a cold read is bounded by the disk,
which the parse would pay anyway).  Older versions remembered that hash in
``hashes.json`` against size and mtime, so a file edited in place with both
kept was trained on as its old parse and reported under its old hash; that
index is no longer read.

What is loaded is checked against what was written: an entry stores the
SHA-256 of the array's bytes beside the array (0.02 s to check for the
42,000 x 785 uint8 train array here) and the full hash of the CSV it came
from, so an entry zeroed, damaged or copied from another file after the fact
is parsed again instead of trained on.  The cache is an optimisation: no
failure here stops a run; it costs one warning line and a parse.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.core import atomic_files
from pipeline.core.errors import StorageError
from pipeline.core.file_reads import UNREADABLE, numbers, open_regular

CACHE = ".cache"
VERSION = 2  # 1: a bare .npy, unchecked, with hashes.json beside it


def entry_path(csv_path: Path, digest: str) -> Path:
    """Where the parsed array of `csv_path`, whose bytes hash to `digest`, is kept."""
    return csv_path.parent / CACHE / f"{csv_path.stem}-v{VERSION}-{digest[:20]}.npz"


def _checksum(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).data).hexdigest()


def load(csv_path: Path, digest: str, columns: int, log: Callable[[str], None]) -> np.ndarray | None:
    """The cached ``(n, columns) uint8`` array for this exact CSV, or None (absent, or not as written)."""
    path = entry_path(csv_path, digest)
    if not path.is_file():
        return None
    try:
        with open_regular(path) as f, np.load(f, allow_pickle=False) as entry:
            arr, checksum, source = numbers(entry["array"], "array"), str(entry["sha256"]), str(entry["source"])
    except UNREADABLE as e:
        log(f"parsed-array cache {path} is corrupt ({type(e).__name__}); parsing {csv_path.name} again")
        return None
    if (
        arr.dtype != np.uint8
        or arr.ndim != 2
        or arr.shape[1] != columns
        or source != digest
        or _checksum(arr) != checksum
    ):
        log(f"parsed-array cache {path} does not match what was written; parsing {csv_path.name} again")
        return None
    return arr


def store(csv_path: Path, digest: str, arr: np.ndarray, log: Callable[[str], None]) -> None:
    """Keep `arr` as the parse of the CSV hashing to `digest`, replacing older entries for that file."""
    cache_dir = csv_path.parent / CACHE
    buf = io.BytesIO()
    # Uncompressed: pixel arrays compress well, but inflating them would cost more than reading them.
    np.savez(buf, array=arr, sha256=np.array(_checksum(arr)), source=np.array(digest))
    try:
        for old in cache_dir.glob(f"{csv_path.stem}-v*.np[yz]"):
            old.unlink(missing_ok=True)
        (cache_dir / "hashes.json").unlink(missing_ok=True)  # left by version 1; nothing reads it
        atomic_files.write_bytes(entry_path(csv_path, digest), buf.getvalue())
    except (OSError, StorageError):
        log(f"could not write the parsed-array cache in {cache_dir}; continuing without it")
