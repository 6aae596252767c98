"""The matplotlib plots: the history trend, and the report's fold, learning-curve, class and mistake plots.

Each plot is built by a ``*_figure`` function returning a matplotlib
`Figure` (so a test can map data to pixels with the figure's transforms) and
turned into PNG bytes by `png`.  Figures are made with the dpi they are
saved at, which keeps those transforms true for the saved image.

matplotlib is imported inside the functions only: ``digits compare`` and
``runs`` never load it.  Accuracies come in as fractions and are drawn in %.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core.errors import UsageError
from pipeline.core.text import pct, quoted
from pipeline.store.record import FoldRecord, RunRecord

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 144  # drawn at 1.5x and shown at 96 dpi, so plots stay sharp on high-density screens
SHOW_DPI = 96
FOLD_COLORS = (
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
)
OOF_COLOR = "#1f6feb"
BLEND_COLOR = "#2f9e44"
LB_COLOR = "#d9480f"
WORST_COLOR = "#d62728"
GRID_COLUMNS = 10
TILE, GAP, BAND = 28, 6, 13  # misclassified mosaic: digit side, gap between digits, label band above each
MOSAIC_SCALE = 3.0  # screen pixels per digit pixel: 10 digits fill the page's width


# The formats a plot file may be written in, by its suffix: matplotlib's own writers (and Pillow's, which
# matplotlib brings), without pgf (it needs LaTeX) and raw/rgba (headerless pixels, no image file).
FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp", "gif")


def format_of(path: str | Path, option: str) -> str:
    """The image format `path`'s suffix names (no suffix: png); a usage error naming `option` for any other suffix."""
    suffix = Path(path).suffix
    fmt = suffix.lower().removeprefix(".") or "png"
    if fmt not in FORMATS:
        raise UsageError(
            f"option {option}: {quoted(suffix)} names no image format a plot is written in; end the name in "
            + ", ".join(f".{f}" for f in FORMATS)
        )
    return fmt


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes at its own dpi."""
    return image(fig, "png")


def image(fig: Figure, fmt: str) -> bytes:
    """The figure as bytes of `fmt` (one of `FORMATS`) at its own dpi."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=fig.dpi)
    return buf.getvalue()


def _figure(width: float, height: float, dpi: float = DPI) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def _style(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, alpha=0.25)
    ax.tick_params(labelsize=8)


