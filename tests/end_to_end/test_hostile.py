"""Hostile inputs found by a test pass: each gives one line and its exit code, and destroys nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core import atomic_files
from pipeline.core.errors import StorageError
from pipeline.store import record, run_folders
from tests import runfactory as rf
from tests.helpers import error_line, make_fifo, start, write_competition
from tests.runfactory import make_run


def test_a_run_id_read_back_is_validated_before_it_names_a_file(tmp_path, monkeypatch):
    write_competition(tmp_path / "data")
    run = make_run(tmp_path, "20261101-233000")
    report = json.loads((run / run_folders.REPORT).read_text())
    report["run_id"] = "../../pwned"
    report["config"]["data"]["dir"] = str(tmp_path / "data")
    (run / run_folders.REPORT).write_text(json.dumps(report))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["predict", "20261101-233000"])
    assert r.exit_code == 1 and "run_id" in error_line(r)
    assert not list(tmp_path.parent.rglob("pwned*")) and not list(tmp_path.rglob("pwned*"))


def test_an_output_dir_that_is_a_file_says_not_a_directory(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["predict", "--output-dir", "afile"])  # Click's own check of the option
    assert r.exit_code == 2 and "'afile' is a file" in r.output
    with pytest.raises(StorageError) as e, run_folders.Lock(tmp_path / "afile"):  # where Click cannot check
        pass
    assert (
        str(e.value)
        == f"cannot write {tmp_path / 'afile'}: not a directory (a file is in the way where a folder should be)"
    )
    with pytest.raises(StorageError, match=r"x\.json: not a directory \(a file is in the way"):
        atomic_files.write_text(tmp_path / "afile" / "x.json", "{}")


def test_a_newline_in_a_path_stays_on_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["report", "--output-dir", "out", "bad\nrun"])
    line = error_line(r)
    assert r.exit_code == 1 and "bad\\nrun" in line and "\n" not in line


def test_compare_into_a_full_disk_is_one_line_and_exit_6(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    make_run(tmp_path, "20261101-233000")
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "pipeline", "compare", "--output-dir", str(tmp_path)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    assert r.returncode == 6 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["digits: cannot write to standard output: no space left on device"]


def test_compare_into_a_closed_pipe_is_quiet(tmp_path):
    for k in range(12):
        make_run(tmp_path, f"202611{k + 1:02d}-233000", seed=k)
    p = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "runs", "--output-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None
    p.stdout.read(10)
    p.stdout.close()  # like `digits runs | head -c 10`
    err = p.stderr.read().decode() if p.stderr else ""
    p.wait(timeout=120)
    assert "Traceback" not in err


# ---- a FIFO where a file is read: one line at once, never a hang ------------------------------------------------


def _with_fifo(tmp_path: Path, where: str) -> Path:
    """Two finished runs and a competition in `tmp_path`, with a FIFO at `where` (relative to it)."""
    write_competition(tmp_path / "data", n_test=280)
    rf.make_run(tmp_path, "20261101-233000", seed=1, current_submission=True)
    rf.make_run(tmp_path, "20261102-233000", seed=2)
    target = tmp_path / where
    if target.exists():
        target.unlink()
    return make_fifo(target)


@pytest.mark.parametrize(
    "where, args, says",
    [
        ("my.toml", ["train", "--config", "my.toml"], "my.toml: not a regular file"),
        ("variants.toml", ["sweep", "variants.toml"], "variants.toml: not a regular file"),
        ("runs/20261102-233000/report.json", ["compare", "20261102-233000"], "report.json: not a regular file"),
        ("runs/20261102-233000/report.json", ["report", "20261102-233000"], "report.json: not a regular file"),
        ("runs/20261102-233000/oof.npz", ["predict", "20261102-233000"], "oof.npz: not a regular file; cannot blend"),
        ("data/test.csv", ["predict", "20261102-233000"], "test.csv: not a regular file"),
        ("mine.csv", ["submit", "mine.csv"], "mine.csv: not a regular file"),
    ],
)
def test_a_fifo_that_is_read_is_one_line_and_exit_1(tmp_path, monkeypatch, where, args, says):
    _with_fifo(tmp_path, where)
    monkeypatch.chdir(tmp_path)
    r = rf.invoke(cli, *args)
    assert r.exit_code == 1 and says in error_line(r), r.output


def test_runs_and_gc_read_past_a_fifo(tmp_path, monkeypatch):
    _with_fifo(tmp_path, "submissions/submission.csv")  # hashed by runs and gc to find the run that made it
    _with_fifo(tmp_path / "other", "runs/20261102-233000/report.json")
    monkeypatch.chdir(tmp_path)
    r = rf.invoke(cli, "runs")
    assert r.exit_code == 0 and "20261102-233000" in r.output, r.output
    r = rf.invoke(cli, "runs", "--output-dir", "other")
    assert r.exit_code == 0 and "runs/20261102-233000/report.json: not a regular file" in r.output, r.output
    r = rf.invoke(cli, "gc", "--keep", "1", "--dry-run")
    assert r.exit_code == 0, r.output


def test_a_fifo_instead_of_the_misclassified_digits_is_a_note_in_the_report(tmp_path, monkeypatch):
    _with_fifo(tmp_path, "runs/20261102-233000/misclassified.npz")
    monkeypatch.chdir(tmp_path)
    r = rf.invoke(cli, "report", "20261102-233000")
    assert r.exit_code == 0 and "misclassified.npz is unreadable" in r.output and "not a regular file" in r.output


@pytest.mark.parametrize("address", ["localhost:abc", "127.0.0.1:99999", "ray://[::1"])
def test_a_malformed_ray_address_variable_is_a_usage_error(tmp_path, monkeypatch, address):
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' (CI installs it)")
    write_competition(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", address)
    r = rf.invoke(cli, "train", "--executor", "ray")
    assert r.exit_code == 2 and "environment variable RAY_ADDRESS" in error_line(r), r.output
    assert run_folders.list_runs(tmp_path) == []


def test_a_sweep_variant_that_moves_the_output_dir_is_refused_before_any_run(tmp_path, monkeypatch):
    write_competition(tmp_path / "data")
    (tmp_path / "v.toml").write_text('[variants.a]\noutput_dir = "elsewhere"\n\n[variants.b]\nmodel.hidden = [16]\n')
    monkeypatch.chdir(tmp_path)
    r = rf.invoke(cli, "sweep", "v.toml")
    assert r.exit_code == 1 and error_line(r).startswith("digits: v.toml: variant a: output_dir cannot be set")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "elsewhere").exists()


# ---- stop signals: SIGHUP like SIGTERM; a burst of Ctrl-C still ends in one line, exit 4 and a saved run -----------

# the small CNN: a fold long enough to be inside when the signals come, a third of the wide CNN's time
STOPPABLE = ["--model", "cnn", "--folds", "3", "--epochs", "30", "--batch-size", "64", "--set", "train.warmup_epochs=0"]


def _signal_mid_training(
    tmp_path: Path, signals: list[signal.Signals], gap: float = 0.0, workers: int = 1
) -> tuple[int, str, Path]:
    """Start `digits train`, send `signals` (`gap` seconds apart) once fold 0 is saved; (exit code, stderr, run)."""
    write_competition(tmp_path / "data", n_train=300)
    proc = start("train", "--data-dir", "data", *STOPPABLE, "--set", f"executor.workers={workers}", cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("runs/*/folds/fold-0.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(gap)
    _, err = proc.communicate(timeout=120)
    (run_id,) = run_folders.list_runs(tmp_path)
    return proc.returncode, err, tmp_path / "runs" / run_id


@pytest.mark.slow
def test_sighup_stops_a_training_like_sigterm(tmp_path):
    code, err, run = _signal_mid_training(tmp_path, [signal.SIGHUP])
    assert code == 4 and f"digits train --resume {run.name}" in error_line(
        subprocess.CompletedProcess([], code, "", err)
    )
    assert record.read(run).status == "interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("gap", [0.0, 0.02])
@pytest.mark.parametrize("workers", [1, 2])  # folds in this process, or in worker processes the driver waits on
def test_a_burst_of_ctrl_c_ends_in_one_line_exit_4_and_a_saved_run(tmp_path, gap, workers):
    code, err, run = _signal_mid_training(tmp_path, [signal.SIGINT] * 6, gap, workers)
    line = error_line(subprocess.CompletedProcess([], code, "", err))  # one line, no traceback
    assert code == 4 and line.startswith("digits: interrupted"), err
    assert record.read(run).status == "interrupted" and "Exception ignored" not in err


# ---- a run is locked, blended and written through the folder it lives in -----------------------------------------


def test_resume_of_a_run_in_another_output_dir_takes_that_dirs_lock(tmp_path, monkeypatch):
    write_competition(tmp_path / "data")
    run = rf.make_run(tmp_path / "other", "20261101-233000", folds_done=2)  # interrupted, in other/
    before = (run / "report.json").read_bytes()
    monkeypatch.chdir(tmp_path)
    with run_folders.Lock(tmp_path / "other"):  # a digits working in other/ right now
        r = rf.invoke(cli, "train", "--resume", str(run), "--output-dir", "elsewhere", "--data-dir", "data")
    assert r.exit_code == 5 and str(tmp_path / "other") in error_line(r), r.output
    assert (run / "report.json").read_bytes() == before and not (tmp_path / "elsewhere" / "runs").exists()


def test_predict_of_a_run_named_by_its_path_writes_into_that_runs_own_output_dir(tmp_path, monkeypatch):
    import numpy as np

    from pipeline.core import atomic_files

    write_competition(tmp_path / "data", n_test=280)
    run = rf.make_run(tmp_path / "other", "20261101-233000")
    atomic_files.write_npy(run / "test_proba.npy", np.full((280, 10), 0.1, dtype=np.float32))
    report = rf.read(run)
    report["data"]["test.csv"]["sha256"] = atomic_files.sha256(tmp_path / "data" / "test.csv")
    rf.write_raw(run, report)
    rf.make_run(tmp_path / "here", "20261102-233000", seed=3)  # a compatible run of another output dir
    monkeypatch.chdir(tmp_path / "here")
    r = rf.invoke(cli, "predict", str(run), "--data-dir", str(tmp_path / "data"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "other" / "submissions" / f"{run.name}.csv").is_file()
    assert (tmp_path / "other" / "submissions" / "submission.csv").is_file()
    assert not (tmp_path / "here" / "submissions").exists()  # nothing written into the folder predict ran from
    assert record.read(run).blend is not None and record.read(run).blend.candidates == [run.name]  # not mixed up


# ---- the demo writes only into a folder that is empty or its own -------------------------------------------------


def test_the_demo_never_replaces_a_users_files_in_its_data_dir(tmp_path, monkeypatch):
    user = tmp_path / "userdata"
    write_competition(user, n_test=40)
    (user / "train.csv").unlink()  # a test.csv and sample_submission.csv of the user's, but no train.csv
    (user / "sample_submission.csv").write_text("ImageId,Label\n1,0\n")
    before = {p.name: p.read_bytes() for p in user.iterdir()}
    monkeypatch.chdir(tmp_path)
    r = rf.invoke(cli, "run", "--demo", "--data-dir", "userdata")
    assert r.exit_code == 1 and "userdata" in error_line(r) and "not the demo's" in error_line(r), r.output
    assert {p.name: p.read_bytes() for p in user.iterdir()} == before


def test_the_demo_never_replaces_a_real_submission_in_an_output_dir_given_to_it(tmp_path, monkeypatch):
    rf.make_run(tmp_path / "real", "20261101-233000", current_submission=True)
    before = (tmp_path / "real" / "submissions" / "submission.csv").read_bytes()
    monkeypatch.chdir(tmp_path)
    r = rf.invoke(cli, "run", "--demo", "--output-dir", "real")
    assert r.exit_code == 1 and "real" in error_line(r) and "--demo" in error_line(r), r.output
    assert (tmp_path / "real" / "submissions" / "submission.csv").read_bytes() == before
    assert run_folders.list_runs(tmp_path / "real") == ["20261101-233000"]


def test_the_demo_fills_an_empty_folder_and_its_own_again(tmp_path):
    from pipeline.competition import dataset

    assert dataset.prepare_demo(tmp_path / "new") is True and (tmp_path / "new" / "train.csv").is_file()
    (tmp_path / "new" / "train.csv").unlink()  # its own folder, damaged: written again
    assert dataset.prepare_demo(tmp_path / "new") is True and (tmp_path / "new" / "train.csv").is_file()
    assert dataset.prepare_demo(tmp_path / "new") is False  # complete: used as it is
    (tmp_path / "empty").mkdir()
    assert dataset.prepare_demo(tmp_path / "empty") is True


# ---- records of older versions hold paths relative to where the run started ----------------------------------


def _old_night(tmp_path: Path, monkeypatch, test_rows: int = 280) -> Path:
    """A run as an older digits left it in `tmp_path/night`: data.dir and the submission's path relative to it."""
    import numpy as np

    from pipeline.core import atomic_files

    night = tmp_path / "night"
    write_competition(night / "data", n_test=test_rows)
    monkeypatch.chdir(night)
    run = rf.make_run(".", "20261101-233000", submission=True)
    atomic_files.write_npy(run / "test_proba.npy", np.full((280, 10), 0.1, dtype=np.float32))
    report = rf.read(run)
    assert report["config"]["data"]["dir"] == "data" and report["submission"]["path"].startswith("submissions")
    report["data"]["test.csv"]["sha256"] = atomic_files.sha256(night / "data" / "test.csv")
    rf.write_raw(run, report)
    monkeypatch.chdir(tmp_path)  # the next command runs from another folder
    return night


