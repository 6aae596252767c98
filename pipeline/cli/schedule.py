"""`digits schedule cron|systemd`: the nightly job for cron or systemd, filled in with this checkout's paths.

The templates are `pipeline.nightly.schedule`; this command picks the
values (the venv's ``digits``, the current folder, the current user) and
checks the job's command line as ``digits`` itself would parse it, so a typo
fails here and not every night at 01:30.
"""

from __future__ import annotations

import getpass
import shlex
from pathlib import Path

import click

from pipeline.cli.app import App, pass_app, shared
from pipeline.core.errors import UsageError


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
    --resume), e.g. `digits schedule cron -- run --submit --config night.toml`.
    It runs in the current folder; cron's line is quiet unless the night
    fails, systemd's stop lets a run save its folds (exit 4).
    """
    from pipeline.nightly import schedule as templates

    job = job or templates.DEFAULT_JOB
    _check_job(job)
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


def _check_job(job: tuple[str, ...]) -> None:
    """The job must be a digits command whose options parse; nothing of it runs here."""
    group = click.get_current_context().find_root().command
    assert isinstance(group, click.Group)
    command = group.commands.get(job[0])
    if command is None or command.name == "schedule":
        raise UsageError(f"the job to schedule must be a digits command (run, train, ...), got {job[0]!r}")
    try:
        command.make_context(job[0], list(job[1:]), obj=App())  # parses and checks the options, runs nothing
    except click.ClickException as e:
        raise UsageError(f"the job `digits {' '.join(job)}`: {e.format_message()}") from None
