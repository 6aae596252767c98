"""The end of every command: tell the configured Apprise URLs how it ended (``[notify]``, ``--notify URL``).

`DigitsGroup` calls `after` once the exit code and the one stderr line are
known, which only the command line knows.  The URLs are the config's
``[notify] urls`` (when the command built a config) and every ``--notify``;
a command whose config could not be built still uses its ``--notify`` URLs.
The message and the sending are `pipeline.nightly.notify`, imported only when
a URL is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from pipeline.core import config as cfg
from pipeline.core.errors import BUSY
from pipeline.core.text import one_line

if TYPE_CHECKING:
    from pipeline.cli.app import App


def after(app: App, command: str | None, exit_code: int, reason: str | None, started: float, bug: bool = False) -> None:
    """Notify if a URL is configured and ``[notify] on`` wants this end; warn in one line if it cannot."""
    settings = app.config.notify if app.config is not None else cfg.NotifyConfig()
    urls = tuple(dict.fromkeys((*settings.urls, *app.notify_urls)))  # in order, each once
    if not urls:
        return
    try:
        _notify(app, command or "", exit_code, reason, started, bug, urls, settings)
    except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM while notifying: the command's end is what matters
        _warn(app, "notification not sent: interrupted")
    except Exception as e:  # whatever goes wrong here, the command's exit code stays its own
        _warn(app, f"notification not sent: {type(e).__name__}: {e}")


def _notify(
    app: App,
    command: str,
    exit_code: int,
    reason: str | None,
    started: float,
    bug: bool,
    urls: tuple[str, ...],
    settings: cfg.NotifyConfig,
) -> None:
    from pipeline.nightly import notify

    found = None
    if exit_code != BUSY:  # another command held the output directory: a run written meanwhile is its, not ours
        found = notify.find_run(app.config.output_dir if app.config is not None else app.out, started)
    run_dir, rec = found if found else (None, None)
    outcome = notify.Outcome(command, exit_code, reason, run_dir, rec, bug)

    def warn(text: str) -> None:
        _warn(app, text)

    if not notify.wanted(settings.on, outcome):
        notify.check(urls, warn)  # a broken setup is heard of tonight, not at the next failure
        return
    title, body = notify.message(outcome)
    notify.send(urls, title, body, warn, failure=exit_code != 0, timeout=settings.timeout)


def _warn(app: App, text: str) -> None:
    """The logger's warning line (stderr and --log-file); stderr alone when the logger cannot be set up."""
    try:
        app.progress.warn(text)
    except Exception:  # e.g. the --log-file that could not be opened is the command's own error
        click.echo(f"digits: warning: {one_line(text)}", err=True)
