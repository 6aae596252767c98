"""The `digits` command group: thin commands over `job`, `fetch`, `compare` and `report`.

Each command parses its options into a `Config` (defaults, then ``--config
FILE``, then named options and ``--set section.key=value``), calls one library
function, and lets `DigitsGroup` turn a `DigitsError` into one line on stderr
and its exit code.  Nothing here imports TensorFlow or kaggle at start-up.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

from pipeline import __version__
from pipeline import config as cfg
from pipeline.errors import INTERRUPTED, DigitsError
from pipeline.text import one_line

EXIT_CODES = """\b
Exit codes: 0 ok, 1 bad input (data, config, run folder), 2 usage,
3 Kaggle, 4 interrupted, 5 output dir busy, 6 cannot write output."""


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


@click.group(cls=DigitsGroup, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="digits")
def cli() -> None:
    """digits: the nightly Kaggle Digit Recognizer job.

    Downloads the competition, trains a k-fold ensemble of Keras MLPs, writes
    submissions/submission.csv and keeps a report of every run in runs/.
    """


def _apply(options: list, f):
    for option in reversed(options):
        f = option(f)
    return f


_LOG_OPTIONS = [
    click.option("--log-file", type=click.Path(dir_okay=False), help="Also write a plain log here."),
    click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors."),
]


def _log_options(f):
    """--log-file and --quiet, for every command that reports progress."""
    return _apply(_LOG_OPTIONS, f)


def _config_options(f):
    """Options shared by `train` and `run`; each maps onto one config field."""
    options = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            help="TOML file with [data] [model] [augment] [train] tables.",
        ),
        click.option("--data-dir", help="Competition files (default: data/)."),
        click.option("--output-dir", help="Where runs/ and submissions/ go (default: .)."),
        click.option("--folds", type=int, help="Stratified folds (default 5)."),
        click.option("--epochs", type=int, help="Epochs per fold."),
        click.option("--seed", type=int, help="The one seed behind folds, weights, shuffling and augmentation."),
        click.option("--batch-size", type=int, help="Training batch size."),
        click.option("--hidden", help="Hidden layer widths, e.g. 512,256."),
        click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="SECTION.KEY=VALUE",
            help="Any config value, e.g. --set augment.rotation=10 (repeatable).",
        ),
        *_LOG_OPTIONS,
    ]
    return _apply(options, f)


def _build_config(opts: dict[str, Any], demo: bool = False) -> cfg.Config:
    named = {
        "data": {"dir": opts.get("data_dir")},
        "train": {
            "folds": opts.get("folds"),
            "epochs": opts.get("epochs"),
            "seed": opts.get("seed"),
            "batch_size": opts.get("batch_size"),
        },
        "model": {"hidden": opts.get("hidden")},
        "output_dir": opts.get("output_dir"),
    }
    if demo:
        named["output_dir"] = named["output_dir"] or "demo"
        named["data"]["dir"] = named["data"]["dir"] or str(Path(named["output_dir"]) / "data")
    named = _drop_none(named)
    base = None
    if demo:
        from pipeline.job import demo_config

        base = demo_config(cfg.Config())
    overrides = cfg.merge(cfg.parse_set(opts.get("sets") or ()), named)
    return cfg.build(opts.get("config_file"), overrides, base=base)


def _drop_none(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _drop_none(v)
            if v:
                out[k] = v
        elif v is not None:
            out[k] = v
    return out


def _progress(opts: dict[str, Any]):
    from pipeline.progress import setup

    return setup(verbose=not opts.get("quiet"), log_file=opts.get("log_file"))


def _common(f):
    """--output-dir, --log-file, --quiet for commands that do not train."""
    return _apply(
        [
            click.option("--output-dir", default=".", show_default=True, help="Where runs/ and submissions/ are."),
            *_LOG_OPTIONS,
        ],
        f,
    )


@cli.command()
@click.option("--data-dir", default="data", show_default=True, help="Where the competition files go.")
@click.option("--competition", default=cfg.DataConfig.competition, show_default=True)
@click.option("--force", is_flag=True, help="Download again even if the local files are current.")
@_log_options
def download(data_dir: str, competition: str, force: bool, **opts: Any) -> None:
    """Download the competition files through the Kaggle API.

    Credentials as for the kaggle CLI: KAGGLE_USERNAME/KAGGLE_KEY,
    KAGGLE_API_TOKEN, or kaggle.json in ~/.kaggle or $KAGGLE_CONFIG_DIR.
    Skipped when the local files are complete and unchanged on Kaggle.
    """
    from pipeline import fetch

    progress = _progress(opts)
    manifest = fetch.download(Path(data_dir), competition, force=force, log=progress.info)
    progress.info(f"{data_dir}: " + ("downloaded" if manifest.get("downloaded") else "already up to date"))


@cli.command()
@_config_options
@click.option("--resume", "resume", metavar="RUN", help="Finish an interrupted run: train only its missing folds.")
def train(resume: str | None, **opts: Any) -> None:
    """Train one run: k folds, each an MLP, into OUTPUT_DIR/runs/<run-id>/."""
    from pipeline import job

    config = _build_config(opts)
    progress = _progress(opts)
    run_dir = job.train(config, progress, resume=resume)
    click.echo(run_dir)


@cli.command()
@click.argument("run", default="latest")
@click.option("--data-dir", help="Where test.csv is (default: the run's own data dir).")
@_common
def predict(run: str, data_dir: str | None, output_dir: str, **opts: Any) -> None:
    """Soft-vote RUN's folds on test.csv into submissions/<run-id>.csv and submissions/submission.csv."""
    from pipeline import job

    click.echo(job.predict(output_dir, run, data_dir, _progress(opts)))


