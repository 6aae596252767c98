"""digits runs and digits history: the inventory, the trend table with the blend, and the trend PNG."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest

from pipeline.cli import view_commands
from pipeline.views import plots, runset
from tests import runfactory as rf

T0 = dt.datetime(2026, 11, 20, 23, 30, 0)
invoke = rf.invoke


@pytest.fixture(autouse=True)
def plain_console(monkeypatch):
    rf.plain_terminal(monkeypatch)


def test_runs_lists_every_run(tmp_path):
    made = rf.nightly(tmp_path, 12)
    part = rf.make_run(tmp_path, T0 + dt.timedelta(days=30), folds_done=3, seed=5)
    sub = rf.make_run(tmp_path, T0 + dt.timedelta(days=31), seed=6, current_submission=True)
    result = invoke(view_commands.runs, "--output-dir", tmp_path)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    for p in made + [part, sub]:
        assert any(line.startswith(p.name) for line in lines)
    row = next(line for line in lines if line.startswith(part.name))
    assert "interrupted" in row and "3/5" in row
    row = next(line for line in lines if line.startswith(sub.name))
    assert "submission.csv" in row and f"{rf.read(sub)['seconds']:.0f}" in row
    assert max(len(line) for line in lines) <= 120


def test_history_table_and_plot(tmp_path):
    made = rf.nightly(tmp_path, 6)
    rf.make_run(tmp_path, T0 + dt.timedelta(days=30), schema=0, seed=9)
    result = invoke(view_commands.history, "--output-dir", tmp_path)
    assert result.exit_code == 0, result.output
    png = tmp_path / "history.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    lines = result.stdout.splitlines()
    assert all(any(line.startswith(p.name) for line in lines) for p in made)
    second = next(line for line in lines if line.startswith(made[1].name))
    r0, r1 = rf.read(made[0]), rf.read(made[1])
    assert f"{100 * (r1['oof_accuracy'] - r0['oof_accuracy']):+.3f}" in second
    assert f"{100 * r1['leaderboard']['public_score']:.3f}" in second
    custom = tmp_path / "plots" / "trend.png"
    assert invoke(view_commands.history, "--output-dir", tmp_path, "--plot", custom).exit_code == 0
    assert custom.read_bytes()[:4] == b"\x89PNG"


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)])


def _pixel(img: np.ndarray, ax, x: float, y: float) -> np.ndarray:
    """The colour of the saved image where the data point (x, y) of `ax` was drawn."""
    px, py = ax.transData.transform((x, y))
    return img[int(round(img.shape[0] - py)), int(round(px)), :3]


def test_history_png_draws_each_score_where_it_belongs(tmp_path):
    import matplotlib.image as mpimg

    rows = 600
    made = [  # out-of-fold 95.0, 95.5, ... 97.5 %, leaderboard 1.5 points lower
        rf.make_run(
            tmp_path,
            T0 + dt.timedelta(days=i),
            seed=i,
            correct=rf.wrong_at(range(30 - 3 * i), rows),
            leaderboard=(rows - 30 + 3 * i) / rows - 0.015,
        )
        for i in range(6)
    ]
    blended = rf.make_run(
        tmp_path,
        T0 + dt.timedelta(days=30),
        seed=9,
        correct=rf.wrong_at(range(36), rows),  # 94.0 % alone, 98.5 % blended
        blend=rf.blend_of((made[-1], 0.5, 0.975), (made[-2], 0.5, 0.97), estimate=0.985),
    )
    records = runset.load(tmp_path, last=None).records
    assert [r.oof_accuracy for r in records] == pytest.approx([0.95, 0.955, 0.96, 0.965, 0.97, 0.975, 0.94])
    fig = plots.history_figure(records)
    img = mpimg.imread(io.BytesIO(plots.png(fig)), format="png")
    ax = fig.axes[0]
    oof, blend, lb = _rgb(plots.OOF_COLOR), _rgb(plots.BLEND_COLOR), _rgb(plots.LB_COLOR)
    for i, r in enumerate(records):  # each run's OOF dot, in the OOF colour, at its accuracy, and nothing below it
        assert np.allclose(_pixel(img, ax, i, 100 * r.oof_accuracy), oof, atol=0.03), r.run_id
        assert not np.allclose(_pixel(img, ax, i, 100 * r.oof_accuracy - 0.3), oof, atol=0.03), r.run_id
    for i, r in enumerate(records[:-1]):
        assert np.allclose(_pixel(img, ax, i, 100 * r.lb_score), lb, atol=0.03), r.run_id
    assert records[-1].run_id == blended.name
    assert np.allclose(_pixel(img, ax, 6, 98.5), blend, atol=0.03)  # the blend, far above its run's own OOF
    assert not np.allclose(_pixel(img, ax, 5, 98.5), blend, atol=0.03)  # and only where a run blended
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "blend of runs (submission)" in labels and "public leaderboard" in labels


def test_history_png_without_blends_has_no_blend_line(tmp_path):
    import matplotlib.image as mpimg

    rf.nightly(tmp_path, 4)
    rf.make_run(tmp_path, T0 + dt.timedelta(days=30), folds_done=2, seed=9)
    fig = plots.history_figure(runset.load(tmp_path, last=None).records)
    img = mpimg.imread(io.BytesIO(plots.png(fig)), format="png")[..., :3]
    blend_pixels = np.isclose(img, _rgb(plots.BLEND_COLOR), atol=0.03).all(axis=2).sum()
    oof_pixels = np.isclose(img, _rgb(plots.OOF_COLOR), atol=0.03).all(axis=2).sum()
    assert blend_pixels == 0 and oof_pixels > 200
    assert "blend of runs (submission)" not in [t.get_text() for t in fig.legends[0].get_texts()]


def row_of(stdout: str, run: object) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(getattr(run, "name", str(run))))


def cell(stdout: str, run: object, column: str, before: str) -> str:
    """The text under the right-aligned `column`, which follows the right-aligned column `before`."""
    header = next(line for line in stdout.splitlines() if line.startswith("run "))
    start, end = header.index(before) + len(before), header.index(column) + len(column)
    return row_of(stdout, run)[start:end].strip()


def test_history_shows_the_blend_beside_the_runs(tmp_path):
    made = rf.nightly(tmp_path, 3)
    own = rf.make_run(tmp_path, T0 + dt.timedelta(days=20), seed=7, submission=True)  # submitted its own folds
    blended = rf.make_run(
        tmp_path,
        T0 + dt.timedelta(days=21),
        seed=8,
        submission=True,
        blend=rf.blend_of((own, 0.4, 0.97), (made[-1], 0.35, 0.96), (made[-2], 0.25, 0.958), estimate=0.98765),
    )
    result = invoke(view_commands.history, "--output-dir", tmp_path, "--no-plot")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert cell(out, blended, "blend", "Δ OOF") == "98.765 (3)"
    assert cell(out, own, "blend", "Δ OOF") == f"{100 * rf.read(own)['oof_accuracy']:.3f} (1)"
    for run in made:  # no submission written: no blend
        assert cell(out, run, "blend", "Δ OOF") == "—"
        assert cell(out, run, "LB", "blend") == f"{100 * rf.read(run)['leaderboard']['public_score']:.3f}"
    assert max(len(line) for line in out.splitlines()) <= 120


def test_runs_marks_the_run_that_made_the_submission_by_its_hash(tmp_path):
    first = rf.make_run(tmp_path, T0, seed=1, submission=True)
    current = rf.make_run(tmp_path, T0 + dt.timedelta(days=1), seed=2, current_submission=True)
    out = invoke(view_commands.runs, "--output-dir", tmp_path).stdout
    assert "submission.csv" in row_of(out, current) and "submission.csv" not in row_of(out, first)


@pytest.mark.parametrize("width", [80, 60])
def test_submissions_table_on_a_narrow_terminal_keeps_every_score_whole(width):
    """CI's 80 columns cut "77.500" to "77.5…": the long text columns fold instead of the numbers."""
    from rich.console import Console

    from pipeline.store import ledger
    from pipeline.views.history import submissions_table

    members = [ledger.Member("20261130-060028", 0.61), ledger.Member("20261130-061502", 0.39)]
    entry = ledger.Entry(
        id="20261130T0600-ab12cd34", competition="digit-recognizer", status="complete",
        sent_at="2026-11-30T06:00:41+00:00", run_id="20261130-060028", members=members,
        estimate=0.99534, public_score=0.775, ref=40000012,
    )  # fmt: skip
    con = Console(file=io.StringIO(), width=width, color_system=None)
    con.print(submissions_table([entry]))
    shown = con.file.getvalue()  # type: ignore[attr-defined]
    assert "…" not in shown and "99.534" in shown and "77.500" in shown and "40000012" in shown, shown


