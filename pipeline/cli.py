"""The `digits` command group: thin commands over the library, as in Click's own examples.

The options every command shares (``--output-dir``, ``--log-file``,
``--quiet``) are defined once, with one default (the config's), and travel
in an `App` context object handed to each command by `pass_app`.  A command
builds a `Config` where it trains (defaults < ``--config FILE`` < ``--set`` <
named options), calls one library function, and lets `DigitsGroup` turn a
`DigitsError` into one line on stderr and its exit code.  Nothing here
imports TensorFlow, Ray or kaggle at start-up.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import click

from pipeline import __version__
from pipeline import config as cfg
from pipeline.errors import INTERRUPTED, STORAGE, DigitsError, UsageError
from pipeline.text import one_line

EXIT_CODES = """\b
Exit codes: 0 ok, 1 bad input (data, config file, run folder), 2 usage (a bad
or conflicting option), 3 Kaggle, 4 interrupted, 5 output dir busy, 6 cannot
write output."""


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
        from pipeline.progress import setup

        return setup(verbose=not self.quiet, log_file=self.log_file)


pass_app = click.make_pass_decorator(App, ensure=True)


class DigitsGroup(click.Group):
    """Maps library errors to one line on stderr and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigitsError as e:
            click.echo(f"digits: {one_line(e)}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("digits: interrupted (SIGINT/SIGTERM); nothing half-written was kept", err=True)
            ctx.exit(INTERRUPTED)
        except OSError as e:
            if not _stdout_failed():
                raise
            reason = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            click.echo(f"digits: cannot write to standard output: {reason}", err=True)
            ctx.exit(STORAGE)


def _stdout_failed() -> bool:
    """Whether standard output is what failed (a full disk, a closed pipe); it is then set aside."""
    try:
        sys.stdout.flush()
        return False
    except OSError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return True


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
        type=click.Path(dir_okay=False),
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


def build_config(app: App, opts: dict[str, Any], demo: bool = False) -> cfg.Config:
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
    return cfg.build(
        opts.get("config_file"),
        cfg.parse_set(opts.get("sets") or ()),
        _drop_none(named),
        base=cfg.demo_base() if demo else None,
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


@click.group(cls=DigitsGroup, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="digits")
@shared
def cli() -> None:
    """digits: the nightly Kaggle Digit Recognizer job.

    Downloads the competition, trains a k-fold ensemble (an MLP, or a CNN),
    blends it with the compatible runs of earlier nights, writes
    submissions/submission.csv and keeps a report of every run in runs/.
    """


@cli.command()
@click.option("--data-dir", default=cfg.DataConfig.dir, show_default=True, help="Where the competition files go.")
@click.option("--competition", default=cfg.DataConfig.competition, show_default=True)
@click.option("--force", is_flag=True, help="Download again even if the local files are current.")
@shared
@pass_app
def download(app: App, data_dir: str, competition: str, force: bool) -> None:
    """Download the competition files through the Kaggle API.

    Credentials as for the kaggle CLI: KAGGLE_USERNAME/KAGGLE_KEY,
    KAGGLE_API_TOKEN, or kaggle.json in ~/.kaggle or $KAGGLE_CONFIG_DIR.
    Skipped when the local files are complete and unchanged on Kaggle.
    """
    from pipeline import fetch

    manifest = fetch.download(Path(data_dir), competition, force=force, log=app.progress.info)
    app.progress.info(f"{data_dir}: " + ("downloaded" if manifest.get("downloaded") else "already up to date"))


@cli.command()
@config_options
@click.option("--resume", "resume", metavar="RUN", help="Finish an interrupted run: train only its missing folds.")
@shared
@pass_app
def train(app: App, resume: str | None, **opts: Any) -> None:
    """Train one run: k folds into OUTPUT_DIR/runs/<run-id>/."""
    from pipeline import job

    click.echo(job.train(build_config(app, opts), app.progress, resume=resume))


@cli.command()
@click.argument("run", default="latest")
@click.option("--data-dir", help="Where test.csv is (default: the run's own data dir).")
@click.option(
    "--ensemble-runs",
    type=click.IntRange(min=1),
    help="Blend at most this many compatible runs (default: the run's blend.runs; 1: RUN alone).",
)
@shared
@pass_app
def predict(app: App, run: str, data_dir: str | None, ensemble_runs: int | None) -> None:
    """Blend RUN with compatible runs; predict test.csv into submissions/<run-id>.csv and submission.csv."""
    from pipeline.predict import predict as predict_

    click.echo(predict_(app.out, run, data_dir, app.progress, ensemble_runs=ensemble_runs))


@cli.command()
@config_options
@click.option("--offline", is_flag=True, help="Never contact Kaggle; use the files in --data-dir.")
@click.option("--demo", is_flag=True, help="A small competition built from scikit-learn's digits: no Kaggle, a minute.")
@click.option("--force-download", is_flag=True, help="Download again even if current.")
@click.option("--resume", is_flag=True, help="Finish the newest interrupted run with this config and data, if any.")
@click.option(
    "--submit",
    "submit_mode",
    is_flag=False,
    flag_value="better",
    default=None,
    type=click.Choice(["better", "always"]),
    help="Submit when the blend beats the last accepted submission's out-of-fold accuracy "
    "(--submit always: every night).",
)
@click.option("-m", "--message", help="Submission message (default: run id and CV accuracy).")
@shared
@pass_app
def run(
    app: App,
    offline: bool,
    demo: bool,
    force_download: bool,
    resume: bool,
    submit_mode: str | None,
    message: str | None,
    **opts: Any,
) -> None:
    """The nightly job: download, train, blend, predict (and submit with --submit).

    Exits 0 only when a valid submission was written.
    """
    from pipeline import nightly

    if demo and submit_mode:
        raise UsageError("--demo makes a practice competition; it cannot be submitted to Kaggle")
    if offline and submit_mode:
        raise UsageError("--offline never contacts Kaggle, so it cannot --submit; drop one of them")
    config = build_config(app, opts, demo=demo)
    click.echo(
        nightly.nightly(
            config,
            offline=offline,
            demo=demo,
            force_download=force_download,
            resume=resume,
            submit_mode=submit_mode,
            submit_message=message,
            progress=app.progress,
        )
    )


@cli.command()
@click.argument("target", default="latest", metavar="RUN|FILE")
@click.option("-m", "--message", help="Submission message (default: run id and CV accuracy).")
@click.option("--competition", help="Default: the run's competition, else digit-recognizer.")
@click.option(
    "--wait", type=click.FloatRange(min=0), default=600, show_default=True, help="Seconds to wait for Kaggle's score."
)
@shared
@pass_app
def submit(app: App, target: str, message: str | None, competition: str | None, wait: float) -> None:
    """Validate and submit a run's submission (or a CSV file) to Kaggle; record the public score."""
    from pipeline import nightly

    nightly.submit(app.out, target, message, competition, app.progress, wait=wait)


@cli.command()
@click.argument("variants", type=click.Path(dir_okay=False))
@config_options
@click.option("--resume", is_flag=True, help="Finish the sweep's unfinished runs instead of starting new ones.")
@shared
@pass_app
def sweep(app: App, variants: str, resume: bool, **opts: Any) -> None:
    """Train several variants of the config (VARIANTS.toml) as one pool of folds; then compare them.

    Each [[variant]] has a name and config overrides in the keys of --set,
    e.g. { name = "wide", set = { "model.hidden" = "2048,1024" } }.  Every
    variant becomes an ordinary run; all share one sweep id.
    """
    from pipeline import sweep as sweep_mod

    sweep_mod.sweep(build_config(app, opts), variants, app.progress, resume=resume)


def _register_run_commands() -> None:
    """compare, report, history, runs, gc: they read runs/ only and never train."""
    from pipeline import cli_runs

    for command in cli_runs.COMMANDS:
        cli.add_command(command)


_register_run_commands()


def main() -> None:
    """The console script (and ``python -m pipeline``)."""
    from pipeline.progress import filter_native_stderr

    for stream in (sys.stdout, sys.stderr):  # a path that is not UTF-8 is escaped, never a crash
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    filter_native_stderr()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli(prog_name="digits")
    finally:
        _flush_stdout()


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
    """SIGTERM (a cron timeout, `kill`) stops any command as Ctrl-C does: cleanly, with exit code 4."""
    raise KeyboardInterrupt
