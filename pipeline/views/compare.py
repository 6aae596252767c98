"""``digits compare``: runs side by side, in one of four formats (table, markdown, csv, json).

`compare` builds a `pipeline.views.differences.Comparison` and prints it: a rich
table for people (plain text when stdout is not a terminal), or markdown,
csv or json for notes and scripts (data on stdout, warnings on stderr).
Every format has the same columns: per-fold accuracy, fold mean ± std,
out-of-fold accuracy, the blend (the out-of-sample estimate of the submission
the run wrote, and how many runs it averages), the leaderboard score and the
time; then what differs between the runs, and for two runs the pair test.

Accuracies are fractions in JSON and CSV, percentages in the table and markdown.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core import atomic_files
from pipeline.core import console as ui
from pipeline.core.errors import BadInputError
from pipeline.core.text import (
    blend_pct,
    duration,
    known,
    mean_std,
    pct,
    printable,
    score_or_state,
    signed_pct,
    toml_value,
    when,
)
from pipeline.store import run_folders
from pipeline.store.record import RunRecord
from pipeline.views import differences, runset
from pipeline.views.differences import Comparison, verdict

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

FORMATS = ("table", "markdown", "csv", "json")
DEFAULT_LAST = run_folders.DEFAULT_LAST
LEGEND = (
    "accuracy in %; F<k> = fold k; OOF = out-of-fold; blend = the submission's estimate on rows its selection "
    "never saw (runs); LB = leaderboard"
)


def compare(
    output_dir: str | Path = ".",
    refs: Sequence[str] = (),
    fmt: str = "table",
    last: int | None = DEFAULT_LAST,
    out: Console | None = None,
    err: Console | None = None,
) -> Comparison:
    """``digits compare``: print the runs side by side in `fmt`; returns what was printed, as data."""
    if fmt not in FORMATS:
        raise BadInputError(f"option --format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    comp = differences.build(runset.load_shown(output_dir, refs, last, err))
    if fmt == "table":
        print_table(comp, out or ui.console())
    else:
        text = {"markdown": to_markdown, "csv": to_csv, "json": to_json}[fmt](comp)
        ui.write_data(text, out.file if out is not None else sys.stdout)
    return comp


# ---- cells shared by the table and markdown ------------------------------------------------


def run_cells(rec: RunRecord) -> tuple[str, str, str, str, str, str]:
    """mean ± std, OOF, blend, LB, time and date of one run, as text."""
    return (
        mean_std(rec.fold_accuracy_mean, rec.fold_accuracy_std),
        pct(rec.oof_accuracy, 3),
        blend_pct(rec.submission_estimate, rec.submission_runs),
        score_or_state(rec.lb_score, rec.lb_status),
        duration(runset.elapsed(rec)),
        when(runset.started(rec)),
    )


def _best(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# ---- table -------------------------------------------------------------------------------


def print_table(comp: Comparison, con: Console) -> None:
    """The runs table, what differs, and the pair (or a hint to name two runs)."""
    ui.heading(con, f"{len(comp.records)} run(s): {LEGEND}")
    layouts = (  # a column per fold while they fit, closer together if need be; else one merged column
        lambda: _runs_table(comp, fold_columns=True),
        lambda: _runs_table(comp, fold_columns=True, tight=True),
        lambda: _runs_table(comp, fold_columns=False),
    )
    con.print(ui.first_fitting(con, layouts))
    _print_diff(comp, con)
    if comp.pair:
        _print_pair(comp.pair, con)
    elif len(comp.records) > 2:
        ui.hint(con, "Name exactly two runs (digits compare A B) for per-fold deltas and McNemar's significance test.")


def _runs_table(comp: Comparison, fold_columns: bool, tight: bool = False) -> Table:
    """One row per run; the best OOF, blend and LB in bold green when there are several runs."""
    folds = comp.fold_indices()
    t = ui.table([("run", "left"), ("date", "left"), ("status", "left")], tight=tight)
    if fold_columns:
        for k in folds:
            t.add_column(f"F{k}", justify="right", no_wrap=True)
    else:
        t.add_column("folds", justify="left")
    for name in ("mean ± std", "OOF", "blend", "LB", "time"):
        t.add_column(name, justify="right", no_wrap=True)
    several = len(comp.records) > 1
    best_oof = _best(r.oof_accuracy for r in comp.records)
    best_blend = _best(r.submission_estimate for r in comp.records)
    best_lb = _best(r.lb_score for r in comp.records)

    def marked(text: str, value: float | None, best: float | None) -> Any:
        return ui.styled(text, ui.BEST if several and value is not None and value == best else "")

    for r in comp.records:
        accuracy = r.fold_accuracy
        if fold_columns:
            fold_cells = [pct(accuracy.get(k)) for k in folds]
        else:
            fold_cells = [" ".join(pct(accuracy[k]) for k in sorted(accuracy)) or "—"]
        mean, oof, blend, lb, took, date = run_cells(r)
        t.add_row(
            r.run_id,
            date,
            ui.status(r.status),
            *fold_cells,
            mean,
            marked(oof, r.oof_accuracy, best_oof),
            marked(blend, r.submission_estimate, best_blend),
            marked(lb, r.lb_score, best_lb),
            took,
        )
    return t


def _print_diff(comp: Comparison, con: Console) -> None:
    """What differs: keys down and runs across while that fits, else runs down and keys across."""
    if len(comp.records) < 2:
        return
    rows = comp.diff_rows()
    if not rows:
        ui.hint(con, "Config, data and library versions are identical in all these runs.")
        return
    several = "" if len(comp.records) == 2 else " (bold: differs from the first run)"
    ui.heading(con, "What differs between them" + several)
    ids = [r.run_id for r in comp.records]

    def cell(values: list[Any], j: int) -> Any:
        return ui.styled(toml_value(values[j]), "" if values[j] == values[0] else "bold")

    def keys_down() -> Table:
        t = ui.table([("", "left"), ("key", "left")])
        t.columns[0].style = "dim"
        for i in ids:
            t.add_column(i)
        for section, key, values in rows:
            t.add_row(section, key, *[cell(values, j) for j in range(len(ids))])
        return t

    def runs_down() -> Table:
        t = ui.table([("run", "left")])
        for _, key, _ in rows:
            t.add_column(key)
        for j, i in enumerate(ids):
            t.add_row(i, *[cell(values, j) for _, _, values in rows])
        return t

    con.print(ui.first_fitting(con, (keys_down, runs_down)))


def _print_pair(pair: dict[str, Any], con: Console) -> None:
    """B against A fold by fold, then McNemar's verdict."""
    ui.heading(con, f"B = {pair['b']} against A = {pair['a']} (accuracy in %, delta = B - A in percentage points)")
    t = ui.table()
    t.add_column("")
    for name in ("A", "B", "delta"):
        t.add_column(name, justify="right")

    def row(name: str, d: dict[str, Any], digits: int = 2) -> None:
        t.add_row(name, pct(d["a"], digits), pct(d["b"], digits), ui.change(d["delta"], signed_pct(d["delta"], digits)))

    for f in pair["folds"]:
        row(f"fold {f['index']}", f)
    t.add_section()
    row("fold mean", pair["fold_mean"])
    row("out-of-fold", pair["oof"], 3)
    row("leaderboard", pair["leaderboard"], 3)
    con.print(t)
    for note in pair["notes"]:
        con.print(ui.styled(f"note: {note}", "yellow"))
    m = pair.get("mcnemar")
    if m:
        style = "bold green" if m["better"] == "b" else ("bold red" if m["significant"] else "bold")
        con.print(ui.styled(verdict(pair), style))


