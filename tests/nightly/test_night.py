"""Each night adds models: fresh seeds, the blend of compatible runs, the CNN, and predicting again."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.competition import submission_file
from pipeline.store import record, run_folders
from tests.helpers import TINY, digits, error_line, start, write_competition

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Three tiny nights on the same data, the third with --ensemble-runs 1."""
    cwd = tmp_path_factory.mktemp("nights")
    write_competition(cwd / "data", n_train=300)
    results = []
    for extra in ([], [], ["--ensemble-runs", "1"]):
        r = digits("run", "--offline", "--data-dir", "data", *TINY, *extra, cwd=cwd)
        assert r.returncode == 0, r.stderr
        results.append(r)
    ids = run_folders.list_runs(cwd)
    return cwd, ids, [record.read(cwd / "runs" / i) for i in ids], results


def test_each_night_draws_a_new_seed_and_records_it(nights):
    _, _, recs, _ = nights
    seeds = [r.config.train.seed for r in recs]
    assert all(isinstance(s, int) for s in seeds) and len(set(seeds)) == 3


def test_a_given_seed_is_respected(tmp_path):
    write_competition(tmp_path / "data")
    r = digits("train", "--data-dir", "data", *TINY, "--seed", "4294968", cwd=tmp_path)  # overflowed seed*1000+k
    assert r.returncode == 0, r.stderr
    (run_id,) = run_folders.list_runs(tmp_path)
    assert record.read(tmp_path / "runs" / run_id).config.train.seed == 4294968
    too_big = digits("train", "--data-dir", "data", *TINY, "--seed", str(2**32), cwd=tmp_path)
    assert too_big.returncode == 2 and "option train.seed: must be in 0..4294967295" in error_line(too_big)


def test_the_second_night_blends_both_runs_and_never_scores_below_the_best(nights):
    cwd, ids, recs, results = nights
    second = recs[1].blend
    assert second.candidates == [ids[1], ids[0]]
    assert second.in_sample_accuracy >= max(recs[0].oof_accuracy, recs[1].oof_accuracy)
    assert second.estimate is not None and 0 < second.estimate <= 1
    assert second.best_single_oof_accuracy == max(recs[0].oof_accuracy, recs[1].oof_accuracy)
    assert sum(m.weight for m in second.members) == pytest.approx(1.0)
    assert "blend of" in results[1].stderr


def test_ensemble_runs_1_is_this_runs_folds_alone(nights):
    cwd, ids, recs, _ = nights
    third = recs[2]
    assert third.blend.candidates == [ids[2]] and [m.run_id for m in third.blend.members] == [ids[2]]
    labels = np.load(cwd / "runs" / ids[2] / "test_proba.npy").argmax(axis=1)
    expected = submission_file.render(labels).encode()
    assert (cwd / "submissions" / f"{ids[2]}.csv").read_bytes() == expected


def test_the_submission_is_the_weighted_blend_of_the_members(nights):
    cwd, ids, recs, _ = nights
    blend = recs[1].blend
    proba = sum(
        m.weight * np.load(cwd / "runs" / m.run_id / "test_proba.npy").astype(np.float64) for m in blend.members
    )
    assert (cwd / "submissions" / f"{ids[1]}.csv").read_bytes() == submission_file.render(proba.argmax(axis=1)).encode()


def test_runs_on_other_data_are_not_blended(nights, tmp_path):
    cwd, ids, _, _ = nights
    other = tmp_path / "other"
    write_competition(other, n_train=300, seed=5)  # another train.csv
    r = digits("run", "--offline", "--data-dir", str(other), *TINY, cwd=cwd)
    assert r.returncode == 0, r.stderr
    newest = run_folders.list_runs(cwd)[-1]
    assert record.read(cwd / "runs" / newest).blend.candidates == [newest]


