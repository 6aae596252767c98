"""Running the nightly job unattended: a cron line, or a systemd service and timer.

The templates live here, once; `digits schedule cron|systemd` fills them in
with this checkout's paths (the venv's ``digits``, the working directory, the
user) and the README shows what it prints.  Both run the job so that a night
that goes well says nothing and a failure is heard of: cron mails what
reaches stderr, which with ``--quiet`` is only the one ``digits: ...`` line
of a failure (or a warning); a systemd stop sends SIGTERM first, so the run
saves its finished folds and exits 4, and the next night's ``--resume``
finishes it.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.core import atomic_files
from pipeline.core.errors import UsageError
from pipeline.core.text import has_control, quoted

DEFAULT_AT = "01:30"
DEFAULT_JOB = ("run", "--submit", "--resume")
LOG_FILE = "digits.log"  # in the working directory, beside runs/
# What each schedule adds after the job's own words; `digits schedule` checks the job with them.
ADDED = {"cron": ("--quiet", "--log-file", LOG_FILE), "systemd": ("--log-file", LOG_FILE)}
UNIT = "digits"
UNIT_DIR = "/etc/systemd/system"
STOP_SECONDS = 120  # after SIGTERM: the fold in training stops at its next batch, then the files and the notification

CRON = """\
# digits: the nightly job at {at}; add it with `crontab -e` as {user}.  Quiet when the night goes well: the log
# goes to {log}, the submission's path to /dev/null, and cron mails only what reaches stderr, which with
# --quiet is the one `digits: ...` line of a failure, or a warning.  A MAILTO= line above it says to whom.
{minute} {hour} * * *  {command}
"""

SERVICE = """\
# {unit_dir}/{unit}.service: the nightly job, started by {unit}.timer
[Unit]
Description=digits: the nightly Kaggle Digit Recognizer job
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
User={user}
WorkingDirectory={workdir}
ExecStart={command}
# A stop (shutdown, systemctl stop) sends SIGTERM first: digits saves its finished folds and exits 4, which is
# no failure of the unit, and the next night's --resume finishes the run.  SIGKILL only {stop} s later.
KillSignal=SIGTERM
TimeoutStopSec={stop}
SuccessExitStatus=4
"""

TIMER = """\
# {unit_dir}/{unit}.timer: every night at {at}; a night missed while the machine was off runs when it boots
[Unit]
Description=digits: the nightly job at {at}

[Timer]
OnCalendar=*-*-* {at}:00
Persistent=true

[Install]
WantedBy=timers.target
"""


def digits_command() -> list[str]:
    """How to start this digits: the console script beside this Python (a venv's bin/), else ``python -m pipeline``.

    Not resolved through symlinks: a venv's python is a link out of the venv, and the venv is what matters.
    """
    python = Path(sys.executable).absolute()
    script = python.parent / "digits"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [str(python), "-m", "pipeline"]


def parse_at(at: str) -> tuple[int, int]:
    """``HH:MM`` (24-hour, ASCII digits, nothing around it) as (hour, minute); a usage error naming --at otherwise."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at, flags=re.ASCII)
    if not match:
        raise UsageError(f"option --at: expected a time of day as HH:MM (24-hour), got {at!r}")
    return int(match[1]), int(match[2])


def cron_line(digits: Sequence[str], workdir: str | Path, user: str, at: str, job: Sequence[str]) -> str:
    """A crontab entry (with its comment) that runs `job` every day at `at`, quiet unless something went wrong."""
    hour, minute = parse_at(at)
    run = [*_words(digits, "the digits command"), *_words(job, "the job's argument"), *ADDED["cron"]]
    command = f"cd {shlex.quote(_path(workdir))} && {shlex.join(run)} >/dev/null"
    command = command.replace("%", "\\%")  # an unescaped % ends a cron command (it becomes a newline)
    return CRON.format(
        at=f"{hour:02d}:{minute:02d}",
        user=check_word(user, "the user"),
        log=LOG_FILE,
        minute=minute,
        hour=hour,
        command=command,
    )


def systemd_units(digits: Sequence[str], workdir: str | Path, user: str, at: str, job: Sequence[str]) -> dict[str, str]:
    """``{"digits.service": text, "digits.timer": text}``: a oneshot service and the timer that starts it at `at`."""
    hour, minute = parse_at(at)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", user):
        raise UsageError(f"option --user: {user!r} is not a user name systemd accepts")
    fill = {"unit": UNIT, "unit_dir": UNIT_DIR, "at": f"{hour:02d}:{minute:02d}", "user": user, "stop": STOP_SECONDS}
    words = [*_words(digits, "the digits command"), *_words(job, "the job's argument"), *ADDED["systemd"]]
    command = " ".join(_systemd_word(w) for w in words)
    service = SERVICE.format(**fill, workdir=_path(workdir).replace("%", "%%"), command=command)
    return {f"{UNIT}.service": service, f"{UNIT}.timer": TIMER.format(**fill)}


def write_units(directory: str | Path, units: dict[str, str]) -> list[Path]:
    """Write the units into `directory` (created if missing), each atomically; their paths."""
    paths = [Path(directory) / name for name in units]
    for path, text in zip(paths, units.values()):
        atomic_files.write_text(path, text, through=True)  # the user named the folder: a link there is theirs
    return paths


def check_word(word: str, what: str) -> str:
    """`word`, unless it holds a control character: a usage error naming `what` then.

    Neither a crontab nor a unit file can hold a line break in a value (a newline in ``-m`` wrote
    ``ExecStartPre=...`` as a line of its own), and a tab, an escape or an undecodable byte in a
    command that runs unseen at night is never what was meant.
    """
    if has_control(word):
        raise UsageError(
            f"{what} {quoted(word)} holds a control character (a line break, tab or escape), which cannot be scheduled"
        )
    return word


def _words(words: Sequence[str], what: str) -> list[str]:
    return [check_word(w, what) for w in words]


def _path(path: str | Path) -> str:
    return check_word(str(Path(path).absolute()), "the folder")


def _systemd_word(word: str) -> str:
    """One word of ExecStart=: specifiers (%) and variables ($) doubled, quoted when it holds spaces or quotes."""
    word = word.replace("%", "%%").replace("$", "$$")
    if word and not re.search(r"[\s\"'\\;]", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