# ---- json and csv -------------------------------------------------------------------------


def to_json(comp: Comparison) -> str:
    """Strict JSON: a NaN or inf a record holds (json.dumps would write NaN, which no JSON parser takes) is null."""
    return json.dumps(_finite(comp.as_dict()), indent=2, default=atomic_files.json_default, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()  # numpy's float32 is no float, and an array holds floats too
    if isinstance(value, float):
        return known(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


CSV_RUN_COLUMNS = (
    "fold_accuracy_mean",
    "fold_accuracy_std",
    "oof_accuracy",
    "blend_estimate",
    "blend_runs",
    "recipe",
    "leaderboard_score",
    "leaderboard_status",
    "seconds",
    "train_sha256",
)


def to_csv(comp: Comparison) -> str:
    """One row per run: the summary, one column per fold, and every config key that differs."""
    folds = comp.fold_indices()
    diff_keys = [(section, key) for section, key, _ in comp.diff_rows()]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            *("run_id", "started_at", "status", "folds_planned", "folds_done"),
            *[f"fold_{k}" for k in folds],
            *CSV_RUN_COLUMNS,
            *[key if section == "config" else f"{section}:{key}" for section, key in diff_keys],
        ]
    )
    for i, (run_dir, rec) in enumerate(zip(comp.dirs, comp.records)):
        s = differences.summary(rec, run_dir)
        accuracy = rec.fold_accuracy
        w.writerow(
            [
                *[_csv_value(s[k]) for k in ("run_id", "started_at", "status", "folds_planned", "folds_done")],
                *[_csv_value(accuracy.get(k)) for k in folds],
                *[_csv_value(s[k]) for k in CSV_RUN_COLUMNS],
                *[_csv_value(comp.diff[section][key][i]) for section, key in diff_keys],
            ]
        )
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    """Empty for None (and NaN or inf), JSON for lists and booleans, the value itself otherwise."""
    if v is None or (isinstance(v, float) and known(v) is None):
        return ""
    if isinstance(v, (list, dict, bool)):
        return json.dumps(v)
    return v


