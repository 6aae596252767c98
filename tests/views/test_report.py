"""digits report: the HTML page of one run, checked as text, as pixels of its plots, and in headless Chromium."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import view_commands
from pipeline.core.errors import BadInputError
from pipeline.store import record
from pipeline.views import plots, report
from pipeline.views import report_page as page_mod
from tests import runfactory as rf

T0 = dt.datetime(2026, 11, 20, 23, 30, 0)
PLOTS = ("fold-accuracy", "learning-curves", "confusion-matrix", "per-class-accuracy", "misclassified")
DATA_URI = re.compile(r'<img id="([\w-]+)"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def invoke(*args):
    return CliRunner().invoke(view_commands.report, [str(a) for a in args])


def images(page: str) -> dict[str, bytes]:
    return {name: base64.b64decode(data) for name, data in DATA_URI.findall(page)}


@pytest.fixture(scope="module")
def complete(tmp_path_factory) -> tuple[Path, Path, str]:
    """A finished run with ~170 mistakes, its page written by the CLI."""
    out = tmp_path_factory.mktemp("complete")
    run = rf.make_run(out, T0, n_rows=1700, accuracy=0.9, leaderboard=0.91234, submission=True, epochs=12)
    result = invoke("--output-dir", out, run.name)
    assert result.exit_code == 0, result.output
    page = run / "report.html"
    return out, run, page.read_text()


def test_page_embeds_every_plot_and_saves_them_beside_it(complete):
    out, run, page = complete
    found = images(page)
    assert set(found) == set(PLOTS)
    for name, png in found.items():
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert (run / f"report-{name}.png").read_bytes() == png
    assert "<script" not in page and "http://" not in page and "https://" not in page  # self-contained


def test_page_holds_the_numbers(complete):
    out, run, page = complete
    r = rf.read(run)
    assert f"{100 * r['oof_accuracy']:.3f} %" in page
    assert "0.91234" in page
    fold_table = page[page.index('<table id="folds"') :]
    fold_table = fold_table[: fold_table.index("</table>")]
    assert fold_table.count("<tr>") == 1 + 5
    for f in r["folds"]:
        assert f"{100 * f['val_accuracy']:.2f} %" in fold_table
    per_class = page[page.index('id="per-class-table"') :]
    assert per_class[: per_class.index("</table>")].count("<tr>") == 11
    assert "train.epochs" in page and "digit-recognizer" in page


def test_misclassified_grid_shows_at_most_100_most_confident_first(complete):
    out, run, page = complete
    with np.load(run / "misclassified.npz") as z:
        total = len(z["true"])
    assert total > 100
    assert f"100 of {total:,} misclassified" in page and "most confident mistakes first" in page
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td><td>(\d)</td><td>(\d)</td><td>([\d.]+)</td></tr>", page)
    assert len(rows) == 100
    conf = [float(c) for *_, c in rows]
    assert conf == sorted(conf, reverse=True)
    with np.load(run / "oof.npz") as z:
        labels = z["labels"]
    for _, index, true, pred, _ in rows[:10]:
        assert labels[int(index)] == int(true) and true != pred


def test_interrupted_run_without_misclassified_degrades_with_notes(tmp_path):
    run = rf.make_run(tmp_path, T0, folds_done=2, misclassified=False)
    target = report.build_report(tmp_path, run.name)
    page = target.read_text()
    assert "This run is interrupted: 2 of 5 folds finished" in page
    assert "misclassified.npz is not in the run folder" in page
    assert set(images(page)) == set(PLOTS) - {"misclassified"}
    assert page[page.index('<table id="folds"') :].split("</table>")[0].count("<tr>") == 3


def test_old_report_without_confusion_matrix_is_recomputed_from_oof(tmp_path):
    run = rf.make_run(tmp_path, T0, schema=0)
    raw = rf.read(run)
    expected = raw.pop("confusion_matrix")
    raw.pop("per_class_accuracy")
    for f in raw["folds"]:
        f.pop("history")
    rf.write_raw(run, raw)
    rec = record.read(run)
    cm, note = report.confusion_matrix(run, rec)
    assert cm.tolist() == expected and "recomputed from oof.npz" in note
    html = report.make_page(run, rec).html
    assert "recomputed from oof.npz" in html and "No per-epoch history for fold(s) 0, 1, 2, 3, 4" in html
    assert {"confusion-matrix", "per-class-accuracy", "fold-accuracy"} <= set(images(html))
    assert "learning-curves" not in images(html)


def test_run_that_failed_before_any_fold(tmp_path):
    run = rf.make_run(tmp_path, T0, folds_done=0, status="failed", oof=False, misclassified=False)
    raw = rf.read(run)
    raw.pop("confusion_matrix")
    rf.write_raw(run, raw)
    page = report.build_report(tmp_path, "latest").read_text()
    assert "This run is failed: 0 of 5 folds finished" in page
    assert "No fold finished" in page and "No confusion matrix" in page
    assert images(page) == {}


def test_out_option_and_errors(tmp_path):
    run = rf.make_run(tmp_path, T0)
    target = tmp_path / "pages" / "night.html"
    result = invoke("--output-dir", tmp_path, "--out", target)
    assert result.exit_code == 0, result.output
    assert target.is_file() and (tmp_path / "pages" / "night-confusion-matrix.png").is_file()
    assert str(target) in result.stdout
    rf.corrupt_report(run)
    bad = invoke("--output-dir", tmp_path, run.name)
    assert bad.exit_code == 1 and isinstance(bad.exception, BadInputError) and "corrupt" in str(bad.exception)
    missing = invoke("--output-dir", tmp_path, "19990101")
    assert isinstance(missing.exception, BadInputError)


@pytest.mark.parametrize("name", ["night.pdf", "night.png", "night.txt"])
def test_out_with_a_suffix_of_another_format_is_a_usage_error_naming_the_option(tmp_path, name):
    """The page is HTML: a name that says otherwise (h.pdf holding HTML) is refused before anything is written."""
    from pipeline.core.errors import UsageError

    rf.make_run(tmp_path, T0)
    result = invoke("--output-dir", tmp_path, "--out", tmp_path / name)
    assert isinstance(result.exception, UsageError) and "option --out" in str(result.exception)
    assert not list(tmp_path.glob("night*"))
    for fine in ("night.HTML", "night.htm", "night"):  # no suffix: a device such as /dev/stdout, or a bare name
        assert invoke("--output-dir", tmp_path, "--out", tmp_path / fine).exit_code == 0


def test_corrupt_misclassified_npz_is_a_note(tmp_path):
    run = rf.make_run(tmp_path, T0)
    (run / "misclassified.npz").write_bytes(b"PK\x03\x04 not really a zip")
    page = report.build_report(tmp_path, run.name).read_text()
    assert "misclassified.npz is unreadable" in page


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)])


def _decode(png: bytes) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(png), format="png")[..., :3]


def test_each_fold_bar_reaches_that_folds_accuracy(complete):
    out, run, page = complete
    rec = record.read(run)
    img = _decode(images(page)["fold-accuracy"])
    # the same figure, laid out as on the page, tells where data coordinates land in the image
    fig = plots.fold_accuracy_figure(rec.folds, rec.fold_accuracy_mean, rec.fold_accuracy_std, rec.oof_accuracy)
    assert _decode(plots.png(fig)).shape == img.shape
    ax, height = fig.axes[0], img.shape[0]
    for k, fold in enumerate(rec.folds):
        x, top = ax.transData.transform((k, 100 * fold.val_accuracy))
        _, bottom = ax.transData.transform((k, ax.get_ylim()[0]))
        column = np.isclose(img[:, int(round(x))], _rgb(plots.FOLD_COLORS[k]), atol=0.03).all(axis=1)
        painted = np.flatnonzero(column)
        assert abs(painted.min() - (height - top)) <= 2, f"fold {k}: bar top off its accuracy"
        assert column.sum() >= 0.8 * (top - bottom)  # solid down to the axis (lines cross it)


def test_each_misclassified_tile_shows_that_digit(complete):
    out, run, page = complete
    mistakes, _ = report.misclassified(run)
    shown = min(len(mistakes), page_mod.MAX_MISCLASSIFIED)
    ink = 1 - _decode(images(page)["misclassified"]).mean(axis=2)  # the grid is dark ink on white
    fig = plots.misclassified_figure(mistakes.images[:shown], mistakes.true[:shown], mistakes.pred[:shown])
    plots.png(fig)
    ax, height = fig.axes[0], ink.shape[0]

    def tile(i: int) -> np.ndarray:
        x0, y0 = plots.tile_origin(i)
        points = ax.transData.transform([(x0 + c, y0 + r) for r in range(28) for c in range(28)])
        return ink[(height - points[:, 1]).round().astype(int), points[:, 0].round().astype(int)]

    def likeness(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel().astype(float))[0, 1])

    for i in (0, 1, 9, 10, 57, shown - 1):
        drawn = tile(i)
        own = likeness(drawn, mistakes.images[i])
        assert own > 0.97, f"tile {i}"
        others = [likeness(drawn, mistakes.images[j]) for j in range(shown) if mistakes.true[j] != mistakes.true[i]]
        assert max(others) < own - 0.05, f"tile {i} looks as much like another digit"


def test_config_and_leaderboard_text_is_escaped_never_markup(tmp_path):
    evil = "<script>alert('x')</script> & <b>bold</b>"
    run = rf.make_run(
        tmp_path,
        T0,
        config_overrides={"data": {"dir": f"data/{evil}"}},
        leaderboard={"status": "error", "error": f"refused {evil}", "message": f"night {evil}"},
    )
    page = report.build_report(tmp_path, run.name).read_text()
    assert "<script" not in page and "<b>bold</b>" not in page
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
    assert f"data/{escaped}" in page  # the config table
    assert f"error: refused {escaped}" in page and f"message: night {escaped}" in page  # the leaderboard


def test_summary_shows_the_blend_members_and_weights(tmp_path):
    a = rf.make_run(tmp_path, T0, seed=1)
    b_id = (T0 + dt.timedelta(days=1)).strftime("%Y%m%d-%H%M%S")
    blend = rf.blend_of((a, 0.25, 0.951), (b_id, 0.75, 0.962), estimate=0.9734)
    rf.make_run(tmp_path, b_id, seed=2, submission=True, blend=blend)
    page = report.build_report(tmp_path, b_id).read_text()
    summary = page[page.index('<section id="summary">') : page.index("</section>")]
    assert "<b>97.340 %</b> estimated on rows the selection never saw" in summary
    assert "in-sample 97.440 %" in summary and "2 of 2 compatible run(s)" in summary
    assert f"best single run {b_id}: 96.200 %" in summary
    assert "<b>mlp</b>, float32" in summary and "named by --model or the config" in summary
    rows = re.findall(r"<tr><td>([\d-]+)</td><td>([\d.]+)</td><td>([\d.]+) %</td></tr>", summary)
    assert rows == [(a.name, "0.25", "95.100"), (b_id, "0.75", "96.200")]
    alone = report.build_report(tmp_path, a.name).read_text()
    assert 'id="blend"' not in alone and "none: the submission, if any, is this run alone" in alone


def test_report_with_wrong_types_is_one_clear_error(tmp_path):
    run = rf.make_run(tmp_path, T0)
    rf.write_raw(run, {"run_id": 5, "folds": "seven"})
    with pytest.raises(BadInputError) as info:
        report.build_report(tmp_path, run.name)
    message = str(info.value)
    assert message.startswith(f"{run / 'report.json'}: field run_id") and "\n" not in message
    assert not (run / "report.html").exists()


# --------------------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless chromium not installed (apt-get install -y chromium)"
)


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            "--window-size=1200,3000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_chromium
def test_chromium_renders_the_page(complete, tmp_path):
    out, run, _ = complete
    url = (run / "report.html").resolve().as_uri()
    dom = chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for name in PLOTS:
        assert f'id="{name}"' in html
    assert '<table id="folds"' in html and "Misclassified digits" in html and "Learning curves" in html
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, f"--screenshot={shot}", url)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[:2] == (3000, 1200)
    # the plots are painted, not just their frames: every fold's bar colour fills a bar's worth of pixels
    # (text and rules are grey or black; only the embedded PNGs use these colours)
    for k, color in enumerate(plots.FOLD_COLORS[:5]):
        painted = np.isclose(img[..., :3], _rgb(color), atol=0.04).all(axis=2)
        assert painted.sum() > 1_000, f"fold {k}'s colour is missing from the screenshot"
        rows = np.flatnonzero(painted.any(axis=1))
        assert rows.min() < 1_500, f"fold {k}'s bar is not near the top of the page, where the summary is"
