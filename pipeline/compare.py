"""Compare runs, list them, follow their history, and remove old ones.

Everything here reads run folders only (``runs/<id>/report.json``,
``oof.npz``) and never trains: it imports neither TensorFlow nor kaggle, and
loads scipy and matplotlib only inside the functions that need them, so the
commands start in a fraction of a second.

Each command-level function (`compare`, `list_runs`, `history`, `gc`) loads
what it needs, prints through rich (plain text when stdout is not a
terminal) and returns plain data that tests and scripts can use.  A run
folder whose report is missing or corrupt costs one warning line on stderr;
the other runs are still shown, and `BadInputError` is raised only when no
run at all could be shown.

Accuracies are fractions in reports, JSON and CSV, and percentages in tables.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
import shutil
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from pipeline import config as cfg
from pipeline import files, runs
from pipeline.errors import BadInputError, BusyError, StorageError

ALPHA = 0.05  # significance level of McNemar's test
DEFAULT_LAST = 10  # runs compared when none are named
EXACT_BELOW = 25  # discordant pairs below which McNemar's test is the exact binomial one
FORMATS = ("table", "markdown", "csv", "json")
PLAIN_WIDTH = 120  # table width when stdout is not a terminal (a file, a pipe, CI logs)
OOF = "oof.npz"


# --------------------------------------------------------------------------- consoles


def console(stderr: bool = False, file: TextIO | None = None):
    """A rich Console; 120 columns wide when not writing to a terminal.

    Rich falls back to 80 columns for pipes and files, which wraps the runs
    table badly; ``COLUMNS`` still wins when set.
    """
    from rich.console import Console

    con = Console(file=file, stderr=stderr, highlight=False)
    if not con.is_terminal and not os.environ.get("COLUMNS"):
        con = Console(file=file, stderr=stderr, highlight=False, width=PLAIN_WIDTH)
    return con


def warn(message: str, err=None) -> None:
    """One line on stderr about a run that cannot be shown."""
    from rich.text import Text

    (err or console(stderr=True)).print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)


# --------------------------------------------------------------------------- loading


@dataclass
class Run:
    """A run folder whose report could be read, with the report normalised for display."""

    run_id: str
    path: Path
    report: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.report.get("status") or "unknown")

    @property
    def folds(self) -> list[dict[str, Any]]:
        return self.report.get("folds") or []

    @property
    def fold_accuracy(self) -> dict[int, float | None]:
        """Validation accuracy by fold index, in the order folds were recorded."""
        out: dict[int, float | None] = {}
        for pos, f in enumerate(self.folds):
            index = f.get("index", pos)
            out[int(index) if isinstance(index, (int, float)) else pos] = _num(f.get("val_accuracy"))
        return out

    @property
    def folds_planned(self) -> int | None:
        n = (self.report.get("config") or {}).get("train", {}).get("folds")
        return int(n) if isinstance(n, (int, float)) else None

    @property
    def oof_accuracy(self) -> float | None:
        return _num(self.report.get("oof_accuracy"))

    @property
    def fold_mean(self) -> float | None:
        return _num(self.report.get("fold_accuracy_mean"))

    @property
    def fold_std(self) -> float | None:
        return _num(self.report.get("fold_accuracy_std"))

    @property
    def leaderboard(self) -> dict[str, Any]:
        lb = self.report.get("leaderboard")
        return lb if isinstance(lb, dict) else {}

    @property
    def lb_score(self) -> float | None:
        return _num(self.leaderboard.get("public_score"))

    @property
    def lb_status(self) -> str | None:
        lb = self.leaderboard
        if not lb:
            return None
        if lb.get("error"):
            return "error"
        return str(lb.get("status") or "pending")

    @property
    def started(self) -> _dt.datetime | None:
        value = self.report.get("started_at")
        try:
            return (
                _dt.datetime.fromisoformat(value) if value else _dt.datetime.strptime(self.run_id[:15], "%Y%m%d-%H%M%S")
            )
        except (TypeError, ValueError):
            return None

    @property
    def seconds(self) -> float | None:
        sec = _num(self.report.get("seconds"))
        if sec is None and self.report.get("finished_at") and self.started is not None:
            try:
                end = _dt.datetime.fromisoformat(self.report["finished_at"])
                sec = (end - self.started).total_seconds()
            except (TypeError, ValueError):
                return None
        return sec

    @property
    def train_sha(self) -> str | None:
        data = self.report.get("data") or {}
        entry = data.get("train.csv") if isinstance(data, dict) else None
        return entry.get("sha256") if isinstance(entry, dict) else None

    @property
    def submission_sha(self) -> str | None:
        sub = self.report.get("submission")
        return sub.get("sha256") if isinstance(sub, dict) else None

    def summary(self) -> dict[str, Any]:
        """The run as one flat record (the JSON/CSV row of every command)."""
        accs = self.fold_accuracy
        return {
            "run_id": self.run_id,
            "started_at": self.report.get("started_at"),
            "finished_at": self.report.get("finished_at"),
            "status": self.status,
            "folds_planned": self.folds_planned,
            "folds_done": len(self.folds),
            "fold_accuracy": {str(k): v for k, v in accs.items()},
            "fold_accuracy_mean": self.fold_mean,
            "fold_accuracy_std": self.fold_std,
            "oof_accuracy": self.oof_accuracy,
            "leaderboard_score": self.lb_score,
            "leaderboard_status": self.lb_status,
            "seconds": self.seconds,
            "train_sha256": self.train_sha,
            "path": str(self.path),
        }


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _check(run: Run) -> Run:
    """Touch every field the tables use, so a report of the wrong shape fails here, once."""
    run.summary()
    for f in run.folds:
        if not isinstance(f, dict):
            raise TypeError("a fold entry is not an object")
    if not isinstance(run.report.get("config", {}), dict):
        raise TypeError("config is not an object")
    return run


@dataclass
class Loaded:
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line per run folder that could not be read


def load_runs(output_dir: str | Path = ".", refs: Sequence[str] = (), last: int | None = DEFAULT_LAST) -> Loaded:
    """The runs named by `refs` (ids, unique prefixes, ``latest`` or folders), else the newest `last`.

    A ref that names no run raises `BadInputError`; a run whose report is
    missing, corrupt or of an unexpected shape becomes a note instead.
    """
    if refs:
        paths: list[Path] = []
        for ref in refs:
            path = runs.resolve(output_dir, ref)
            if path.resolve() not in [p.resolve() for p in paths]:
                paths.append(path)
    else:
        ids = runs.list_runs(output_dir)
        if not ids:
            raise BadInputError(f"no runs in {runs.runs_root(output_dir)}")
        if last is not None and last > 0:
            ids = ids[-last:]
        paths = [runs.runs_root(output_dir) / i for i in ids]
    loaded = Loaded()
    for path in paths:
        try:
            loaded.runs.append(_check(Run(path.name, path, runs.read_report(path))))
        except BadInputError as e:
            loaded.notes.append(str(e))
        except (TypeError, ValueError, AttributeError, KeyError) as e:
            loaded.notes.append(f"{path / runs.REPORT}: unexpected content ({e}); skipped")
    return loaded


def _shown(loaded: Loaded, err=None) -> None:
    """Print the notes; raise when there is nothing left to show."""
    for note in loaded.notes:
        warn(note, err)
    if not loaded.runs:
        n = len(loaded.notes)
        raise BadInputError(f"none of the {n} run(s) could be read" if n > 1 else "no run could be read")


# --------------------------------------------------------------------------- statistics


@dataclass
class McNemar:
    """McNemar's test on paired out-of-fold predictions of runs A and B."""

    rows: int  # rows predicted by both runs
    both_correct: int
    a_only: int  # rows A gets right and B wrong
    b_only: int  # rows B gets right and A wrong
    both_wrong: int
    method: str  # "exact" (binomial) or "chi2" (with continuity correction)
    statistic: float
    p_value: float
    alpha: float = ALPHA

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def better(self) -> str | None:
        """``"a"`` or ``"b"`` when the difference is significant, else None."""
        if not self.significant:
            return None
        return "b" if self.b_only > self.a_only else "a"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "both_correct": self.both_correct,
            "a_only_correct": self.a_only,
            "b_only_correct": self.b_only,
            "both_wrong": self.both_wrong,
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "significant": self.significant,
            "better": self.better,
        }