def _percent(values: Sequence[float | None]) -> np.ndarray:
    """Fractions as percentages; NaN (not drawn) for a missing one, and one that is not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.array([np.nan if v is None else 100 * v for v in values], dtype=float)
    out[~np.isfinite(out)] = np.nan
    return out


# ---- history --------------------------------------------------------------------------------


def history_png(records: Sequence[RunRecord], fmt: str = "png") -> bytes:
    """The history plot as bytes of `fmt` (default PNG; the name kept for its callers)."""
    return image(history_figure(records), fmt)


def history_figure(records: Sequence[RunRecord]) -> Figure:
    """Per run, in %: fold mean ± std, out-of-fold accuracy, the submission's blend, the leaderboard score."""
    n = len(records)
    fig = _figure(max(7.0, min(16.0, 3 + 0.45 * n)), 4.6, dpi=110)
    ax = fig.add_subplot()
    x = np.arange(n)
    mean = _percent([r.fold_accuracy_mean for r in records])
    std = _percent([r.fold_accuracy_std if r.fold_accuracy_mean is not None else None for r in records])
    oof = _percent([r.oof_accuracy for r in records])
    blend = _percent([r.submission_estimate for r in records])
    lb = _percent([r.lb_score for r in records])
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
        _oof_series(ax, x, oof, np.array([r.status == "complete" for r in records]))
    if np.isfinite(blend).any():
        ok = np.isfinite(blend)
        ax.plot(x[ok], blend[ok], "D-", color=BLEND_COLOR, ms=5, lw=1.4, label="blend of runs (submission)", zorder=4)
    if np.isfinite(lb).any():
        ok = np.isfinite(lb)
        ax.plot(x[ok], lb[ok], "s--", color=LB_COLOR, ms=5, lw=1.2, label="public leaderboard", zorder=3)
    if not (np.isfinite(oof).any() or np.isfinite(lb).any()):
        ax.text(0.5, 0.5, "no scores recorded yet", transform=ax.transAxes, ha="center", va="center", color="#666")
    step = max(1, math.ceil(n / 20))  # at most ~20 run ids under the axis
    ax.set_xticks(x[::step], [records[i].run_id for i in range(0, n, step)], rotation=35, ha="right", fontsize=8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("digits: accuracy over runs", loc="left", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if ax.get_legend_handles_labels()[0]:
        fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="outside upper right", ncol=4, frameon=False)
    return fig


def _oof_series(ax: Axes, x: np.ndarray, oof: np.ndarray, complete: np.ndarray) -> None:
    """The OOF line: filled dots for complete runs, hollow ones for the rest, the best one annotated."""
    ok = np.isfinite(oof)
    ax.plot(x[ok], oof[ok], "-", color=OOF_COLOR, lw=1.6, zorder=2)
    done = ok & complete
    ax.plot(x[done], oof[done], "o", color=OOF_COLOR, ms=6, label="out-of-fold accuracy", zorder=3)
    if (ok & ~complete).any():
        partial = ok & ~complete
        ax.plot(
            x[partial], oof[partial], "o", mfc="white", mec=OOF_COLOR, ms=6, label="OOF (run not complete)", zorder=3
        )
    best = int(np.nanargmax(oof))
    ax.annotate(
        f"best {oof[best]:.3f}",
        (x[best], oof[best]),
        xytext=(0, 10),
        textcoords="offset points",
        ha="center",
        fontsize=8,
        color=OOF_COLOR,
    )


# ---- folds ----------------------------------------------------------------------------------


def fold_accuracy_figure(
    folds: Sequence[FoldRecord], mean: float | None, std: float | None, oof: float | None
) -> Figure | None:
    """One bar per fold (validation accuracy), with the mean ± std band and the out-of-fold line."""
    if not folds:
        return None
    fig = _figure(5.6, 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(folds))
    y = np.array([100 * f.val_accuracy for f in folds])
    ax.bar(x, y, color=[FOLD_COLORS[i % len(FOLD_COLORS)] for i in range(len(folds))], width=0.6, zorder=2)
    for xi, yi, fold in zip(x, y, folds):
        ax.annotate(
            pct(fold.val_accuracy), (xi, yi), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8
        )
    if mean is not None:
        ax.axhline(mean * 100, color="#333", lw=1, zorder=3, label=f"mean {pct(mean)}")
        if std:
            low, high = (mean - std) * 100, (mean + std) * 100
            ax.axhspan(low, high, color="#999", alpha=0.18, zorder=1, label=f"± std {pct(std)}")
    if oof is not None:
        ax.axhline(oof * 100, color=OOF_COLOR, lw=1, ls="--", zorder=3, label=f"out-of-fold {pct(oof, 3)}")
    low = min(y.min(), (mean or 1) * 100, (oof or 1) * 100)
    ax.set_ylim(max(0.0, low - 1.0), min(100.5, y.max() + 0.6))  # zoom on the differences between folds
    ax.set_xticks(x, [f"fold {f.index}" for f in folds], fontsize=8)
    ax.set_ylabel("validation accuracy (%)", fontsize=9)
    _style(ax)
    ax.grid(False, axis="x")
    if ax.get_legend_handles_labels()[0]:  # none without a mean and an out-of-fold figure: no empty legend
        fig.legend(loc="outside lower center", ncol=3, fontsize=7.5, frameon=False)
    return fig


def learning_curves_figure(folds: Sequence[FoldRecord]) -> Figure | None:
    """Loss, accuracy and learning rate per epoch of every fold (train dashed, validation solid)."""
    from matplotlib.lines import Line2D

    drawn = [f for f in folds if f.history.get("loss") or f.history.get("val_loss")]
    if not drawn:
        return None
    has_lr = any(f.history.get("learning_rate") for f in drawn)
    panels = ["loss", "accuracy"] + (["learning_rate"] if has_lr else [])
    fig = _figure(11.5, 3.9)
    axes = fig.subplots(1, len(panels), width_ratios=[1, 1, 0.7][: len(panels)])
    for ax, key in zip(axes, panels):
        if key == "learning_rate":
            _learning_rate_panel(ax, drawn)
        else:
            _metric_panel(ax, drawn, key)
        ax.set_xlabel("epoch", fontsize=9)
        _style(ax)
    handles = [Line2D([], [], color=_fold_color(i), lw=2, label=f"fold {f.index}") for i, f in enumerate(drawn)]
    handles += [
        Line2D([], [], color="#444", ls="--", lw=1.1, label="train"),
        Line2D([], [], color="#444", ls="-", lw=1.5, label="validation"),
        Line2D([], [], color="#444", marker="o", ls="", ms=5, label="best epoch"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 9), fontsize=8, frameon=False)
    return fig


def _fold_color(position: int) -> str:
    return FOLD_COLORS[position % len(FOLD_COLORS)]


DRAWN = 1e15  # beyond this no loss, accuracy or learning rate is a value to draw: a damaged record's


def _series(values: Sequence[float | None] | None) -> np.ndarray:
    """A learning curve as floats, NaN (a gap) where a value is missing, not finite or beyond `DRAWN` (a record's
    1e308 would overflow the axis and its ticks)."""
    series = np.array([np.nan if v is None else v for v in values or []], dtype=float)
    series[~(np.abs(series) < DRAWN)] = np.nan
    return series


def _metric_panel(ax: Axes, folds: Sequence[FoldRecord], key: str) -> None:
    """Train (dashed) and validation (solid) `key` of each fold, a dot at its best epoch, zoomed on the end."""
    scale = 100.0 if key == "accuracy" else 1.0
    for pos, f in enumerate(folds):
        color = _fold_color(pos)
        for name, style, width, alpha in ((key, "--", 1.1, 0.75), (f"val_{key}", "-", 1.5, 1.0)):
            y = _series(f.history.get(name)) * scale
            if len(y):
                ax.plot(np.arange(1, len(y) + 1), y, style, color=color, lw=width, alpha=alpha)
        val = _series(f.history.get(f"val_{key}")) * scale
        if 1 <= f.best_epoch <= len(val) and np.isfinite(val[f.best_epoch - 1]):
            ax.plot([f.best_epoch], [val[f.best_epoch - 1]], "o", color=color, ms=5, mec="white", mew=0.8, zorder=5)
    ax.set_title("accuracy (%)" if key == "accuracy" else key, fontsize=10, loc="left")
    if key == "accuracy":  # the first epochs would squash the part that matters
        late = [
            v
            for f in folds
            for v in _series(f.history.get("val_accuracy"))[len(f.history.get("val_accuracy") or []) // 3 :]
        ]
        late = [100 * v for v in late if np.isfinite(v)]
        if late:
            ax.set_ylim(max(0.0, min(late) - 2.0), min(100.0, max(late) + 0.8))
    else:  # the first epoch's loss would squash the rest
        rest = [v for f in folds for s in ("loss", "val_loss") for v in _series(f.history.get(s))[1:] if np.isfinite(v)]
        if rest:
            ax.set_ylim(max(0.0, min(rest) * 0.9), max(rest) * 1.05)


def _learning_rate_panel(ax: Axes, folds: Sequence[FoldRecord]) -> None:
    """The schedule of each fold, in units of a power of ten so the ticks stay short."""
    peak = max((v for f in folds for v in _series(f.history.get("learning_rate")) if v > 0), default=1.0)
    exponent = math.floor(math.log10(peak))
    for pos, f in enumerate(folds):
        y = _series(f.history.get("learning_rate"))
        ax.plot(np.arange(1, len(y) + 1), y / 10.0**exponent, color=_fold_color(pos), lw=1.3)
    ax.set_title("learning rate" + (f" ($\\times 10^{{{exponent}}}$)" if exponent else ""), fontsize=10, loc="left")


# ---- classes --------------------------------------------------------------------------------


def confusion_figure(cm: np.ndarray) -> Figure:
    """Counts; mistakes coloured (log scale when they span decades), the diagonal grey so mistakes stand out."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.ticker import MaxNLocator

    fig = _figure(5.6, 5.0)
    ax = fig.add_subplot()
    off = cm.astype(float).copy()
    np.fill_diagonal(off, np.nan)
    off[off == 0] = np.nan
    vmax = float(np.nanmax(off)) if np.isfinite(off).any() else 1.0
    log = vmax >= 20  # counts from a few to thousands: a log scale keeps the rare mistakes visible
    norm = LogNorm(vmin=1, vmax=vmax) if log else Normalize(vmin=0, vmax=max(vmax, 1) * 1.15)
    im = ax.imshow(off, cmap="Reds", norm=norm)
    ax.imshow(np.where(np.eye(10, dtype=bool), 1.0, np.nan), cmap="Greys", vmin=0, vmax=6)
    for true in range(10):
        for guess in range(10):
            n = int(cm[true, guess])
            if true == guess:
                ax.text(guess, true, str(n), ha="center", va="center", fontsize=7, color="#222", fontweight="bold")
            elif n:
                ink = "white" if norm(n) > 0.6 else "#222"
                ax.text(guess, true, str(n), ha="center", va="center", fontsize=7.5, color=ink)
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.tick_params(labelsize=9, length=0)
    ax.set_xlabel("predicted label", fontsize=9)
    ax.set_ylabel("true label", fontsize=9)
    ax.set_xticks(np.arange(-0.5, 10), minor=True)
    ax.set_yticks(np.arange(-0.5, 10), minor=True)
    ax.grid(which="minor", color="white", lw=1.2)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    bar = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
    if not log:
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    bar.set_label("mistakes" + (" (log scale)" if log else ""), fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return fig


def per_class_figure(accuracy: Sequence[float | None], cm: np.ndarray | None) -> Figure | None:
    """One horizontal bar per true label; the worst class red."""
    if all(a is None for a in accuracy):
        return None
    fig = _figure(5.6, 5.0)
    ax = fig.add_subplot()
    y = np.arange(10)
    values = _percent(accuracy)
    worst = int(np.nanargmin(values))
    ax.barh(
        y,
        np.nan_to_num(values),
        color=[WORST_COLOR if c == worst else OOF_COLOR for c in range(10)],
        height=0.6,
        zorder=2,
    )
    low = max(0.0, float(np.nanmin(values)) - 1.5)
    for c in range(10):
        if np.isfinite(values[c]):
            rows = f"  (n={int(cm[c].sum())})" if cm is not None else ""
            ax.text(values[c] + 0.05, c, f" {pct(accuracy[c])}{rows}", va="center", fontsize=7.5)
    ax.set_xlim(low, 100 + (100 - low) * 0.35)  # room for the labels right of the bars
    ax.set_xticks([t for t in ax.get_xticks() if low <= t <= 100])
    ax.set_yticks(y, [str(c) for c in range(10)])
    ax.invert_yaxis()
    ax.set_xlabel("accuracy (%) of rows with this true label", fontsize=9)
    ax.set_ylabel("true label", fontsize=9)
    _style(ax)
    ax.grid(False, axis="y")
    return fig


# ---- misclassified digits -----------------------------------------------------------------


def tile_origin(i: int, columns: int = GRID_COLUMNS) -> tuple[int, int]:
    """(x, y) in mosaic pixels of the top-left corner of digit `i`."""
    row, col = divmod(i, columns)
    return col * (TILE + GAP) + GAP // 2, row * (TILE + BAND + GAP) + BAND


def misclassified_figure(images: np.ndarray, true: np.ndarray, pred: np.ndarray, columns: int = GRID_COLUMNS) -> Figure:
    """A mosaic of 28x28 digits, ink dark on white, each under a "true → predicted" label.

    The saved image has ``MOSAIC_SCALE * 1.5`` pixels per mosaic pixel
    (`tile_origin` gives where each digit is).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rows = max(1, math.ceil(len(images) / columns))
    height, width = rows * (TILE + BAND + GAP), columns * (TILE + GAP)
    mosaic = np.zeros((height, width), dtype=float)
    for i, image in enumerate(images):
        x0, y0 = tile_origin(i, columns)
        mosaic[y0 : y0 + TILE, x0 : x0 + TILE] = image.reshape(TILE, TILE) / 255.0
    fig = Figure(figsize=(width * MOSAIC_SCALE / SHOW_DPI, height * MOSAIC_SCALE / SHOW_DPI), dpi=SHOW_DPI * 1.5)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
    for i in range(len(images)):
        x0, y0 = tile_origin(i, columns)
        label = f"{int(true[i])} → {int(pred[i])}"
        ax.text(x0 + TILE / 2, y0 - 2.5, label, ha="center", va="baseline", fontsize=11, color="#b42318")
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), TILE, TILE, fill=False, lw=0.6, ec="#d0d5dd"))  # a faint frame
    ax.set_axis_off()
    return fig
