"""``digits report``: one self-contained HTML page about one run.

The page holds the run's summary, per-fold accuracy, the learning curves of
every fold, the confusion matrix, per-class accuracy and a grid of the
misclassified out-of-fold digits.  Every plot is a PNG embedded as a base64
data URI (the page needs no other file and no network) and is also saved
beside the page, for slides and chats.

It reads the run folder only (``report.json``, ``oof.npz``,
``misclassified.npz``) and works with whatever is there: an interrupted run,
an old report without some fields, or a run without ``misclassified.npz``
gives a page with a note where the missing part would be.  matplotlib is
imported inside the drawing functions only.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import compare as cmp
from pipeline import config as cfg
from pipeline import files, runs
from pipeline.errors import BadInputError

MISCLASSIFIED = "misclassified.npz"
MAX_MISCLASSIFIED = 100  # digits shown in the grid
GRID_COLUMNS = 10
DPI = 144  # PNGs are drawn at 1.5x and shown at 96 dpi, so they stay sharp on high-density screens
SHOW_DPI = 96
FOLD_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


@dataclass
class Page:
    """What the page is made of while it is being built."""

    run_dir: Path
    report: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # shown at the top of the page and printed
    images: dict[str, bytes] = field(default_factory=dict)  # name -> PNG


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


# --------------------------------------------------------------------------- data


def _fold_list(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in (report.get("folds") or []) if isinstance(f, dict)]


def confusion_matrix(page: Page) -> tuple[np.ndarray | None, str | None]:
    """From the report, else recomputed from ``oof.npz``; None and a note when neither has it."""
    cm = page.report.get("confusion_matrix")
    try:
        if cm is not None:
            arr = np.asarray(cm, dtype=float)
            if arr.shape == (10, 10) and np.isfinite(arr).all():
                return arr.astype(np.int64), None
    except (TypeError, ValueError):
        pass
    try:
        labels, proba = cmp.load_oof(page.run_dir)
    except BadInputError as err:
        return None, f"No confusion matrix: the report has none, and {err}."
    pred, valid = cmp.predicted(proba)
    out = np.zeros((10, 10), dtype=np.int64)
    ok = valid & (labels >= 0) & (labels < 10)
    np.add.at(out, (labels[ok], pred[ok]), 1)
    return out, "The report has no confusion matrix; it was recomputed from oof.npz."


def per_class_accuracy(page: Page, cm: np.ndarray | None) -> list[float | None] | None:
    values = page.report.get("per_class_accuracy")
    if isinstance(values, list) and len(values) == 10:
        return [cmp._num(v) for v in values]
    if cm is not None:
        rows = cm.sum(axis=1)
        return [float(cm[c, c] / rows[c]) if rows[c] else None for c in range(10)]
    return None


def misclassified(page: Page) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The out-of-fold mistakes, most confident first when ``oof.npz`` gives the confidence."""
    path = page.run_dir / MISCLASSIFIED
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: np.asarray(z[k]) for k in ("images", "true", "pred", "index")}
    except FileNotFoundError:
        return None, (
            f"No grid of misclassified digits: {path.name} is not in the run folder "
            "(a run that stopped before its out-of-fold predictions, or an older version)."
        )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        return None, f"No grid of misclassified digits: {path.name} is unreadable ({err})."
    m = len(data["true"])
    if data["images"].ndim != 2 or data["images"].shape[1] != 784 or any(len(v) != m for v in data.values()):
        return None, f"No grid of misclassified digits: {path.name} has arrays of unexpected shapes."
    confidence = np.full(m, np.nan)
    try:
        _, proba = cmp.load_oof(page.run_dir)
        idx = data["index"].astype(np.int64)
        ok = (idx >= 0) & (idx < len(proba))
        confidence[ok] = proba[idx[ok], np.clip(data["pred"][ok].astype(np.int64), 0, 9)]
    except BadInputError:
        pass
    order = np.argsort(-np.nan_to_num(confidence, nan=-1.0), kind="stable")
    data = {k: v[order] for k, v in data.items()}
    data["confidence"] = confidence[order]
    return data, None


# --------------------------------------------------------------------------- plots


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, alpha=0.25)
    ax.tick_params(labelsize=8)