def mcnemar(labels: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, alpha: float = ALPHA) -> McNemar:
    """McNemar's test of whether two classifiers' error rates differ on the same rows.

    Only the discordant rows count: ``b`` = A right and B wrong, ``c`` = the
    reverse.  With fewer than 25 of them the exact two-sided binomial test
    (p = 2 P(X <= min(b, c)), X ~ Bin(b + c, 1/2)) is used, otherwise the
    chi-squared statistic ``(|b - c| - 1)^2 / (b + c)`` with one degree of
    freedom (Edwards' continuity correction).
    """
    from scipy import special  # lighter than scipy.stats; only needed here

    labels, pred_a, pred_b = np.asarray(labels), np.asarray(pred_a), np.asarray(pred_b)
    ra, rb = pred_a == labels, pred_b == labels
    b, c = int((ra & ~rb).sum()), int((~ra & rb).sum())
    n = b + c
    if n < EXACT_BELOW:
        stat = float(min(b, c))
        p = 1.0 if n == 0 else min(1.0, 2.0 * float(special.bdtr(min(b, c), n, 0.5)))
        method = "exact"
    else:
        stat = (abs(b - c) - 1) ** 2 / n
        p = float(special.chdtrc(1, stat))
        method = "chi2"
    return McNemar(
        rows=int(len(labels)),
        both_correct=int((ra & rb).sum()),
        a_only=b,
        b_only=c,
        both_wrong=int((~ra & ~rb).sum()),
        method=method,
        statistic=float(stat),
        p_value=p,
        alpha=alpha,
    )