def test_predict_after_test_csv_changed_uses_the_members_models(tmp_path):
    write_competition(tmp_path / "data", n_test=40)
    assert digits("run", "--offline", "--data-dir", "data", *TINY, cwd=tmp_path).returncode == 0
    lines = (tmp_path / "data" / "test.csv").read_text().splitlines()
    (tmp_path / "data" / "test.csv").write_text("\n".join(lines[:31]) + "\n")  # 30 rows now
    r = digits("predict", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "test.csv changed since run" in r.stderr
    assert submission_file.validate_file(tmp_path / "submissions" / "submission.csv", expected_rows=30) == 30


def test_sigterm_during_predict_exits_4_and_keeps_the_old_submission(tmp_path):
    write_competition(tmp_path / "data", n_test=40)
    assert digits("run", "--offline", "--data-dir", "data", *TINY, cwd=tmp_path).returncode == 0
    before = (tmp_path / "submissions" / "submission.csv").read_bytes()
    lines = (tmp_path / "data" / "test.csv").read_text().splitlines()
    (tmp_path / "data" / "test.csv").write_text("\n".join(lines[:21]) + "\n")  # predicting needs the models now
    proc = start("predict", cwd=tmp_path)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the warning comes once predict runs (its SIGTERM handler set), before TensorFlow
        seen.append(line)
        if "predict it again" in line:
            break
    else:
        raise AssertionError("".join(seen))
    proc.send_signal(signal.SIGTERM)  # now loading TensorFlow and the fold models
    out, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode == 4, err
    assert "Traceback" not in err and err.count("digits: interrupted") == 1
    assert (tmp_path / "submissions" / "submission.csv").read_bytes() == before


def test_the_cnn_runs_end_to_end_on_the_demo(tmp_path):
    r = digits(
        "run",
        "--demo",
        "--model",
        "cnn",
        "--folds",
        "2",
        "--epochs",
        "6",
        "--batch-size",
        "64",
        "--set",
        "train.warmup_epochs=0",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    (run_id,) = run_folders.list_runs(tmp_path / "demo")
    rec = record.read(tmp_path / "demo" / "runs" / run_id)
    assert rec.config.model.kind == "cnn" and rec.status == "complete" and rec.oof_accuracy > 0.5
    assert "CNN 16-32" in r.stderr
    assert submission_file.validate_file(tmp_path / "demo" / "submissions" / "submission.csv", 300) == 300


def test_a_diverging_run_is_one_line_and_the_run_says_why(tmp_path):
    write_competition(tmp_path / "data")
    r = digits("train", "--data-dir", "data", *TINY, "--set", "train.learning_rate=1e30", cwd=tmp_path)
    assert r.returncode == 1 and "fold 0 diverged: the training loss became nan" in error_line(r)
    (run_id,) = run_folders.list_runs(tmp_path)
    rec = record.read(tmp_path / "runs" / run_id)
    assert rec.status == "failed" and "diverged" in rec.error


def test_a_model_too_big_for_memory_is_refused_before_training(tmp_path):
    write_competition(tmp_path / "data")
    r = digits("train", "--data-dir", "data", *TINY, "--hidden", "3000000000", cwd=tmp_path)
    assert r.returncode == 1 and "GiB for training; this machine has" in error_line(r)
    (run_id,) = run_folders.list_runs(tmp_path)
    assert record.read(tmp_path / "runs" / run_id).status == "failed"  # never left "running"


def _trained_run(tmp_path: Path) -> Path:
    """The folder of a finished TINY run (seed 3) on a small competition in tmp_path/data."""
    write_competition(tmp_path / "data")
    assert digits("train", "--data-dir", "data", *TINY, "--seed", "3", cwd=tmp_path).returncode == 0
    (run_id,) = run_folders.list_runs(tmp_path)
    return tmp_path / "runs" / run_id


def _resume_as_interrupted(tmp_path: Path, run_dir: Path) -> subprocess.CompletedProcess:
    """Record the run as interrupted, then `digits train --resume` it."""
    rec = record.read(run_dir)
    rec.status = "interrupted"
    record.write(run_dir, rec)
    return digits("train", "--resume", run_dir.name, "--data-dir", "data", *TINY, cwd=tmp_path)


def test_a_damaged_fold_is_trained_again_on_resume(tmp_path):
    run_dir = _trained_run(tmp_path)
    oof = (run_dir / "oof.npz").read_bytes()
    npz = run_dir / "folds" / "fold-1.npz"
    npz.write_bytes(npz.read_bytes()[:100])  # truncated: BadZipFile
    r = _resume_as_interrupted(tmp_path, run_dir)
    assert r.returncode == 0, r.stderr
    assert re.search(r"fold 1 files are damaged \(BadZipFile(: [^)]*)?\); training it again", r.stderr), r.stderr
    assert "resuming: 1 of 2 folds already finished" in r.stderr
    assert (run_dir / "oof.npz").read_bytes() == oof  # the same fold, trained again, gives the same bytes


def test_a_fold_with_wrong_shapes_is_not_trusted(tmp_path):
    run_dir = _trained_run(tmp_path)
    oof = (run_dir / "oof.npz").read_bytes()
    with np.load(run_dir / "folds" / "fold-0.npz") as z:
        arrays = dict(z)
    arrays["val_proba"] = arrays["val_proba"][:5]
    np.savez(run_dir / "folds" / "fold-0.npz", **arrays)
    r = _resume_as_interrupted(tmp_path, run_dir)
    assert r.returncode == 0, r.stderr
    assert "val_proba has shape (5, 10)" in r.stderr
    assert (run_dir / "oof.npz").read_bytes() == oof
