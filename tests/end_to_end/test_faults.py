"""Faults a cron job meets: read-only or full disks, files vanishing, logs."""

import errno
import os
import subprocess

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core import atomic_files
from tests.helpers import TINY, digits, error_line, write_competition


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run with its submission, shared by the tests below."""
    root = tmp_path_factory.mktemp("trained")
    write_competition(root / "data")
    r = digits("run", "--offline", "--data-dir", "data", *TINY, cwd=root)
    assert r.returncode == 0, r.stderr
    return root


@pytest.fixture
def read_only(tmp_path):
    """A real read-only file system (a read-only bind mount), where the OS allows one."""
    target = tmp_path / "ro"
    target.mkdir()
    (target / "submissions").mkdir()
    (target / "submissions" / "submission.csv").write_text("ImageId,Label\n1,4\n")
    try:
        subprocess.run(["mount", "--bind", str(target), str(target)], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot make a read-only bind mount here (needs root): {e}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


def test_read_only_output_dir_exits_6_and_touches_nothing(tmp_path, read_only):
    write_competition(tmp_path / "data")
    r = digits("run", "--offline", "--data-dir", "data", "--output-dir", str(read_only), *TINY, cwd=tmp_path)
    assert r.returncode == 6
    assert "read-only file system" in error_line(r) and str(read_only) in error_line(r)
    assert (read_only / "submissions" / "submission.csv").read_text() == "ImageId,Label\n1,4\n"


@pytest.mark.slow
def test_disk_full_while_writing_the_submission(trained, monkeypatch):
    monkeypatch.chdir(trained)
    before = (trained / "submissions" / "submission.csv").read_bytes()
    real_replace = os.replace

    def full(src, dst, *a, **k):
        if str(dst).endswith(".csv"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(atomic_files.os, "replace", full)
    r = CliRunner().invoke(cli, ["predict"])
    assert r.exit_code == 6 and "no space left on device" in r.output
    assert (trained / "submissions" / "submission.csv").read_bytes() == before
    assert not [p for p in (trained / "submissions").iterdir() if ".tmp" in p.name]


@pytest.mark.slow
def test_test_file_deleted_before_predict(trained, monkeypatch):
    monkeypatch.chdir(trained)
    before = (trained / "submissions" / "submission.csv").read_bytes()
    test_csv = trained / "data" / "test.csv"
    saved = test_csv.read_bytes()
    test_csv.unlink()
    try:
        r = CliRunner().invoke(cli, ["predict"])
        assert r.exit_code == 1 and "data/test.csv: file not found" in r.output
        assert (trained / "submissions" / "submission.csv").read_bytes() == before
    finally:
        test_csv.write_bytes(saved)


@pytest.mark.slow
def test_log_file_keeps_one_plain_line_per_fold(tmp_path):
    write_competition(tmp_path / "data")
    r = digits("run", "--offline", "--data-dir", "data", "--log-file", "night.log", *TINY, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    log = (tmp_path / "night.log").read_text()
    assert log.count("val accuracy") == 2 and "submission: submissions/submission.csv" in log
    assert "\x1b[" not in log  # no terminal escapes in a log file


def test_unwritable_log_file_is_one_line(tmp_path):
    r = digits("run", "--demo", "--log-file", "nodir/x.log", cwd=tmp_path)
    assert r.returncode == 6 and "cannot open log file nodir/x.log" in error_line(r)
