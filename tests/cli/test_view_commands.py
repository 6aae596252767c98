"""The error contract of compare, report, history, runs and gc, through the real `digits` group.

A failure the user can act on is exactly one ``digits: <message>`` line on
stderr, no traceback, and the documented exit code: 1 bad input, 2 usage,
6 cannot write (5, busy, is no failure for these commands: gc works around a
held lock, see tests/store/test_gc.py).  In-process through `pipeline.cli.cli` (what
``main()`` runs), and once per command in a real subprocess.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.cli import cli
from tests import runfactory as rf
from tests.helpers import digits, error_line

T0 = dt.datetime(2026, 11, 20, 23, 30, 0)
WRONG_TYPES = {"run_id": 5, "folds": "seven", "status": 3}


@pytest.fixture(autouse=True)
def plain_console(monkeypatch):
    rf.plain_terminal(monkeypatch)


def one_error(result, code: int) -> str:
    """The single `digits:` line of a failed in-process command, after checking the contract."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("digits: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def out(tmp_path) -> Path:
    """Two good runs."""
    rf.nightly(tmp_path, 2)
    return tmp_path


@pytest.fixture
def a_file(tmp_path) -> Path:
    """A regular file, so that ``a_file/x`` cannot be created."""
    path = tmp_path / "not-a-folder"
    path.write_text("x")
    return path


def test_compare_unknown_run_is_bad_input(out):
    line = one_error(rf.invoke(cli, "compare", "--output-dir", out, "20991231"), 1)
    assert line == f"digits: run '20991231' not found in {out / 'runs'}"


def test_compare_unknown_format_is_usage(out):
    result = rf.invoke(cli, "compare", "--output-dir", out, "--format", "yaml")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "Invalid value for '--format'" in result.stderr


def test_report_of_a_report_with_wrong_types_is_one_line(out):
    run = rf.make_run(out, T0)
    rf.write_raw(run, WRONG_TYPES)
    line = one_error(rf.invoke(cli, "report", "--output-dir", out, run.name), 1)
    assert line.startswith(f"digits: {run / 'report.json'}: field run_id: ") and "(and " in line


def test_report_that_cannot_be_written_is_storage(out, a_file):
    line = one_error(rf.invoke(cli, "report", "--output-dir", out, "--out", a_file / "page.html"), 6)
    assert line.startswith(f"digits: cannot write {a_file / 'page.html'}")


def test_history_with_no_readable_run_is_bad_input(tmp_path):
    for run in rf.nightly(tmp_path, 2):
        rf.write_raw(run, WRONG_TYPES)
    result = rf.invoke(cli, "history", "--output-dir", tmp_path)
    assert one_error(result, 1) == "digits: none of the 2 run(s) could be read"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2 and all("field run_id" in w for w in warnings)


def test_history_plot_that_cannot_be_written_is_storage(out, a_file):
    line = one_error(rf.invoke(cli, "history", "--output-dir", out, "--plot", a_file / "h.png"), 6)
    assert line.startswith(f"digits: cannot write {a_file / 'h.png'}")


def test_runs_without_runs_is_bad_input(tmp_path):
    assert one_error(rf.invoke(cli, "runs", "--output-dir", tmp_path), 1) == f"digits: no runs in {tmp_path / 'runs'}"


def test_gc_negative_keep_is_usage(out):
    result = rf.invoke(cli, "gc", "--output-dir", out, "--keep", "-1")
    assert result.exit_code == 2 and "Traceback" not in result.stderr and "--keep" in result.stderr


def test_gc_that_cannot_take_the_lock_is_storage(out):
    (out / ".digits.lock").mkdir()  # the lock file cannot be opened
    line = one_error(rf.invoke(cli, "gc", "--output-dir", out, "--keep", "1"), 6)
    assert line.startswith(f"digits: cannot write {out / '.digits.lock'}")
    assert len(list((out / "runs").iterdir())) == 2  # nothing removed without the lock


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["compare", "20991231"], 1, "not found"),
        (["report", "BAD"], 1, "field run_id"),
        (["history", "--plot", "FILE/h.png"], 6, "cannot write"),
        (["runs", "--output-dir", "EMPTY"], 1, "no runs in"),
        (["gc", "--keep", "1", "--output-dir", "LOCKED"], 6, "cannot write"),
    ],
    ids=["compare", "report", "history", "runs", "gc"],
)
def test_each_command_in_a_real_process(out, a_file, tmp_path, args, code, expected):
    bad = rf.make_run(out, T0)
    rf.write_raw(bad, WRONG_TYPES)
    locked = tmp_path / "locked"
    rf.nightly(locked, 1)
    (locked / ".digits.lock").mkdir()
    names = {
        "BAD": bad.name,
        "FILE/h.png": str(a_file / "h.png"),
        "EMPTY": str(tmp_path / "empty"),
        "LOCKED": str(locked),
    }
    argv = [names.get(a, a) for a in args]
    if "--output-dir" not in argv:
        argv += ["--output-dir", str(out)]
    done = digits(*argv, cwd=tmp_path, timeout=120)
    assert done.returncode == code, done.stderr
    assert expected in error_line(done)  # one line, no traceback
