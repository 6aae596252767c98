"""What every `digits` command shares: the context object, the shared options, the error contract.

As in Click's own examples: the options every command takes (``--output-dir``,
``--log-file``, ``--quiet``) are defined once, with one default (the
config's), and travel in an `App` context object that `pass_app` hands to
each command.  `DigitsGroup` turns a `DigitsError` into one line on stderr
and its documented exit code.  `build_config` layers a command's options
over the defaults for the commands that train.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from pipeline.core import config as cfg
from pipeline.core import config_layers, stop_signals
from pipeline.core.errors import INTERRUPTED, STORAGE, DigitsError
from pipeline.core.text import one_line

EXIT_CODES = """\b
Exit codes: 0 ok, 1 bad input (data, config file, run folder), 2 usage (a bad
or conflicting option), 3 Kaggle, 4 interrupted, 5 output dir busy, 6 cannot
write output, 7 Ray cluster unreachable or failing."""


class App:
    """What every command shares: where outputs go, and how progress is reported."""

    def __init__(self) -> None:
        self.output_dir: str | None = None  # None: the config's default
        self.log_file: str | None = None
        self.quiet = False

    @property
    def out(self) -> str:
        return self.output_dir or cfg.Config().output_dir

    @cached_property
    def progress(self) -> Any:
        from pipeline.core.progress import setup

        return setup(verbose=not self.quiet, log_file=self.log_file)


pass_app = click.make_pass_decorator(App, ensure=True)


class DigitsGroup(click.Group):
    """Maps library errors to one line on stderr and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigitsError as e:
            if e.exit_code == INTERRUPTED:
                stop_signals.exiting()  # a second Ctrl-C cannot cut the line or the exit code short
            click.echo(f"digits: {one_line(e)}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            stop_signals.exiting()
            click.echo(f"digits: {INTERRUPTED_LINE}", err=True)
            ctx.exit(INTERRUPTED)
        except OSError as e:
            # Every file the library writes goes through pipeline.core.atomic_files, which turns OS errors into
            # StorageError; an OSError of these kinds reaching here is standard output failing.
            if e.errno not in OUTPUT_ERRNOS:
                raise
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
            if e.errno == errno.EPIPE:  # `digits runs | head`: the reader has what it wanted
                ctx.exit(0)
            reason = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            click.echo(f"digits: cannot write to standard output: {reason}", err=True)
            ctx.exit(STORAGE)


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


def shared(f: Callable) -> Callable:
    """--output-dir, --log-file, --quiet: on the group and on every command."""
    for option in reversed(SHARED):
        f = option(f)
    return f


CONFIG_OPTIONS = [
    click.option(
        "--config",
        "config_file",
        metavar="FILE",  # checked when read: anything but a readable regular file is bad input (exit 1)
        help="TOML file with [data] [model] [augment] [train] [blend] [executor] tables.",
    ),
    click.option("--data-dir", help="Competition files (default: data/)."),
    click.option("--model", type=click.Choice(cfg.KINDS), help="mlp (default) or cnn."),
    click.option("--folds", type=int, help="Stratified folds (default 5)."),
    click.option("--epochs", type=int, help="Epochs per fold (default: the model's)."),
    click.option(
        "--seed",
        type=int,
        help="The one seed behind folds, weights, shuffling and augmentation (default: a fresh one each run).",
    ),
    click.option("--batch-size", type=int, help="Training batch size."),
    click.option("--hidden", help="Dense layer widths, e.g. 512,256."),
    click.option("--ensemble-runs", type=int, help="Blend at most this many compatible runs (1: this run alone)."),
    click.option("--executor", type=click.Choice(cfg.EXECUTORS), help="Where folds train: local (default) or ray."),
    click.option("--ray-address", help="Attach to this Ray cluster (auto, ray://host:10001, host:6379)."),
    click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="SECTION.KEY=VALUE",
        help="Any config value, e.g. --set augment.rotation=10 (repeatable).",
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
    named: dict[str, Any] = {
        "data": {"dir": opts.get("data_dir")},
        "model": {"kind": opts.get("model"), "hidden": opts.get("hidden")},
        "train": {k: opts.get(k) for k in ("folds", "epochs", "seed", "batch_size")},
        "blend": {"runs": opts.get("ensemble_runs")},
        "executor": {"kind": opts.get("executor"), "address": opts.get("ray_address")},
        "output_dir": app.output_dir,
    }
    if demo:
        named["output_dir"] = named["output_dir"] or "demo"
        named["data"]["dir"] = named["data"]["dir"] or str(Path(named["output_dir"]) / "data")
    return config_layers.build(
        opts.get("config_file"),
        config_layers.parse_set(opts.get("sets") or ()),
        _drop_none(named),
        base=config_layers.demo_base() if demo else None,
        variant=variant,
    )


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
