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

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pipeline.cli import option_help
from pipeline.cli.app import MLFLOW_OPTION, App, build_config, config_options, notify_option, pass_app, shared
from pipeline.cli.option_help import described_option
from pipeline.core import config as cfg
from pipeline.core.errors import UsageError
from pipeline.store import record, run_folders, runs_in_use

# What `digits submit` and `run --submit` send as the message when none is given (pipeline.nightly.submit).
MESSAGE_DEFAULT = '"digits run RUN-ID, estimate E%" (E: the blend\'s estimate)'


@click.command()
@click.option("--data-dir", default=cfg.DataConfig.dir, show_default=True, help="Where the competition files go.")
@click.option("--competition", default=cfg.DataConfig.competition, show_default=True, help="The Kaggle competition.")
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
@click.option(
    "--resume",
    "resume",
    metavar="RUN",
    help="Finish RUN, a run not complete (a run id, a unique prefix, latest or a run folder): train only its "
    "missing folds.  The config given must be the run's (its config.toml is); an unset seed, recipe or precision "
    "takes the run's.",
)
@notify_option
@shared
@pass_app
def train(app: App, resume: str | None, **opts: Any) -> None:
    """Train one run: k folds into OUTPUT_DIR/runs/RUN-ID/."""
    from pipeline.nightly.tracking import tracked
    from pipeline.training import trainer

    config = build_config(app, opts)
    if resume is not None:  # before anything is loaded; also an empty RUN, which would otherwise train a new run
        run_folders.resolve(config.output_dir, resume)
    with tracked(config.tracking, config.output_dir, app.progress):
        click.echo(trainer.train(config, app.progress, resume=resume))


@click.command()
@click.argument("run", default="latest")
@described_option("--data-dir", help="Where test.csv is.", default_text="the run's own data folder")
@described_option(
    "--ensemble-runs",
    type=click.IntRange(min=1, max=1000),  # as blend.runs
    metavar="N",
    help="Blend RUN with at most N-1 of the newest compatible runs (1: RUN alone).",
    default_text="the run's blend.runs",
)
@notify_option
@shared
@pass_app
def predict(app: App, run: str, data_dir: str | None, ensemble_runs: int | None) -> None:
    """Blend RUN with compatible runs; predict test.csv into submissions/RUN-ID.csv and submission.csv.

    RUN is a run id, a unique prefix of one, `latest` (the default) or a run
    folder.  Compatible: every fold finished, on the same train.csv and
    test.csv.
    """
    from pipeline.nightly.predict import predict as predict_

    click.echo(predict_(app.out, run, data_dir, app.progress, ensemble_runs=ensemble_runs))


@click.command()
@config_options
@click.option("--offline", is_flag=True, help="Never contact Kaggle: train on the files in --data-dir, do not submit.")
@click.option(
    "--demo",
    is_flag=True,
    help="A small competition built from scikit-learn's digits, in demo/: no Kaggle account, about a minute.",
)
@click.option("--force-download", is_flag=True, help="Download again even if the local files are current.")
@click.option(
    "--resume",
    is_flag=True,
    help="Finish the newest run left "
    + option_help.either(record.UNFINISHED)
    + " whose config and data are tonight's (an unset seed, recipe or precision matches any): train only its "
    "missing folds.  Without one, a new run.",
)
@click.option(
    "--submit",
    "submit_mode",
    is_flag=False,
    flag_value="better",
    default=None,
    type=click.Choice(["better", "always"]),
    help="better (--submit alone): submit only when tonight's blend beats the best submission Kaggle accepted, "
    "by McNemar's test on the rows both predict (p below submit.alpha, default "
    + option_help.shown(cfg.SubmitConfig().alpha)
    + "; one made elsewhere: a binomial test of the estimate against its public score).  always: every night.",
)
@described_option("-m", "--message", help="Submission message.", default_text=MESSAGE_DEFAULT)
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

    Continues the run that plan.budget paused last night, if any.  Exits 0
    when a valid submission was written, or when the budget paused the run
    again (no new submission tonight).
    """
    from pipeline.nightly import night
    from pipeline.nightly.tracking import tracked

    config = _night_config(app, offline, demo, force_download, submit_mode, opts)
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
    if path is not None:
        click.echo(path)


def _night_config(
    app: App, offline: bool, demo: bool, force_download: bool, submit_mode: str | None, opts: dict[str, Any]
) -> cfg.Config:
    """`digits run`'s config, and the checks of its options that Click cannot make; nothing is read but --config."""
    if demo and submit_mode:
        raise UsageError("--demo makes a practice competition; it cannot be submitted to Kaggle")
    if force_download and (offline or demo):
        raise UsageError(f"--{'offline' if offline else 'demo'} never downloads, so --force-download means nothing")
    return build_config(app, opts, demo=demo)


@click.command()
@click.argument("target", default="latest", metavar="RUN|FILE")
@described_option(
    "-m",
    "--message",
    help="Submission message.",
    default_text=MESSAGE_DEFAULT + '; a file no run wrote: "digits submission FILE-NAME"',
)
@described_option(
    "--competition",
    help="The Kaggle competition.",
    default_text=f"the run's competition, else {cfg.DataConfig.competition}",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0, max=86400),
    callback=lambda ctx, param, value: _finite(param, value),
    default=cfg.SubmitConfig.wait,
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
@click.option(
    "--resume",
    is_flag=True,
    help="Finish, for each variant, the newest run left "
    + option_help.either(record.UNFINISHED)
    + " with that variant's config and this data; a variant without one trains a new run.",
)
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
        sweep_mod.sweep(_variant_builder(app, opts), variants, app.progress, resume=resume)


def _variant_builder(app: App, opts: dict[str, Any]) -> Callable[[tuple[str, dict[str, Any]] | None], cfg.Config]:
    return lambda variant: build_config(app, opts, variant=variant)


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


def preflight(app: App, name: str, params: dict[str, Any]) -> None:
    """What command `name` checks before it starts, given the options Click parsed (`digits schedule`).

    The same calls the command makes: its config is built (the --config file read, --set keys and
    every value checked), a sweep's variants too; nothing is trained, downloaded, locked or written.
    """
    if name == "run":
        config = _night_config(
            app, params["offline"], params["demo"], params["force_download"], params["submit_mode"], params
        )
    elif name in ("train", "sweep"):
        config = build_config(app, params)
    else:
        return
    if name == "sweep":
        from pipeline.nightly import sweep as sweep_mod

        sweep_mod.variant_configs(_variant_builder(app, params), params["variants"])
    if config.tracking.mlflow:  # as `tracked` checks it before any work: never a database in memory
        from pipeline.nightly import mlflow_sync

        mlflow_sync.checked_uri(config.output_dir, config.tracking.uri)
