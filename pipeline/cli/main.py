"""The `digits` command group, and `main`, the console script.

Thin commands over the library, as in Click's own examples: they live in
`pipeline.cli.job_commands` (download, train, predict, run, submit, sweep)
and `pipeline.cli.view_commands` (compare, report, history, runs, gc), and
this module registers them on the group.  Each command calls one library
function and lets `DigitsGroup` (in `pipeline.cli.app`, with the shared
options and the context object) turn a `DigitsError` into one line on stderr
and its exit code.  Nothing here imports TensorFlow, Ray or kaggle at
start-up.
"""

from __future__ import annotations

import errno
import os
import sys

import click

from pipeline import __version__
from pipeline.cli import job_commands, schedule, view_commands
from pipeline.cli.app import EXIT_CODES, INTERRUPTED_LINE, DigitsGroup, shared
from pipeline.core import stop_signals
from pipeline.core.errors import INTERRUPTED, STORAGE


@click.group(cls=DigitsGroup, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="digits")
@shared
def cli() -> None:
    """digits: the nightly Kaggle Digit Recognizer job.

    Downloads the competition, trains a k-fold ensemble of tonight's recipe
    (the plan's choice, or --model), blends it with the compatible runs of
    earlier nights, writes submissions/submission.csv, submits it when it
    beats the best submission beyond noise (--submit), and keeps a report of
    every run in runs/.
    """


def _register_commands() -> None:
    """The commands that train or talk to Kaggle, those that read runs/ only and never train, and `schedule`."""
    for command in (*job_commands.COMMANDS, *view_commands.COMMANDS, schedule.schedule):
        cli.add_command(command)


_register_commands()


def main() -> None:
    """The console script (and ``python -m pipeline``)."""
    from pipeline.core.progress import filter_native_stderr

    for stream in (sys.stdout, sys.stderr):  # a path that is not UTF-8 is escaped, never a crash
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    filter_native_stderr()
    stop_signals.install(_terminate)
    try:
        try:
            try:
                cli(prog_name="digits")
            finally:
                _flush_stdout()
        except KeyboardInterrupt:  # outside a command (parsing, the final flush): still one line and exit 4
            stop_signals.exiting()
            click.echo(f"digits: {INTERRUPTED_LINE}", err=True)
            sys.exit(INTERRUPTED)
    except SystemExit as e:
        if stop_signals.abandoned():  # a library a stop left half-started would abort the interpreter's exit
            sys.stderr.flush()
            os._exit(e.code if isinstance(e.code, int) else 1)
        raise


def _flush_stdout() -> None:
    """A full disk or a closed pipe on stdout is one line and an exit code, not a traceback."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `digits compare | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
    except OSError as e:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        reason = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        click.echo(f"digits: cannot write to standard output: {reason}", err=True)
        sys.exit(STORAGE)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a cron timeout, `kill`) and SIGHUP (the session went away) stop any command as Ctrl-C does:
    cleanly, with exit code 4."""
    raise KeyboardInterrupt
