"""The cron line and the systemd units of `digits schedule`: their fields, their quoting, and the README's copy.

`systemd-analyze verify` and a run of the cron line's command are in tests/cli/test_schedule.py.
"""

from __future__ import annotations

import shlex

import pytest

from pipeline.core.errors import UsageError
from pipeline.nightly import schedule
from tests.helpers import ROOT

DIGITS = ["/home/you/digits/.venv/bin/digits"]


def _entry(text: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line and not line.startswith("#")]
    return line.split(None, 5)


def test_the_cron_line_is_five_time_fields_and_a_command():
    minute, hour, day, month, weekday, command = _entry(
        schedule.cron_line(DIGITS, "/home/you/digits", "you", "2:05", ["run", "--submit"])
    )
    assert (minute, hour, day, month, weekday) == ("5", "2", "*", "*", "*")
    assert command == (
        "cd /home/you/digits && /home/you/digits/.venv/bin/digits run --submit --quiet --log-file digits.log >/dev/null"
    )


def test_a_path_with_a_space_or_a_percent_sign_survives_cron_and_the_shell():
    text = schedule.cron_line(["/opt/my venv/bin/digits"], "/srv/100% night", "you", "01:30", ["run"])
    command = _entry(text)[5]
    assert "%" not in command.replace("\\%", "")  # cron would cut the command at an unescaped %
    words = shlex.split(command.replace("\\%", "%"))  # what cron hands to sh: \% becomes %
    assert words[:3] == ["cd", "/srv/100% night", "&&"] and words[3] == "/opt/my venv/bin/digits"


@pytest.mark.parametrize(
    ("word", "written"),
    [
        ("run", "run"),
        ("a b.toml", '"a b.toml"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("100%", "100%%"),
        ("$HOME", "$$HOME"),
        ("", '""'),
    ],
)
def test_exec_start_words_are_quoted_and_escaped_as_systemd_reads_them(word, written):
    service = schedule.systemd_units(DIGITS, "/srv/50% off", "you", "01:30", ["run", word])["digits.service"]
    assert f"ExecStart={DIGITS[0]} run {written} --log-file digits.log\n" in service
    assert "WorkingDirectory=/srv/50%% off\n" in service


def test_the_timer_runs_every_night_at_the_time_and_catches_up_after_a_night_off():
    timer = schedule.systemd_units(DIGITS, "/home/you/digits", "you", "23:59", ["run"])["digits.timer"]
    assert "OnCalendar=*-*-* 23:59:00\nPersistent=true\n" in timer


@pytest.mark.parametrize("at", ["24:00", "1:5", "noon", "01:30:00", ""])
def test_a_time_that_is_not_hh_mm_is_a_usage_error(at):
    with pytest.raises(UsageError, match="option --at"):
        schedule.cron_line(DIGITS, "/home/you", "you", at, ["run"])


def test_a_user_name_systemd_would_refuse_is_a_usage_error():
    with pytest.raises(UsageError, match="option --user"):
        schedule.systemd_units(DIGITS, "/home/you", "you\nExecStartPre=/bin/evil", "01:30", ["run"])


def test_the_readme_and_the_manual_show_what_schedule_prints():
    readme, manual = (ROOT / "README.md").read_text(), (ROOT / "docs" / "unattended.md").read_text()
    fill = (DIGITS, "/home/you/digits", "you", schedule.DEFAULT_AT, schedule.DEFAULT_JOB)
    assert schedule.cron_line(*fill) in readme and schedule.cron_line(*fill) in manual
    for text in schedule.systemd_units(*fill).values():
        assert text in manual
