"""``digits report``: one self-contained HTML page about one run, and its plots as PNG files beside it.

This module reads the run folder (``report.json`` through `pipeline.store.record`,
``oof.npz``, ``misclassified.npz``) and writes the page; `pipeline.views.report_page`
builds the HTML and `pipeline.views.plots` draws.  It works with whatever the
folder holds: an interrupted run, an old record without a confusion matrix
(recomputed from ``oof.npz``), or no ``misclassified.npz`` gives a page with
a note where the missing part would be.  Only a record that cannot be read
at all is an error: one line naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core import atomic_files
from pipeline.core import console as ui
from pipeline.core.errors import BadInputError, UsageError
from pipeline.core.file_reads import UNREADABLE, numbers, open_regular, why
from pipeline.core.text import quoted
from pipeline.store import run_arrays, run_folders
from pipeline.store.record import RunRecord, read
from pipeline.views import runset
from pipeline.views.report_page import Evidence, Mistakes, Page, render

if TYPE_CHECKING:
    from rich.console import Console

MISCLASSIFIED = "misclassified.npz"
PAGE = "report.html"


def build_report(
    output_dir: str | Path = ".", ref: str = "latest", out: str | Path | None = None, con: Console | None = None
) -> Path:
    """``digits report``: write the run's page (default ``runs/<id>/report.html``) and its PNGs beside it.

    The PNGs are named ``<page stem>-<plot>.png``, and are written only
    beside a page file: never next to a device or a FIFO such as
    /dev/stdout.  Returns the page's path.
    """
    if out is not None and Path(out).suffix.lower() not in ("", ".html", ".htm"):
        raise UsageError(
            f"option --out: the report is an HTML page, but {quoted(Path(out).name)} names another format; "
            "end the name in .html"
        )
    run_dir = run_folders.resolve(output_dir, ref)
    page = make_page(run_dir, read(run_dir))
    target = Path(out) if out else run_dir / PAGE
    named = out is not None  # what the user named is written through (a device, a FIFO, a link's target)
    atomic_files.write_text(target, page.html, through=named)  # first: a target that cannot be written is named
    real, regular = atomic_files.destination(target) if named else (target, True)
    if regular:
        for name, png in page.images.items():
            atomic_files.write_bytes(real.with_name(f"{real.stem}-{name}.png"), png, through=named)
    con = con or ui.console()
    for text in page.notes + page.section_notes:
        con.print(ui.styled(f"note: {text}", "yellow"), soft_wrap=True)
    con.print(f"report: {target}", soft_wrap=True)
    return target


def make_page(run_dir: Path, rec: RunRecord) -> Page:
    """The page of the run in `run_dir`: its HTML, its PNGs and its notes."""
    page = Page(run_dir, rec)
    page.html = render(page, evidence(run_dir, rec))
    return page


def evidence(run_dir: Path, rec: RunRecord) -> Evidence:
    """The confusion matrix, per-class accuracy and misclassified digits of the run, with notes on gaps."""
    cm, cm_note = confusion_matrix(run_dir, rec)
    mistakes, mistakes_note = misclassified(run_dir)
    return Evidence(cm, cm_note, per_class_accuracy(rec, cm), mistakes, mistakes_note)


def confusion_matrix(run_dir: Path, rec: RunRecord) -> tuple[np.ndarray | None, str | None]:
    """From the record, else recomputed from ``oof.npz``; None and a note when neither has it."""
    if rec.confusion_matrix is not None:
        try:
            recorded = np.asarray(rec.confusion_matrix, dtype=np.int64)
        except (ValueError, OverflowError):  # rows of different lengths: as unusable as a matrix of another shape
            recorded = np.zeros(0, dtype=np.int64)
        if recorded.shape == (10, 10):
            return recorded, None
    try:
        labels, proba = run_arrays.load_oof(run_dir)
    except BadInputError as err:
        return None, f"No confusion matrix: the report has none, and {err}."
    pred, valid = runset.predicted(proba)
    counts = np.zeros((10, 10), dtype=np.int64)
    ok = valid & (labels >= 0) & (labels < 10)
    np.add.at(counts, (labels[ok], pred[ok]), 1)
    return counts, "The report has no confusion matrix; it was recomputed from oof.npz."


def per_class_accuracy(rec: RunRecord, cm: np.ndarray | None) -> list[float | None] | None:
    """Accuracy of the rows of each true label: recorded, else from the confusion matrix."""
    if rec.per_class_accuracy is not None and len(rec.per_class_accuracy) == 10:
        return list(rec.per_class_accuracy)
    if cm is None:
        return None
    rows = cm.sum(axis=1)
    return [float(cm[c, c] / rows[c]) if rows[c] else None for c in range(10)]


def misclassified(run_dir: Path) -> tuple[Mistakes | None, str | None]:
    """The out-of-fold mistakes, most confident first when ``oof.npz`` gives the confidence."""
    path = run_dir / MISCLASSIFIED
    prefix = "No grid of misclassified digits:"
    try:
        with open_regular(path) as f, np.load(f, allow_pickle=False) as z:
            images, true, pred, index = (numbers(z[k], k) for k in ("images", "true", "pred", "index"))
    except FileNotFoundError:
        return None, (
            f"{prefix} {path.name} is not in the run folder "
            "(a run that stopped before its out-of-fold predictions, or an older version)."
        )
    except UNREADABLE as err:
        return None, f"{prefix} {path.name} is unreadable ({why(err)})."
    m = len(true)
    if images.ndim != 2 or images.shape[1] != 784 or any(len(v) != m for v in (images, pred, index)):
        return None, f"{prefix} {path.name} has arrays of unexpected shapes."
    confidence = _confidence(run_dir, index, pred)
    order = np.argsort(-np.nan_to_num(confidence, nan=-1.0), kind="stable")
    return Mistakes(images[order], true[order], pred[order], index[order], confidence[order]), None


def _confidence(run_dir: Path, index: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The run's probability of each wrong answer, from ``oof.npz``; NaN where it is not known."""
    confidence = np.full(len(index), np.nan)
    try:
        _, proba = run_arrays.load_oof(run_dir)
    except BadInputError:
        return confidence
    rows = index.astype(np.int64)
    ok = (rows >= 0) & (rows < len(proba))
    confidence[ok] = proba[rows[ok], np.clip(pred[ok].astype(np.int64), 0, 9)]
    return confidence
