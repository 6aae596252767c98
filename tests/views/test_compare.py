"""digits compare on synthetic run folders (tests/runfactory.py): the pair test, the four formats, bad reports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import cli, view_commands
from pipeline.core import config as cfg
from pipeline.core.errors import BadInputError
from tests import runfactory as rf
from tests.helpers import ROOT

T0 = dt.datetime(2026, 11, 20, 23, 30, 0)
N = 2000  # rows: one row is 0.05 percentage points


invoke = rf.invoke


@pytest.fixture(autouse=True)
def plain_console(monkeypatch):
    rf.plain_terminal(monkeypatch)


def wrong_at(rows: range | list[int], n: int = N) -> np.ndarray:
    return rf.wrong_at(rows, n)


def pair(out: Path, wrong_a, wrong_b, **b_kwargs) -> tuple[Path, Path]:
    a = rf.make_run(out, T0, n_rows=N, correct=wrong_at(wrong_a), seed=1)
    b = rf.make_run(out, T0 + dt.timedelta(days=1), n_rows=N, correct=wrong_at(wrong_b), seed=2, **b_kwargs)
    return a, b


def compare_json(out: Path, *refs: str) -> dict:
    result = invoke(view_commands.compare, "--output-dir", out, "--format", "json", *refs)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- compare


def test_two_runs_with_a_real_improvement_are_significant(tmp_path):
    a, b = pair(tmp_path, range(0, 80), range(80, 100))  # A: 80 wrong, B: 20 wrong, disjoint
    data = compare_json(tmp_path, a.name, b.name)
    p = data["pair"]
    assert (p["a"], p["b"]) == (a.name, b.name)
    assert p["same_data"] is True
    m = p["mcnemar"]
    assert (m["a_only_correct"], m["b_only_correct"], m["rows"]) == (20, 80, N)
    assert m["method"] == "chi2" and m["significant"] and m["better"] == "b" and m["p_value"] < 1e-6
    assert p["oof"]["delta"] == pytest.approx(60 / N)
    folds = {f["index"]: f for f in p["folds"]}
    ra, rb = rf.read(a), rf.read(b)
    for fa, fb in zip(ra["folds"], rb["folds"]):
        assert folds[fa["index"]]["delta"] == pytest.approx(fb["val_accuracy"] - fa["val_accuracy"])

    table = invoke(view_commands.compare, "--output-dir", tmp_path, a.name, b.name)
    assert table.exit_code == 0
    assert "SIGNIFICANT" in table.stdout and f"{b.name} is better" in table.stdout
    assert "fold 0" in table.stdout and "+3.000" in table.stdout  # OOF delta in percentage points


def test_a_one_row_change_is_not_mistaken_for_progress(tmp_path):
    a, b = pair(tmp_path, range(0, 21), range(21, 41))  # 21 vs 20 wrong: +0.05 pp
    m = compare_json(tmp_path, a.name, b.name)["pair"]["mcnemar"]
    assert (m["a_only_correct"], m["b_only_correct"]) == (20, 21)
    assert not m["significant"] and m["better"] is None and m["p_value"] > 0.5
    out = invoke(view_commands.compare, "--output-dir", tmp_path, a.name, b.name).stdout
    assert "not significant" in out and "may be noise" in out and "+0.050" in out


def test_runs_on_different_data_are_not_tested(tmp_path):
    a, b = pair(tmp_path, range(0, 80), range(80, 100), train_sha="beef" + "1" * 60)
    data = compare_json(tmp_path, a.name, b.name)
    p = data["pair"]
    assert p["same_data"] is False and p["mcnemar"] is None
    assert any("train.csv differs" in n for n in p["notes"])
    assert data["differences"]["data"]["train.csv sha256"] == {a.name: rf.TRAIN_SHA, b.name: "beef" + "1" * 60}
    out = invoke(view_commands.compare, "--output-dir", tmp_path, a.name, b.name).stdout
    assert "train.csv differs" in out and "SIGNIFICANT" not in out


def test_interrupted_run_is_tested_on_the_rows_both_predicted(tmp_path):
    a = rf.make_run(tmp_path, T0, n_rows=N, correct=wrong_at(range(0, 50)), seed=1)
    b = rf.make_run(
        tmp_path, T0 + dt.timedelta(days=1), n_rows=N, correct=wrong_at(range(50, 60)), folds_done=2, seed=2
    )
    p = compare_json(tmp_path, a.name, b.name)["pair"]
    assert p["mcnemar"]["rows"] == int((np.arange(N) % 5 < 2).sum())
    assert any("rows have out-of-fold predictions in both runs" in n for n in p["notes"])
    assert [f["delta"] is None for f in p["folds"]] == [False, False, True, True, True]


def test_missing_oof_says_significance_not_tested(tmp_path):
    a, b = pair(tmp_path, range(0, 80), range(80, 100), oof=False)
    p = compare_json(tmp_path, a.name, b.name)["pair"]
    assert p["mcnemar"] is None and any("oof.npz: missing" in n for n in p["notes"])


DEFAULTS = cfg.to_dict(rf.RECORDED)  # a record holds the resolved config


def test_config_differences_are_listed_exactly(tmp_path):
    a = rf.make_run(tmp_path, T0, seed=1)
    b = rf.make_run(
        tmp_path,
        T0 + dt.timedelta(days=1),
        seed=2,
        config_overrides={"train": {"epochs": 30, "learning_rate": 0.001}, "model": {"hidden": [512, 256]}},
    )
    data = compare_json(tmp_path)
    config = data["differences"]["config"]
    assert config == {
        "model.hidden": {a.name: DEFAULTS["model"]["hidden"], b.name: [512, 256]},
        "train.epochs": {a.name: DEFAULTS["train"]["epochs"], b.name: 30},
        "train.learning_rate": {a.name: DEFAULTS["train"]["learning_rate"], b.name: 0.001},
    }
    out = invoke(view_commands.compare, "--output-dir", tmp_path).stdout
    assert "What differs" in out
    for key, va, vb in (
        ("model.hidden", "[" + ",".join(map(str, DEFAULTS["model"]["hidden"])) + "]", "[512,256]"),
        ("train.epochs", str(DEFAULTS["train"]["epochs"]), "30"),
        ("train.learning_rate", str(DEFAULTS["train"]["learning_rate"]), "0.001"),
    ):
        line = next(line for line in out.splitlines() if key in line)
        assert va in line and vb in line
    assert "train.seed" not in out


def test_default_is_the_last_ten_runs_and_the_table_fits_120_columns(tmp_path):
    made = rf.nightly(tmp_path, 12)
    rf.make_run(tmp_path, T0 + dt.timedelta(days=30), seed=99, config_overrides={"train": {"epochs": 25}})
    result = invoke(view_commands.compare, "--output-dir", tmp_path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    ids = [p.name for p in made][3:] + ["20261220-233000"]
    for i in ids:
        assert i in out
    assert made[2].name not in out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert "…" not in out  # nothing truncated
    header = next(line for line in lines if line.startswith("run "))
    for col in ("date", "status", "F0", "F4", "mean ± std", "OOF", "LB", "time"):
        assert col in header
    row = next(line for line in lines if line.startswith(made[-1].name))
    r = rf.read(made[-1])
    assert f"{100 * r['oof_accuracy']:.3f}" in row and f"{100 * r['leaderboard']['public_score']:.3f}" in row
    assert f"{100 * r['folds'][3]['val_accuracy']:.2f}" in row and "2026-11-12 23:30" in row
    assert "McNemar" in out  # the hint to name two runs
    json_ids = [r["run_id"] for r in compare_json(tmp_path)["runs"]]
    assert json_ids == ids
    assert len(compare_json_last(tmp_path, 3)) == 3


def compare_json_last(out: Path, n: int) -> list:
    result = invoke(view_commands.compare, "--output-dir", out, "--format", "json", "--last", n)
    return json.loads(result.stdout)["runs"]


def test_ten_folds_still_fit(tmp_path):
    rf.make_run(tmp_path, T0, folds=10, n_rows=400)
    rf.make_run(tmp_path, T0 + dt.timedelta(days=1), folds=10, n_rows=400, seed=3)
    out = invoke(view_commands.compare, "--output-dir", tmp_path).stdout
    assert max(len(line) for line in out.splitlines()) <= 120
    assert "folds" in out and "fold 9" in out  # merged column in the runs table, and the pair table


def test_csv_is_parseable(tmp_path):
    made = rf.nightly(tmp_path, 3)
    rf.make_run(tmp_path, T0, folds_done=2, seed=5, config_overrides={"train": {"epochs": 12}})
    result = invoke(view_commands.compare, "--output-dir", tmp_path, "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["run_id"] for r in rows] == [p.name for p in made] + [T0.strftime("%Y%m%d-%H%M%S")]
    first = rf.read(made[0])
    assert float(rows[0]["oof_accuracy"]) == pytest.approx(first["oof_accuracy"])
    assert float(rows[0]["fold_0"]) == pytest.approx(first["folds"][0]["val_accuracy"])
    assert float(rows[0]["leaderboard_score"]) == pytest.approx(first["leaderboard"]["public_score"])
    assert rows[-1]["status"] == "interrupted" and rows[-1]["fold_4"] == "" and rows[-1]["folds_done"] == "2"
    assert rows[-1]["train.epochs"] == "12" and rows[0]["train.epochs"] == "40"


def test_markdown_tables_are_well_formed(tmp_path):
    a, b = pair(tmp_path, range(0, 30), range(30, 40), config_overrides={"model": {"dropout": 0.3}})
    result = invoke(view_commands.compare, "--output-dir", tmp_path, "--format", "markdown", a.name, b.name)
    assert result.exit_code == 0
    md = result.stdout
    blocks, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    assert len(blocks) == 3  # runs, what differs, the pair
    for block in blocks:
        counts = {line.replace("\\|", "").count("|") for line in block}
        assert len(counts) == 1, block
    assert "`model.dropout`" in md and "McNemar" in md


def test_blend_column_in_every_format(tmp_path):
    made = rf.nightly(tmp_path, 2)
    own = rf.make_run(tmp_path, T0 + dt.timedelta(days=20), seed=7, submission=True)
    blended = rf.make_run(
        tmp_path,
        T0 + dt.timedelta(days=21),
        seed=8,
        submission=True,
        blend=rf.blend_of((own, 0.6, 0.97), (made[-1], 0.4, 0.96), estimate=0.98765),
    )
    own_oof = rf.read(own)["oof_accuracy"]
    rows = {r["run_id"]: r for r in compare_json(tmp_path)["runs"]}
    assert (rows[blended.name]["blend_estimate"], rows[blended.name]["blend_runs"]) == (0.98765, 2)
    assert (rows[own.name]["blend_estimate"], rows[own.name]["blend_runs"]) == (own_oof, 1)
    assert (rows[made[0].name]["blend_estimate"], rows[made[0].name]["blend_runs"]) == (None, None)

    csv_rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO(invoke_ok(tmp_path, "--format", "csv")))}
    assert (csv_rows[blended.name]["blend_estimate"], csv_rows[blended.name]["blend_runs"]) == ("0.98765", "2")
    assert (csv_rows[made[0].name]["blend_estimate"], csv_rows[made[0].name]["blend_runs"]) == ("", "")

    md = invoke_ok(tmp_path, "--format", "markdown").splitlines()
    header = [c.strip() for c in md[0].strip("|").split("|")]
    at = header.index("blend (runs)")
    assert header[at - 1] == "OOF" and header[at + 1] == "LB"
    by_run = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in md[2:6]}
    assert by_run[blended.name][at] == "98.765 (2)"
    assert by_run[own.name][at] == f"{100 * own_oof:.3f} (1)"
    assert by_run[made[0].name][at] == "—"

    table = invoke_ok(tmp_path)
    assert "98.765 (2)" in next(line for line in table.splitlines() if line.startswith(blended.name))
    assert "blend" in next(line for line in table.splitlines() if line.startswith("run "))
    assert max(len(line) for line in table.splitlines()) <= 120


def invoke_ok(out: Path, *args: str) -> str:
    result = invoke(view_commands.compare, "--output-dir", out, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_corrupt_and_missing_reports_cost_one_line_each(tmp_path):
    good = rf.nightly(tmp_path, 3)
    bad = rf.make_run(tmp_path, T0 + dt.timedelta(days=40), seed=7)
    rf.corrupt_report(bad)
    gone = rf.make_run(tmp_path, T0 + dt.timedelta(days=41), seed=8)
    rf.remove_report(gone)
    for command, args in (
        (view_commands.compare, []),
        (view_commands.runs, []),
        (view_commands.history, ["--no-plot"]),
        (view_commands.compare, ["--format", "json"]),
    ):
        result = invoke(command, "--output-dir", tmp_path, *args)
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(warnings) == 2, warnings
        assert any(bad.name in w and "corrupt" in w for w in warnings)
        assert any(gone.name in w and "missing" in w for w in warnings)
        for g in good:
            assert g.name in result.stdout
    data = json.loads(invoke(view_commands.compare, "--output-dir", tmp_path, "--format", "json").stdout)
    assert len(data["runs"]) == 3 and len(data["notes"]) == 2


def test_report_of_the_wrong_shape_is_a_note_not_a_crash(tmp_path):
    rf.make_run(tmp_path, T0)
    odd = rf.make_run(tmp_path, T0 + dt.timedelta(days=1), seed=1)
    rep = rf.read(odd)
    rep["folds"] = "five"
    rf.write_raw(odd, rep)
    result = invoke(view_commands.compare, "--output-dir", tmp_path)
    assert result.exit_code == 0 and odd.name in result.stderr and "field folds" in result.stderr


WRONG_TYPES = [
    pytest.param({"run_id": 5, "folds": "seven", "status": 3}, id="strings-for-lists"),
    pytest.param({"run_id": 5, "folds": 7}, id="number-for-folds"),
]


@pytest.mark.parametrize("wrong", WRONG_TYPES)
def test_report_with_wrong_types_is_one_warning_and_the_others_still_show(tmp_path, wrong):
    good = rf.nightly(tmp_path, 2)
    odd = rf.make_run(tmp_path, T0 + dt.timedelta(days=1), seed=1)
    rf.write_raw(odd, wrong)
    for command, args in (
        (view_commands.compare, []),
        (view_commands.compare, ["--format", "json"]),
        (view_commands.runs, []),
        (view_commands.history, ["--no-plot"]),
    ):
        result = invoke(command, "--output-dir", tmp_path, *args)
        assert result.exit_code == 0, result.output
        warnings = result.stderr.splitlines()
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith("warning: ") and f"{odd.name}/report.json" in warnings[0]
        assert "field run_id" in warnings[0] and "Traceback" not in result.stderr
        assert all(g.name in result.stdout for g in good)
        if "json" in args:
            data = json.loads(result.stdout)
            assert [r["run_id"] for r in data["runs"]] == [g.name for g in good] and len(data["notes"]) == 1
        else:
            assert not any(line.startswith(odd.name) for line in result.stdout.splitlines())


def test_no_readable_run_is_an_error(tmp_path):
    bad = rf.make_run(tmp_path, T0)
    rf.corrupt_report(bad)
    for command in (view_commands.compare, view_commands.runs, view_commands.history):
        result = invoke(command, "--output-dir", tmp_path)
        assert result.exit_code == 1 and isinstance(result.exception, BadInputError)
        assert bad.name in str(result.exception) and "corrupt" in str(result.exception)
        # through the digits group: that one reason is the one line, not a warning and a vaguer error
        shown = invoke(cli, command.name, "--output-dir", tmp_path)
        assert shown.exit_code == 1 and shown.stderr.splitlines() == [f"digits: {result.exception}"]
    empty = invoke(view_commands.compare, "--output-dir", tmp_path / "nothing")
    assert isinstance(empty.exception, BadInputError) and "no runs" in str(empty.exception)


def test_unknown_run_is_an_error(tmp_path):
    rf.make_run(tmp_path, T0)
    result = invoke(view_commands.compare, "--output-dir", tmp_path, "20991231")
    assert isinstance(result.exception, BadInputError) and "not found" in str(result.exception)


def test_schema0_report_shows_everywhere(tmp_path):
    old = rf.make_run(tmp_path, T0, schema=0, seed=3)
    raw = rf.read(old)
    assert not {"schema_version", "status", "leaderboard", "fold_accuracy_mean"} & set(raw)
    new = rf.make_run(tmp_path, T0 + dt.timedelta(days=1), seed=4, leaderboard=0.97)
    data = compare_json(tmp_path)
    row = data["runs"][0]
    assert row["run_id"] == old.name and row["status"] == "complete" and row["leaderboard_score"] is None
    assert row["fold_accuracy_mean"] == pytest.approx(np.mean([f["val_accuracy"] for f in raw["folds"]]))
    assert data["pair"]["mcnemar"] is not None  # its oof.npz pairs with the new run's
    for command, args in (
        (view_commands.compare, []),
        (view_commands.runs, []),
        (view_commands.history, ["--no-plot"]),
    ):
        result = invoke(command, "--output-dir", tmp_path, *args)
        assert result.exit_code == 0 and result.stderr == "", result.output
        line = next(line for line in result.stdout.splitlines() if line.startswith(old.name))
        assert "complete" in line and f"{100 * raw['oof_accuracy']:.3f}" in line
        assert new.name in result.stdout


# --------------------------------------------------------------------------- startup


def test_commands_import_neither_tensorflow_nor_kaggle_nor_matplotlib():
    code = (
        "import sys, pipeline.cli; from pipeline.views import compare, differences, history, plots, report, report_page, runset; "
        "from pipeline.core import console, mcnemar; from pipeline.store import gc; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'kaggle', 'matplotlib', 'scipy')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compare_shows_the_newest_readable_runs_past_any_number_of_unreadable_newer_folders(tmp_path):
    """300 empty run folders newer than every run (a crash loop, a script) hid them all: "none of the 10 could be read"."""
    made = rf.nightly(tmp_path, 12)
    for k in range(300):
        (tmp_path / "runs" / f"20270101-000000-{k + 2}").mkdir()
    result = invoke(view_commands.compare, "--output-dir", tmp_path, "--format", "json")
    assert result.exit_code == 0, result.output
    assert [r["run_id"] for r in json.loads(result.stdout)["runs"]] == [p.name for p in made[-10:]]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert 1 <= len(warnings) <= 10 and "more run(s) could not be read" in warnings[-1]
    two = invoke(view_commands.compare, "--output-dir", tmp_path, "--format", "json", "--last", "2")
    assert [r["run_id"] for r in json.loads(two.stdout)["runs"]] == [p.name for p in made[-2:]]


def _non_finite_timings(run: Path) -> None:
    """A record whose times are NaN and inf (a clock that jumped, a hand edit): JSON reads them, pydantic keeps them.

    (A NaN accuracy is another matter: no run writes one, and a record holding one is refused: tests/end_to_end/test_hostile_contents.py)"""
    data = rf.read(run)
    data["seconds"] = float("nan")
    data["stage_seconds"] = {"load": float("nan"), "train": float("inf")}
    for fold in data["folds"]:
        fold["seconds"], fold["samples_per_second"] = float("nan"), float("inf")
        fold["history"]["loss"][0] = float("nan")
    rf.write_raw(run, data)


def _strict_json(text: str) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_record_whose_timings_are_nan_is_shown_by_every_view(tmp_path):
    import pipeline

    runs = rf.nightly(tmp_path, 3)
    _non_finite_timings(runs[1])
    for args in (
        ["compare"],
        ["compare", "--format", "markdown"],
        ["compare", "--format", "csv"],
        ["compare", runs[0].name, runs[1].name],
        ["runs"],
        ["history"],
        ["report", runs[1].name],
    ):
        result = invoke(cli, *args, "--output-dir", tmp_path)
        assert result.exit_code == 0, (args, result.output, result.exception)
        assert "nan" not in result.stdout.lower().replace("nano", ""), (args, result.stdout)
    shown = invoke(cli, "compare", "--format", "json", "--output-dir", tmp_path)
    assert shown.exit_code == 0
    data = _strict_json(shown.stdout)
    assert [r["seconds"] for r in data["runs"]][1] is None
    assert len(pipeline.runs_frame(tmp_path)) == 3 and len(pipeline.folds_frame(tmp_path)) == 15
    assert len(pipeline.epochs_frame(tmp_path)) > 0