def load_oof(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` (N,) and ``proba`` (N, 10) of a run's out-of-fold predictions; BadInputError if unusable."""
    path = Path(run_dir) / OOF
    try:
        with np.load(path, allow_pickle=False) as z:
            labels, proba = np.asarray(z["labels"]), np.asarray(z["proba"], dtype=float)
    except FileNotFoundError:
        raise BadInputError(f"{path}: missing (the run saved no out-of-fold predictions)") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise BadInputError(f"{path}: unreadable ({e})") from None
    if labels.ndim != 1 or proba.ndim != 2 or len(labels) != len(proba):
        raise BadInputError(f"{path}: labels {labels.shape} and proba {proba.shape} do not match")
    return labels.astype(np.int64), proba


def predicted(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class per row and the mask of rows that have a prediction at all.

    An interrupted run leaves rows of folds it never trained as NaN (or zeros).
    """
    valid = np.isfinite(proba).all(axis=1) & (np.nan_to_num(proba).sum(axis=1) > 0)
    return np.nan_to_num(proba, nan=-1.0).argmax(axis=1), valid


# --------------------------------------------------------------------------- comparing


def config_diff(loaded_runs: Sequence[Run]) -> dict[str, dict[str, list[Any]]]:
    """What differs between runs, by section: config keys, data files, code and library versions.

    Returns ``{"config": {"train.epochs": [40, 30, ...]}, "data": {...}, "code": {...}}``
    with one value per run, in run order (None where a report lacks the key).
    For two runs the config part equals `pipeline.config.diff`.
    """

    def table(flat: list[dict[str, Any]]) -> dict[str, list[Any]]:
        keys = sorted(set().union(*flat)) if flat else []
        out = {}
        for key in keys:
            values = [f.get(key) for f in flat]
            if any(v != values[0] for v in values[1:]):
                out[key] = values
        return out

    configs = [cfg.flatten(r.report.get("config") or {}) for r in loaded_runs]
    data = [
        {
            f"{name} sha256": (entry or {}).get("sha256") if isinstance(entry, dict) else None
            for name, entry in (r.report.get("data") or {}).items()
        }
        for r in loaded_runs
    ]
    code = [
        {
            "code_version": r.report.get("code_version"),
            **{f"versions.{k}": v for k, v in (r.report.get("versions") or {}).items()},
        }
        for r in loaded_runs
    ]
    return {"config": table(configs), "data": table(data), "code": table(code)}


def compare_pair(a: Run, b: Run, alpha: float = ALPHA) -> dict[str, Any]:
    """Per-fold deltas (B - A) and McNemar's test on the paired out-of-fold predictions."""
    notes: list[str] = []
    fa, fb = a.fold_accuracy, b.fold_accuracy
    folds = []
    for index in sorted(set(fa) | set(fb)):
        va, vb = fa.get(index), fb.get(index)
        folds.append({"index": index, "a": va, "b": vb, "delta": None if va is None or vb is None else vb - va})
    ca, cb = a.report.get("config") or {}, b.report.get("config") or {}
    split_keys = [k for k in ("train.folds", "train.seed") if k in cfg.diff(ca, cb)]
    if split_keys:
        notes.append(
            f"{' and '.join(split_keys)} differ, so fold k validates different rows in each run: "
            "per-fold deltas are not paired"
        )

    def delta(x: float | None, y: float | None) -> dict[str, float | None]:
        return {"a": x, "b": y, "delta": None if x is None or y is None else y - x}

    result: dict[str, Any] = {
        "a": a.run_id,
        "b": b.run_id,
        "folds": folds,
        "fold_mean": delta(a.fold_mean, b.fold_mean),
        "oof": delta(a.oof_accuracy, b.oof_accuracy),
        "leaderboard": delta(a.lb_score, b.lb_score),
        "same_data": None,
        "mcnemar": None,
        "notes": notes,
    }
    sa, sb = a.train_sha, b.train_sha
    if sa and sb and sa != sb:
        result["same_data"] = False
        notes.append(
            f"train.csv differs between the runs (sha256 {sa[:12]} vs {sb[:12]}): their accuracies are "
            "on different data, so McNemar's test does not apply"
        )
        return result
    try:
        la, pa = load_oof(a.path)
        lb, pb = load_oof(b.path)
    except BadInputError as e:
        notes.append(f"{e}; significance not tested")
        return result
    if len(la) != len(lb) or not np.array_equal(la, lb):
        result["same_data"] = False
        notes.append(
            "the out-of-fold labels of the two runs differ (not the same train.csv rows): McNemar's test does not apply"
        )
        return result
    result["same_data"] = True
    if not (sa and sb):
        notes.append("train.csv hash not recorded in one report; the out-of-fold labels match, so the runs are paired")
    pred_a, va_ = predicted(pa)
    pred_b, vb_ = predicted(pb)
    both = va_ & vb_
    if not both.any():
        notes.append("no row has an out-of-fold prediction in both runs; significance not tested")
        return result
    if not both.all():
        notes.append(
            f"only {int(both.sum())} of {len(la)} rows have out-of-fold predictions in both runs "
            "(an interrupted run); the test uses those rows"
        )
    result["mcnemar"] = mcnemar(la[both], pred_a[both], pred_b[both], alpha).as_dict()
    return result


def verdict(pair: dict[str, Any]) -> str:
    """One sentence saying whether B differs from A beyond chance."""
    m = pair.get("mcnemar")
    if not m:
        return "significance not tested"
    d = m["b_only_correct"] - m["a_only_correct"]
    pp = 100 * d / m["rows"] if m["rows"] else 0.0
    counts = (
        f"{pair['b']} gets {m['b_only_correct']} rows right that {pair['a']} gets wrong, "
        f"and {m['a_only_correct']} the other way round ({pp:+.3f} pp on {m['rows']} rows)"
    )
    test = f"McNemar {m['method']} test, p = {m['p_value']:.3g}"
    if m["significant"]:
        winner = pair["b"] if m["better"] == "b" else pair["a"]
        return f"SIGNIFICANT ({test} < {m['alpha']}): {counts}; {winner} is better"
    return f"not significant ({test} >= {m['alpha']}): {counts}; the difference may be noise, not progress"


@dataclass
class Comparison:
    runs: list[Run]
    notes: list[str]
    diff: dict[str, dict[str, list[Any]]]
    pair: dict[str, Any] | None

    def fold_indices(self) -> list[int]:
        return sorted(set().union(*(r.fold_accuracy for r in self.runs))) if self.runs else []

    def as_dict(self) -> dict[str, Any]:
        ids = [r.run_id for r in self.runs]
        return {
            "runs": [r.summary() for r in self.runs],
            "differences": {section: {k: dict(zip(ids, v)) for k, v in d.items()} for section, d in self.diff.items()},
            "pair": self.pair,
            "notes": self.notes,
        }


def build_comparison(
    output_dir: str | Path = ".", refs: Sequence[str] = (), last: int | None = DEFAULT_LAST
) -> Comparison:
    loaded = load_runs(output_dir, refs, last)
    pair = compare_pair(*loaded.runs) if len(loaded.runs) == 2 else None
    return Comparison(loaded.runs, loaded.notes, config_diff(loaded.runs), pair)


def compare(
    output_dir: str | Path = ".",
    refs: Sequence[str] = (),
    fmt: str = "table",
    last: int | None = DEFAULT_LAST,
    out=None,
    err=None,
) -> Comparison:
    """``digits compare``: print the runs side by side in `fmt` (table, markdown, csv, json)."""
    if fmt not in FORMATS:
        raise BadInputError(f"option --format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    comp = build_comparison(output_dir, refs, last)
    _shown(Loaded(comp.runs, comp.notes), err)
    if fmt == "table":
        _print_table(comp, out or console())
    else:
        text = {"markdown": to_markdown, "csv": to_csv, "json": to_json}[fmt](comp)
        (out.file if out is not None else sys.stdout).write(text)
    return comp


# --------------------------------------------------------------------------- formatting


def pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}"


def signed_pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:+.{digits}f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def date(run: Run) -> str:
    when = run.started
    return when.strftime("%Y-%m-%d %H:%M") if when else "—"


def value_text(v: Any) -> str:
    """A config value as a user would type it in TOML."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(value_text(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, str) and len(v) == 64 and all(ch in "0123456789abcdef" for ch in v):
        return v[:12]  # a sha256
    return str(v)


def lb_text(run: Run, digits: int = 3) -> str:
    if run.lb_score is not None:
        return pct(run.lb_score, digits)
    return run.lb_status or "—"


_STATUS_STYLE = {"complete": "green", "interrupted": "yellow", "failed": "red", "running": "cyan"}


def _status(run: Run):
    from rich.text import Text

    return Text(run.status, style=_STATUS_STYLE.get(run.status, "dim"))


def _best(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def _table(**kw: Any):
    """A borderless table with a rule under the header: reads the same in a terminal and in a log."""
    from rich import box
    from rich.table import Table

    return Table(box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False, show_edge=False, **kw)


def _heading(con, text: str) -> None:
    from rich.text import Text

    con.print()
    con.print(Text(text, style="bold"))


_FIXED_WIDTH = 83  # the runs table without its fold columns (run, date, status, mean ± std, OOF, LB, time)
_FOLD_WIDTH = 7


def _print_table(comp: Comparison, con) -> None:
    from rich.text import Text

    folds = comp.fold_indices()
    split = len(folds) <= max(1, (con.width - _FIXED_WIDTH) // _FOLD_WIDTH)  # one column per fold while they fit
    _heading(
        con,
        f"{len(comp.runs)} run(s): accuracy in %, F<k> = validation accuracy of fold k, "
        "OOF = out-of-fold accuracy, LB = public leaderboard",
    )
    t = _table()
    t.add_column("run", no_wrap=True)
    t.add_column("date", no_wrap=True)
    t.add_column("status", no_wrap=True)
    if split:
        for k in folds:
            t.add_column(f"F{k}", justify="right", no_wrap=True)
    else:
        t.add_column("folds", justify="left")
    t.add_column("mean ± std", justify="right", no_wrap=True)
    t.add_column("OOF", justify="right", no_wrap=True)
    t.add_column("LB", justify="right", no_wrap=True)
    t.add_column("time", justify="right", no_wrap=True)
    several = len(comp.runs) > 1
    best_oof = _best(r.oof_accuracy for r in comp.runs)
    best_lb = _best(r.lb_score for r in comp.runs)
    for r in comp.runs:
        accs = r.fold_accuracy
        fold_cells = (
            [pct(accs.get(k)) for k in folds] if split else [" ".join(pct(accs[k]) for k in sorted(accs)) or "—"]
        )
        oof = Text(pct(r.oof_accuracy, 3), style="bold green" if several and r.oof_accuracy == best_oof else "")
        lb = Text(
            lb_text(r), style="bold green" if several and r.lb_score is not None and r.lb_score == best_lb else ""
        )
        t.add_row(r.run_id, date(r), _status(r), *fold_cells, mean_std(r), oof, lb, duration(r.seconds))
    con.print(t)
    _print_diff(comp, con)
    if comp.pair:
        _print_pair(comp.pair, con)
    elif len(comp.runs) > 2:
        con.print()
        con.print(
            Text(
                "Name exactly two runs (digits compare A B) for per-fold deltas and McNemar's significance test.",
                style="dim",
            )
        )


def mean_std(r: Run) -> str:
    return "—" if r.fold_mean is None else f"{pct(r.fold_mean)} ± {pct(r.fold_std or 0.0)}"


def _diff_rows(comp: Comparison) -> list[tuple[str, str, list[Any]]]:
    return [
        (section, key, values) for section in ("config", "data", "code") for key, values in comp.diff[section].items()
    ]


def _print_diff(comp: Comparison, con) -> None:
    from rich.text import Text

    rows = _diff_rows(comp)
    if len(comp.runs) < 2:
        return
    if not rows:
        con.print()
        con.print(Text("Config, data and library versions are identical in all these runs.", style="dim"))
        return
    _heading(con, "What differs between them" + ("" if len(comp.runs) == 2 else " (bold: differs from the first run)"))
    ids = [r.run_id for r in comp.runs]
    texts = [[value_text(v) for v in values] for _, _, values in rows]
    key_w = max(len(k) for _, k, _ in rows) + 8
    across = key_w + sum(max(len(i), *(len(tx[j]) for tx in texts)) + 2 for j, i in enumerate(ids))
    t = _table()
    if across <= con.width:  # keys down, runs across
        t.add_column("", style="dim", no_wrap=True)
        t.add_column("key", no_wrap=True)
        for i in ids:
            t.add_column(i)
        for (section, key, values), tx in zip(rows, texts):
            t.add_row(section, key, *[Text(x, style="" if v == values[0] else "bold") for x, v in zip(tx, values)])
    else:  # many runs: runs down, keys across
        t.add_column("run", no_wrap=True)
        for _, key, _ in rows:
            t.add_column(key)
        for j, i in enumerate(ids):
            t.add_row(
                i,
                *[
                    Text(tx[j], style="" if values[j] == values[0] else "bold")
                    for (_, _, values), tx in zip(rows, texts)
                ],
            )
    con.print(t)


def _print_pair(pair: dict[str, Any], con) -> None:
    from rich.text import Text

    _heading(con, f"B = {pair['b']} against A = {pair['a']} (accuracy in %, delta = B - A in percentage points)")
    t = _table()
    t.add_column("")
    t.add_column("A", justify="right")
    t.add_column("B", justify="right")
    t.add_column("delta", justify="right")

    def row(name: str, d: dict[str, Any], digits: int = 2) -> None:
        delta = d["delta"]
        style = "" if delta is None or abs(delta) < 1e-12 else ("green" if delta > 0 else "red")
        t.add_row(name, pct(d["a"], digits), pct(d["b"], digits), Text(signed_pct(delta, digits), style=style))

    for f in pair["folds"]:
        row(f"fold {f['index']}", f)
    t.add_section()
    row("fold mean", pair["fold_mean"])
    row("out-of-fold", pair["oof"], 3)
    row("leaderboard", pair["leaderboard"], 3)
    con.print(t)
    for note in pair["notes"]:
        con.print(Text(f"note: {note}", style="yellow"))
    m = pair.get("mcnemar")
    if m:
        style = (
            "bold green" if m["significant"] and m["better"] == "b" else ("bold red" if m["significant"] else "bold")
        )
        con.print(Text(verdict(pair), style=style))


def to_json(comp: Comparison) -> str:
    return json.dumps(comp.as_dict(), indent=2, default=files._json_default) + "\n"


def to_csv(comp: Comparison) -> str:
    """One row per run: the summary, one column per fold, and every config key that differs."""
    folds = comp.fold_indices()
    diff_keys = [(s, k) for s, k, _ in _diff_rows(comp)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "run_id",
            "started_at",
            "status",
            "folds_planned",
            "folds_done",
            *[f"fold_{k}" for k in folds],
            "fold_accuracy_mean",
            "fold_accuracy_std",
            "oof_accuracy",
            "leaderboard_score",
            "leaderboard_status",
            "seconds",
            "train_sha256",
            *[k if s == "config" else f"{s}:{k}" for s, k in diff_keys],
        ]
    )
    for i, r in enumerate(comp.runs):
        s = r.summary()
        accs = r.fold_accuracy
        w.writerow(
            [
                s["run_id"],
                s["started_at"],
                s["status"],
                _blank(s["folds_planned"]),
                s["folds_done"],
                *[_blank(accs.get(k)) for k in folds],
                _blank(s["fold_accuracy_mean"]),
                _blank(s["fold_accuracy_std"]),
                _blank(s["oof_accuracy"]),
                _blank(s["leaderboard_score"]),
                _blank(s["leaderboard_status"]),
                _blank(s["seconds"]),
                _blank(s["train_sha256"]),
                *[_csv_value(comp.diff[sec][k][i]) for sec, k in diff_keys],
            ]
        )
    return buf.getvalue()


def _blank(v: Any) -> Any:
    return "" if v is None else v


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (list, dict, bool)):
        return json.dumps(v)
    return v


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(comp: Comparison) -> str:
    """GitHub-flavoured markdown: the runs table, what differs, and the pair verdict."""
    folds = comp.fold_indices()
    lines = [
        "| run | date | status | "
        + " | ".join(f"fold {k}" for k in folds)
        + (" | " if folds else "")
        + "mean ± std | OOF | LB | time |"
    ]
    lines.append("|" + "---|" * 3 + "---:|" * (len(folds) + 4))
    for r in comp.runs:
        accs = r.fold_accuracy
        mean = "—" if r.fold_mean is None else f"{pct(r.fold_mean)} ± {pct(r.fold_std or 0.0)}"
        cells = [
            r.run_id,
            date(r),
            r.status,
            *[pct(accs.get(k)) for k in folds],
            mean,
            pct(r.oof_accuracy, 3),
            lb_text(r),
            duration(r.seconds),
        ]
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    lines.append("")
    lines.append("Accuracy in %; OOF = out-of-fold accuracy over all training rows; LB = public leaderboard score.")
    rows = _diff_rows(comp)
    if len(comp.runs) > 1:
        lines += ["", "### What differs", ""]
        if rows:
            lines.append("| | key | " + " | ".join(r.run_id for r in comp.runs) + " |")
            lines.append("|---|---|" + "---|" * len(comp.runs))
            for section, key, values in rows:
                lines.append(
                    f"| {section} | `{_md_escape(key)}` | "
                    + " | ".join(_md_escape(value_text(v)) for v in values)
                    + " |"
                )
        else:
            lines.append("Config, data and library versions are identical in all these runs.")
    if comp.pair:
        p = comp.pair
        lines += ["", f"### {p['b']} vs {p['a']}", "", "| | A | B | delta (pp) |", "|---|---:|---:|---:|"]
        for f in p["folds"]:
            lines.append(f"| fold {f['index']} | {pct(f['a'])} | {pct(f['b'])} | {signed_pct(f['delta'])} |")
        for name, key, digits in (
            ("fold mean", "fold_mean", 2),
            ("out-of-fold", "oof", 3),
            ("leaderboard", "leaderboard", 3),
        ):
            d = p[key]
            lines.append(
                f"| **{name}** | {pct(d['a'], digits)} | {pct(d['b'], digits)} | {signed_pct(d['delta'], digits)} |"
            )
        lines.append("")
        for note in p["notes"]:
            lines += [f"> note: {_md_escape(note)}", ""]
        lines.append(f"**{verdict(p)}**" if p.get("mcnemar") else "")
    for note in comp.notes:
        lines.append(f"\n> warning: {_md_escape(note)}")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- runs, history


def current_submission_sha(output_dir: str | Path) -> str | None:
    path = Path(output_dir) / runs.SUBMISSIONS / "submission.csv"
    try:
        return files.sha256(path)
    except OSError:
        return None


def list_runs(output_dir: str | Path = ".", out=None, err=None) -> Loaded:
    """``digits runs``: every run, oldest first: id, status, folds done, OOF, LB, time."""
    from rich.text import Text

    loaded = load_runs(output_dir, last=None)
    _shown(loaded, err)
    sub = current_submission_sha(output_dir)
    con = out or console()
    _heading(con, f"{len(loaded.runs)} run(s) in {runs.runs_root(output_dir)}: accuracy in %")
    t = _table()
    for name, justify in (
        ("run", "left"),
        ("date", "left"),
        ("status", "left"),
        ("folds", "right"),
        ("OOF", "right"),
        ("LB", "right"),
        ("seconds", "right"),
        ("", "left"),
    ):
        t.add_column(name, justify=justify, no_wrap=True)
    for r in loaded.runs:
        planned = r.folds_planned
        folds = f"{len(r.folds)}/{planned}" if planned else str(len(r.folds))
        mark = Text("submission.csv", style="bold") if sub and r.submission_sha == sub else ""
        sec = "—" if r.seconds is None else f"{r.seconds:.0f}"
        t.add_row(r.run_id, date(r), _status(r), folds, pct(r.oof_accuracy, 3), lb_text(r), sec, mark)
    con.print(t)
    return loaded


def history(
    output_dir: str | Path = ".", plot: str | Path | None = None, draw: bool = True, out=None, err=None
) -> Loaded:
    """``digits history``: out-of-fold accuracy and leaderboard score over all runs, as a table and a PNG."""
    from rich.text import Text

    loaded = load_runs(output_dir, last=None)
    _shown(loaded, err)
    con = out or console()
    _heading(con, "History: accuracy in %; Δ = change from the previous run that has the score")
    t = _table()
    for name, justify in (
        ("run", "left"),
        ("date", "left"),
        ("status", "left"),
        ("mean ± std", "right"),
        ("OOF", "right"),
        ("Δ OOF", "right"),
        ("LB", "right"),
        ("Δ LB", "right"),
        ("", "left"),
    ):
        t.add_column(name, justify=justify, no_wrap=True)
    prev_oof = prev_lb = best = None
    for r in loaded.runs:
        oof, lb = r.oof_accuracy, r.lb_score
        d_oof = None if oof is None or prev_oof is None else oof - prev_oof
        d_lb = None if lb is None or prev_lb is None else lb - prev_lb
        mark = ""
        if oof is not None and (best is None or oof > best):
            best = oof
            mark = "best OOF so far"
        mean = "—" if r.fold_mean is None else f"{pct(r.fold_mean)} ± {pct(r.fold_std or 0.0)}"
        t.add_row(
            r.run_id,
            date(r),
            _status(r),
            mean,
            pct(oof, 3),
            _delta_text(d_oof),
            lb_text(r),
            _delta_text(d_lb),
            Text(mark, style="green") if mark else "",
        )
        prev_oof = oof if oof is not None else prev_oof
        prev_lb = lb if lb is not None else prev_lb
    con.print(t)
    if draw:
        target = Path(plot) if plot else Path(output_dir) / "history.png"
        files.write_bytes(target, history_png(loaded.runs))
        con.print(f"plot: {target}")
    return loaded


def _delta_text(d: float | None):
    from rich.text import Text

    if d is None:
        return ""
    return Text(signed_pct(d, 3), style="green" if d > 0 else ("red" if d < 0 else ""))


def history_png(history_runs: Sequence[Run]) -> bytes:
    """The trend plot: OOF accuracy, fold mean ± std and leaderboard score per run, in %."""
    from matplotlib.figure import Figure

    n = len(history_runs)
    fig = Figure(figsize=(max(7.0, min(16.0, 3 + 0.45 * n)), 4.6), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(n)

    def series(values: list[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else 100 * v for v in values])

    oof = series([r.oof_accuracy for r in history_runs])
    mean = series([r.fold_mean for r in history_runs])
    std = series([r.fold_std if r.fold_mean is not None else None for r in history_runs])
    lb = series([r.lb_score for r in history_runs])
    complete = np.array([r.status == "complete" for r in history_runs])
    if np.isfinite(mean).any():
        ax.errorbar(
            x,
            mean,
            yerr=np.nan_to_num(std),
            fmt="none",
            ecolor="#9aa5b1",
            elinewidth=1.2,
            capsize=3,
            label="fold mean ± std",
            zorder=1,
        )
    if np.isfinite(oof).any():
        ok = np.isfinite(oof)
        ax.plot(x[ok], oof[ok], "-", color="#1f6feb", lw=1.6, zorder=2)
        ax.plot(
            x[ok & complete], oof[ok & complete], "o", color="#1f6feb", ms=6, label="out-of-fold accuracy", zorder=3
        )
        if (ok & ~complete).any():
            ax.plot(
                x[ok & ~complete],
                oof[ok & ~complete],
                "o",
                mfc="white",
                mec="#1f6feb",
                ms=6,
                label="OOF (run not complete)",
                zorder=3,
            )
        b = int(np.nanargmax(oof))
        ax.annotate(
            f"best {oof[b]:.3f}",
            (x[b], oof[b]),
            xytext=(0, 10),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            color="#1f6feb",
        )
    if np.isfinite(lb).any():
        ok = np.isfinite(lb)
        ax.plot(x[ok], lb[ok], "s--", color="#d9480f", ms=5, lw=1.2, label="public leaderboard", zorder=3)
    if not (np.isfinite(oof).any() or np.isfinite(lb).any()):
        ax.text(0.5, 0.5, "no scores recorded yet", transform=ax.transAxes, ha="center", va="center", color="#666")
    step = max(1, math.ceil(n / 20))
    ax.set_xticks(x[::step], [history_runs[i].run_id for i in range(0, n, step)], rotation=35, ha="right", fontsize=8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("digits: accuracy over runs", loc="left", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if ax.get_legend_handles_labels()[0]:
        fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="outside upper right", ncol=4, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --------------------------------------------------------------------------- gc


@dataclass
class GcEntry:
    run_id: str
    path: Path
    status: str
    bytes: int
    remove: bool
    reason: str


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def plan_gc(output_dir: str | Path, keep: int, lock_busy: bool) -> list[GcEntry]:
    """Decide which runs go: all but the newest `keep`, sparing the current submission's and live runs."""
    ids = runs.list_runs(output_dir)
    sub = current_submission_sha(output_dir)
    sub_dir = Path(output_dir) / runs.SUBMISSIONS
    newest = set(ids[-keep:]) if keep > 0 else set()
    plan = []
    for run_id in ids:
        path = runs.runs_root(output_dir) / run_id
        try:
            report: dict[str, Any] | None = runs.read_report(path)
            status = str(report.get("status") or "unknown")
        except BadInputError:
            report, status = None, "unreadable"
        made_sub = False
        if sub:
            if report is not None and isinstance(report.get("submission"), dict):
                made_sub = report["submission"].get("sha256") == sub
            if not made_sub:  # a report too damaged to say: its own copy of the submission can
                own = sub_dir / f"{run_id}.csv"
                made_sub = own.is_file() and files.sha256(own) == sub
        if run_id in newest:
            remove, reason = False, f"among the newest {keep}"
        elif made_sub:
            remove, reason = False, "made the current submissions/submission.csv"
        elif lock_busy and status == "running":
            remove, reason = False, "running (the output directory is locked by another digits)"
        elif lock_busy and report is None:
            remove, reason = False, "no report yet while another digits holds the lock (may be starting)"
        else:
            remove = True
            reason = f"older than the newest {keep}" + (
                " (stale: status running, but no digits holds the lock)" if status == "running" else ""
            )
        plan.append(GcEntry(run_id, path, status, _size(path), remove, reason))
    return plan


def gc(output_dir: str | Path = ".", keep: int = DEFAULT_LAST, dry_run: bool = False, out=None) -> list[GcEntry]:
    """``digits gc``: delete old run folders, keeping the newest `keep`.

    Never removes the run that made ``submissions/submission.csv`` (matched by
    sha256), nor a "running" run while another process holds the output
    directory's lock.  Holds that lock itself while deleting, so no run starts
    meanwhile.  Each folder is first renamed out of ``runs/`` and then deleted,
    so an interrupted gc never leaves half a run that looks like a run.
    Files in ``submissions/`` are left alone.
    """
    from rich.text import Text

    if keep < 0:
        raise BadInputError(f"option --keep: must not be negative, got {keep}")
    con = out or console()
    if not runs.list_runs(output_dir):
        con.print(f"no runs in {runs.runs_root(output_dir)}; nothing to remove")
        return []
    lock = runs.Lock(output_dir)
    try:
        lock.__enter__()
        busy = False
    except BusyError:
        busy = True
    except StorageError:
        if not dry_run:
            raise
        busy = True  # a read-only output dir can still be looked at; assume the worst about who holds it
    try:
        plan = plan_gc(output_dir, keep, lock_busy=busy)
        doomed = [e for e in plan if e.remove]
        verb = "would remove" if dry_run else "removed"
        if dry_run:
            _heading(con, "Dry run: nothing is deleted")
        t = _table()
        for name, justify in (
            ("run", "left"),
            ("status", "left"),
            ("size", "right"),
            ("action", "left"),
            ("why", "left"),
        ):
            t.add_column(name, justify=justify, no_wrap=name != "why")
        for e in plan:
            if not dry_run and e.remove:
                _remove(e.path)
            t.add_row(
                e.run_id,
                e.status,
                _bytes(e.bytes),
                Text(verb if e.remove else "keep", style="red" if e.remove else "green"),
                e.reason,
            )
        con.print(t)
        if busy:
            con.print("another digits holds the lock on this output directory: its running run is kept")
        freed = sum(e.bytes for e in doomed)
        con.print(f"{verb} {len(doomed)} of {len(plan)} run(s), {_bytes(freed)}; kept {len(plan) - len(doomed)}")
        return plan
    finally:
        if not busy:
            lock.__exit__(None, None, None)


def _remove(path: Path) -> None:
    trash = path.parent / f".gc-{path.name}"
    try:
        if trash.exists():
            shutil.rmtree(trash)
        os.replace(path, trash)
        shutil.rmtree(trash)
    except OSError as e:
        raise StorageError(f"cannot remove {path}: {e.strerror or e}") from None
