"""The HTML of ``digits report``: one self-contained page about one run.

`render` turns a run's record and what else its folder holds (`Evidence`:
the confusion matrix, per-class accuracy, the misclassified digits) into the
page: summary (with the blend behind the submission), folds, learning
curves, classes, misclassified digits and run details.  Every plot is a PNG
from `pipeline.views.plots`, embedded as a base64 data URI (the page needs no
other file and no network) and kept in `Page.images` to be saved beside it.

Everything from the record or a file is escaped (`esc`): a config value or a
leaderboard message is text on the page, never markup.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core import config as cfg
from pipeline.core.text import duration, mean_std, number, pct, printable, toml_value, when
from pipeline.store.record import RunRecord, now, standing
from pipeline.views import plots, runset
from pipeline.views.report_style import CSS, TEMPLATE

MAX_MISCLASSIFIED = 100  # digits shown in the grid


@dataclass
class Mistakes:
    """The out-of-fold mistakes saved by the run (``misclassified.npz``), most confident first."""

    images: np.ndarray  # (m, 784) uint8
    true: np.ndarray
    pred: np.ndarray
    index: np.ndarray  # row in train.csv
    confidence: np.ndarray  # the run's probability of its wrong answer; NaN when unknown

    def __len__(self) -> int:
        return len(self.true)


@dataclass
class Evidence:
    """What the page shows beyond the record, each with a note when it is missing or was recomputed."""

    confusion: np.ndarray | None = None
    confusion_note: str | None = None
    per_class: list[float | None] | None = None
    mistakes: Mistakes | None = None
    mistakes_note: str | None = None


@dataclass
class Page:
    """A page being built: the run, the notes about it and the PNGs embedded so far."""

    run_dir: Path
    record: RunRecord
    notes: list[str] = field(default_factory=list)  # about the whole run: at the top of the page
    section_notes: list[str] = field(default_factory=list)  # about one section: shown in place
    images: dict[str, bytes] = field(default_factory=dict)  # name -> PNG
    html: str = ""  # the finished page

    def image(self, name: str, png: bytes, alt: str) -> str:
        """Embed `png` (and keep it to save beside the page); shown at 96 dpi whatever it was drawn at."""
        self.images[name] = png
        width = round(int.from_bytes(png[16:20], "big") * plots.SHOW_DPI / plots.DPI)  # from the PNG header
        data = base64.b64encode(png).decode("ascii")
        return (
            f'<img id="{esc(name)}" class="plot" alt="{esc(alt)}" width="{width}" src="data:image/png;base64,{data}">'
        )


def esc(value: object) -> str:
    """Text for HTML: ``<``, ``>``, ``&`` and quotes escaped, and what would not show (`printable`: controls,
    bidi overrides) made visible; None is empty."""
    return html.escape("" if value is None else printable(value))


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def render(page: Page, evidence: Evidence) -> str:
    """The HTML of the page; fills `page.images`, `page.notes` and `page.section_notes` as it goes."""
    rec = page.record
    page.notes += _run_notes(rec)
    sections = [
        _folds_section(rec),
        _curves_section(page),
        _classes_section(page, evidence),
        _mistakes_section(page, evidence),
        f'<section id="config-section"><h2>Run details</h2>{_details(rec)}</section>',
    ]
    summary = f"<div>{_summary(rec)}{''.join(note(n) for n in page.notes)}</div><div>{_fold_chart(page)}</div>"
    return TEMPLATE.format(
        title=esc(rec.run_id),
        css=CSS,
        model=esc((rec.config.model.kind or "").upper()),
        summary=summary,
        sections="\n".join(sections),
        generated=esc(when(now(), seconds=True)),
        source=esc(page.run_dir),
    )


def _run_notes(rec: RunRecord) -> list[str]:
    done, planned = len(rec.folds), rec.folds_planned
    if rec.status == "paused":
        return [
            f"This run spans nights: the night's budget paused it ({standing(rec)}); the next `digits run` "
            "continues it, and it joins the blend once every fold is finished."
        ]
    if rec.status in ("interrupted", "failed", "running", "set-aside"):
        return [
            f"This run is {rec.status}: {done} of {planned} folds finished, so the "
            "out-of-fold figures cover only the rows of those folds."
        ]
    if done < planned:
        return [f"Only {done} of {planned} folds are in the report."]
    return []


# ---- summary --------------------------------------------------------------------------------


def _kv(rows: list[tuple[str, str]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _muted(text: str) -> str:
    return f'<span class="muted">{esc(text)}</span>'


def _summary(rec: RunRecord) -> str:
    oof = f"<b>{pct(rec.oof_accuracy, 3)} %</b>" if rec.oof_accuracy is not None else "—"
    return _kv(
        [
            ("status", f'<span class="status {esc(rec.status)}">{esc(rec.status)}</span>'),
            ("started", esc(when(rec.started_at, seconds=True))),
            ("finished", esc(when(rec.finished_at, seconds=True))),
            ("time", esc(duration(runset.elapsed(rec)))),
            ("folds", f"{len(rec.folds)} of {rec.folds_planned}"),
            ("nights", _attempts(rec)),
            ("recipe", _recipe(rec)),
            (
                "out-of-fold accuracy",
                oof + (_muted(" (epochs chosen on these rows: optimistic)") if rec.oof_in_sample else ""),
            ),
            ("fold accuracy", esc(mean_std(rec.fold_accuracy_mean, rec.fold_accuracy_std)) + " %"),
            ("blend", _blend(rec)),
            ("leaderboard", _leaderboard(rec)),
            ("submission", _submission(rec)),
            ("data", _data(rec)),
            ("code version", esc(rec.code_version or "—")),
        ]
    )


def _attempts(rec: RunRecord) -> str:
    """Each command that trained the run: when, how it ended, how long, how far it got (its progress by night)."""
    if not rec.attempts:
        return _muted("one (recorded before runs spanned nights)") if rec.status == "complete" else "—"
    rows = []
    for a in rec.attempts:
        reached = ", ".join(f"fold {k + 1}: epoch {e}" for k, e in sorted(a.epochs.items()) if e)
        rows.append(
            f"<tr><td>{esc(when(a.started_at))}</td><td>{esc(a.ended)}</td><td>{esc(duration(a.seconds))}</td>"
            f"<td>{a.folds_done} of {rec.folds_planned} folds{esc('; ' + reached) if reached else ''}</td></tr>"
        )
    return f'<table id="nights" class="grid compact">{"".join(rows)}</table>'


def _recipe(rec: RunRecord) -> str:
    """The recipe, its precision, and why the run trained it."""
    why = rec.plan.reason if rec.plan is not None and rec.plan.rule != "named" else "named by --model or the config"
    return f"<b>{esc(rec.config.model.kind)}</b>, {esc(rec.config.train.precision)}<br>{_muted(why)}"


def _blend(rec: RunRecord) -> str:
    """The runs the submission averages, their weights and out-of-fold accuracy, and the blend's."""
    blend = rec.blend
    if blend is None:
        return _muted("none: the submission, if any, is this run alone")
    members = "".join(
        f"<tr><td>{esc(m.run_id)}</td><td>{m.weight:.2f}</td><td>{pct(m.oof_accuracy, 3)} %</td></tr>"
        for m in blend.members
    )
    if blend.estimate is not None:
        figure = (
            f"<b>{pct(blend.estimate, 3)} %</b> estimated on rows the selection never saw "
            f'<span class="muted">({esc(blend.estimate_method or "")}; in-sample {pct(blend.in_sample_accuracy, 3)} %)</span>'
        )
    else:
        figure = f"{pct(blend.in_sample_accuracy, 3)} % in-sample (recorded before digits estimated blends)"
    return (
        f"{figure}, {len(blend.members)} of "
        f"{len(blend.candidates) or len(blend.members)} compatible run(s)"
        f'<br><span class="muted">best single run {esc(blend.best_single_run)}: '
        f"{pct(blend.best_single_oof_accuracy, 3)} %</span>"
        '<table id="blend" class="grid num compact"><thead><tr><th>run</th><th>weight</th>'
        f"<th>out-of-fold</th></tr></thead><tbody>{members}</tbody></table>"
    )


