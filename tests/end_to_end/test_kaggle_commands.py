"""The `digits` commands against the fake Kaggle API, through the real kaggle client."""

import io
import zipfile

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.store import record, run_folders
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
    assert upload["description"].startswith(f"digits run {run_id}, CV ")
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


@pytest.mark.slow
def test_submit_only_when_the_blend_beats_the_last_accepted_submission(fake_kaggle, runner, tmp_path, monkeypatch):
    _serve_learnable_competition(fake_kaggle, tmp_path)
    monkeypatch.chdir(tmp_path)

    def night(*args: str) -> record.RunRecord:
        r = runner.invoke(cli, ["run", *TINY, *args])
        assert r.exit_code == 0, r.output
        return record.read(tmp_path / "runs" / run_folders.list_runs(".")[-1])

    first = night("--submit", "--seed", "1", "--epochs", "1")
    assert first.submit_decision.submitted and "no earlier submission" in first.submit_decision.reason
    assert len(fake_kaggle.uploads) == 1 and first.leaderboard.accepted

    better = night("--submit", "--seed", "2", "--epochs", "12")
    assert better.submission_estimate > first.submission_estimate
    assert better.submit_decision.submitted and better.submit_decision.previous_run == first.run_id
    assert len(fake_kaggle.uploads) == 2

    worse = night("--submit", "--seed", "3", "--epochs", "1", "--ensemble-runs", "1")
    assert worse.submission_estimate <= better.submission_estimate
    decision = worse.submit_decision
    assert not decision.submitted and decision.previous_run == better.run_id
    assert decision.previous_oof_accuracy == better.submission_estimate and "is not higher than" in decision.reason
    assert len(fake_kaggle.uploads) == 2 and worse.leaderboard is None  # nothing went to Kaggle

    forced = night("--submit", "always", "--seed", "3", "--epochs", "1", "--ensemble-runs", "1")
    assert forced.submit_decision.submitted and forced.submit_decision.mode == "always"
    assert len(fake_kaggle.uploads) == 3


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