@cli.command()
@_config_options
@click.option("--offline", is_flag=True, help="Never contact Kaggle; use the files in --data-dir.")
@click.option(
    "--demo", is_flag=True, help="A small competition built from scikit-learn's digits: no Kaggle, under a minute."
)
@click.option("--force-download", is_flag=True, help="Download again even if current.")
@click.option("--resume", is_flag=True, help="Finish the newest interrupted run with this config and data, if any.")
@click.option("--submit", "do_submit", is_flag=True, help="Submit the result to Kaggle and record its score.")
@click.option("-m", "--message", help="Submission message (default: run id and CV accuracy).")
def run(
    offline: bool, demo: bool, force_download: bool, resume: bool, do_submit: bool, message: str | None, **opts: Any
) -> None:
    """The nightly job: download, train, predict (and submit with --submit).

    Exits 0 only when a valid submission was written.
    """
    from pipeline import job

    if demo and do_submit:
        raise click.UsageError("--demo makes a practice competition; it cannot be submitted to Kaggle")
    config = _build_config(opts, demo=demo)
    progress = _progress(opts)
    path = job.nightly(
        config,
        offline=offline,
        demo=demo,
        force_download=force_download,
        resume=resume,
        do_submit=do_submit,
        submit_message=message,
        progress=progress,
    )
    click.echo(path)


@cli.command()
@click.argument("target", default="latest", metavar="RUN|FILE")
@click.option("-m", "--message", help="Submission message (default: run id and CV accuracy).")
@click.option("--competition", help="Default: the run's competition, else digit-recognizer.")
@click.option("--wait", type=float, default=600, show_default=True, help="Seconds to wait for Kaggle's score.")
@_common
def submit(
    target: str, message: str | None, competition: str | None, wait: float, output_dir: str, **opts: Any
) -> None:
    """Validate and submit a run's submission (or a CSV file) to Kaggle; record the public score."""
    from pipeline import job

    job.submit(output_dir, target, message, competition, _progress(opts), wait=wait)


def _register_run_commands() -> None:
    """compare, report, history, runs, gc: they read runs/ only and never train."""
    from pipeline import cli_runs

    for command in (cli_runs.compare, cli_runs.report, cli_runs.history, cli_runs.runs, cli_runs.gc):
        cli.add_command(command)


_register_run_commands()


def main() -> None:
    """The console script (and ``python -m pipeline``)."""
    from pipeline.progress import filter_native_stderr

    filter_native_stderr()
    signal.signal(signal.SIGTERM, _terminate)
    cli(prog_name="digits")


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a cron timeout, `kill`) stops any command as Ctrl-C does: cleanly, with exit code 4."""
    raise KeyboardInterrupt