def _leaderboard(rec: RunRecord) -> str:
    lb = rec.leaderboard
    if lb is None:
        return _muted("not submitted")
    if lb.public_score is not None:
        shown = f"<b>{lb.public_score:.5f}</b> public score"
        if lb.submitted_at:
            shown += " " + _muted(f"submitted {when(lb.submitted_at, seconds=True)}")
    elif lb.error:
        shown = f'<span class="bad">error: {esc(lb.error)}</span>'
    else:
        shown = _muted(lb.status)
    if lb.message:
        shown += "<br>" + _muted(f"message: {lb.message}")
    return shown


def _submission(rec: RunRecord) -> str:
    sub = rec.submission
    if sub is None:
        return _muted("none")
    return f"{esc(sub.path)} " + _muted(f"({number(sub.rows)} rows, sha256 {sub.sha256[:12]})")


def _data(rec: RunRecord) -> str:
    lines = [f"{esc(name)}: {number(d.rows)} rows " + _muted(f"sha256 {d.sha256[:12]}") for name, d in rec.data.items()]
    return "<br>".join(lines) or _muted("not recorded")


def _fold_chart(page: Page) -> str:
    rec = page.record
    fig = plots.fold_accuracy_figure(rec.folds, rec.fold_accuracy_mean, rec.fold_accuracy_std, rec.oof_accuracy)
    if fig is None:
        return note("No fold recorded a validation accuracy.")
    return page.image("fold-accuracy", plots.png(fig), "validation accuracy per fold")