# ---- markdown -----------------------------------------------------------------------------


def _md(text: str) -> str:
    """A table cell's text: a newline or a ``|`` from a file would end the cell or the row."""
    return printable(text).replace("|", "\\|")


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(_md(c) for c in cells) + " |"


def to_markdown(comp: Comparison) -> str:
    """GitHub-flavoured markdown: the runs table, what differs, and the pair verdict."""
    lines = _md_runs(comp) + _md_diff(comp) + (_md_pair(comp.pair) if comp.pair else [])
    lines += [f"\n> warning: {_md(note)}" for note in comp.notes]
    return "\n".join(lines).rstrip() + "\n"


def _md_runs(comp: Comparison) -> list[str]:
    folds = comp.fold_indices()
    header = ["run", "date", "status", *[f"fold {k}" for k in folds], "mean ± std", "OOF", "blend (runs)", "LB", "time"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * (len(folds) + 5)]
    for r in comp.records:
        mean, oof, blend, lb, took, date = run_cells(r)
        folds_shown = [pct(r.fold_accuracy.get(k)) for k in folds]
        lines.append(_md_row([r.run_id, date, r.status, *folds_shown, mean, oof, blend, lb, took]))
    lines += [
        "",
        "Accuracy in %; OOF = out-of-fold accuracy over all training rows; blend = the out-of-sample estimate "
        "of the run's submission (runs blended); LB = public leaderboard score.",
    ]
    return lines


def _md_diff(comp: Comparison) -> list[str]:
    if len(comp.records) < 2:
        return []
    rows = comp.diff_rows()
    if not rows:
        return ["", "### What differs", "", "Config, data and library versions are identical in all these runs."]
    lines = ["", "### What differs", ""]
    lines.append("| | key | " + " | ".join(r.run_id for r in comp.records) + " |")
    lines.append("|---|---|" + "---|" * len(comp.records))
    for section, key, values in rows:
        lines.append(f"| {section} | `{_md(key)}` | " + " | ".join(_md(toml_value(v)) for v in values) + " |")
    return lines


def _md_pair(pair: dict[str, Any]) -> list[str]:
    lines = ["", f"### {pair['b']} vs {pair['a']}", "", "| | A | B | delta (pp) |", "|---|---:|---:|---:|"]
    for f in pair["folds"]:
        lines.append(f"| fold {f['index']} | {pct(f['a'])} | {pct(f['b'])} | {signed_pct(f['delta'])} |")
    for name, key, digits in (
        ("fold mean", "fold_mean", 2),
        ("out-of-fold", "oof", 3),
        ("leaderboard", "leaderboard", 3),
    ):
        d = pair[key]
        lines.append(
            f"| **{name}** | {pct(d['a'], digits)} | {pct(d['b'], digits)} | {signed_pct(d['delta'], digits)} |"
        )
    lines.append("")
    for note in pair["notes"]:
        lines += [f"> note: {_md(note)}", ""]
    lines.append(f"**{verdict(pair)}**" if pair.get("mcnemar") else "")
    return lines
