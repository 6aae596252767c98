"""What every `digits` command shares: the context object, the shared options, the error contract.

As in Click's own examples: the options every command takes (``--output-dir``,
``--log-file``, ``--quiet``) are defined once, with one default (the
config's), and travel in an `App` context object that `pass_app` hands to
each command.  `DigitsGroup` turns a `DigitsError` into one line on stderr
and its documented exit code, then tells the ``--notify``/``[notify]`` URLs
how the command ended (`pipeline.cli.notifying`).  `build_config` layers a
command's options over the defaults for the commands that train.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

import click

from pipeline.cli import option_help
from pipeline.cli.option_help import config_option
from pipeline.core import config as cfg
from pipeline.core import config_layers, stop_signals
from pipeline.core.errors import EXIT_MEANINGS, INTERRUPTED, STORAGE, DigitsError
from pipeline.core.text import one_line

EXIT_CODES = "\b\nExit codes:\n" + "\n".join(  # \b: Click keeps these lines as they are
    f"  {code} {short} ({what})" for code, (short, what) in EXIT_MEANINGS.items()
)


class App:
    """What every command shares: where outputs go, and how progress is reported."""

    def __init__(self) -> None:
        self.output_dir: str | None = None  # None: the config's default
        self.log_file: str | None = None
        self.quiet = False
        self.notify_urls: list[str] = []  # --notify, added to the config's [notify] urls
        self.config: cfg.Config | None = None  # the command's config, once built (its [notify] is read at the end)

    @property
    def out(self) -> str:
        return self.output_dir or cfg.Config().output_dir

    @cached_property
    def progress(self) -> Any:
        from pipeline.core.progress import setup

        return setup(verbose=not self.quiet, log_file=self.log_file)


pass_app = click.make_pass_decorator(App, ensure=True)


class DigitsGroup(click.Group):
    """Maps library errors to one line on stderr and a documented exit code, then notifies (`notifying.after`)."""

    def invoke(self, ctx: click.Context) -> Any:
        started = time.time()
        ctx.ensure_object(App)  # one App, shared by the command's context: the end reads what the command set
        try:
            result = super().invoke(ctx)
        except DigitsError as e:
            if e.exit_code == INTERRUPTED:
                stop_signals.exiting()  # a second Ctrl-C cannot cut the line or the exit code short
            self._end(ctx, started, e.exit_code, one_line(e))
        except KeyboardInterrupt:
            stop_signals.exiting()
            self._end(ctx, started, INTERRUPTED, INTERRUPTED_LINE)
        except OSError as e:
            # Every file the library writes goes through pipeline.core.atomic_files, which turns OS errors into
            # StorageError; an OSError of these kinds reaching here is standard output failing.
            if e.errno not in OUTPUT_ERRNOS:
                self._notify(ctx, started, 1, one_line(f"{type(e).__name__}: {e}"), bug=True)
                raise
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
            if e.errno == errno.EPIPE:  # `digits runs | head`: the reader has what it wanted
                self._end(ctx, started, 0, None)
            reason = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            self._end(ctx, started, STORAGE, f"cannot write to standard output: {reason}")
        except (click.exceptions.Exit, click.exceptions.Abort):  # --help, --version: nothing ran
            raise
        except click.ClickException as e:  # a bad option of the command, found by Click: it prints it
            self._notify(ctx, started, e.exit_code, one_line(f"Error: {e.format_message()}"))
            raise
        except Exception as e:  # a bug keeps its traceback, and the night is still heard of
            self._notify(ctx, started, 1, one_line(f"{type(e).__name__}: {e}"), bug=True)
            raise
        self._notify(ctx, started, 0, None)
        return result

    def _end(self, ctx: click.Context, started: float, code: int, reason: str | None) -> NoReturn:
        """The one line on stderr (when there is a reason), the notification, then the exit code."""
        if reason is not None:
            reason = f"digits: {reason}"
            click.echo(reason, err=True)
        self._notify(ctx, started, code, reason)
        ctx.exit(code)

    @staticmethod
    def _notify(ctx: click.Context, started: float, code: int, reason: str | None, bug: bool = False) -> None:
        from pipeline.cli import notifying

        notifying.after(ctx.ensure_object(App), ctx.invoked_subcommand, code, reason, started, bug)


INTERRUPTED_LINE = "interrupted (SIGINT/SIGTERM/SIGHUP); nothing half-written was kept"
OUTPUT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EPIPE)


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value not in (None, False):
            setattr(ctx.ensure_object(App), name, value)
        return value

    return callback


SHARED = [
    click.option(
        "--output-dir",
        type=click.Path(file_okay=False),
        expose_value=False,
        callback=_store("output_dir"),
        help="Where runs/ and submissions/ are (default: the current folder; --demo: demo/).",
    ),
    click.option(
        "--log-file",
        type=click.Path(dir_okay=False),
        expose_value=False,
        callback=_store("log_file"),
        help="Also write a plain log here.",
    ),
    click.option(
        "-q", "--quiet", is_flag=True, expose_value=False, callback=_store("quiet"), help="Only warnings and errors."
    ),
]


def _add_notify(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    ctx.ensure_object(App).notify_urls.extend(value)
    return value


NOTIFY = click.option(
    "--notify",
    metavar="URL",
    multiple=True,
    expose_value=False,
    callback=_add_notify,
    help="Tell this Apprise URL how the command ended, on the ends notify.on names ("
    + ", ".join(cfg.NOTIFY_ON)
    + "; default "
    + option_help.shown(cfg.NotifyConfig().on)
    + ").  Repeatable; adds to [notify] urls; needs digits[notify].",
)


def notify_option(f: Callable) -> Callable:
    """--notify URL: on the commands that run unattended (download, train, predict, run, submit, sweep)."""
    return NOTIFY(f)


def runs_unattended(command: click.Command) -> bool:
    """The commands meant to run unattended are those that take --notify (`notify_option`); `digits schedule`
    schedules only these."""
    return any(param.name == "notify" for param in command.params)


def shared(f: Callable) -> Callable:
    """--output-dir, --log-file, --quiet: on the group and on every command."""
    for option in reversed(SHARED):
        f = option(f)
    return f


# Defined once; the commands that train take it with the config options, and `digits submit` on its own.
MLFLOW_OPTION = click.option(
    "--mlflow",
    is_flag=True,
    default=None,
    help="Track the runs in MLflow, as [tracking] mlflow = true does (the mlflow extra): at [tracking] uri, "
    "else MLFLOW_TRACKING_URI, else mlflow.db beside runs/.",
)

CONFIG_OPTIONS = [
    click.option(
        "--config",
        "config_file",
        metavar="FILE",  # checked when read: anything but a readable regular file is bad input (exit 1)
        help="A TOML file of config tables: "
        + " ".join(f"[{table}]" for table in option_help.config_tables())
        + " (their keys are those of --set).",
    ),
    config_option("--data-dir", path="data.dir", help="Where the competition files are (run --demo: OUTPUT_DIR/data)."),
    config_option(
        "--model",
        path="model.kind",
        type=click.Choice(cfg.KINDS),
        help="The recipe this run trains, instead of the plan's choice.",
    ),
    config_option("--folds", path="train.folds", type=int, help="Stratified folds."),
    config_option("--epochs", path="train.epochs", type=int, help="Epochs per fold (all trained; the last is kept)."),
    config_option(
        "--seed",
        path="train.seed",
        type=int,
        help="The one seed behind the split into folds, the weights, the shuffling and the distortion: the same "
        "seed, config and data train the same run, byte for byte.",
    ),
    config_option("--batch-size", path="train.batch_size", type=int, help="Training batch size."),
    config_option("--hidden", path="model.hidden", help="Dense layer widths, e.g. 512,256 (a CNN's head)."),
    config_option(
        "--ensemble-runs",
        path="blend.runs",
        type=int,
        metavar="N",
        help="Blend this run with at most N-1 of the newest compatible runs (1: this run alone).",
    ),
    config_option("--executor", path="executor.kind", type=click.Choice(cfg.EXECUTORS), help="Where folds train."),
    config_option(
        "--ray-address",
        path="executor.address",
        help="The Ray cluster to attach to: auto, ray://host:10001, host:6379.",
    ),
    MLFLOW_OPTION,
    click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="SECTION.KEY=VALUE",
        help="Any config value, e.g. --set augment.rotation=10 (repeatable; SECTION is a table of --config); a list "
        'as a,b or as a TOML array (["a", "b"], whose items may hold commas); notify.urls splits only before the '
        "next URL.",
    ),
]


def config_options(f: Callable) -> Callable:
    for option in reversed(CONFIG_OPTIONS):
        f = option(f)
    return f


def build_config(
    app: App, opts: dict[str, Any], demo: bool = False, variant: tuple[str, dict[str, Any]] | None = None
) -> cfg.Config:
    """The command's config: defaults (or the demo's) < --config < --set < named options."""
    named: dict[str, Any] = {"output_dir": app.output_dir}
    for name, path in option_help.NAMED.items():  # the named options, each over its config field
        section, key = path.split(".")
        value = opts.get(name)
        if name == "mlflow":
            value = True if value else None  # no flag: the file's or the default
        named.setdefault(section, {})[key] = value
    if demo:
        named["output_dir"] = named["output_dir"] or "demo"
        named["data"]["dir"] = named["data"]["dir"] or str(Path(named["output_dir"]) / "data")
    app.config = config_layers.build(
        opts.get("config_file"),
        config_layers.parse_set(opts.get("sets") or ()),
        _drop_none(named),
        base=config_layers.demo_base() if demo else None,
        variant=variant,
    )
    return app.config


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _drop_none(v)
            if v:
                out[k] = v
        elif v is not None:
            out[k] = v
    return out