def learning_curves_png(folds: list[dict[str, Any]]) -> bytes | None:
    """Loss, accuracy and learning rate per epoch of every fold (train dashed, validation solid)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    hist = [(f, f.get("history") or {}) for f in folds]
    hist = [(f, h) for f, h in hist if isinstance(h, dict) and any(h.get(k) for k in ("loss", "val_loss"))]
    if not hist:
        return None
    has_lr = any(h.get("learning_rate") for _, h in hist)
    lr_max = max(
        (v for _, h in hist for v in (h.get("learning_rate") or []) if isinstance(v, (int, float)) and v > 0),
        default=1.0,
    )
    lr_exp = math.floor(math.log10(lr_max))
    lr_scale = 10.0**lr_exp
    lr_label = "learning rate" + (f" ($\\times 10^{{{lr_exp}}}$)" if lr_exp else "")
    panels = [("loss", "loss"), ("accuracy", "accuracy (%)")] + ([("learning_rate", lr_label)] if has_lr else [])
    fig = Figure(figsize=(11.5, 3.9), layout="constrained")
    axes = fig.subplots(1, len(panels), width_ratios=[1, 1, 0.7][: len(panels)])
    for ax, (key, label) in zip(axes, panels):
        for pos, (f, h) in enumerate(hist):
            color = FOLD_COLORS[pos % len(FOLD_COLORS)]
            scale = 100.0 if key == "accuracy" else 1.0
            if key == "learning_rate":
                y = np.asarray(
                    [v if isinstance(v, (int, float)) else np.nan for v in (h.get("learning_rate") or [])], dtype=float
                )
                ax.plot(np.arange(1, len(y) + 1), y / lr_scale, color=color, lw=1.3)
                continue
            for series, style in ((key, "--"), (f"val_{key}", "-")):
                y = [v if isinstance(v, (int, float)) else np.nan for v in (h.get(series) or [])]
                if y:
                    ax.plot(
                        np.arange(1, len(y) + 1),
                        np.asarray(y, dtype=float) * scale,
                        style,
                        color=color,
                        lw=1.5 if style == "-" else 1.1,
                        alpha=1.0 if style == "-" else 0.75,
                    )
            best = f.get("best_epoch")
            vy = h.get(f"val_{key}") or []
            if isinstance(best, int) and 1 <= best <= len(vy) and isinstance(vy[best - 1], (int, float)):
                ax.plot([best], [vy[best - 1] * scale], "o", color=color, ms=5, mec="white", mew=0.8, zorder=5)
        ax.set_title(label, fontsize=10, loc="left")
        ax.set_xlabel("epoch", fontsize=9)
        _style(ax)
        if key == "accuracy":  # zoom on the part that matters
            vals = [
                v * 100
                for _, h in hist
                for v in (h.get("val_accuracy") or [])[len(h.get("val_accuracy") or []) // 3 :]
                if isinstance(v, (int, float))
            ]
            if vals:
                lo = min(vals)
                ax.set_ylim(max(0.0, lo - 2.0), min(100.0, max(vals) + 0.8))
        if key == "loss":
            vals = [
                v
                for _, h in hist
                for s in ("loss", "val_loss")
                for v in (h.get(s) or [])[1:]
                if isinstance(v, (int, float))
            ]
            if vals:
                ax.set_ylim(max(0.0, min(vals) * 0.9), max(vals) * 1.05)
    handles = [
        Line2D([], [], color=FOLD_COLORS[pos % len(FOLD_COLORS)], lw=2, label=f"fold {f.get('index', pos)}")
        for pos, (f, _) in enumerate(hist)
    ]
    handles += [
        Line2D([], [], color="#444", ls="--", lw=1.1, label="train"),
        Line2D([], [], color="#444", ls="-", lw=1.5, label="validation"),
        Line2D([], [], color="#444", marker="o", ls="", ms=5, label="best epoch"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 9), fontsize=8, frameon=False)
    return _png(fig)


def fold_accuracy_png(
    folds: list[dict[str, Any]], mean: float | None, std: float | None, oof: float | None
) -> bytes | None:
    from matplotlib.figure import Figure

    pairs = [(f.get("index", i), cmp._num(f.get("val_accuracy"))) for i, f in enumerate(folds)]
    pairs = [(i, a) for i, a in pairs if a is not None]
    if not pairs:
        return None
    fig = Figure(figsize=(5.6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(pairs))
    y = np.array([a for _, a in pairs]) * 100
    ax.bar(x, y, color=[FOLD_COLORS[i % len(FOLD_COLORS)] for i in range(len(pairs))], width=0.6, zorder=2)
    for xi, yi in zip(x, y):
        ax.annotate(f"{yi:.2f}", (xi, yi), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    if mean is not None:
        ax.axhline(mean * 100, color="#333", lw=1, zorder=3, label=f"mean {mean * 100:.2f}")
        if std:
            ax.axhspan(
                (mean - std) * 100,
                (mean + std) * 100,
                color="#999",
                alpha=0.18,
                zorder=1,
                label=f"± std {std * 100:.2f}",
            )
    if oof is not None:
        ax.axhline(oof * 100, color="#1f6feb", lw=1, ls="--", zorder=3, label=f"out-of-fold {oof * 100:.3f}")
    lo = min(y.min(), (mean or 1) * 100, (oof or 1) * 100)
    ax.set_ylim(max(0.0, lo - 1.0), min(100.5, y.max() + 0.6))
    ax.set_xticks(x, [f"fold {i}" for i, _ in pairs], fontsize=8)
    ax.set_ylabel("validation accuracy (%)", fontsize=9)
    _style(ax)
    ax.grid(False, axis="x")
    fig.legend(loc="outside lower center", ncol=3, fontsize=7.5, frameon=False)
    return _png(fig)


def confusion_png(cm: np.ndarray) -> bytes:
    """Counts; errors coloured (log scale) and the diagonal in grey so mistakes stand out."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5.6, 5.0), layout="constrained")
    ax = fig.add_subplot()
    off = cm.astype(float).copy()
    np.fill_diagonal(off, np.nan)
    off[off == 0] = np.nan
    vmax = np.nanmax(off) if np.isfinite(off).any() else 1.0
    log = vmax >= 20  # counts from a few to thousands: a log scale keeps the rare mistakes visible
    norm = LogNorm(vmin=1, vmax=vmax) if log else Normalize(vmin=0, vmax=max(vmax, 1) * 1.15)
    im = ax.imshow(off, cmap="Reds", norm=norm)
    ax.imshow(np.where(np.eye(10, dtype=bool), 1.0, np.nan), cmap="Greys", vmin=0, vmax=6)
    for t in range(10):
        for p in range(10):
            n = int(cm[t, p])
            if t == p:
                ax.text(p, t, str(n), ha="center", va="center", fontsize=7, color="#222", fontweight="bold")
            elif n:
                dark = norm(n) > 0.6
                ax.text(p, t, str(n), ha="center", va="center", fontsize=7.5, color="white" if dark else "#222")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.tick_params(labelsize=9, length=0)
    ax.set_xlabel("predicted label", fontsize=9)
    ax.set_ylabel("true label", fontsize=9)
    ax.set_xticks(np.arange(-0.5, 10), minor=True)
    ax.set_yticks(np.arange(-0.5, 10), minor=True)
    ax.grid(which="minor", color="white", lw=1.2)
    ax.tick_params(which="minor", length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    cb = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
    if not log:
        cb.locator = MaxNLocator(integer=True)
        cb.update_ticks()
    cb.set_label("mistakes" + (" (log scale)" if log else ""), fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return _png(fig)


def per_class_png(acc: list[float | None], cm: np.ndarray | None) -> bytes | None:
    from matplotlib.figure import Figure

    if all(a is None for a in acc):
        return None
    fig = Figure(figsize=(5.6, 5.0), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(10)
    vals = np.array([np.nan if a is None else a * 100 for a in acc])
    finite = vals[np.isfinite(vals)]
    worst = int(np.nanargmin(vals))
    colors = ["#d62728" if c == worst else "#1f6feb" for c in range(10)]
    ax.barh(y, np.nan_to_num(vals), color=colors, height=0.6, zorder=2)
    lo = max(0.0, finite.min() - 1.5)
    for c in range(10):
        if np.isfinite(vals[c]):
            n = f"  (n={int(cm[c].sum())})" if cm is not None else ""
            ax.text(vals[c] + 0.05, c, f" {vals[c]:.2f}{n}", va="center", fontsize=7.5)
    ax.set_xlim(lo, 100 + (100 - lo) * 0.35)
    ax.set_xticks([t for t in ax.get_xticks() if lo <= t <= 100])
    ax.set_yticks(y, [str(c) for c in range(10)])
    ax.invert_yaxis()
    ax.set_xlabel("accuracy (%) of rows with this true label", fontsize=9)
    ax.set_ylabel("true label", fontsize=9)
    _style(ax)
    ax.grid(False, axis="y")
    return _png(fig)


def misclassified_png(images: np.ndarray, true: np.ndarray, pred: np.ndarray, columns: int = GRID_COLUMNS) -> bytes:
    """A mosaic of 28x28 digits, ink dark on white, each under a "true → predicted" label."""
    from matplotlib.figure import Figure

    m = len(images)
    rows = max(1, math.ceil(m / columns))
    tile, gap, band = 28, 6, 13
    cw, ch = tile + gap, tile + band + gap
    mosaic = np.zeros((rows * ch, columns * cw), dtype=float)
    for i in range(m):
        r, c = divmod(i, columns)
        y0, x0 = r * ch + band, c * cw + gap // 2
        mosaic[y0 : y0 + tile, x0 : x0 + tile] = images[i].reshape(tile, tile) / 255.0
    scale = 3.0  # screen pixels per image pixel: 10 digits fill the page's width
    fig = Figure(figsize=(columns * cw * scale / SHOW_DPI, rows * ch * scale / SHOW_DPI))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
    for i in range(m):
        r, c = divmod(i, columns)
        ax.text(
            c * cw + gap // 2 + tile / 2,
            r * ch + band - 2.5,
            f"{int(true[i])} → {int(pred[i])}",
            ha="center",
            va="baseline",
            fontsize=11,
            color="#b42318",
        )
    for i in range(m):  # a faint frame per digit
        r, c = divmod(i, columns)
        ax.add_patch(_rect(c * cw + gap // 2 - 0.5, r * ch + band - 0.5, tile))
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=SHOW_DPI * 1.5)
    return buf.getvalue()


def _rect(x: float, y: float, size: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), size, size, fill=False, lw=0.6, ec="#d0d5dd")


# --------------------------------------------------------------------------- html


def _img(page: Page, name: str, png: bytes, alt: str, figure_width_px: int | None = None) -> str:
    page.images[name] = png
    width = ""
    try:
        w = int.from_bytes(png[16:20], "big")  # PNG IHDR width
        width = f' width="{round(w * SHOW_DPI / DPI) if figure_width_px is None else figure_width_px}"'
    except (IndexError, ValueError):
        pass
    data = base64.b64encode(png).decode("ascii")
    return f'<img id="{e(name)}" class="plot" alt="{e(alt)}"{width} src="data:image/png;base64,{data}">'


def _kv(rows: list[tuple[str, str]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _pct(x: float | None, digits: int = 2) -> str:
    return cmp.pct(x, digits)


def _num_text(v: Any, fmt: str = "{:,.0f}") -> str:
    n = cmp._num(v)
    return "—" if n is None else fmt.format(n)


def _summary(page: Page, run: cmp.Run) -> str:
    r = page.report
    lb = run.leaderboard
    if not lb:
        lb_html = '<span class="muted">not submitted</span>'
    elif run.lb_score is not None:
        lb_html = f"<b>{run.lb_score:.5f}</b> public score"
        if lb.get("submitted_at"):
            lb_html += f' <span class="muted">submitted {e(_when(lb.get("submitted_at")))}</span>'
    elif lb.get("error"):
        lb_html = f'<span class="bad">error: {e(lb.get("error"))}</span>'
    else:
        lb_html = f'<span class="muted">{e(lb.get("status") or "pending")}</span>'
    if lb and lb.get("message"):
        lb_html += f'<br><span class="muted">message: {e(lb.get("message"))}</span>'
    sub = r.get("submission")
    sub_html = (
        (
            f'{e(sub.get("path"))} <span class="muted">({_num_text(sub.get("rows"))} rows, sha256 '
            f"{e(str(sub.get('sha256') or '')[:12])})</span>"
        )
        if isinstance(sub, dict)
        else '<span class="muted">none</span>'
    )
    data = r.get("data") or {}
    data_html = (
        "<br>".join(
            f'{e(name)}: {_num_text((d or {}).get("rows"))} rows <span class="muted">sha256 {e(str((d or {}).get("sha256") or "")[:12])}</span>'
            for name, d in data.items()
            if isinstance(d, dict)
        )
        or '<span class="muted">not recorded</span>'
    )
    planned = run.folds_planned
    done = len(run.folds)
    mean = "—" if run.fold_mean is None else f"{_pct(run.fold_mean)} % ± {_pct(run.fold_std or 0.0)}"
    rows = [
        ("status", f'<span class="status {e(run.status)}">{e(run.status)}</span>'),
        ("started", e(_when(r.get("started_at")))),
        ("finished", e(_when(r.get("finished_at")))),
        ("time", e(cmp.duration(run.seconds))),
        ("folds", f"{done} of {planned}" if planned else str(done)),
        ("out-of-fold accuracy", f"<b>{_pct(run.oof_accuracy, 3)} %</b>" if run.oof_accuracy is not None else "—"),
        ("fold accuracy", mean),
        ("leaderboard", lb_html),
        ("submission", sub_html),
        ("data", data_html),
        ("code version", e(r.get("code_version") or "—")),
    ]
    return _kv(rows)


def _when(value: Any) -> str:
    try:
        return _dt.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S %z") if value else "—"
    except (TypeError, ValueError):
        return str(value)


def _folds_table(folds: list[dict[str, Any]]) -> str:
    head = (
        "fold",
        "train rows",
        "val rows",
        "val accuracy",
        "val loss",
        "best epoch",
        "epochs run",
        "seconds",
        "samples/s",
    )
    body = []
    for i, f in enumerate(folds):
        body.append(
            "<tr>"
            + "".join(
                f"<td>{c}</td>"
                for c in (
                    e(f.get("index", i)),
                    _num_text(f.get("train_rows")),
                    _num_text(f.get("val_rows")),
                    f"{_pct(cmp._num(f.get('val_accuracy')))} %",
                    _num_text(f.get("val_loss"), "{:.4f}"),
                    _num_text(f.get("best_epoch")),
                    _num_text(f.get("epochs_run")),
                    _num_text(f.get("seconds"), "{:,.1f}"),
                    _num_text(f.get("samples_per_second"), "{:,.0f}"),
                )
            )
            + "</tr>"
        )
    return (
        '<table id="folds" class="grid num"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


def _per_class_table(acc: list[float | None] | None, cm: np.ndarray | None) -> str:
    head = ["label", "rows", "accuracy", "most often taken for"]
    body = []
    for c in range(10):
        rows = "—" if cm is None else f"{int(cm[c].sum()):,}"
        confused = "—"
        if cm is not None:
            off = cm[c].copy()
            off[c] = 0
            if off.max() > 0:
                p = int(off.argmax())
                confused = f"{p} ({int(off[p])}×)"
        a = None if acc is None else acc[c]
        body.append(f"<tr><td>{c}</td><td>{rows}</td><td>{_pct(a)} %</td><td>{confused}</td></tr>")
    return (
        '<table id="per-class-table" class="grid num compact"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


def _mistakes_table(data: dict[str, np.ndarray], shown: int) -> str:
    body = []
    for i in range(shown):
        conf = data["confidence"][i]
        body.append(
            f"<tr><td>{i + 1}</td><td>{int(data['index'][i])}</td><td>{int(data['true'][i])}</td>"
            f"<td>{int(data['pred'][i])}</td><td>{'—' if not np.isfinite(conf) else f'{conf:.3f}'}</td></tr>"
        )
    return (
        "<details><summary>The same digits as a list (row in train.csv, counting from 0 after the header)</summary>"
        '<table class="grid num"><thead><tr><th>#</th><th>train.csv row</th><th>true</th><th>predicted</th>'
        "<th>confidence</th></tr></thead><tbody>" + "".join(body) + "</tbody></table></details>"
    )


def _config_table(report: dict[str, Any]) -> str:
    flat = cfg.flatten(report.get("config") or {})
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(cmp.value_text(v))}</td></tr>" for k, v in flat.items())
    stages = report.get("stage_seconds") or {}
    stage_rows = "".join(f"<tr><th>{e(k)}</th><td>{_num_text(v, '{:,.1f}')} s</td></tr>" for k, v in stages.items())
    versions = report.get("versions") or {}
    version_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in versions.items())
    return (
        f'<div class="cols3"><div><h3>Config</h3><table id="config" class="kv">{rows or "<tr><td>not recorded</td></tr>"}</table></div>'
        f'<div><h3>Time per stage</h3><table class="kv">{stage_rows or "<tr><td>not recorded</td></tr>"}</table></div>'
        f'<div><h3>Versions</h3><table class="kv">{version_rows or "<tr><td>not recorded</td></tr>"}</table></div></div>'
    )


def _note(text: str) -> str:
    return f'<p class="note">{e(text)}</p>'


CSS = """
:root { --ink:#1d2939; --muted:#667085; --line:#e4e7ec; --bg:#f8f9fb; --accent:#1f6feb; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { font-size: 22px; margin: 0 0 4px; }
header p { margin: 0; color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px; margin-top: 18px; }
h2 { font-size: 16px; margin: 0 0 12px; }
h3 { font-size: 13px; margin: 0 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.cols { display: grid; grid-template-columns: minmax(0,1fr) minmax(0,1fr); gap: 20px; align-items: start; }
.cols3 { display: grid; grid-template-columns: repeat(3, minmax(0,1fr)); gap: 20px; align-items: start; }
img.plot { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; }
table.kv th { text-align: left; font-weight: 500; color: var(--muted); padding: 3px 16px 3px 0; vertical-align: top; white-space: nowrap; }
table.kv td { padding: 3px 0; word-break: break-word; }
table.grid { width: 100%; font-variant-numeric: tabular-nums; }
table.grid.compact { width: auto; min-width: 50%; margin-top: 12px; }
table.grid th, table.grid td { padding: 5px 10px; border-bottom: 1px solid var(--line); }
table.grid th { text-align: right; font-weight: 600; font-size: 12px; color: var(--muted); background: #fafbfc; }
table.grid td { text-align: right; }
table.grid th:first-child, table.grid td:first-child { text-align: left; }
.muted { color: var(--muted); }
.bad { color: #b42318; }
.note { background: #fffaeb; border: 1px solid #fedf89; color: #7a2e0e; padding: 8px 12px; border-radius: 6px; margin: 8px 0; }
.status { padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #eef2f6; }
.status.complete { background: #dcfae6; color: #067647; }
.status.interrupted { background: #fef0c7; color: #93370d; }
.status.failed { background: #fee4e2; color: #b42318; }
.status.running { background: #d1e9ff; color: #175cd3; }
details { margin-top: 10px; }
summary { cursor: pointer; color: var(--accent); }
footer { color: var(--muted); font-size: 12px; margin-top: 18px; }
@media (max-width: 900px) { .cols, .cols3 { grid-template-columns: 1fr; } }
"""


def render(page: Page) -> str:
    """The HTML of the page; fills `page.images` and `page.notes` as it goes."""
    r = page.report
    run = cmp.Run(page.run_dir.name, page.run_dir, r)
    folds = _fold_list(r)
    planned = run.folds_planned
    if run.status in ("interrupted", "failed", "running"):
        page.notes.append(
            f"This run is {run.status}: {len(folds)} of {planned or '?'} folds finished, so the "
            "out-of-fold figures cover only the rows of those folds."
        )
    elif planned and len(folds) < planned:
        page.notes.append(f"Only {len(folds)} of {planned} folds are in the report.")

    parts = []
    # folds: the table here, the accuracy chart beside the summary
    png = fold_accuracy_png(folds, run.fold_mean, run.fold_std, run.oof_accuracy) if folds else None
    fold_chart = (
        _img(page, "fold-accuracy", png, "validation accuracy per fold")
        if png
        else _note("No fold recorded a validation accuracy.")
    )
    fold_html = _folds_table(folds) if folds else _note("No fold finished, so there is nothing per fold to show.")
    parts.append(f'<section id="folds-section"><h2>Folds</h2>{fold_html}</section>')

    # learning curves
    png = learning_curves_png(folds) if folds else None
    missing = [
        str(f.get("index", i))
        for i, f in enumerate(folds)
        if not (isinstance(f.get("history"), dict) and f["history"].get("loss"))
    ]
    lc = []
    if png:
        lc.append(_img(page, "learning-curves", png, "learning curves of every fold"))
    if missing:
        lc.append(_note(f"No per-epoch history for fold(s) {', '.join(missing)}."))
    if not png and not missing:
        lc.append(_note("No fold finished, so there are no learning curves."))
    parts.append(f'<section id="learning-curves-section"><h2>Learning curves</h2>{"".join(lc)}</section>')

    # confusion matrix and per-class accuracy
    cm, cm_note = confusion_matrix(page)
    acc = per_class_accuracy(page, cm)
    if cm is not None:
        left = (_note(cm_note) if cm_note else "") + _img(
            page, "confusion-matrix", confusion_png(cm), "confusion matrix of the out-of-fold predictions"
        )
    else:
        left = _note(cm_note or "No confusion matrix recorded.")
    pc_png = per_class_png(acc, cm) if acc is not None else None
    right = (
        _img(page, "per-class-accuracy", pc_png, "accuracy per true label")
        if pc_png
        else _note("No per-class accuracy recorded.")
    )
    parts.append(
        '<section id="classes-section"><h2>Out-of-fold predictions by class</h2>'
        '<p class="muted">Rows are the true label, columns the prediction; the diagonal (grey) counts the right answers, '
        "red cells the mistakes.</p>"
        f'<div class="cols"><div>{left}</div><div>{right}</div></div>'
        + (_per_class_table(acc, cm) if acc is not None or cm is not None else "")
        + "</section>"
    )

    # misclassified digits
    mis, mis_note = misclassified(page)
    mhtml = []
    if mis is not None:
        m = len(mis["true"])
        shown = min(m, MAX_MISCLASSIFIED)
        if m == 0:
            mhtml.append('<p class="muted">No out-of-fold mistakes.</p>')
        else:
            ordered = "most confident mistakes first" if np.isfinite(mis["confidence"]).any() else "in the order saved"
            mhtml.append(
                f'<p class="muted">{shown} of {m:,} misclassified out-of-fold digits, {ordered}; '
                "labels read <b>true → predicted</b>. Confident mistakes are often mislabelled training rows.</p>"
            )
            mhtml.append(
                _img(
                    page,
                    "misclassified",
                    misclassified_png(mis["images"][:shown], mis["true"][:shown], mis["pred"][:shown]),
                    "misclassified digits",
                )
            )
            mhtml.append(_mistakes_table(mis, shown))
    else:
        mhtml.append(_note(mis_note or "No misclassified digits saved."))
    parts.append(f'<section id="misclassified-section"><h2>Misclassified digits</h2>{"".join(mhtml)}</section>')

    parts.append(f'<section id="config-section"><h2>Run details</h2>{_config_table(r)}</section>')

    summary = _summary(page, run)
    notes_html = "".join(_note(n) for n in page.notes)  # run-level notes; section notes are shown in place
    page.notes += [n for n in (cm_note, mis_note) if n] + (
        [f"No per-epoch history for fold(s) {', '.join(missing)}."] if missing else []
    )
    generated = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>digits run {e(run.run_id)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header>
<h1>digits run {e(run.run_id)}</h1>
<p>Kaggle Digit Recognizer: k-fold MLP ensemble. Accuracies in %.</p>
</header>
<section id="summary"><h2>Summary</h2><div class="cols"><div>{summary}{notes_html}</div><div>{fold_chart}</div></div></section>
{"".join(parts)}
<footer>Written by digits report on {e(generated)} from {e(page.run_dir)}.</footer>
</main>
</body>
</html>
"""


def build_report(output_dir: str | Path = ".", ref: str = "latest", out: str | Path | None = None, con=None) -> Path:
    """``digits report``: write the run's HTML page (default ``runs/<id>/report.html``) and its PNGs beside it.

    The PNGs are named ``<page stem>-<plot>.png``.  Returns the page's path.
    """
    run_dir = runs.resolve(output_dir, ref)
    report = runs.read_report(run_dir)
    target = Path(out) if out else run_dir / "report.html"
    page = Page(run_dir, report)
    text = render(page)
    real, regular = files.destination(target)
    if regular:  # beside a page file; never next to a device such as /dev/stdout
        for name, png in page.images.items():
            files.write_bytes(real.with_name(f"{real.stem}-{name}.png"), png)
    files.write_text(target, text)
    con = con or cmp.console()
    for note in page.notes:
        con.print(f"note: {note}", style="yellow", soft_wrap=True)
    con.print(f"report: {target}", soft_wrap=True)
    return target
