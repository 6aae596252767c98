"""The commands that train or talk to Kaggle or MLflow: download, train, predict, run, submit, sweep, mlflow-sync.

Each is a thin call into one library function.  A command that trains builds
its `Config` (defaults < ``--config FILE`` < ``--set`` < named options) with
`pipeline.cli.app.build_config`.  The library is imported inside each
command, so ``digits --help`` and the commands that only read runs/ never
import TensorFlow, Ray, kaggle or MLflow.  The commands that train or submit
run inside `pipeline.nightly.tracking.tracked`, which logs them into MLflow
when tracking is on.  `pipeline.cli.main` registers them on the ``digits``
group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.cli.app import MLFLOW_OPTION, App, build_config, config_options, notify_option, pass_app, shared
from pipeline.core import config as cfg
from pipeline.core.errors import UsageError
from pipeline.store import run_folders, runs_in_use


@click.command()
@click.option("--data-dir", default=cfg.DataConfig.dir, show_default=True, help="Where the competition files go.")
@click.option("--competition", default=cfg.DataConfig.competition, show_default=True)
@click.option("--force", is_flag=True, help="Download again even if the local files are current.")
@notify_option
@shared
@pass_app
def download(app: App, data_dir: str, competition: str, force: bool) -> None:
    """Download the competition files through the Kaggle API.

    Credentials as for the kaggle CLI: KAGGLE_USERNAME/KAGGLE_KEY,
    KAGGLE_API_TOKEN, or kaggle.json in ~/.kaggle or $KAGGLE_CONFIG_DIR.
    Skipped when the local files are complete and unchanged on Kaggle.
    """
    from pipeline import kaggle_client

    manifest = kaggle_client.download(Path(data_dir), competition, force=force, log=app.progress.info)
    app.progress.info(f"{data_dir}: " + ("downloaded" if manifest.get("downloaded") else "already up to date"))


@click.command()
@config_options
@click.option("--resume", "resume", metavar="RUN", help="Finish an interrupted run: train only its missing folds.")
@notify_option
@shared
@pass_app
def train(app: App, resume: str | None, **opts: Any) -> None:
    """Train one run: k folds into OUTPUT_DIR/runs/<run-id>/."""
    from pipeline.nightly.tracking import tracked
    from pipeline.training import trainer

    config = build_config(app, opts)
    if resume is not None:  # before anything is loaded; also an empty RUN, which would otherwise train a new run
        run_folders.resolve(config.output_dir, resume)
    with tracked(config.tracking, config.output_dir, app.progress):
        click.echo(trainer.train(config, app.progress, resume=resume))


@click.command()
@click.argument("run", default="latest")
@click.option("--data-dir", help="Where test.csv is (default: the run's own data dir).")
@click.option(
    "--ensemble-runs",
    type=click.IntRange(min=1, max=1000),  # as blend.runs
    help="Blend at most this many compatible runs (default: the run's blend.runs; 1: RUN alone).",
)
@notify_option
@shared
@pass_app
def predict(app: App, run: str, data_dir: str | None, ensemble_runs: int | None) -> None:
    """Blend RUN with compatible runs; predict test.csv into submissions/<run-id>.csv and submission.csv."""
    from pipeline.nightly.predict import predict as predict_

    click.echo(predict_(app.out, run, data_dir, app.progress, ensemble_runs=ensemble_runs))


@click.command()
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
@notify_option
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
    from pipeline.nightly import night
    from pipeline.nightly.tracking import tracked

    if demo and submit_mode:
        raise UsageError("--demo makes a practice competition; it cannot be submitted to Kaggle")
    if force_download and (offline or demo):
        raise UsageError(f"--{'offline' if offline else 'demo'} never downloads, so --force-download means nothing")
    config = build_config(app, opts, demo=demo)
    if demo and app.output_dir is not None:  # demo/ is the demo's own; a folder given to it may hold a real night
        run_folders.claim_for_demo(config.output_dir)
    with tracked(config.tracking, config.output_dir, app.progress), runs_in_use.using(config.output_dir):
        # from training to the submission's score: gc deletes no run
        path = night.nightly(
            config,
            offline=offline,
            demo=demo,
            force_download=force_download,
            resume=resume,
            submit_mode=submit_mode,
            submit_message=message,
            progress=app.progress,
        )
    click.echo(path)


@click.command()
@click.argument("target", default="latest", metavar="RUN|FILE")
@click.option("-m", "--message", help="Submission message (default: run id and CV accuracy).")
@click.option("--competition", help="Default: the run's competition, else digit-recognizer.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0, max=86400),
    callback=lambda ctx, param, value: _finite(param, value),
    default=600,
    show_default=True,
    help="Seconds to wait for Kaggle's score (at most a day).",
)
@notify_option
@MLFLOW_OPTION
@shared
@pass_app
def submit(
    app: App, target: str, message: str | None, competition: str | None, wait: float, mlflow: bool | None
) -> None:
    """Validate and submit a run's submission (or a CSV file) to Kaggle; record the public score.

    The score also goes to MLflow when the run was tracked, or with --mlflow.
    """
    from pipeline.nightly import submit as submit_mod
    from pipeline.nightly import tracking

    with (
        runs_in_use.using(app.out, run_folders.home(app.out, target)),  # gc deletes no run while we poll Kaggle
        tracking.tracked(tracking.for_run(app.out, target, bool(mlflow)), app.out, app.progress),
    ):
        submit_mod.submit(app.out, target, message, competition, app.progress, wait=wait)


@click.command()
@click.argument("variants")  # checked when read, like --config: a folder or a FIFO is bad input (exit 1)
@config_options
@click.option("--resume", is_flag=True, help="Finish the sweep's unfinished runs instead of starting new ones.")
@notify_option
@shared
@pass_app
def sweep(app: App, variants: str, resume: bool, **opts: Any) -> None:
    """Train the variants in VARIANTS (a TOML file) as one pool of folds; then compare them.

    Each [variants.NAME] table holds config overrides in the keys of --set,
    e.g. `model.hidden = [2048, 1024]`; the command line still applies on
    top.  Every variant becomes an ordinary run; all share one sweep id.
    """
    from pipeline.nightly import sweep as sweep_mod
    from pipeline.nightly.tracking import tracked

    config = build_config(app, opts)
    with tracked(config.tracking, config.output_dir, app.progress), runs_in_use.using(config.output_dir):
        # the comparison after training reads the variants' runs: gc deletes none of them meanwhile
        sweep_mod.sweep(lambda variant: build_config(app, opts, variant=variant), variants, app.progress, resume=resume)


def _finite(param: click.Parameter, value: float) -> float:
    """A FloatRange lets nan through (every comparison with it is false)."""
    if value != value:
        raise click.BadParameter("must be a number, not nan", param=param)
    return value


@click.command("mlflow-sync")
@click.argument("runs", nargs=-1, metavar="[RUN ...]")
@click.option("--uri", help="Tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db beside runs/).")
@click.option("--force", is_flag=True, help="Log the runs again even if unchanged since they were last logged.")
@shared
@pass_app
def mlflow_sync(app: App, runs: tuple[str, ...], uri: str | None, force: bool) -> None:
    """Log runs into MLflow: those never logged (trained before tracking was on) and those changed since.

    Without RUN: every run not still running.  Idempotent: a second call
    logs nothing new and creates no duplicates.  Prints the tracking URI.
    """
    from pipeline.nightly import tracking

    with runs_in_use.using(app.out):  # it reads the runs' arrays and pages: gc deletes none of them meanwhile
        click.echo(tracking.sync(app.out, runs, uri, force, app.progress))


COMMANDS = (download, train, predict, run, submit, sweep, mlflow_sync)
