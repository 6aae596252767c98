"""Outputs never destroy what a path was: devices, FIFOs and symlinks are written through, not replaced."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core import atomic_files
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


def test_write_bytes_to_a_device_keeps_the_device(tmp_path):
    node = _null_device(tmp_path)
    atomic_files.write_bytes(node, b"x" * 1000)
    assert stat.S_ISCHR(os.stat(node).st_mode)
    assert list(tmp_path.iterdir()) == [node]  # no temporary file left beside it


def test_atomic_path_writers_go_through_a_fifo(tmp_path):
    fifo = tmp_path / "pipe.npy"  # np.save appends .npy to other names
    os.mkfifo(fifo)
    thread, got = _fifo_reader(fifo)
    with atomic_files.atomic_path(fifo) as tmp:
        np.save(tmp, np.arange(3))
    thread.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got and got[0].startswith(b"\x93NUMPY")


def test_a_symlink_is_kept_and_its_target_written(tmp_path):
    real = tmp_path / "elsewhere" / "plot.png"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(real)
    atomic_files.write_bytes(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new"
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "elsewhere" / "new.png")
    atomic_files.write_text(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "elsewhere" / "new.png").read_text() == "made"


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
