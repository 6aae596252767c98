"""Hearing about a command's end: `digits ... --notify URL` and ``[notify]``, told to a real receiver on loopback.

The end-to-end cases run `python -m pipeline` in a subprocess, as cron would, against the HTTP receiver
of tests/notify_receiver.py (Apprise's json:// form); the ways a command can end that are hard to cause
from outside (a bug, Ctrl-C, Click's own usage error) go through Click's runner in-process.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.store import run_folders
from tests.helpers import ROOT, TINY, digits, error_line, write_competition
from tests.runfactory import make_run

pytest.importorskip("apprise", reason="Apprise is the notify extra: pip install -e '.[notify]'")


def _warnings(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if "warning: " in line]


def test_a_failed_night_is_told_by_default_with_its_exit_code_meaning_and_reason(receiver, tmp_path):
    r = digits("run", "--offline", "--data-dir", "nothing-here", "--notify", receiver.url(), cwd=tmp_path)
    assert r.returncode == 1
    line = error_line(r)
    assert _warnings(r) == []
    (got,) = receiver.received
    assert got["title"] == "digits run: failed (exit 1, bad input)"
    assert got["type"] == "failure"
    assert "command: digits run\nexit code: 1, bad input (a data file, config file or run folder)\n" in got["message"]
    assert f"reason: {line}\n" in got["message"]


def test_the_config_files_urls_are_told_and_a_config_that_cannot_be_built_still_tells_the_command_lines(
    receiver, tmp_path
):
    (tmp_path / "night.toml").write_text(f'[notify]\nurls = ["{receiver.url("from-file")}"]\n')
    r = digits("run", "--offline", "--config", "night.toml", "--data-dir", "nothing-here", cwd=tmp_path)
    assert r.returncode == 1 and [g["path"] for g in receiver.received] == ["/from-file"]
    bad = digits("run", "--offline", "--set", "train.folds=1", "--notify", receiver.url("from-option"), cwd=tmp_path)
    assert bad.returncode == 2 and "train.folds" in error_line(bad)
    assert [g["path"] for g in receiver.received] == ["/from-file", "/from-option"]
    assert "exit code: 2, usage" in receiver.received[-1]["message"]


def test_an_unreachable_receiver_is_one_warning_line_and_the_same_exit_code(closed_port, tmp_path):
    r = digits(
        "run", "--offline", "--data-dir", "nothing-here", "--notify", f"json://127.0.0.1:{closed_port}/", cwd=tmp_path
    )
    assert r.returncode == 1
    assert error_line(r).startswith("digits: nothing-here: ")
    (warning,) = _warnings(r)
    assert warning.endswith(
        "warning: notification not sent: JSON: A Connection error occurred sending JSON notification to 127.0.0.1."
    )
    assert len(r.stderr.splitlines()) == 2  # the error, the warning: nothing from Apprise itself


def test_a_receiver_that_never_answers_does_not_hold_the_night(silent_port, tmp_path):
    # ?rto=600: Apprise would wait ten minutes for the answer, and the interpreter for Apprise; the
    # [notify] timeout leaves the request behind.  The subprocess's own timeout is only the test's guard.
    url = f"json://127.0.0.1:{silent_port}/?rto=600"
    r = digits(
        "run",
        "--offline",
        "--data-dir",
        "nothing-here",
        "--set",
        "notify.timeout=1",
        "--notify",
        url,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 1
    (warning,) = _warnings(r)
    assert warning.endswith("warning: notification not sent: no answer within 1 s (the [notify] timeout)")


def test_without_apprise_installed_notify_says_to_install_the_extra(receiver, tmp_path):
    blocked = "import sys; sys.modules['apprise'] = None; from pipeline.cli import main; main()"
    r = subprocess.run(
        [sys.executable, "-c", blocked, "run", "--offline", "--data-dir", "nothing-here", "--notify", receiver.url()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and error_line(r).startswith("digits: nothing-here: ")
    (warning,) = _warnings(r)
    assert warning.endswith("warning: notification not sent: notifications need Apprise: pip install 'digits[notify]'")
    assert receiver.received == []


def test_a_good_end_is_not_told_by_default_and_a_kaggle_failure_is(fake_kaggle, receiver, tmp_path):
    ok = digits("download", "--data-dir", str(tmp_path / "d"), "--notify", receiver.url(), cwd=ROOT, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert _warnings(ok) == [] and receiver.received == []
    fake_kaggle.fail("ListDataFiles", 403, times=None)
    refused = digits("download", "--data-dir", str(tmp_path / "d"), "--notify", receiver.url(), cwd=ROOT, timeout=120)
    assert refused.returncode == 3
    (got,) = receiver.received
    assert got["title"] == "digits download: failed (exit 3, Kaggle)"
    assert f"reason: {error_line(refused)}" in got["message"]


def test_a_broken_setup_is_said_on_a_good_end_too(fake_kaggle, tmp_path):
    """A night that went well still says its notifications would not go out: better than learning it at a failure."""
    ok = digits("download", "--data-dir", str(tmp_path / "d"), "--notify", "nonsense://x", cwd=ROOT, timeout=120)
    assert ok.returncode == 0
    (warning,) = _warnings(ok)
    assert warning.endswith(
        "warning: notifications will not be sent: notify URL 1 (nonsense://) is not one Apprise understands"
    )


@pytest.mark.slow
def test_a_submitted_night_is_told_with_its_run_estimate_gate_and_score(fake_kaggle, receiver, tmp_path):
    from tests.end_to_end.test_kaggle_commands import _serve_learnable_competition

    _serve_learnable_competition(fake_kaggle, tmp_path)
    args = ("run", "--submit", *TINY, "--set", "notify.on=submitted", "--notify", receiver.url())
    r = digits(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (run_id,) = run_folders.list_runs(tmp_path)
    (got,) = receiver.received
    assert got["title"].startswith("digits run: submitted, estimate ") and got["type"] == "success"
    body = got["message"]
    assert "exit code: 0, ok\n" in body
    assert f"run: {run_id}, recipe mlp, complete" in body
    assert "gate: submitted: no earlier submission was accepted by Kaggle" in body
    assert "leaderboard: 0." in body and "(public score)" in body


def test_a_busy_output_dir_names_no_run_of_the_command_that_holds_it(receiver, tmp_path):
    write_competition(tmp_path / "data")
    with run_folders.Lock(tmp_path):
        make_run(tmp_path, "20261125-013000", status="running")  # the holder's run, written just now
        r = digits("train", "--data-dir", "data", *TINY, "--notify", receiver.url(), cwd=tmp_path)
    assert r.returncode == 5
    (got,) = receiver.received
    assert got["title"] == "digits train: failed (exit 5, output dir busy)"
    assert "run:" not in got["message"]


# ---- the ends that are hard to cause from outside: in-process ------------------------------------------------


def test_a_bug_is_told_as_a_crash_and_keeps_its_traceback(receiver, monkeypatch, tmp_path):
    from pipeline.nightly import submit

    def broken(*args, **kwargs):
        raise TypeError("an argument went missing")

    monkeypatch.setattr(submit, "submit", broken)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["submit", "--notify", receiver.url()])
    assert isinstance(r.exception, TypeError)  # not swallowed: the traceback is what a bug needs
    (got,) = receiver.received
    assert got["title"] == "digits submit: crashed (exit 1, a bug)"
    assert "reason: TypeError: an argument went missing" in got["message"]


def test_an_interrupted_run_is_told_with_exit_4(receiver, monkeypatch, tmp_path):
    from pipeline.nightly import predict

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, "predict", interrupted)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["predict", "--notify", receiver.url()])
    assert r.exit_code == 4
    (got,) = receiver.received
    assert got["title"] == "digits predict: failed (exit 4, interrupted)"
    assert "reason: digits: interrupted (SIGINT/SIGTERM/SIGHUP)" in got["message"]


def test_a_usage_error_found_by_click_is_told_with_clicks_line(receiver, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_competition(tmp_path / "data")
    r = CliRunner().invoke(cli, ["train", "--notify", receiver.url(), "--epochs", "many"])
    assert r.exit_code == 2
    (got,) = receiver.received
    assert got["title"] == "digits train: failed (exit 2, usage)"
    assert "reason: Error: Invalid value for '--epochs': 'many' is not a valid integer." in got["message"]
