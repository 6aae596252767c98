"""Every RUN a user names: a name no file can have, or one that leads nowhere, is "not found" (exit 1).

A RUN argument is tried as a run id, a prefix, ``latest`` or a path to a run
folder.  A name too long for a file name (ENAMETOOLONG), one with a NUL or
bytes that are not UTF-8 (Python hands those over as surrogates), ``..``, an
empty name or a path through a FIFO names no run: every command that takes a
run says so in one line, exit 1, and never a traceback (nor, for
``mlflow-sync``, "cannot write to MLflow").
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.cli import cli
from pipeline.store import run_folders
from tests import runfactory as rf
from tests.helpers import error_line, make_fifo, write_competition

NAMES = {
    "256 characters": "a" * 256,
    "5,000 characters": "2" * 5000,
    "a path of 256-character parts": "/".join(["b" * 256] * 3),
    "a run id of 256 digits": "20261101-233000" + "1" * 241,
    "a NUL": "20261101\x00-233000",
    "bytes that are not UTF-8": "20261101-\udcff\udcfe",
    "..": "..",
    ".": ".",
    "an empty name": "",
    "runs/..": "runs/..",
    "a path through a FIFO": "fifo/20261101-233000",
    "a FIFO": "fifo",
    "a CSV name too long for a file": "s" * 300 + ".csv",
}

COMMANDS = {
    "compare": lambda name: ["compare", name],
    "compare two": lambda name: ["compare", "latest", name],
    "report": lambda name: ["report", name],
    "predict": lambda name: ["predict", name],
    "submit": lambda name: ["submit", name, "-m", "x"],
    "train --resume": lambda name: ["train", "--resume", name, "--folds", "2", "--epochs", "1"],
    "mlflow-sync": lambda name: ["mlflow-sync", name],
}


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("names")
    write_competition(out / "data", n_test=280)
    rf.make_run(out, "20261101-233000", seed=1, submission=True)
    rf.make_run(out, "20261102-233000", seed=2, submission=True)
    make_fifo(out / "fifo", unblock_after=600)
    return out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_name_that_is_no_run_is_not_found_in_every_command(output_dir, monkeypatch, command):
    monkeypatch.chdir(output_dir)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{output_dir / 'mlflow.db'}")
    wrong = []
    for what, name in NAMES.items():
        r = rf.invoke(cli, *COMMANDS[command](name))
        lines = [line for line in r.output.splitlines() if line.startswith("digits: ")]
        crashed = r.exception is not None and not isinstance(r.exception, SystemExit)
        if (
            crashed
            or r.exit_code != 1
            or len(lines) != 1
            or not ("not found" in lines[0] or "not a run folder" in lines[0])
        ):
            wrong.append((what, r.exit_code, repr(r.exception)[:200], r.output[-300:]))
    assert not wrong, wrong


def test_resolve_never_raises_an_os_error(output_dir):
    for name in NAMES.values():
        with pytest.raises(run_folders.BadInputError, match="not found"):
            run_folders.resolve(output_dir, name)
        assert run_folders.home(output_dir, name) == output_dir


def test_a_name_of_bytes_from_the_command_line_is_not_found(output_dir):
    """As cron hands it over: raw bytes in argv, not UTF-8, and too long."""
    for name in (b"\xff\xfe-233000", b"c" * 300):
        r = subprocess.run(
            [sys.executable, "-m", "pipeline", "report", name],
            cwd=output_dir,
            capture_output=True,
            text=True,
            errors="backslashreplace",
            timeout=120,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert r.returncode == 1 and "not found" in error_line(r), r.stderr


@pytest.mark.parametrize("command", [["runs"], ["history"], ["compare"], ["report"], ["gc", "--keep", "1"]])
def test_an_output_dir_no_folder_can_be_holds_no_runs(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    # (no NUL: argv cannot carry one, and Click's own check of --output-dir is what would see it)
    for name in ("o" * 300, "out\udcffput", "/".join(["p" * 256] * 2)):
        r = rf.invoke(cli, *command, "--output-dir", name)
        crashed = r.exception is not None and not isinstance(r.exception, SystemExit)
        assert not crashed and "no runs in" in r.output, (r.exception, r.output[-300:])
        assert r.exit_code == (0 if command[0] == "gc" else 1)
