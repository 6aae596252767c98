"""Text read from a file reaches the terminal (and the HTML report) as text, never as control.

Every free-text field of a run record and of a ledger entry (every string the
validation lets through, and every key of the record's tables) is set to
`HOSTILE`: terminal escapes (CSI, OSC), BEL, CR, backspace, C1 controls,
bidi overrides, a byte-order mark, rich markup and an emoji code.  Every
command that prints runs or submissions then shows it escaped: no control
character reaches its output, rich markup stays literal text, and the HTML
report holds no raw markup of the file's.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import cli
from pipeline.core import text
from pipeline.core.errors import BadInputError
from pipeline.store import ledger, record
from tests import runfactory as rf

HOSTILE = (
    "\x1b[2J\x1b[H"  # CSI: clear the screen, cursor home
    "\x1b]0;pwned\x07"  # OSC: set the window title, ended by BEL
    "\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\"  # OSC 8 hyperlink
    "\x9b31m"  # C1 CSI
    "bad\rgood\x08\x08"  # carriage return, backspace
    "\u202eevil\u202c\u2066x\u2069\ufeff\u200b"  # bidi overrides and isolates, BOM, zero width space
    "[red]RED[/red][/][bold]B"  # rich markup, one tag unbalanced (rich raises MarkupError on it)
    ":smile:<script>alert(1)</script>"  # an emoji code, HTML
)
# What must never reach the output raw: every C0 control but newline, DEL, C1, bidi controls, zero-width marks.
FORBIDDEN = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, kind) of every string value ("value") and every key of a table ("key") in JSON data."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield (*path, k), "key"
            yield from _leaves(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _leaves(v, (*path, i))
    elif isinstance(data, str):
        yield path, "value"


def _set(data: Any, path: tuple[Any, ...], kind: str, tag: str) -> Any:
    out = copy.deepcopy(data)
    node = out
    for p in path[:-1]:
        node = node[p]
    if kind == "value":
        node[path[-1]] = HOSTILE + tag + node[path[-1]]
    else:
        node[HOSTILE + tag + str(path[-1])] = node.pop(path[-1])
    return out


def hostile_everywhere(
    data: dict[str, Any], kept: Callable[[dict[str, Any]], int], tag: str = ""
) -> tuple[dict[str, Any], int]:
    """`data` with `HOSTILE` in every string and key that the reader keeps; and how many it keeps.

    `tag` follows HOSTILE, so two records' values differ (compare shows only what differs).
    `kept(data)` counts the HOSTILE texts the reader keeps of `data` (-1: it refuses the data), so a change
    it refuses, or drops (an unknown key renamed from a field's name), is not made.
    """
    taken = 0
    leaves = list(_leaves(data))  # values first, then keys deepest first: a renamed key moves no path still to do
    ordered = [x for x in leaves if x[1] == "value"] + sorted(
        (x for x in leaves if x[1] == "key"), key=lambda x: -len(x[0])
    )
    for path, kind in ordered:
        changed = _set(data, path, kind, tag)
        if kept(changed) > taken:
            data, taken = changed, kept(changed)
    return data, taken


_SHOWN = json.dumps(HOSTILE)[1:-1]


def _kept_by_record(data: dict[str, Any]) -> int:
    try:
        return json.dumps(record.from_json(copy.deepcopy(data)).to_json()).count(_SHOWN)
    except BadInputError:
        return -1


def _kept_by_ledger(data: dict[str, Any]) -> int:
    try:
        entry = ledger._adapter().validate_python(copy.deepcopy(data))
    except ValueError:
        return -1
    return json.dumps(ledger._adapter().dump_python(entry, mode="json")).count(_SHOWN)


@pytest.fixture
def hostile_runs(tmp_path, monkeypatch):
    """Two runs whose records hold HOSTILE in every free-text field, and a ledger whose entries do too."""
    blend = rf.blend_of(("20261101-233000", 0.5, 0.95), ("20261102-233000", 0.5, 0.96), estimate=0.96)
    runs = [
        rf.make_run(tmp_path, "20261101-233000", seed=1, submission=True, leaderboard=0.95),
        rf.make_run(tmp_path, "20261102-233000", seed=2, submission=True, leaderboard=0.96, blend=blend),
    ]
    taken = []
    for i, run in enumerate(runs):
        data = rf.read(run)
        data["error"], data["variant"], data["sweep"] = "e", "v", "s"
        data["plan"] = {"recipe": "mlp", "rule": "rotation", "reason": "r"}
        data["leaderboard"].update(message="m", error=None, file="f", competition="c")
        data["submit_decision"] = {"submitted": True, "reason": "r", "reference": "x", "test": "mcnemar"}
        data, count = hostile_everywhere(data, _kept_by_record, tag=str(i))
        rf.write_raw(run, data)
        taken.append(count)
    entry = ledger.Entry(
        id="20261102-233000-abcdef12",
        competition="digit-recognizer",
        status="complete",
        sent_at="2026-11-02T23:40:00+00:00",
        sha256="a" * 64,
        file="submission.csv",
        run_id="20261102-233000",
        members=[ledger.Member("20261101-233000", 0.5), ledger.Member("20261102-233000", 0.5)],
        estimate=0.96,
        estimate_method="cv",
        message="tonight",
        ref=7,
        public_score=0.96,
        error="none",
    )
    data, count = hostile_everywhere(ledger._adapter().dump_python(entry, mode="json"), _kept_by_ledger)
    path = ledger.path(tmp_path)
    path.write_text(json.dumps(data) + "\n" + json.dumps({**data, "id": HOSTILE, "status": "error"}) + "\n")
    assert min(taken) > 20 and count > 10, (taken, count)  # the corpus reached the free-text fields
    rf.plain_terminal(monkeypatch)
    monkeypatch.setenv("COLUMNS", "3000")  # nothing folded, so markup would show whole
    monkeypatch.chdir(tmp_path)
    return tmp_path


COMMANDS = [
    ["history", "--no-plot"],
    ["runs"],
    ["compare"],
    ["compare", "20261101-233000", "20261102-233000"],
    ["compare", "--format", "markdown"],
    ["compare", "--format", "csv"],
    ["compare", "--format", "json"],
    ["compare", "--format", "markdown", "20261101-233000", "20261102-233000"],
    ["report"],
    ["report", "20261101-233000"],
    ["gc", "--keep", "0", "--dry-run"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_text_from_files_is_printed_escaped(hostile_runs, args):
    r = rf.invoke(cli, *args)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 0, r.output[-2000:]
    raw = FORBIDDEN.findall(r.output)
    assert not raw, (sorted(set(raw)), r.output[:3000])
    assert "RED" in r.output or args[0] in ("runs", "gc", "report")  # shown (runs and gc: ids; report: a path)
    assert r.output.count("RED") == r.output.count("[red]RED[/red]"), r.output  # markup stays text
    assert ":smile:" in r.output or "RED" not in r.output  # no emoji made of it


def test_the_html_report_escapes_every_field(hostile_runs):
    assert rf.invoke(cli, "report", "20261102-233000").exit_code == 0
    page = (hostile_runs / "runs" / "20261102-233000" / "report.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page
    assert not FORBIDDEN.findall(page)


def test_printable_escapes_every_kind_of_control():
    shown = text.printable(HOSTILE)
    assert not FORBIDDEN.findall(shown)
    assert shown.startswith("\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07") and "\\u202eevil" in shown
    assert text.printable("plain text, ünïcødé, 数字 and emoji 🙂") == "plain text, ünïcødé, 数字 and emoji 🙂"
    assert text.one_line(HOSTILE) == text.printable(HOSTILE)


def test_a_line_to_the_log_is_escaped(tmp_path, capsys):
    from pipeline.core import progress

    reporter = progress.setup(verbose=True, log_file=str(tmp_path / "log"), live=False)
    reporter.info(f"kaggle says {HOSTILE}")
    reporter.warn(f"a message {HOSTILE}")
    for shown in (capsys.readouterr().err, Path(tmp_path / "log").read_text()):
        assert "kaggle says" in shown and "a message" in shown
        assert not FORBIDDEN.findall(shown), shown


def test_a_notification_shows_the_records_text_as_text(hostile_runs):
    from pipeline.nightly import notify

    run = hostile_runs / "runs" / "20261102-233000"
    outcome = notify.Outcome("run", 1, f"digits: {HOSTILE}", run_dir=run, record=record.read(run))
    title, body = notify.message(outcome)
    assert "[red]RED" in body and "gate: submitted: " in body
    assert not FORBIDDEN.findall(title + body), body


def _submittable(tmp_path: Path) -> Path:
    import numpy as np

    from pipeline.core import atomic_files
    from tests.helpers import write_competition

    write_competition(tmp_path / "data", n_test=280)
    run = rf.make_run(tmp_path, "20261101-233000", submission=True)
    atomic_files.write_npy(run / "test_proba.npy", np.full((280, 10), 0.1, dtype=np.float32))
    report = rf.read(run)
    report["config"]["data"]["dir"] = str(tmp_path / "data")
    rf.write_raw(run, report)
    return run


@pytest.mark.parametrize("fault", ["scoring error", "refused", "described elsewhere"])
def test_kaggles_text_is_printed_escaped_by_submit_and_history(tmp_path, monkeypatch, fake_kaggle, fault):
    _submittable(tmp_path)
    rf.plain_terminal(monkeypatch)
    monkeypatch.chdir(tmp_path)
    if fault == "scoring error":
        fake_kaggle.submission_error = HOSTILE
    elif fault == "refused":
        fake_kaggle.fail("CreateSubmission", 400, message=HOSTILE, times=None)
    else:
        fake_kaggle.add_submission(b"ImageId,Label\n1,0\n", HOSTILE)
    r = rf.invoke(cli, "submit", "latest", "-m", HOSTILE, "--wait", "5")
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == (0 if fault == "described elsewhere" else 3), r.output
    assert not FORBIDDEN.findall(r.output), r.output
    if fault == "scoring error":
        assert "[red]RED" in r.output, r.output  # Kaggle's text reached the output, as text
    shown = rf.invoke(cli, "history", "--no-plot")
    assert shown.exit_code == 0 and not FORBIDDEN.findall(shown.output), shown.output
