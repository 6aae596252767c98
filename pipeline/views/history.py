"""``digits runs`` and ``digits history``: every run in an output directory, oldest first.

``runs`` is the inventory: id, date, status, folds done, scores, time, and
which run made the current ``submissions/submission.csv``.  ``history`` is
the trend: fold mean ± std, out-of-fold accuracy, the blend the run
submitted and the leaderboard score, each with its change from the run
before, as a table and a plot (`pipeline.views.plots.history_png`: PNG, or what ``--plot``'s suffix names), so a user sees
the score climb (or not) night after night.

A run whose report cannot be read costs one warning line; the others are shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core import atomic_files
from pipeline.core import console as ui
from pipeline.core.text import blend_pct, mean_std, number, pct, score_or_state, signed_pct, when
from pipeline.store import ledger, run_folders
from pipeline.store.record import RunRecord, standing
from pipeline.views import runset
from pipeline.views.plots import format_of, history_png
from pipeline.views.runset import RunSet

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

HISTORY_PNG = "history.png"


def list_runs(output_dir: str | Path = ".", out: Console | None = None, err: Console | None = None) -> RunSet:
    """``digits runs``: every run, oldest first: id, date, status, folds done, OOF, LB, seconds."""
    found = runset.load_shown(output_dir, last=None, err=err)
    current = run_folders.current_submission_sha(output_dir)
    con = out or ui.console()
    ui.heading(con, f"{len(found)} run(s) in {run_folders.runs_root(output_dir)}: accuracy in %")
    t = ui.table(
        [
            ("run", "left"),
            ("date", "left"),
            ("status", "left"),
            ("folds", "right"),
            ("OOF", "right"),
            ("LB", "right"),
            ("seconds", "right"),
            ("", "left"),
        ]
    )
    for r in found.records:
        made_it = current is not None and r.submission is not None and r.submission.sha256 == current
        t.add_row(
            r.run_id,
            when(runset.started(r)),
            ui.status(r.status),
            f"{len(r.folds)}/{r.folds_planned}",
            pct(r.oof_accuracy, 3),
            score_or_state(r.lb_score, r.lb_status),
            number(runset.elapsed(r)),
            ui.styled("submission.csv", "bold") if made_it else progress(r),
        )
    con.print(t)
    return found


def history(
    output_dir: str | Path = ".",
    plot: str | Path | None = None,
    draw: bool = True,
    out: Console | None = None,
    err: Console | None = None,
) -> RunSet:
    """``digits history``: the accuracy trend over all runs, as a table and (unless `draw` is off) a plot.

    The plot goes to `plot`, default ``OUTPUT_DIR/history.png``, in the format its suffix names (PNG
    without one; another suffix is a usage error naming --plot), through
    `pipeline.core.atomic_files` (so a symlink, a FIFO or a device is written through).
    """
    target = Path(plot) if plot else Path(output_dir) / HISTORY_PNG
    fmt = format_of(target, "--plot") if draw else "png"  # before anything is shown: a bad name is a usage error
    found = runset.load_shown(output_dir, last=None, err=err)
    con = out or ui.console()
    ui.heading(
        con,
        "History: accuracy in %; blend = the submission's estimate on rows its selection never saw (runs it "
        "averages); Δ = change from the last run with the score",
    )
    con.print(ui.first_fitting(con, (lambda: history_table(found.records), lambda: history_table(found.records, True))))
    submitted = ledger.read(output_dir, warn=lambda m: ui.warn(m, err))
    if submitted:
        ui.heading(
            con, "Submissions (submissions/ledger.jsonl): the estimate when submitted, and Kaggle's public score"
        )
        con.print(submissions_table(submitted))
    if draw:
        atomic_files.write_bytes(target, history_png(found.records, fmt), through=plot is not None)  # named: through
        con.print(f"plot: {target}", soft_wrap=True)
    return found


def history_table(records: list[RunRecord], tight: bool = False) -> Table:
    """One row per run; Δ columns compare with the last earlier run that has the score."""
    t = ui.table(
        [
            ("run", "left"),
            ("date", "left"),
            ("status", "left"),
            ("recipe", "left"),
            ("mean ± std", "right"),
            ("OOF", "right"),
            ("Δ OOF", "right"),
            ("blend", "right"),
            ("LB", "right"),
            ("Δ LB", "right"),
            ("", "left"),
        ],
        tight=tight,
    )
    oof_change, lb_change = Change(), Change()
    best_oof: float | None = None
    for r in records:
        is_best = r.oof_accuracy is not None and (best_oof is None or r.oof_accuracy > best_oof)
        if is_best:
            best_oof = r.oof_accuracy
        t.add_row(
            r.run_id,
            when(runset.started(r)),
            ui.status(r.status),
            recipe(r),
            mean_std(r.fold_accuracy_mean, r.fold_accuracy_std),
            pct(r.oof_accuracy, 3),
            oof_change.next(r.oof_accuracy),
            blend_pct(r.submission_estimate, r.submission_runs),
            score_or_state(r.lb_score, r.lb_status),
            lb_change.next(r.lb_score),
            ui.styled("best OOF so far", "green") if is_best else progress(r),
        )
    return t


def progress(rec: RunRecord) -> str:
    """A run trained over several nights: how many, and where an unfinished one stands."""
    nights = len(rec.attempts)
    if rec.status == "paused":
        return f"night {nights}: {standing(rec)}"
    return f"{nights} nights" if nights > 1 and rec.status == "complete" else ""


def recipe(rec: RunRecord) -> str:
    """The recipe and, when the plan chose it, the plan's rule: 'cnn-wide (rotation)'."""
    kind = rec.config.model.kind or "?"
    return f"{kind} ({rec.plan.rule})" if rec.plan is not None and rec.plan.rule != "named" else kind


def submissions_table(entries: list[ledger.Entry]) -> Table:
    """One row per submission in the ledger, oldest first: when, what, its estimate and its public score."""
    t = ui.table(
        [
            ("sent", "left"),
            ("run", "left"),
            ("blend", "left"),
            ("estimate", "right"),
            ("LB", "right"),
            ("status", "left"),
            ("ref", "right"),
        ],
        wrap=("sent", "run", "blend"),
    )
    for e in entries:
        members = ", ".join(f"{m.run_id[-6:]} x{m.weight:.2f}" for m in e.members) or (
            "made elsewhere" if e.origin == "kaggle" else "—"
        )
        t.add_row(
            when(e.sent_at),
            e.run_id or "—",
            members,
            pct(e.estimate, 3),
            score_or_state(e.public_score, e.status),
            e.status,
            str(e.ref) if e.ref is not None else "—",
        )
    return t


class Change:
    """The change of a score from the last earlier run that had one (runs without it are skipped)."""

    def __init__(self) -> None:
        self.previous: float | None = None

    def next(self, value: float | None) -> Text | str:
        """The coloured change to `value` ('' for the first score, or when there is none)."""
        if value is None:
            return ""
        delta = None if self.previous is None else value - self.previous
        self.previous = value
        return "" if delta is None else ui.change(delta, signed_pct(delta, 3))