def test_predict_from_another_folder_finds_the_data_of_an_old_record(tmp_path, monkeypatch):
    night = _old_night(tmp_path, monkeypatch)
    r = rf.invoke(cli, "predict", "--output-dir", "night")
    assert r.exit_code == 0, r.output
    assert (night / "submissions" / "submission.csv").is_file()
    assert Path(record.read(night / "runs" / "20261101-233000").submission.path).is_absolute()  # written anew


def test_submit_from_another_folder_finds_and_checks_the_submission_of_an_old_record(
    tmp_path, monkeypatch, fake_kaggle
):
    night = _old_night(tmp_path, monkeypatch, test_rows=100)  # test.csv has 100 rows; the submission 280
    r = rf.invoke(cli, "submit", "--output-dir", "night", "20261101-233000")
    assert r.exit_code == 1 and "280 rows, but test.csv has 100" in error_line(r), r.output
    assert fake_kaggle.uploads == []  # validated against the run's test.csv, never sent
    write_competition(night / "data", n_test=280)
    r = rf.invoke(cli, "submit", "--output-dir", "night", "20261101-233000", "--wait", "0")
    assert r.exit_code == 0, r.output
    (upload,) = fake_kaggle.uploads
    assert upload["content"] == (night / "submissions" / "20261101-233000.csv").read_bytes()
