"""`digits schedule cron|systemd`: units that systemd accepts, a job checked now, a cron line quiet on a good night."""

from __future__ import annotations

import getpass
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.nightly import schedule
from tests.helpers import TINY, digits, error_line, write_competition

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here, so the units are not verified"
)


def _verify(folder):
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "digits.service", "digits.timer"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify prints what it ignores (an unknown key, a bad calendar) even where it exits 0: both must be clean
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@needs_systemd_analyze
def test_schedule_systemd_writes_units_that_systemd_analyze_verifies(tmp_path):
    r = digits("schedule", "systemd", "--write", "units", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [
        str(p) for p in (tmp_path / "units" / "digits.service", tmp_path / "units" / "digits.timer")
    ]
    assert "sudo systemctl enable --now digits.timer" in r.stderr
    _verify(tmp_path / "units")


@needs_systemd_analyze
def test_units_for_a_folder_with_spaces_percent_and_dollar_signs_verify_too(tmp_path, monkeypatch):
    home = tmp_path / "my 100% $night"
    home.mkdir()
    monkeypatch.chdir(home)
    r = CliRunner().invoke(cli, ["schedule", "systemd", "--write", "units", "--", "run", "--config", "a b.toml"])
    assert r.exit_code == 0, r.output
    _verify(home / "units")


def test_schedule_prints_both_units_with_this_checkouts_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["schedule", "systemd", "--at", "03:15"])
    assert r.exit_code == 0, r.output
    command = " ".join(schedule.digits_command())
    assert f"WorkingDirectory={tmp_path}\n" in r.output and f"User={getpass.getuser()}\n" in r.output
    assert f"ExecStart={command} run --submit --resume --log-file digits.log\n" in r.output
    assert "KillSignal=SIGTERM\nTimeoutStopSec=120\nSuccessExitStatus=4\n" in r.output
    assert "OnCalendar=*-*-* 03:15:00\nPersistent=true\n" in r.output
    cron = CliRunner().invoke(cli, ["schedule", "cron"])
    assert f"30 1 * * *  cd {tmp_path} && {command} run --submit --resume --quiet" in cron.output


@pytest.mark.parametrize(
    ("job", "said"),
    [
        (["--", "run", "--sumbit"], "the job `digits run --sumbit`: No such option '--sumbit'"),
        (["--", "run", "--epochs", "many"], "the job `digits run --epochs many`: Invalid value for '--epochs'"),
        (["--", "rn"], "the job to schedule must be a digits command (run, train, ...), got 'rn'"),
        (["--", "schedule", "cron"], "the job to schedule must be a digits command"),
        (["--at", "25:00"], "option --at: expected a time of day as HH:MM (24-hour), got '25:00'"),
        (["--write", "units"], "--write and --user are for systemd units"),
    ],
)
def test_a_job_that_would_fail_every_night_is_refused_now(job, said, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["schedule", "cron", *job])
    assert r.exit_code == 2
    assert error_line(r).startswith(f"digits: {said}")
    assert not (tmp_path / "units").exists()


@pytest.mark.slow
def test_the_cron_line_is_quiet_on_a_good_night_and_its_notifications_still_go(receiver, tmp_path):
    """What cron runs: nothing on stdout or stderr, so MAILTO stays silent; the log file and the receiver hear it."""
    pytest.importorskip("apprise", reason="Apprise is the notify extra: pip install -e '.[notify]'")
    write_competition(tmp_path / "data")
    (tmp_path / "night.toml").write_text(f'[notify]\nurls = ["{receiver.url()}"]\non = ["always"]\n')
    printed = digits("schedule", "cron", "--", "run", "--offline", "--config", "night.toml", *TINY, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    (line,) = [line for line in printed.stdout.splitlines() if not line.startswith("#")]
    minute, hour, day, month, weekday, command = line.split(None, 5)
    assert [minute, hour, day, month, weekday] == ["30", "1", "*", "*", "*"]
    night = subprocess.run(["sh", "-c", command.replace("\\%", "%")], capture_output=True, text=True, timeout=300)
    assert (night.returncode, night.stdout, night.stderr) == (0, "", "")
    assert "submission: submissions/submission.csv" in (tmp_path / "digits.log").read_text()
    (got,) = receiver.received
    assert got["title"].startswith("digits run: ok, estimate ") and got["type"] == "success"
