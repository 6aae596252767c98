"""The data folder: temporary files, safe unzipping, installing files and the manifest.

Downloads land in temporary names (``.fetch.*``) inside ``data_dir``; the
zip's members are extracted to temporary names beside their targets (checking
each member's path, size and CRC), and only when everything is extracted are
the files renamed into place, with the manifest (sizes, SHA-256, Kaggle's file
list) written atomically last.  A killed run leaves no manifest, so nothing
half-written is ever trusted, and its leftovers are removed by a later run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any, NamedTuple

from pipeline.core import atomic_files, file_reads
from pipeline.core.errors import KaggleError, StorageError
from pipeline.core.text import one_line, quoted, size

REQUIRED = ("train.csv", "test.csv", "sample_submission.csv")
MANIFEST = ".manifest.json"  # inside data_dir
TMP_PREFIX = ".fetch."  # our temporary files in data_dir: never trusted, cleaned up
STALE_TMP_SECONDS = 3600.0  # leftovers of a killed run older than this are removed
SPACE_MARGIN = 16 << 20
CHUNK = 1 << 20


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back until the block is done, then deliver them.

    For the few steps that must not be cut in half by Ctrl-C (or SIGTERM, which
    the CLI turns into the same): creating a temporary file and recording its
    name, installing the files with their manifest, removing temporary files.
    Outside the main thread (where signal handlers cannot be changed) the block
    simply runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        caught.append(signum)

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, hold)}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, hold)
        yield
    finally:
        try:
            for sig in (signal.SIGHUP, signal.SIGTERM):
                if sig in previous:
                    signal.signal(sig, previous[sig])
        finally:
            signal.signal(signal.SIGINT, previous[signal.SIGINT])
    for signum in caught[:1]:
        handler = previous.get(signal.Signals(signum))
        if callable(handler):
            handler(signum, None)  # Python's default SIGINT handler and the CLI's SIGTERM one raise KeyboardInterrupt
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)


class Corrupt(Exception):
    """The zip that arrived is truncated or damaged."""


def read_manifest(data_dir: Path) -> dict | None:
    """The manifest, or None when there is none or it is damaged (the files are then downloaded again).

    One that is not a regular file (a FIFO would hang the read, and the
    download's write of a new one) is refused with one line.
    """
    path = Path(data_dir) / MANIFEST
    try:
        manifest = json.loads(file_reads.read_text(path))
    except file_reads.NotRegularFile:
        raise
    except file_reads.UNREADABLE:  # not JSON, nested thousands deep, a number of thousands of digits
        return None
    return manifest if _well_formed(manifest) else None


def _well_formed(manifest: Any) -> bool:
    """Whether the manifest is what `install` writes: its competition, and each file's size (a count) and hash.

    Anything else (a list, a size of inf or "12", a file's entry that is not a table) is a damaged manifest,
    whose files are downloaded again.
    """
    if not isinstance(manifest, dict) or not isinstance(manifest.get("competition"), str):
        return False
    files = manifest.get("files")
    return isinstance(files, dict) and all(
        isinstance(meta, dict)
        and type(meta.get("size")) is int
        and 0 <= meta["size"] < 2**63
        and isinstance(meta.get("sha256"), str)
        for meta in files.values()
    )


def prepare_dir(data_dir: Path) -> None:
    """Create data_dir and prove we can write there, before talking to Kaggle."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with uninterrupted():
            fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX + "probe.", suffix=".part", dir=data_dir)
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise atomic_files.storage_error(data_dir, e) from None


def remove_stale_temps(data_dir: Path) -> None:
    """Delete temporary files a killed run left behind.

    Ours in data_dir and beside the targets of its symlinks, and atomic_files.atomic_path's for the manifest.
    """
    cutoff = time.time() - STALE_TMP_SECONDS
    leftovers = [*data_dir.glob(TMP_PREFIX + "*"), *data_dir.glob(f".{MANIFEST}.*.tmp*")]
    with contextlib.suppress(OSError):
        for link in (p for p in data_dir.iterdir() if p.is_symlink()):
            dest, _ = atomic_files.destination(link)
            leftovers += dest.parent.glob(f"{TMP_PREFIX}{dest.name}.*.part")
    for leftover in leftovers:
        with contextlib.suppress(OSError):
            if leftover.is_file() and not leftover.is_symlink() and leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def temp_path(directory: Path, name: str, temps: list[Path]) -> Path:
    """A new empty temporary file for `name` in `directory`, recorded in `temps` for clean-up."""
    with uninterrupted():
        try:
            fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{name}.", suffix=".part", dir=directory)
            os.close(fd)
        except OSError as e:
            raise atomic_files.storage_error(directory / name, e) from None
        temps.append(Path(tmp))
    return Path(tmp)


def remove(temps: list[Path]) -> None:
    """Delete the temporary files and empty `temps`; an interrupt waits until they are gone.

    Renamed ones are gone already.  Each is dropped from `temps` once deleted,
    so a clean-up cut short can be finished by another.
    """
    with uninterrupted():
        while temps:
            with contextlib.suppress(OSError):
                temps[-1].unlink()
            temps.pop()


def check_space(data_dir: Path, need: int) -> None:
    try:
        free = shutil.disk_usage(data_dir).free
    except OSError:
        return
    if free < need + SPACE_MARGIN:
        raise StorageError(
            f"cannot write {data_dir}: no space left on device (the download needs about {size(need)}, "
            f"{size(free)} free)"
        )


def open_new(path: Path, shown: Path) -> IO[bytes]:
    """`path` opened for writing; a StorageError naming `shown` when it cannot be."""
    try:
        return open(path, "wb")
    except OSError as e:
        raise atomic_files.storage_error(shown, e) from None


def write(out: IO[bytes], data: bytes, shown: Path) -> None:
    try:
        out.write(data)
    except OSError as e:
        raise atomic_files.storage_error(shown, e) from None


def fsync(out: IO[bytes], shown: Path) -> None:
    try:
        out.flush()
        os.fsync(out.fileno())
    except OSError as e:
        raise atomic_files.storage_error(shown, e) from None


def truncate(out: IO[bytes], shown: Path) -> None:
    try:
        out.seek(0)
        out.truncate()
    except OSError as e:
        raise atomic_files.storage_error(shown, e) from None


class Placement(NamedTuple):
    """An extracted file waiting in `tmp` to become `dest` (a symlink's target, when the name is a link)."""

    tmp: Path
    dest: Path
    atomic: bool  # dest is a regular file or new: rename over it; else (a device, a FIFO) write through
    shown: Path  # the name in data_dir, for messages


def extract(zip_path: Path, data_dir: Path, temps: list[Path]) -> tuple[dict, list[Placement]]:
    """Extract every member to a temporary name beside its destination, checking CRCs and sizes.

    The destination of data_dir/name is that path, or, when it is a symlink,
    the link's target (see `atomic_files.destination`): the link stays a link.
    Returns {member: {'size', 'sha256'}} and the placements for `install`.
    """
    extracted: dict[str, dict] = {}
    plan: list[Placement] = []
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            targets = {m.filename: _safe_target(data_dir, m.filename) for m in members}
            names = {PurePosixPath(m.filename).as_posix() for m in members}
            missing = [name for name in REQUIRED if name not in names]
            if missing:
                raise KaggleError(f"the zip from Kaggle lacks {', '.join(missing)}; nothing in {data_dir} was changed")
            for member in members:
                target = targets[member.filename]
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    dest, atomic = atomic_files.destination(target)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    fifo = not atomic and stat.S_ISFIFO(os.stat(dest).st_mode)
                except OSError as e:
                    raise atomic_files.storage_error(target, e) from None
                if fifo:  # written through, it would wait for a reader for ever; read, it would never be a CSV
                    raise file_reads.not_regular(target)
                tmp = temp_path(dest.parent if atomic else data_dir, dest.name, temps)
                digest = hashlib.sha256()
                written = 0
                with open_new(tmp, target) as out, archive.open(member) as source:
                    while block := source.read(CHUNK):  # ZipExtFile checks the CRC at the end
                        write(out, block, target)
                        digest.update(block)
                        written += len(block)
                    fsync(out, target)
                if written != member.file_size:
                    raise Corrupt(f"{member.filename} has {written} bytes, the zip says {member.file_size}")
                extracted[PurePosixPath(member.filename).as_posix()] = {"size": written, "sha256": digest.hexdigest()}
                plan.append(Placement(tmp, dest, atomic, target))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise Corrupt(one_line(str(e)) or type(e).__name__) from None
    return extracted, plan


def _safe_target(data_dir: Path, name: str) -> Path:
    """data_dir/name, or a KaggleError when the member would land outside data_dir."""
    parts = PurePosixPath(name).parts
    unsafe = (
        not name
        or name.startswith(("/", "\\"))
        or "\\" in name
        or "\x00" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or any(part in ("", ".", "..") for part in parts)
    )
    reserved = bool(parts) and (parts[0] == MANIFEST or any(p.startswith(TMP_PREFIX) for p in parts))
    if not unsafe and not reserved:
        target = data_dir.joinpath(*parts)
        try:
            inside = target.parent.resolve().is_relative_to(data_dir.resolve())
        except OSError:
            inside = False
        if inside:
            return target
    raise KaggleError(
        one_line(
            f"refusing the zip from Kaggle: member {quoted(name)} would be written outside {data_dir} or over "
            "its bookkeeping files; nothing was changed"
        )
    )


def install(data_dir: Path, plan: list[Placement], manifest: dict[str, Any]) -> None:
    """Rename the extracted files into place (through symlinks); the manifest goes last.

    The old manifest is removed first, so a run killed half-way (SIGKILL, a
    power cut) leaves a set of files that no later run trusts (it downloads
    again); SIGINT, SIGTERM and SIGHUP wait until everything is in place.
    """
    with uninterrupted():
        _install(data_dir, plan, manifest)


def _install(data_dir: Path, plan: list[Placement], manifest: dict[str, Any]) -> None:
    manifest_path = data_dir / MANIFEST
    try:
        manifest_path.unlink(missing_ok=True)
    except OSError as e:
        raise atomic_files.storage_error(manifest_path, e) from None
    for placed in plan:
        try:
            if placed.atomic:
                os.replace(placed.tmp, placed.dest)
            else:
                with open(placed.tmp, "rb") as source, open(placed.dest, "wb") as out:
                    shutil.copyfileobj(source, out)
        except OSError as e:
            raise atomic_files.storage_error(placed.shown, e) from None
    for folder in {data_dir, *(placed.dest.parent for placed in plan)}:
        with contextlib.suppress(OSError):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    atomic_files.write_json(manifest_path, manifest)
