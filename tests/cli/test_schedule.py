"""`digits schedule cron|systemd`: units that systemd accepts, a job checked now, a cron line quiet on a good night."""

from __future__ import annotations

import getpass
import shlex
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
    (home / "a b.toml").write_text("[train]\nepochs = 3\n")
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
        (["--", "rn"], "the job to schedule must be one of the commands that run unattended (download, predict, "),
        (["--", "schedule", "cron"], "the job to schedule must be one of the commands that run unattended"),
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


# ---- the job is checked as the command itself would check it, and only jobs meant to run unattended ----


@pytest.mark.parametrize(
    ("job", "code", "said"),
    [
        (["run", "--set", "nosuch.key=1"], 2, "the job `digits run --set nosuch.key=1`: unknown option nosuch "),
        (["run", "--epochs", "0"], 2, "the job `digits run --epochs 0`: option train.epochs"),
        (["train", "--set", "train.folds=1"], 2, "the job `digits train --set train.folds=1`: option train.folds"),
        (["run", "--config", "nothere.toml"], 1, "the job `digits run --config nothere.toml`: nothere.toml: config"),
        (["run", "--config", "bad.toml"], 1, "the job `digits run --config bad.toml`: bad.toml: option train.epochs"),
        (["run", "--demo", "--submit"], 2, "the job `digits run --demo --submit`: --demo makes a practice"),
        (["run", "--offline", "--force-download"], 2, "the job `digits run --offline --force-download`: --offline"),
        (["sweep", "nothere.toml"], 1, "the job `digits sweep nothere.toml`: nothere.toml: config file not found"),
        (
            ["sweep", "variants.toml"],
            1,
            "the job `digits sweep variants.toml`: variants.toml: variant wide: unknown option nosuch ",
        ),
        (["run", "--help"], 2, "the job `digits run --help` only prints its help"),
        (["run", "--mlflow", "--set", "tracking.uri=sqlite://"], 2, "the job `digits run --mlflow --set tracking"),
        (["train", "--help"], 2, "the job `digits train --help` only prints its help"),
        (["--version"], 2, "the job to schedule must be one of the commands that run unattended"),
        (["--help"], 2, "the job to schedule must be one of the commands that run unattended"),
        (["compare"], 2, "the job to schedule must be one of the commands that run unattended (download, "),
        (["gc", "--keep", "3"], 2, "the job to schedule must be one of the commands that run unattended"),
        (["report"], 2, "the job to schedule must be one of the commands that run unattended"),
        (["nosuch"], 2, "the job to schedule must be one of the commands that run unattended"),
        (["submit", "--", "x.csv"], 2, "the job `digits submit -- x.csv`: after `--` the schedule's own"),
    ],
)
@pytest.mark.parametrize("kind", ["cron", "systemd"])
def test_a_job_that_fails_every_night_is_refused_with_the_error_it_would_give(
    kind, job, code, said, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text("[train]\nepochs = 0\n")
    (tmp_path / "variants.toml").write_text("[variants.wide]\nnosuch.key = 1\n")
    r = CliRunner().invoke(cli, ["schedule", kind, "--", *job])
    assert r.exit_code == code, r.output
    assert error_line(r).startswith(f"digits: {said}")
    assert "[Service]" not in r.output and "* * *" not in r.output and "Usage:" not in r.output


def test_jobs_that_would_run_are_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "night.toml").write_text("[train]\nepochs = 3\n")
    (tmp_path / "variants.toml").write_text("[variants.wide]\nmodel.hidden = [64]\n")
    for job in (
        ["run", "--submit", "--config", "night.toml", "--set", "train.folds=3"],
        ["run", "--demo"],
        ["train", "--epochs", "2"],
        ["sweep", "variants.toml"],
        ["download"],
        ["predict"],
        ["submit", "-m", "nightly"],
    ):
        r = CliRunner().invoke(cli, ["schedule", "cron", "--", *job])
        assert r.exit_code == 0, (job, r.output)
        assert f"digits {shlex.join(job)} --quiet" in r.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--", "run", "-m", "a\nExecStartPre=/bin/id"], "the job's argument"),
        (["--", "run", "-m", "a\rb"], "the job's argument"),
        (["--", "run", "-m", "a\tb"], "the job's argument"),
        (["--", "run", "-m", "clear\x1b[2J"], "the job's argument"),
        (["--", "run", "-m", "next\x85line"], "the job's argument"),
        (["--", "run", "--config", "a\nb.toml"], "the job's argument"),
        (["--", "run", "--output-dir", "out\nExecStartPre=/bin/id"], "the job's argument"),
        (["--at", "01:30\n"], "option --at"),
        (["--at", "\t01:30"], "option --at"),
        (["--at", "٠١:٣٠"], "option --at"),  # Arabic-Indic digits: not a time cron or systemd reads
    ],
)
@pytest.mark.parametrize("kind", ["cron", "systemd"])
def test_a_control_character_never_reaches_a_unit_or_a_cron_line(kind, args, said, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["schedule", kind, *args])
    assert r.exit_code == 2, r.output
    assert error_line(r).startswith(f"digits: {said}")
    assert "ExecStartPre" not in r.output.replace("\\nExecStartPre", "") and "[Service]" not in r.output


def test_a_control_character_in_the_global_output_dir_or_the_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["--output-dir", "out\nExecStartPre=/bin/id", "schedule", "systemd"])
    assert r.exit_code == 2 and "[Service]" not in r.output
    assert "control character" in error_line(r)
    home = tmp_path / "night\x1b[2J"
    home.mkdir()
    monkeypatch.chdir(home)
    r = CliRunner().invoke(cli, ["schedule", "cron"])
    assert r.exit_code == 2 and "* * *" not in r.output
    assert "control character" in error_line(r)


def _cron_words(output: str) -> list[str]:
    (line,) = [line for line in output.splitlines() if line and not line.startswith("#")]
    return shlex.split(line.split(None, 5)[5].replace("\\%", "%"))


@pytest.mark.parametrize(
    "where",
    [
        ["--output-dir", "nights", "schedule", "cron"],
        ["schedule", "--output-dir", "nights", "cron"],
        ["schedule", "cron", "--output-dir", "nights"],
        ["schedule", "cron", "--", "run", "--submit", "--resume", "--output-dir", "nights"],
        ["--output-dir", "nights", "schedule", "cron", "--", "run", "--submit", "--resume", "--output-dir", "nights"],
    ],
)
def test_the_output_dir_goes_into_the_job(where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, where)
    assert r.exit_code == 0, r.output
    words = _cron_words(r.output)
    job = words[words.index("run") : words.index(">/dev/null")]
    assert job.count("--output-dir") == 1
    at = job.index("--output-dir")
    assert job[at + 1] == "nights"
    assert job[:at] + job[at + 2 :] == ["run", "--submit", "--resume", "--quiet", "--log-file", "digits.log"]


def test_the_output_dir_goes_into_the_systemd_unit_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["--output-dir", "my nights", "schedule", "systemd"])
    assert r.exit_code == 0, r.output
    assert 'run --output-dir "my nights" --submit --resume --log-file digits.log\n' in r.output


def test_two_output_dirs_for_one_job_are_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["--output-dir", "a", "schedule", "cron", "--", "run", "--output-dir", "b"])
    assert r.exit_code == 2
    assert error_line(r).startswith("digits: --output-dir is given twice")