@pytest.mark.parametrize(
    ("name", "magic"),
    [
        ("h.pdf", b"%PDF"),
        ("h.svg", b"<?xml"),
        ("h.PNG", b"\x89PNG"),
        ("h.eps", b"%!PS-Adobe"),
        ("h.ps", b"%!PS-Adobe"),
        ("h.jpg", b"\xff\xd8\xff"),
        ("h.tiff", b"II*\x00"),
        ("h.webp", b"RIFF"),
        ("h.svgz", b"\x1f\x8b"),
        ("h", b"\x89PNG"),  # no suffix names nothing: PNG, as the default history.png
    ],
)
def test_history_plot_writes_the_format_its_suffix_names(tmp_path, name, magic):
    rf.nightly(tmp_path, 3)
    target = tmp_path / name
    result = invoke(view_commands.history, "--output-dir", tmp_path, "--plot", target)
    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["h.xyz", "h.pgf", "h.html", "h.raw"])
def test_history_plot_with_a_suffix_of_no_image_format_is_a_usage_error_naming_the_option(tmp_path, name):
    from pipeline.core.errors import UsageError

    rf.nightly(tmp_path, 2)
    result = invoke(view_commands.history, "--output-dir", tmp_path, "--plot", tmp_path / name)
    assert isinstance(result.exception, UsageError), result.output
    assert "option --plot" in str(result.exception) and ".pdf" in str(result.exception)
    assert not (tmp_path / name).exists() and "History" not in result.stdout
