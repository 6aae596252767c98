"""End-to-end: the real commands in subprocesses, as cron runs them."""

import json
import signal
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.competition import submission_file
from pipeline.core import config_layers
from pipeline.store import record, run_folders
from tests.helpers import SHARED_ZIP, TINY, digits, error_line, start, write_competition


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("demo")
    result = digits("run", "--demo", cwd=cwd)
    return cwd, result


@pytest.mark.slow
def test_demo_runs_the_whole_job(demo_run):
    cwd, result = demo_run
    assert result.returncode == 0, result.stderr
    sub = cwd / "demo" / "submissions" / "submission.csv"
    assert result.stdout.strip().endswith("demo/submissions/submission.csv")
    assert submission_file.validate_file(sub, 300) == 300
    (run_id,) = run_folders.list_runs(cwd / "demo")
    rec = record.read(cwd / "demo" / "runs" / run_id)
    raw = json.loads((cwd / "demo" / "runs" / run_id / "report.json").read_text())
    assert rec.status == "complete" and raw["schema_version"] == record.SCHEMA_VERSION
    assert len(rec.folds) == 3 and rec.oof_accuracy > 0.9  # 8x8 digits are easy
    assert rec.data["train.csv"].rows == 1497 and len(rec.data["test.csv"].sha256) == 64
    assert raw["config"]["train"]["seed"] == rec.config.train.seed is not None  # the drawn seed is recorded
    for fold in rec.folds:
        assert len(fold.history["val_accuracy"]) == fold.epochs_run and fold.seconds > 0
    assert np.array(rec.confusion_matrix).sum() == 1497 and len(rec.per_class_accuracy) == 10
    assert {"load", "train", "ensemble", "predict"} <= set(rec.stage_seconds)
    assert "tensorflow-cpu" in rec.versions or "tensorflow" in rec.versions
    assert rec.submission.sha256 == __import__("hashlib").sha256(sub.read_bytes()).hexdigest()
    assert rec.blend.members[0].run_id == run_id and rec.blend.in_sample_accuracy == rec.oof_accuracy
    assert rec.blend.estimate == rec.submission_estimate == rec.oof_accuracy  # one run: its out-of-fold figure
    assert (cwd / "demo" / "runs" / run_id / "folds" / "fold-2.keras").is_file()
    # one plain line per fold when not on a terminal
    assert sum("fold " in line and "val accuracy" in line for line in result.stderr.splitlines()) == 3


@pytest.mark.slow
def test_a_runs_record_holds_no_path_relative_to_where_it_was_started(demo_run, tmp_path):
    cwd, result = demo_run
    assert result.returncode == 0, result.stderr
    (run_id,) = run_folders.list_runs(cwd / "demo")
    rec = record.read(cwd / "demo" / "runs" / run_id)
    assert Path(rec.config.data.dir).is_absolute() and Path(rec.submission.path).is_absolute()
    assert "output_dir" not in (cwd / "demo" / "runs" / run_id / "config.toml").read_text()
    elsewhere = digits("predict", "--output-dir", str(cwd / "demo"), cwd=tmp_path)  # from another folder
    assert elsewhere.returncode == 0, elsewhere.stderr


