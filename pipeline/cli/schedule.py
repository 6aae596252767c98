"""`digits schedule cron|systemd`: the nightly job for cron or systemd, filled in with this checkout's paths.

The templates are `pipeline.nightly.schedule`; this command picks the
values (the venv's ``digits``, the current folder, the current user) and
checks the job as ``digits`` itself would (its options, then the command's own
checks: the config built, its files read, nothing run), so a typo fails here
and not every night at 01:30.
"""

from __future__ import annotations

import getpass
import shlex
from pathlib import Path

import click

from pipeline.cli import job_commands
from pipeline.cli.app import App, pass_app, runs_unattended, shared
from pipeline.core.errors import DigitsError, UsageError
from pipeline.core.text import quoted


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("kind", type=click.Choice(["cron", "systemd"]))
@click.argument("job", nargs=-1, type=click.UNPROCESSED)
@click.option("--at", default="01:30", show_default=True, help="The time of night, HH:MM (24-hour).")
@click.option("--user", help="systemd: the user the job runs as (default: you).")
@click.option(
    "--write",
    "write_dir",
    type=click.Path(file_okay=False),
    help="systemd: write digits.service and digits.timer into this folder instead of printing them.",
)
@shared
@pass_app
def schedule(app: App, kind: str, job: tuple[str, ...], at: str, user: str | None, write_dir: str | None) -> None:
    """Print a cron line, or a systemd service and timer, that run the nightly job with this checkout's paths.

    JOB is the digits command line to run, after `--` (default: run --submit
    --resume), e.g. `digits schedule cron -- run --submit --config night.toml`:
    one of the commands that run unattended (download, train, predict, run,
    submit, sweep), checked now as it would check itself (its options, its
    config file, every value), and given the --output-dir given here.
    It runs in the current folder; cron's line is quiet unless the night
    fails, systemd's stop lets a run save its folds (exit 4).
    """
    from pipeline.nightly import schedule as templates

    job = _checked_job(app, job or templates.DEFAULT_JOB, templates.ADDED[kind])
    digits = templates.digits_command()
    who = user or getpass.getuser()
    if kind == "cron":
        if write_dir or user:
            raise UsageError("--write and --user are for systemd units; a crontab is the user's own (crontab -e)")
        click.echo(templates.cron_line(digits, ".", who, at, job), nl=False)
        return
    units = templates.systemd_units(digits, ".", who, at, job)
    if write_dir is None:
        click.echo("\n".join(units.values()), nl=False)
        return
    folder = Path(write_dir).absolute()
    for path in templates.write_units(folder, units):
        click.echo(path)
    app.progress.info(
        f"install: sudo cp {shlex.quote(str(folder))}/{templates.UNIT}.* {templates.UNIT_DIR}/ "
        f"&& sudo systemctl daemon-reload && sudo systemctl enable --now {templates.UNIT}.timer"
    )


def _checked_job(app: App, job: tuple[str, ...], added: tuple[str, ...]) -> tuple[str, ...]:
    """The job as it will run, checked now as the command itself would check it; nothing of it runs here.

    It must be one of the commands meant to run unattended (those that take --notify), its options
    must parse with the words the schedule adds after them, and then the command's own checks run
    (`job_commands.preflight`: the config built, the files it names read).  Without an
    --output-dir of its own, it takes the one given to digits (or to schedule).
    """
    from pipeline.nightly.schedule import check_word

    for word in job:
        check_word(word, "the job's argument")
    group = click.get_current_context().find_root().command
    assert isinstance(group, click.Group)
    command = group.commands.get(job[0])
    if command is None or not runs_unattended(command):
        names = ", ".join(sorted(n for n, c in group.commands.items() if runs_unattended(c)))
        raise UsageError(
            f"the job to schedule must be one of the commands that run unattended ({names}), got {quoted(job[0])}"
        )
    shown = f"the job `digits {shlex.join(job)}`"
    if "--" in job[1:]:
        raise UsageError(
            f"{shown}: after `--` the schedule's own {' '.join(added)} would be read as arguments; give the job "
            "without `--`"
        )
    job_app = App()
    try:
        # help_option_names=[]: `--help` would print the help and end the parse; it is no job
        context = command.make_context(job[0], [*job[1:], *added], obj=job_app, help_option_names=[])
    except click.NoSuchOption as e:
        if e.option_name == "--help":
            raise UsageError(
                f"{shown} only prints its help, which no schedule needs; schedule the job itself"
            ) from None
        raise UsageError(f"{shown}: {e.format_message()}") from None
    except click.ClickException as e:
        raise UsageError(f"{shown}: {e.format_message()}") from None
    if app.output_dir is not None:
        if job_app.output_dir is None:
            job = (job[0], "--output-dir", check_word(app.output_dir, "option --output-dir"), *job[1:])
            job_app.output_dir = app.output_dir
        elif Path(job_app.output_dir).absolute() != Path(app.output_dir).absolute():
            raise UsageError(
                f"--output-dir is given twice, as {quoted(app.output_dir)} to digits and as "
                f"{quoted(job_app.output_dir)} in the job; give it once"
            )
    try:
        job_commands.preflight(job_app, job[0], context.params)
    except DigitsError as e:
        raise type(e)(f"{shown}: {e}") from None
    return job
