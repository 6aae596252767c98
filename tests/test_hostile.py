"""Hostile inputs found by a test pass: each gives one line and its exit code, and destroys nothing."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pipeline import runs
from pipeline.cli import cli
from tests.helpers import write_competition
from tests.runfactory import make_run


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("digits: ")]
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    return lines[0]


def test_a_run_id_read_back_is_validated_before_it_names_a_file(tmp_path, monkeypatch):
    write_competition(tmp_path / "data")
    run = make_run(tmp_path, "20261101-233000")
    report = json.loads((run / runs.REPORT).read_text())
    report["run_id"] = "../../pwned"
    report["config"]["data"]["dir"] = str(tmp_path / "data")
    (run / runs.REPORT).write_text(json.dumps(report))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["predict", "20261101-233000"])
    assert r.exit_code == 1 and "run_id" in _one_line(r)
    assert not list(tmp_path.parent.rglob("pwned*")) and not list(tmp_path.rglob("pwned*"))
