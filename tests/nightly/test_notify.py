"""The notification of a command's end: its message, when it is wanted, the run it names, and sending it.

Sending goes to a real HTTP receiver on loopback (tests/notify_receiver.py) through Apprise's json:// form.
The end-to-end cases, through `digits` in a subprocess as cron runs it, are in tests/cli/test_notifying.py.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import pytest

from pipeline.core.errors import KAGGLE
from pipeline.nightly import notify
from pipeline.nightly.notify import Outcome
from pipeline.store import record
from pipeline.store.record import Leaderboard, SubmitDecision
from tests.runfactory import blend_of, make_run

apprise = pytest.importorskip("apprise", reason="Apprise is the notify extra: pip install -e '.[notify]'")


def _submitted_run(tmp_path):
    run_dir = make_run(tmp_path, "20261125-013000", submission=True)
    return run_dir, record.update(
        run_dir,
        blend=blend_of((run_dir, 1.0, 0.9961), estimate=0.99612),
        submit_decision=SubmitDecision(True, "no earlier submission was accepted by Kaggle"),
        leaderboard=Leaderboard(status="complete", public_score=0.9961, ref=7),
    )


def test_a_failure_says_the_command_the_exit_code_its_meaning_and_the_reason():
    line = "digits: Kaggle rejected the credentials (HTTP 401)"
    title, body = notify.message(Outcome("run", KAGGLE, line))
    assert title == "digits run: failed (exit 3, Kaggle)"
    assert "command: digits run" in body
    assert "exit code: 3, Kaggle (credentials, rules not accepted, daily limit, server error, unreachable)" in body
    assert f"reason: {line}" in body
    assert "run:" not in body  # no run was made


def test_a_submitted_night_says_its_run_recipe_estimate_gate_and_leaderboard_score(tmp_path):
    run_dir, rec = _submitted_run(tmp_path)
    outcome = Outcome("run", 0, None, run_dir, rec)
    assert outcome.submitted
    title, body = notify.message(outcome)
    assert title == "digits run: submitted, estimate 99.61%"
    assert "run: 20261125-013000, recipe mlp, complete" in body
    assert f"run folder: {run_dir.resolve()}" in body
    assert "estimate: 99.612%" in body
    assert "gate: submitted: no earlier submission was accepted by Kaggle" in body
    assert "leaderboard: 0.9961 (public score)" in body
    assert "reason:" not in body


def test_a_crash_is_called_a_bug():
    title, body = notify.message(Outcome("train", 1, "TypeError: boom", bug=True))
    assert title == "digits train: crashed (exit 1, a bug)"
    assert "a bug" in body and "reason: TypeError: boom" in body


@pytest.mark.parametrize(
    ("on", "failed", "submitted", "expected"),
    [
        (("failure",), True, False, True),
        (("failure",), False, False, False),
        (("failure",), False, True, False),
        (("submitted",), False, True, True),
        (("submitted",), False, False, False),
        (("submitted",), True, False, False),
        (("always",), False, False, True),
        (("always",), True, False, True),
        (("failure", "submitted"), False, True, True),
    ],
)
def test_on_chooses_which_ends_are_told(tmp_path, on, failed, submitted, expected):
    run_dir, rec = _submitted_run(tmp_path)
    if not submitted:
        rec.submit_decision = SubmitDecision(False, "not better")
    outcome = Outcome("run", KAGGLE if failed else 0, None, run_dir, rec)
    assert notify.wanted(on, outcome) is expected


def test_a_failed_upload_after_the_gate_said_submit_is_a_failure_not_a_submission(tmp_path):
    run_dir, rec = _submitted_run(tmp_path)
    assert not Outcome("run", KAGGLE, "digits: Kaggle: daily limit", run_dir, rec).submitted


def test_the_run_named_is_the_newest_whose_report_the_command_wrote(tmp_path):
    older = make_run(tmp_path, "20261123-013000")
    resumed = make_run(tmp_path, "20261124-013000")
    newest = make_run(tmp_path, "20261125-013000")
    long_ago = time.time() - 3600
    for run_dir in (older, resumed, newest):
        os.utime(run_dir / record.REPORT, (long_ago, long_ago))
    started = time.time()
    assert notify.find_run(tmp_path, started) is None
    record.update(resumed, status="complete")  # e.g. `digits train --resume 20261124-013000`
    found = notify.find_run(tmp_path, started)
    assert found is not None and found[0] == resumed and found[1].run_id == "20261124-013000"
    assert notify.find_run(tmp_path / "nowhere", started) is None


def test_send_posts_the_title_and_body_to_a_json_receiver(receiver):
    warnings: list[str] = []
    assert notify.send([receiver.url("hook")], "the title", "line one\nline two", warnings.append, failure=True)
    assert warnings == []
    (got,) = receiver.received
    assert got["path"] == "/hook"
    assert (got["title"], got["message"], got["type"]) == ("the title", "line one\nline two", "failure")
    assert notify.send([receiver.url()], "ok", "fine", warnings.append, failure=False)
    assert receiver.received[1]["type"] == "success"


def test_an_unreachable_receiver_is_one_warning_and_apprise_prints_nothing_itself(closed_port, capsys):
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root = logging.getLogger()
    keep = Keep(logging.DEBUG)
    root.addHandler(keep)  # as if some library had configured logging: Apprise's lines must not reach it
    try:
        warnings: list[str] = []
        sent = notify.send([f"json://127.0.0.1:{closed_port}/"], "t", "b", warnings.append)
    finally:
        root.removeHandler(keep)
    assert not sent
    assert warnings == [
        "notification not sent: JSON: A Connection error occurred sending JSON notification to 127.0.0.1."
    ]
    assert [r for r in seen if r.name.startswith("apprise")] == []
    assert capsys.readouterr() == ("", "")


def test_one_of_two_urls_failing_says_which(receiver, closed_port):
    warnings: list[str] = []
    assert not notify.send([receiver.url(), f"json://127.0.0.1:{closed_port}/"], "t", "b", warnings.append)
    assert len(receiver.received) == 1
    assert warnings == [
        "notification not sent: 1 of 2 URLs failed: JSON: A Connection error occurred sending JSON notification to 127.0.0.1."
    ]


def test_a_receiver_that_never_answers_is_left_after_the_timeout(silent_port):
    warnings: list[str] = []
    # ?rto=600: Apprise itself would wait ten minutes for the answer
    assert not notify.send([f"json://127.0.0.1:{silent_port}/?rto=600"], "t", "b", warnings.append, timeout=0.5)
    assert warnings == ["notification not sent: no answer within 0.5 s (the [notify] timeout)"]


def test_a_url_apprise_does_not_understand_is_named_by_its_scheme_only():
    warnings: list[str] = []
    assert not notify.send(["mailto://me@example.com", "nonsense://user:s3cret@host/"], "t", "b", warnings.append)
    assert warnings == ["notification not sent: notify URL 2 (nonsense://) is not one Apprise understands"]
    assert not notify.check(["nonsense://user:s3cret@host/"], warnings.append)
    assert "s3cret" not in " ".join(warnings)


def test_without_apprise_the_warning_says_what_to_install(monkeypatch, receiver):
    monkeypatch.setitem(sys.modules, "apprise", None)  # what `import apprise` meets when it is not installed
    warnings: list[str] = []
    assert not notify.send([receiver.url()], "t", "b", warnings.append)
    assert warnings == ["notification not sent: notifications need Apprise: pip install 'digits[notify]'"]
    assert receiver.received == []
