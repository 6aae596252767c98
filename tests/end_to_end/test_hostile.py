"""Hostile inputs found by a test pass: each gives one line and its exit code, and destroys nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core import atomic_files
from pipeline.core.errors import StorageError
from pipeline.store import run_folders
from tests.helpers import error_line, write_competition
from tests.runfactory import make_run


def test_a_run_id_read_back_is_validated_before_it_names_a_file(tmp_path, monkeypatch):
    write_competition(tmp_path / "data")
    run = make_run(tmp_path, "20261101-233000")
    report = json.loads((run / run_folders.REPORT).read_text())
    report["run_id"] = "../../pwned"
    report["config"]["data"]["dir"] = str(tmp_path / "data")
    (run / run_folders.REPORT).write_text(json.dumps(report))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["predict", "20261101-233000"])
    assert r.exit_code == 1 and "run_id" in error_line(r)
    assert not list(tmp_path.parent.rglob("pwned*")) and not list(tmp_path.rglob("pwned*"))


def test_an_output_dir_that_is_a_file_says_not_a_directory(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["predict", "--output-dir", "afile"])  # Click's own check of the option
    assert r.exit_code == 2 and "'afile' is a file" in r.output
    with pytest.raises(StorageError) as e, run_folders.Lock(tmp_path / "afile"):  # where Click cannot check
        pass
    assert (
        str(e.value)
        == f"cannot write {tmp_path / 'afile'}: not a directory (a file is in the way where a folder should be)"
    )
    with pytest.raises(StorageError, match=r"x\.json: not a directory \(a file is in the way"):
        atomic_files.write_text(tmp_path / "afile" / "x.json", "{}")


def test_a_newline_in_a_path_stays_on_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["report", "--output-dir", "out", "bad\nrun"])
    line = error_line(r)
    assert r.exit_code == 1 and "bad\\nrun" in line and "\n" not in line


def test_compare_into_a_full_disk_is_one_line_and_exit_6(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    make_run(tmp_path, "20261101-233000")
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "pipeline", "compare", "--output-dir", str(tmp_path)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert r.returncode == 6 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["digits: cannot write to standard output: no space left on device"]


def test_compare_into_a_closed_pipe_is_quiet(tmp_path):
    for k in range(12):
        make_run(tmp_path, f"202611{k + 1:02d}-233000", seed=k)
    p = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "runs", "--output-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None
    p.stdout.read(10)
    p.stdout.close()  # like `digits runs | head -c 10`
    err = p.stderr.read().decode() if p.stderr else ""
    p.wait(timeout=120)
    assert "Traceback" not in err