@pytest.mark.slow
def test_same_seed_gives_byte_identical_submission(tmp_path):
    write_competition(tmp_path / "data")
    outs = []
    for name in ("a", "b", "c"):
        seed = "1" if name != "c" else "2"
        r = digits("run", "--offline", "--data-dir", "data", "--output-dir", name, "--seed", seed, *TINY, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        (run_id,) = run_folders.list_runs(tmp_path / name)
        outs.append((tmp_path / name / "submissions" / "submission.csv").read_bytes())
        outs.append(np.load(tmp_path / name / "runs" / run_id / "test_proba.npy"))
    assert outs[0] == outs[2] and np.array_equal(outs[1], outs[3])
    assert not np.array_equal(outs[1], outs[5])  # another seed, another ensemble


@pytest.mark.slow
def test_predict_from_fold_models_matches_saved_probabilities(tmp_path):
    write_competition(tmp_path / "data")
    assert digits("train", "--data-dir", "data", *TINY, cwd=tmp_path).returncode == 0
    first = digits("predict", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    saved = (tmp_path / "submissions" / "submission.csv").read_bytes()
    (run_id,) = run_folders.list_runs(tmp_path)
    (tmp_path / "runs" / run_id / "test_proba.npy").unlink()  # forces the models to run
    again = digits("predict", run_id, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "submissions" / "submission.csv").read_bytes() == saved
    assert (tmp_path / "submissions" / f"{run_id}.csv").read_bytes() == saved
    # a damaged fold model is a clear error, and the submission stays as it was
    (tmp_path / "runs" / run_id / "folds" / "fold-1.keras").write_bytes(b"not a zip")
    bad = digits("predict", run_id, cwd=tmp_path)
    assert bad.returncode == 1 and "fold-1.keras: fold model is corrupt" in error_line(bad)
    assert (tmp_path / "submissions" / "submission.csv").read_bytes() == saved


def test_bad_data_fails_cleanly_and_keeps_the_submission(tmp_path):
    write_competition(tmp_path / "data")
    (tmp_path / "submissions").mkdir()
    (tmp_path / "submissions" / "submission.csv").write_text("ImageId,Label\n1,7\n")
    lines = (tmp_path / "data" / "train.csv").read_text().splitlines()
    cells = lines[5].split(",")
    cells[300] = "300"
    lines[5] = ",".join(cells)
    (tmp_path / "data" / "train.csv").write_text("\n".join(lines) + "\n")
    r = digits("run", "--offline", "--data-dir", "data", *TINY, cwd=tmp_path)
    assert r.returncode == 1
    assert error_line(r) == "digits: data/train.csv: line 6, column pixel299: 300 is outside 0-255"
    assert (tmp_path / "submissions" / "submission.csv").read_text() == "ImageId,Label\n1,7\n"
    assert run_folders.list_runs(tmp_path) == []


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "--folds", "1"], 2, "option train.folds: must be at least 2"),
        (["train", "--set", "train.epochz=3"], 2, "unknown option train.epochz"),
        (["train", "--set", "train.folds=two"], 2, "option train.folds: expected an integer, got 'two'"),
        (["train", "--set", "train.folds=3", "--folds", "2"], 2, "option train.folds is given twice"),
        (["run", "--offline", "--submit"], 2, "--offline never contacts Kaggle, so it cannot --submit"),
        (["train", "--config", "nope.toml"], 1, "nope.toml: config file not found"),
        (["train", "--data-dir", "missing"], 1, "missing: data directory not found"),
        (["predict", "nosuchrun"], 1, "run 'nosuchrun' not found"),
        (["submit", "nosuchrun"], 1, "run 'nosuchrun' not found"),
    ],
)
def test_bad_options_give_one_line(tmp_path, args, code, message):
    r = digits(*args, cwd=tmp_path)
    assert r.returncode == code and message in error_line(r)


def test_usage_errors_exit_2(tmp_path):
    r = digits("train", "--epochs", "lots", cwd=tmp_path)
    assert r.returncode == 2 and "Invalid value for '--epochs'" in r.stderr


def test_unwritable_output_dir_exits_6(tmp_path):
    write_competition(tmp_path / "data")
    (tmp_path / "afile").write_text("")
    r = digits("train", "--data-dir", "data", "--output-dir", "afile/out", *TINY, cwd=tmp_path)
    assert r.returncode == 6 and "cannot write afile/out" in error_line(r)


# 3 folds of 30 epochs, one after another in this process: long enough to interrupt the second fold
# (tests/training/test_workers.py stops and resumes folds trained side by side)
SLOW = [
    "--model",
    "mlp",
    "--folds",
    "3",
    "--epochs",
    "30",
    "--hidden",
    "32",
    "--batch-size",
    "64",
    "--set",
    "train.warmup_epochs=0",
    "--set",
    "executor.workers=1",
]