# ---- sections -------------------------------------------------------------------------------


def _table(table_id: str, head: list[str], rows: list[list[str]], css: str = "grid num") -> str:
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f'<table{ident} class="{css}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def _folds_section(rec: RunRecord) -> str:
    if not rec.folds:
        body = note("No fold finished, so there is nothing per fold to show.")
    else:
        head = [
            "fold",
            "train rows",
            "val rows",
            "val accuracy",
            "val loss",
            "best epoch",
            "epochs run",
            "seconds",
            "samples/s",
        ]
        rows = [
            [
                str(f.index),
                number(f.train_rows),
                number(f.val_rows),
                f"{pct(f.val_accuracy)} %",
                f"{f.val_loss:.4f}",
                str(f.best_epoch),
                str(f.epochs_run),
                number(f.seconds, 1),
                number(f.samples_per_second),
            ]
            for f in rec.folds
        ]
        body = _table("folds", head, rows)
    return f'<section id="folds-section"><h2>Folds</h2>{body}</section>'


def _curves_section(page: Page) -> str:
    folds = page.record.folds
    fig = plots.learning_curves_figure(folds)
    missing = [str(f.index) for f in folds if not f.history.get("loss")]
    parts = []
    if fig is not None:
        parts.append(page.image("learning-curves", plots.png(fig), "learning curves of every fold"))
    if missing:
        text = f"No per-epoch history for fold(s) {', '.join(missing)}."
        parts.append(note(text))
        page.section_notes.append(text)
    if fig is None and not missing:
        parts.append(note("No fold finished, so there are no learning curves."))
    return f'<section id="learning-curves-section"><h2>Learning curves</h2>{"".join(parts)}</section>'


