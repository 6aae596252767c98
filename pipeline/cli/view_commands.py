"""Click commands that read run folders: compare, report, history, runs, gc.

Each command parses its options and calls one library function
(`pipeline.views.compare`, `pipeline.views.report`, `pipeline.views.history`,
`pipeline.store.gc`); failures are `DigitsError`s, which the ``digits``
group turns into ``digits: <message>`` and the error's exit code.
`pipeline.cli.main` registers them on the group.  Nothing here imports
TensorFlow or kaggle.
"""

from __future__ import annotations

import click

from pipeline.cli.app import App, pass_app, shared
from pipeline.cli.option_help import described_option
from pipeline.store import gc as _gc
from pipeline.store import run_folders, runs_in_use
from pipeline.views import compare as _compare
from pipeline.views import history as _history
from pipeline.views import report as _report


@click.command(short_help="Compare runs side by side (McNemar for two).")
@click.argument("refs", nargs=-1, metavar="[RUN]...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_compare.FORMATS),
    default="table",
    show_default=True,
    help="table for people; markdown, csv or json for scripts and notes (data on stdout, warnings on stderr).",
)
@click.option(
    "-n",
    "--last",
    type=click.IntRange(min=1, max=100_000),
    default=_compare.DEFAULT_LAST,
    show_default=True,
    help="How many of the newest runs to show when no RUN is named.",
)
@shared
@pass_app
def compare(app: App, refs: tuple[str, ...], fmt: str, last: int) -> None:
    """Compare runs side by side, and test whether two differ beyond chance.

    Per-fold accuracy, mean ± std, out-of-fold accuracy, the blend (the
    estimate of the submission the run wrote, on rows its selection never
    saw, and how many runs it averages), leaderboard score and time of each
    run, then the config values that differ between them.

    RUN is a run id, a unique prefix of one, `latest`, or a run folder; with
    none, the newest runs are shown (--last).  With exactly two runs, also the per-fold
    deltas (second minus first) and McNemar's test on their paired
    out-of-fold predictions, which tells a real improvement from noise (only
    when both runs used the same train.csv).
    """
    with runs_in_use.using(app.out, *(run_folders.home(app.out, ref) for ref in refs)):  # gc waits for us
        _compare.compare(app.out, refs, fmt=fmt, last=last)


@click.command()
@click.argument("ref", default="latest", metavar="[RUN]")
@described_option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the page.",
    default_text="runs/RUN-ID/report.html",
)
@shared
@pass_app
def report(app: App, ref: str, out: str | None) -> None:
    """Write an HTML report of one run (default: the latest).

    The page is self-contained and is written to runs/RUN-ID/report.html.

    Learning curves of every fold, per-fold accuracy, the confusion matrix,
    per-class accuracy and a grid of misclassified out-of-fold digits.  The
    plots are embedded in the page and also saved beside it as PNG files.
    """
    with runs_in_use.using(app.out, run_folders.home(app.out, ref)):
        _report.build_report(app.out, ref, out)


@click.command()
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to save the trend plot, in the format its suffix names (.png, .pdf, .svg, ...; none: PNG).  "
    "[default: OUTPUT_DIR/history.png]",
)
@click.option("--no-plot", is_flag=True, help="Print the table only.")
@shared
@pass_app
def history(app: App, plot: str | None, no_plot: bool) -> None:
    """Show the accuracy trend over all runs, and every submission, as tables and a plot.

    Every run, oldest first: its status, its recipe (and the plan's rule when
    the plan chose it), fold mean ± std, out-of-fold accuracy, the blend (the
    estimate of the submission the run wrote, on rows its selection never
    saw, and how many runs it averages) and the public leaderboard score,
    with the changes from the run before.  Then every submission in
    submissions/ledger.jsonl: when, which run and blend, its estimate when
    submitted, Kaggle's public score and status.
    """
    with runs_in_use.using(app.out):
        _history.history(app.out, plot=plot, draw=not no_plot)


@click.command()
@shared
@pass_app
def runs(app: App) -> None:
    """List all runs, oldest first.

    Id, date, status, folds done, out-of-fold accuracy, leaderboard score,
    seconds, and which run made the current submissions/submission.csv.
    """
    with runs_in_use.using(app.out):
        _history.list_runs(app.out)


@click.command()
@click.option(
    "--keep",
    type=click.IntRange(min=0, max=100_000),
    required=True,
    metavar="N",
    help="How many of the newest runs to keep.",
)
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
@shared
@pass_app
def gc(app: App, keep: int, dry_run: bool) -> None:
    """Remove old run folders, keeping the newest N.

    Also keeps every run that a submission Kaggle accepted or is scoring
    blends or made (submissions/ledger.jsonl), the run that made the current
    submissions/submission.csv, and a run still training under another
    digits.  While another digits uses the runs (trains, predicts, reads,
    submits), removes nothing and exits 5.  Files in submissions/ are left
    alone.
    """
    _gc.gc(app.out, keep=keep, dry_run=dry_run)


COMMANDS = (compare, report, history, runs, gc)