def _wait_for(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, sig):
    write_competition(tmp_path / "data", n_train=300)
    args = ["--data-dir", "data", *SLOW]
    proc = start("train", *args, cwd=tmp_path)
    _wait_for(tmp_path / "runs", proc)
    (run_id,) = run_folders.list_runs(tmp_path)
    _wait_for(tmp_path / "runs" / run_id / "folds" / "fold-0.json", proc)
    time.sleep(1.0)  # now inside fold 2
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    rec = record.read(tmp_path / "runs" / run_id)
    done = sorted(p.name for p in (tmp_path / "runs" / run_id / "folds").glob("*.json"))
    assert "fold-2.json" not in done and "fold-0.json" in done
    if sig == signal.SIGTERM:
        assert proc.returncode == 4 and f"digits train --resume {run_id}" in err
        assert rec.status == "interrupted" and "Traceback" not in err
        assert not list((tmp_path / "runs" / run_id).rglob("*.tmp*")), "half-written files left"
    else:
        assert rec.status == "running"  # killed outright: nothing could be written
        # what a SIGKILL while a fold's model was being written leaves behind
        (tmp_path / "runs" / run_id / "folds" / ".fold-1.keras.x1y2.tmp.keras").write_bytes(b"half a model")

    resumed = (
        digits("run", "--offline", "--resume", *args, cwd=tmp_path)
        if sig == signal.SIGKILL
        else digits("train", "--resume", run_id, *args, cwd=tmp_path)
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(done)} of 3 folds already finished" in resumed.stderr
    assert run_folders.list_runs(tmp_path) == [run_id]
    assert not list((tmp_path / "runs" / run_id).rglob("*.tmp*")), "leftovers of the killed run remain"
    seed = str(rec.config.train.seed)  # the seed the interrupted run drew
    fresh = digits("train", *args, "--seed", seed, "--output-dir", "fresh", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    (fresh_id,) = run_folders.list_runs(tmp_path / "fresh")
    a = np.load(tmp_path / "runs" / run_id / "test_proba.npy")
    b = np.load(tmp_path / "fresh" / "runs" / fresh_id / "test_proba.npy")
    assert np.array_equal(a, b)
    assert (
        record.read(tmp_path / "runs" / run_id).oof_accuracy
        == record.read(tmp_path / "fresh" / "runs" / fresh_id).oof_accuracy
    )


def test_resume_refuses_a_different_config(tmp_path):
    write_competition(tmp_path / "data")
    run_id, run_dir = run_folders.new_run(tmp_path)
    config = config_layers.build(named={"train": {"epochs": 99, "seed": 1}})
    record.write(run_dir, record.RunRecord(run_id=run_id, status="interrupted", config=config, started_at=record.now()))
    r = digits("train", "--resume", run_id, "--data-dir", "data", *TINY, cwd=tmp_path)
    assert r.returncode == 1 and "used a different config or data" in error_line(r)


@pytest.mark.slow
def test_second_run_on_the_same_output_dir_is_refused(tmp_path):
    write_competition(tmp_path / "data", n_train=300)
    proc = start("train", "--data-dir", "data", *SLOW, cwd=tmp_path)
    try:
        _wait_for(tmp_path / "runs", proc)
        second = digits("run", "--offline", "--data-dir", "data", *TINY, cwd=tmp_path, timeout=60)
        assert second.returncode == 5
        assert f"another digits run (pid {proc.pid}) is using this output directory" in error_line(second)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_ZIP.is_file(), reason=f"real competition data not found at {SHARED_ZIP}")
def test_real_data_end_to_end_with_a_short_config(tmp_path, monkeypatch):
    with zipfile.ZipFile(SHARED_ZIP) as z:
        z.extractall(tmp_path / "data")
    r = digits(
        "run",
        "--offline",
        "--data-dir",
        "data",
        "--model",
        "mlp",
        "--folds",
        "2",
        "--epochs",
        "3",
        "--hidden",
        "256",
        "--batch-size",
        "256",
        "--set",
        "train.warmup_epochs=0",
        "--set",
        "augment.enabled=false",
        cwd=tmp_path,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert submission_file.validate_file(tmp_path / "submissions" / "submission.csv", 28000) == 28000
    (run_id,) = run_folders.list_runs(tmp_path)
    report = json.loads((tmp_path / "runs" / run_id / "report.json").read_text())
    assert report["data"]["train.csv"]["rows"] == 42000 and report["oof_accuracy"] > 0.95
    # a second load comes from the parsed-array cache (its speed is in the benchmark)
    from pipeline.competition import dataset

    monkeypatch.setattr(dataset, "read_csv", lambda *a, **k: pytest.fail("parsed the CSV again"))
    assert dataset.load(tmp_path / "data").files == report["data"]
