"""Outputs never destroy what a path was.

The job's own files are regular files of their own: a FIFO, a symlink, a
device or a folder where one goes is refused and left as it is, never waited
on.  An output the user named (``through=True``) goes through a device or a
FIFO and into a symlink's target.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core import atomic_files, file_reads
from tests.helpers import make_fifo
from tests.runfactory import make_run

PNG = b"\x89PNG\r\n\x1a\n"


def _null_device(tmp_path: Path) -> Path:
    """A character device like /dev/null (major 1, minor 3), made where the test can see it."""
    node = tmp_path / "fake-null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root (CAP_MKNOD)")
    return node


def _fifo_reader(fifo: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, got


def test_write_bytes_to_a_named_device_keeps_the_device(tmp_path):
    node = _null_device(tmp_path)
    atomic_files.write_bytes(node, b"x" * 1000, through=True)
    assert stat.S_ISCHR(os.stat(node).st_mode)
    assert list(tmp_path.iterdir()) == [node]  # no temporary file left beside it


def test_atomic_path_writers_go_through_a_named_fifo(tmp_path):
    fifo = tmp_path / "pipe.npy"  # np.save appends .npy to other names
    os.mkfifo(fifo)
    thread, got = _fifo_reader(fifo)
    with atomic_files.atomic_path(fifo, through=True) as tmp:
        np.save(tmp, np.arange(3))
    thread.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got and got[0].startswith(b"\x93NUMPY")


def test_a_named_symlink_is_kept_and_its_target_written(tmp_path):
    real = tmp_path / "elsewhere" / "plot.png"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(real)
    atomic_files.write_bytes(link, b"new", through=True)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new"
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "elsewhere" / "new.png")
    atomic_files.write_text(dangling, "made", through=True)
    assert dangling.is_symlink() and (tmp_path / "elsewhere" / "new.png").read_text() == "made"


def _in_the_way(tmp_path: Path, kind: str) -> tuple[Path, object]:
    """Something of the user's at tmp_path/own.bin, and a way to see it later unchanged."""
    path = tmp_path / "own.bin"
    if kind == "fifo":
        make_fifo(path, unblock_after=60)  # a write that waited on it would end only after a minute
        return path, lambda: stat.S_ISFIFO(os.lstat(path).st_mode)
    if kind == "symlink":
        users = tmp_path / "users-file"
        users.write_bytes(b"the user's")
        path.symlink_to(users)
        return path, lambda: path.is_symlink() and users.read_bytes() == b"the user's"
    if kind == "dangling symlink":
        path.symlink_to(tmp_path / "somewhere-of-the-users")
        return path, lambda: path.is_symlink() and not (tmp_path / "somewhere-of-the-users").exists()
    if kind == "folder":
        (path / "inside").mkdir(parents=True)
        return path, lambda: (path / "inside").is_dir()
    node = _null_device(tmp_path)
    node.rename(path)
    return path, lambda: stat.S_ISCHR(os.lstat(path).st_mode)


KINDS = {
    "fifo": "a FIFO",
    "symlink": "a symlink",
    "dangling symlink": "a symlink",
    "folder": "a folder",
    "device": "a device",
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "write",
    [
        lambda p: atomic_files.write_bytes(p, b"new"),
        lambda p: atomic_files.write_npz(p, a=np.arange(3)),
        lambda p: atomic_files.write_json(p, {"a": 1}),
        lambda p: atomic_files.append_line(p, b"{}\n"),
    ],
    ids=["bytes", "npz", "json", "append"],
)
def test_the_jobs_own_file_is_never_written_through_anything_of_the_users(tmp_path, kind, write):
    path, unchanged = _in_the_way(tmp_path, kind)
    started = time.monotonic()
    with pytest.raises(file_reads.NotRegularFile, match=f"own.bin: {KINDS[kind]} where digits writes"):
        write(path)
    assert time.monotonic() - started < 30  # refused at once, never waited on
    assert unchanged()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".own.bin")]  # no temporary file left


def test_appending_adds_one_line_after_a_line_cut_short(tmp_path):
    path = tmp_path / "ledger.jsonl"
    atomic_files.append_line(path, b"one\n")
    with open(path, "ab") as f:
        f.write(b"cut sh")
    atomic_files.append_line(path, b"two\n")
    assert path.read_bytes() == b"one\ncut sh\ntwo\n"


def test_replacing_a_regular_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "private.json"
    path.write_text("{}")
    path.chmod(0o600)
    atomic_files.write_json(path, {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text().startswith("{")


def test_history_plot_on_a_device_node_leaves_the_node(tmp_path):
    node = _null_device(tmp_path)
    make_run(tmp_path / "out", "20261101-233000")
    r = CliRunner().invoke(cli, ["history", "--output-dir", str(tmp_path / "out"), "--plot", str(node)])
    assert r.exit_code == 0, r.output
    assert stat.S_ISCHR(os.stat(node).st_mode)


def test_report_out_through_a_fifo_and_a_symlink(tmp_path):
    run = make_run(tmp_path / "out", "20261101-233000")
    fifo = tmp_path / "page"
    os.mkfifo(fifo)
    thread, got = _fifo_reader(fifo)
    r = CliRunner().invoke(cli, ["report", "--output-dir", str(tmp_path / "out"), "--out", str(fifo)])
    thread.join(30)
    assert r.exit_code == 0, r.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and got[0].startswith(b"<!DOCTYPE html>")
    assert not list(tmp_path.glob("page-*.png"))  # no PNGs beside something that is not a page file
    target = tmp_path / "pages" / "run.html"
    target.parent.mkdir()
    link = tmp_path / "latest.html"
    link.symlink_to(target)
    r = CliRunner().invoke(cli, ["report", "--output-dir", str(tmp_path / "out"), "--out", str(link)])
    assert r.exit_code == 0, r.output
    assert link.is_symlink() and target.read_text().startswith("<!DOCTYPE html>")
    assert (run / "report.json").is_file()
