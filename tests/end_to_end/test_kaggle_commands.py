"""The `digits` commands against the fake Kaggle API, through the real kaggle client."""

import datetime as dt
import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.store import ledger, record, run_folders
from tests import runfactory as rf
from tests.fake_kaggle import KEY
from tests.helpers import ROOT, TINY, digits, error_line, table, write_competition


@pytest.fixture
def runner():
    return CliRunner()


def _serve_learnable_competition(fake, tmp_path):
    """A competition big enough for folds, whose test labels the fake scores against."""
    src = write_competition(tmp_path / "src", n_train=200, n_test=40)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in ("train.csv", "test.csv"):
            z.write(src / name, name)
        z.writestr("sample_submission.csv", "ImageId,Label\n" + "".join(f"{i},0\n" for i in range(1, 41)))
    fake.competitions[fake.competition].set_zip(buf.getvalue(), table(40, 1)[:, 0].tolist())


def test_download_cached_and_forced(fake_kaggle, runner, tmp_path):
    r = runner.invoke(cli, ["download", "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d" / "train.csv").is_file()
    sent = fake_kaggle.zip_bytes_sent
    assert sent > 0
    again = runner.invoke(cli, ["download", "--data-dir", str(tmp_path / "d")])
    assert again.exit_code == 0 and "already up to date" in again.output
    assert fake_kaggle.zip_bytes_sent == sent  # nothing transferred
    forced = runner.invoke(cli, ["download", "--data-dir", str(tmp_path / "d"), "--force"])
    assert forced.exit_code == 0 and fake_kaggle.zip_bytes_sent == 2 * sent


def test_download_as_cron_runs_it_in_a_subprocess(fake_kaggle, tmp_path):
    """`python -m pipeline` in its own process reaches the fake through tests/kaggle_site/sitecustomize.py."""
    r = digits("download", "--data-dir", str(tmp_path / "d"), cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "d" / "train.csv").is_file()
    assert fake_kaggle.calls == ["ListDataFiles", "DownloadDataFiles"]
    assert [q["host"] for q in fake_kaggle.storage_requests] == ["storage.googleapis.com"]
    fake_kaggle.fail("ListDataFiles", 403, times=None)
    refused = digits("download", "--data-dir", str(tmp_path / "d"), cwd=ROOT, timeout=120)
    assert refused.returncode == 3 and "HTTP 403" in error_line(refused)


def test_bad_credentials_exit_3_without_leaking_the_key(fake_kaggle, runner, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "wrong" + KEY)
    r = runner.invoke(cli, ["download", "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 3
    assert r.output.count("digits: ") == 1
    assert "rejected the credentials" in r.output and "revokes the old one" in r.output
    assert KEY not in r.output and "Traceback" not in r.output
    assert not (tmp_path / "d" / "train.csv").exists()


@pytest.mark.slow
def test_nightly_run_downloads_trains_submits_and_records_the_score(fake_kaggle, runner, tmp_path, monkeypatch):
    _serve_learnable_competition(fake_kaggle, tmp_path)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(cli, ["run", "--submit", *TINY])
    assert r.exit_code == 0, r.output
    (run_id,) = run_folders.list_runs(".")
    board = record.read(tmp_path / "runs" / run_id).leaderboard
    (upload,) = fake_kaggle.uploads
    assert upload["content"] == (tmp_path / "submissions" / "submission.csv").read_bytes()
    assert upload["description"].startswith(f"digits run {run_id}, estimate ")
    assert board is not None and board.status == "complete" and board.public_score is not None
    assert board.ref in fake_kaggle.submissions
    assert board.public_score == pytest.approx(
        float(fake_kaggle.score_of(fake_kaggle.competitions[fake_kaggle.competition], upload["content"]))
    )
    shown = runner.invoke(cli, ["compare", "--format", "json"])
    assert shown.exit_code == 0
    assert str(board.public_score)[:5] in shown.output
    # the next night: Kaggle unreachable, but the files are here -> a warning, and the job still runs
    fake_kaggle.refuse_connections()
    offline = runner.invoke(cli, ["run", *TINY])
    assert offline.exit_code == 0, offline.output
    assert "continuing with the files already in data" in offline.output


def test_invalid_submission_is_refused_before_upload(fake_kaggle, runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "mine.csv"
    bad.write_text("ImageId,Label\n1,3\n1,4\n")
    r = runner.invoke(cli, ["submit", str(bad), "-m", "test"])
    assert r.exit_code == 1 and "line 3, column ImageId: 1 appears twice" in r.output
    assert fake_kaggle.uploads == []


@pytest.mark.slow
def test_submit_reports_kaggle_errors_with_exit_3(fake_kaggle, runner, tmp_path, monkeypatch):
    _serve_learnable_competition(fake_kaggle, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(cli, ["run", *TINY]).exit_code == 0
    fake_kaggle.submission_error = "Submission file has wrong number of rows"
    r = runner.invoke(cli, ["submit", "latest"])
    assert r.exit_code == 3 and "wrong number of rows" in r.output


def _night(runner, tmp_path, *args: str) -> record.RunRecord:
    r = runner.invoke(cli, ["run", *TINY, *args])
    assert r.exit_code == 0, r.output
    return record.read(tmp_path / "runs" / run_folders.list_runs(".")[-1])


@pytest.mark.slow
def test_the_gate_submits_a_real_gain_and_holds_back_noise(fake_kaggle, runner, tmp_path, monkeypatch):
    _serve_learnable_competition(fake_kaggle, tmp_path)
    monkeypatch.chdir(tmp_path)

    first = _night(runner, tmp_path, "--submit", "--seed", "1", "--epochs", "1", "--ensemble-runs", "1")
    assert first.submit_decision.submitted and "no earlier submission" in first.submit_decision.reason
    assert len(fake_kaggle.uploads) == 1 and first.leaderboard.accepted

    better = _night(runner, tmp_path, "--submit", "--seed", "2", "--epochs", "12")
    decision = better.submit_decision
    assert decision.submitted and decision.previous_run == first.run_id and decision.test == "mcnemar"
    assert decision.ours == better.submission_estimate > decision.previous_oof_accuracy == first.submission_estimate
    assert decision.p_value < 0.05 and decision.disagree > 0
    assert f"{decision.disagree} rows disagree" in decision.reason and "McNemar p = " in decision.reason
    assert len(fake_kaggle.uploads) == 2

    # the same night again: the blend gains nothing (the noise case proper is in tests/nightly/test_gate.py)
    again = _night(runner, tmp_path, "--submit", "--seed", "2", "--epochs", "12")
    decision = again.submit_decision
    assert not decision.submitted and decision.previous_run == better.run_id, decision.reason
    assert decision.p_value == 1.0 and decision.disagree == 0 and "may be noise" in decision.reason
    assert len(fake_kaggle.uploads) == 2 and again.leaderboard is None  # nothing went to Kaggle

    forced = _night(runner, tmp_path, "--submit", "always", "--seed", "4", "--epochs", "1", "--ensemble-runs", "1")
    assert forced.submit_decision.submitted and forced.submit_decision.mode == "always"
    assert len(fake_kaggle.uploads) == 3


@pytest.mark.slow
def test_the_ledger_keeps_each_submission_and_refreshes_a_pending_score(fake_kaggle, runner, tmp_path, monkeypatch):
    _serve_learnable_competition(fake_kaggle, tmp_path)
    monkeypatch.chdir(tmp_path)
    fake_kaggle.polls_until_scored = 10**6  # Kaggle is slow tonight: the night ends with the score pending
    first = _night(runner, tmp_path, "--submit", "--seed", "1", "--epochs", "6", "--set", "submit.wait=0")
    (entry,) = ledger.read(tmp_path)
    upload = fake_kaggle.uploads[0]
    assert entry.status == "pending" and entry.public_score is None and entry.ref == first.leaderboard.ref
    assert entry.sha256 == first.submission.sha256 == hashlib.sha256(upload["content"]).hexdigest()
    assert entry.run_id == first.run_id and entry.origin == "digits" and entry.message == upload["description"]
    assert [(m.run_id, m.weight) for m in entry.members] == [(m.run_id, m.weight) for m in first.blend.members]
    assert entry.estimate == first.submission_estimate and entry.train_sha == first.train_sha
    labels, kept = ledger.load_predictions(tmp_path, entry)
    assert np.array_equal(kept, np.load(tmp_path / "runs" / first.run_id / "estimate.npz")["predictions"])
    lines = (tmp_path / "submissions" / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["sending", "pending"]  # appended, never rewritten

    # predict rewrites the run's blend; the ledger still says what was submitted
    assert runner.invoke(cli, ["predict", first.run_id]).exit_code == 0
    assert ledger.read(tmp_path) == [entry]

    # the next night lists Kaggle's submissions first: the score arrives in the ledger and in the run
    fake_kaggle.polls_until_scored = 1
    _night(runner, tmp_path, "--seed", "2", "--epochs", "1")
    (scored,) = ledger.read(tmp_path)
    assert scored.status == "complete" and scored.public_score is not None and scored.id == entry.id
    assert record.read(tmp_path / "runs" / first.run_id).lb_score == scored.public_score
    assert len((tmp_path / "submissions" / "ledger.jsonl").read_text().splitlines()) == 3
    shown = runner.invoke(cli, ["history", "--no-plot"])
    assert shown.exit_code == 0 and "Submissions" in shown.output and f"{scored.public_score:.3%}"[:-1] in shown.output


@pytest.mark.slow
def test_a_submission_made_elsewhere_joins_the_gate(fake_kaggle, runner, tmp_path, monkeypatch):
    _serve_learnable_competition(fake_kaggle, tmp_path)
    monkeypatch.chdir(tmp_path)
    first = _night(runner, tmp_path, "--submit", "--seed", "1", "--epochs", "1", "--ensemble-runs", "1")
    assert first.submit_decision.submitted
    # someone submits a perfect file from the web page
    content = ("ImageId,Label\n" + "".join(f"{i},{d}\n" for i, d in enumerate(table(40, 1)[:, 0], 1))).encode()
    ref = fake_kaggle.add_submission(content, "from my laptop")
    better = _night(runner, tmp_path, "--submit", "--seed", "2", "--epochs", "12")
    elsewhere = next(e for e in ledger.read(tmp_path) if e.ref == ref)
    assert elsewhere.origin == "kaggle" and elsewhere.public_score == 1.0 and elsewhere.message == "from my laptop"
    decision = better.submit_decision
    assert not decision.submitted and decision.test == "binomial" and decision.reference == elsewhere.id
    assert "made elsewhere" in decision.reason and len(fake_kaggle.uploads) == 1


@pytest.mark.slow
def test_gc_keeps_the_runs_an_accepted_submission_blends(fake_kaggle, runner, tmp_path, monkeypatch):
    _serve_learnable_competition(fake_kaggle, tmp_path)
    monkeypatch.chdir(tmp_path)
    a = _night(runner, tmp_path, "--seed", "1", "--epochs", "6")
    b = _night(runner, tmp_path, "--submit", "--seed", "2", "--epochs", "6")
    members = {m.run_id for m in b.blend.members}
    c = _night(runner, tmp_path, "--seed", "3", "--epochs", "1", "--ensemble-runs", "1")
    (runs_dir := tmp_path / "submissions" / "submission.csv").unlink()  # only the ledger protects them now
    assert runner.invoke(cli, ["gc", "--keep", "0"]).exit_code == 0
    left = set(run_folders.list_runs("."))
    assert left == members | {b.run_id} and c.run_id not in left
    assert (a.run_id in left) == (a.run_id in members)
    assert not runs_dir.exists()


def test_a_damaged_ledger_line_is_one_warning_and_the_rest_still_counts(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = ledger.append(
        tmp_path,
        ledger.Entry(
            id="20261129-013000-aaaa", competition="digit-recognizer", status="complete", ref=7, public_score=0.99
        ),
    )
    with open(tmp_path / "submissions" / "ledger.jsonl", "a") as f:
        f.write('{"id": "20261130-013000-bbbb", "competition": "digit-rec')  # a crash mid-line
    warnings: list[str] = []
    assert ledger.read(tmp_path, warn=warnings.append) == [good]
    assert len(warnings) == 1 and "line 2 is damaged (cut short" in warnings[0]
    later = ledger.append(
        tmp_path, ledger.Entry(id="20261201-013000-cccc", competition="digit-recognizer", status="pending", ref=8)
    )
    assert ledger.read(tmp_path) == [good, later]  # the next line starts on a line of its own
    rf.make_run(tmp_path, dt.datetime(2026, 11, 29, 1, 30))
    shown = runner.invoke(cli, ["history", "--no-plot"])
    assert shown.exit_code == 0 and "Traceback" not in shown.output
    assert shown.output.count("is damaged") == 1


@pytest.mark.slow
def test_a_refused_submission_is_not_the_one_to_beat(fake_kaggle, runner, tmp_path, monkeypatch):
    _serve_learnable_competition(fake_kaggle, tmp_path)
    monkeypatch.chdir(tmp_path)
    fake_kaggle.submission_error = "Submission file has wrong number of rows"
    failed = runner.invoke(cli, ["run", "--submit", *TINY, "--seed", "2", "--epochs", "12"])
    assert failed.exit_code == 3
    fake_kaggle.submission_error = None
    r = runner.invoke(cli, ["run", "--submit", *TINY, "--seed", "3", "--epochs", "1", "--ensemble-runs", "1"])
    assert r.exit_code == 0, r.output
    rec = record.read(tmp_path / "runs" / run_folders.list_runs(".")[-1])
    assert rec.submit_decision.submitted and "no earlier submission was accepted" in rec.submit_decision.reason
