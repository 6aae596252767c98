"""The ledger of submissions: append-only, revisions by id, damaged lines reported, what gc must keep."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from pipeline.core.errors import BadInputError
from pipeline.store import ledger


def _entry(id_: str, **kw) -> ledger.Entry:
    return ledger.Entry(id=id_, competition="digit-recognizer", status=kw.pop("status", "pending"), **kw)


def test_an_entry_is_appended_and_its_last_state_wins(tmp_path):
    sending = ledger.append(tmp_path, _entry("a", status="sending", members=[ledger.Member("r1", 0.6)]))
    other = ledger.append(tmp_path, _entry("b", ref=2))
    scored = ledger.append(
        tmp_path, ledger.Entry(**{**sending.__dict__, "status": "complete", "ref": 1, "public_score": 0.99})
    )
    assert ledger.read(tmp_path) == [scored, other]  # in the order first written
    lines = (tmp_path / "submissions" / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["sending", "pending", "complete"]
    assert scored.updated_at is not None


def test_a_line_cut_short_is_one_warning_and_the_next_append_starts_a_new_line(tmp_path):
    first = ledger.append(tmp_path, _entry("a", ref=1))
    path = tmp_path / "submissions" / "ledger.jsonl"
    with open(path, "ab") as f:
        f.write(b'{"id": "b", "competition": "digit-reco')
    warnings: list[str] = []
    assert ledger.read(tmp_path, warn=warnings.append) == [first]
    assert warnings == [f"{path}: line 2 is damaged (cut short (a crash while it was written?)); it is left out"]
    second = ledger.append(tmp_path, _entry("c", ref=3))
    assert ledger.read(tmp_path, warn=warnings.append) == [first, second]
    assert path.read_bytes().count(b"\n") == 3


def test_a_line_of_the_wrong_shape_names_the_field(tmp_path):
    path = tmp_path / "submissions" / "ledger.jsonl"
    path.parent.mkdir()
    path.write_bytes(b'{"id": "a", "competition": "d", "status": "won"}\n["not", "an", "entry"]\n\xff\n')
    warnings: list[str] = []
    assert ledger.read(tmp_path, warn=warnings.append) == []
    assert len(warnings) == 3 and "line 1 is damaged (field status" in warnings[0]
    assert "line 2 is damaged" in warnings[1] and "line 3 is damaged (not UTF-8)" in warnings[2]


def test_a_fifo_in_place_of_the_ledger_is_refused_not_waited_on(tmp_path):
    path = tmp_path / "submissions" / "ledger.jsonl"
    path.parent.mkdir()
    os.mkfifo(path)
    result: list[BaseException] = []
    reader = threading.Thread(target=lambda: result.append(pytest.raises(BadInputError, ledger.read, tmp_path).value))
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a FIFO ledger hung"
    assert "not a regular file" in str(result[0])


def test_the_predictions_behind_an_estimate_are_kept_and_read_back(tmp_path):
    labels = np.arange(20) % 10
    predictions = labels.copy()
    predictions[3] = 0
    name = ledger.save_predictions(tmp_path, labels, predictions)
    entry = _entry("a", predictions=name)
    got_labels, got = ledger.load_predictions(tmp_path, entry)
    assert np.array_equal(got_labels, labels) and np.array_equal(got, predictions)
    for unsafe in ("../../etc/passwd", ".hidden.npz", "missing.npz"):
        assert ledger.load_predictions(tmp_path, _entry("b", predictions=unsafe)) is None


def test_two_blends_that_wrote_the_same_file_keep_their_own_predictions(tmp_path):
    """Two blends can write identical submission files yet differ in the rows behind their estimates."""
    labels = np.arange(50) % 10
    first, second = labels.copy(), labels.copy()
    first[:3] = 0
    second[10:12] = 1
    names = [ledger.save_predictions(tmp_path, labels, p) for p in (first, second)]
    assert names[0] != names[1]
    for name, expected in zip(names, (first, second)):
        assert np.array_equal(ledger.load_predictions(tmp_path, _entry("a", predictions=name))[1], expected)


def test_gc_keeps_what_every_submission_blends():
    entries = [
        _entry(
            "a", status="complete", ref=1, run_id="r3", members=[ledger.Member("r1", 0.5), ledger.Member("r2", 0.5)]
        ),
        _entry("b", status="pending", ref=2, members=[ledger.Member("r4", 1.0)]),
        _entry("c", status="sending", members=[ledger.Member("r5", 1.0)]),
        _entry("d", status="error", ref=4, members=[ledger.Member("r6", 1.0)]),
    ]
    assert ledger.protected_runs(entries) == {"r1", "r2", "r3", "r4", "r5", "r6"}