def _classes_section(page: Page, ev: Evidence) -> str:
    cm, accuracy = ev.confusion, ev.per_class
    if ev.confusion_note:
        page.section_notes.append(ev.confusion_note)
    if cm is not None:
        png = plots.png(plots.confusion_figure(cm))
        left = (note(ev.confusion_note) if ev.confusion_note else "") + page.image(
            "confusion-matrix", png, "confusion matrix of the out-of-fold predictions"
        )
    else:
        left = note(ev.confusion_note or "No confusion matrix recorded.")
    fig = plots.per_class_figure(accuracy, cm) if accuracy is not None else None
    if fig is not None:
        right = page.image("per-class-accuracy", plots.png(fig), "accuracy per true label")
    else:
        right = note("No per-class accuracy recorded.")
    table = _per_class_table(accuracy, cm) if accuracy is not None or cm is not None else ""
    return (
        '<section id="classes-section"><h2>Out-of-fold predictions by class</h2>'
        '<p class="muted">Rows are the true label, columns the prediction; the diagonal (grey) counts the right '
        f'answers, red cells the mistakes.</p><div class="cols"><div>{left}</div><div>{right}</div></div>{table}</section>'
    )


def _per_class_table(accuracy: list[float | None] | None, cm: np.ndarray | None) -> str:
    rows = []
    for c in range(10):
        confused = "—"
        if cm is not None:
            off = cm[c].copy()
            off[c] = 0
            if off.max() > 0:
                confused = f"{int(off.argmax())} ({int(off.max())}×)"
        count = "—" if cm is None else number(int(cm[c].sum()))
        rows.append([str(c), count, f"{pct(None if accuracy is None else accuracy[c])} %", confused])
    return _table("per-class-table", ["label", "rows", "accuracy", "most often taken for"], rows, "grid num compact")


def _mistakes_section(page: Page, ev: Evidence) -> str:
    mistakes = ev.mistakes
    if mistakes is None:
        text = ev.mistakes_note or "No misclassified digits saved."
        page.section_notes.append(text)
        body = note(text)
    elif len(mistakes) == 0:
        body = '<p class="muted">No out-of-fold mistakes.</p>'
    else:
        shown = min(len(mistakes), MAX_MISCLASSIFIED)
        ordered = "most confident mistakes first" if np.isfinite(mistakes.confidence).any() else "in the order saved"
        fig = plots.misclassified_figure(mistakes.images[:shown], mistakes.true[:shown], mistakes.pred[:shown])
        body = (
            f'<p class="muted">{shown} of {len(mistakes):,} misclassified out-of-fold digits, {ordered}; '
            "labels read <b>true → predicted</b>. Confident mistakes are often mislabelled training rows.</p>"
            + page.image("misclassified", plots.png(fig), "misclassified digits")
            + _mistakes_table(mistakes, shown)
        )
    return f'<section id="misclassified-section"><h2>Misclassified digits</h2>{body}</section>'


def _mistakes_table(m: Mistakes, shown: int) -> str:
    rows = [
        [
            str(i + 1),
            str(int(m.index[i])),
            str(int(m.true[i])),
            str(int(m.pred[i])),
            f"{m.confidence[i]:.3f}" if np.isfinite(m.confidence[i]) else "—",
        ]
        for i in range(shown)
    ]
    head = ["#", "train.csv row", "true", "predicted", "confidence"]
    return (
        "<details><summary>The same digits as a list (row in train.csv, counting from 0 after the header)</summary>"
        + _table("", head, rows)
        + "</details>"
    )


def _details(rec: RunRecord) -> str:
    """Config, time per stage and library versions, side by side."""
    config = [(esc(k), esc(toml_value(v))) for k, v in cfg.flatten(cfg.to_dict(rec.config)).items()]
    stages = [(esc(k), f"{number(v, 1)} s") for k, v in rec.stage_seconds.items()]
    versions = [(esc(k), esc(v)) for k, v in rec.versions.items()]
    columns = []
    for title, rows, ident in (
        ("Config", config, ' id="config"'),
        ("Time per stage", stages, ""),
        ("Versions", versions, ""),
    ):
        cells = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) or "<tr><td>not recorded</td></tr>"
        columns.append(f'<div><h3>{title}</h3><table{ident} class="kv">{cells}</table></div>')
    return f'<div class="cols3">{"".join(columns)}</div>'
