"""`--executor ray` with a real Ray (no mocks), kept on loopback: the same bytes as the local executor.

Every test runs `digits` in a subprocess, as cron would, with Ray told to
stay on 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes `ray start` and
`ray.init()` bind loopback on Linux) and not to send usage statistics.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.competition.dataset import write_demo
from pipeline.store import record, run_folders
from tests.helpers import ROOT, digits, error_line, start

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' (CI installs it)")

pytestmark = pytest.mark.slow
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
# The demo competition, 2 folds of a small MLP: seconds per fold, but a real training.
SMALL = ["--demo", "--seed", "5", "--folds", "2", "--epochs", "3", "--hidden", "64", "--ensemble-runs", "1"]
RAY_TIMEOUT = 600  # seconds for one `digits` command on Ray


@pytest.fixture(scope="module", autouse=True)
def loopback_env():
    """Every process these tests start (`digits`, `ray start`) gets LOOPBACK_ENV and no other RAY_ variable."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("RAY_")]:
            mp.delenv(name)
        for name, value in LOOPBACK_ENV.items():
            mp.setenv(name, value)
        yield


def _outputs(out: Path) -> tuple[bytes, bytes]:
    (run_id,) = run_folders.list_runs(out)
    return (out / "submissions" / "submission.csv").read_bytes(), (
        out / "runs" / run_id / "test_proba.npy"
    ).read_bytes()


@pytest.fixture(scope="module")
def local_result(tmp_path_factory) -> tuple[bytes, bytes]:
    cwd = tmp_path_factory.mktemp("local")
    r = digits("run", *SMALL, "--output-dir", "out", cwd=cwd, timeout=RAY_TIMEOUT)
    assert r.returncode == 0, r.stderr
    return _outputs(cwd / "out")


def _eventually(check, message: str, seconds: float = 120) -> None:  # type: ignore[no-untyped-def]
    """Poll `check` until it holds: processes take their time to exit on a busy machine."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


def _with_site(site: str) -> str:
    """PYTHONPATH with the fault-injection site first, keeping what the test run itself has (a worktree)."""
    return os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))


def _raylets() -> int:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.count("raylet")


def test_a_local_ray_gives_the_same_bytes_as_the_local_executor_and_is_stopped(tmp_path, local_result):
    before = _raylets()
    r = digits("run", *SMALL, "--executor", "ray", "--output-dir", "out", cwd=tmp_path, timeout=RAY_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert _outputs(tmp_path / "out") == local_result
    assert "Traceback" not in r.stderr and r.stderr.count("val accuracy") == 2
    _eventually(lambda: _raylets() <= before, "the Ray the run started is still running")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster():
    """A Ray head started separately with `ray start --head`, on loopback; stopped afterwards."""
    port = _free_port()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay under 108 bytes
    start = subprocess.run(
        [
            ray_bin,
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert start.returncode == 0, start.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_separately_started_cluster_gives_the_same_bytes(tmp_path, local_result, cluster):
    # `ray start` turns on Ray's token authentication and keeps the token in ~/.ray/auth_token; a driver
    # attaching by address says it uses the token, as Ray's documentation asks
    r = digits(
        "run",
        *SMALL,
        "--executor",
        "ray",
        "--ray-address",
        cluster,
        "--output-dir",
        "out",
        cwd=tmp_path,
        timeout=RAY_TIMEOUT,
        env={"RAY_AUTH_MODE": "token"},
    )
    assert r.returncode == 0, r.stderr
    assert _outputs(tmp_path / "out") == local_result
    assert "Traceback" not in r.stderr


def test_attaching_without_the_clusters_token_is_one_line_that_says_so(tmp_path, cluster):
    r = digits(
        "run", *SMALL, "--executor", "ray", "--ray-address", cluster, "--output-dir", "out", cwd=tmp_path, timeout=300
    )
    assert r.returncode == 7
    assert "RAY_AUTH_MODE=token" in error_line(r)
    assert not [line for line in r.stderr.splitlines() if line.startswith("[")], r.stderr  # no Ray retry chatter
    assert run_folders.list_runs(tmp_path / "out") == []  # no run folder for a night that never reached its cluster


def test_a_fold_that_raises_is_one_line_and_resume_finishes_the_run(tmp_path, local_result):
    site = str(ROOT / "tests" / "ray_site")
    failed = digits(
        "run",
        *SMALL,
        "--executor",
        "ray",
        "--set",
        "executor.cpus_per_fold=0.01",  # both folds at once on any number of cores
        "--output-dir",
        "out",
        cwd=tmp_path,
        timeout=RAY_TIMEOUT,
        env={
            "DIGITS_TEST_FAIL_FOLD": "1",
            "DIGITS_TEST_FAIL_AFTER": str(tmp_path / "out" / "runs" / "*" / "folds" / "fold-0.json"),
            "PYTHONPATH": _with_site(site),
        },
    )
    assert failed.returncode == 7
    line = error_line(failed)
    assert "fold 1" in line and "RuntimeError: injected failure in fold 1" in line
    (run_id,) = run_folders.list_runs(tmp_path / "out")
    rec = record.read(tmp_path / "out" / "runs" / run_id)
    assert rec.status == "failed" and "injected failure" in (rec.error or "")
    assert [f.index for f in rec.folds] == [0]  # the fold that finished is kept
    resumed = digits(
        "run", *SMALL, "--executor", "ray", "--resume", "--output-dir", "out", cwd=tmp_path, timeout=RAY_TIMEOUT
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: 1 of 2 folds already finished" in resumed.stderr
    assert _outputs(tmp_path / "out") == local_result


def _fold_workers() -> list[int]:
    """Pids of Ray workers running a fold (Ray titles them after the task's function)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"_train_fold_task" in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def test_a_worker_killed_mid_fold_is_retried_to_the_same_bytes(tmp_path, local_result):
    log, mark = tmp_path / "folds.log", tmp_path / "hung"
    env = {
        "PYTHONPATH": _with_site(str(ROOT / "tests" / "ray_site")),
        "DIGITS_TEST_FOLD_LOG": str(log),
        "DIGITS_TEST_HANG_FOLD": "0",  # fold 0's first attempt waits after its first epoch to be killed
        "DIGITS_TEST_HANG_MARK": str(mark),
    }
    proc = start("run", *SMALL, "--executor", "ray", "--output-dir", "out", cwd=tmp_path, env=env)
    deadline = time.monotonic() + 300
    while not mark.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    os.kill(int(mark.read_text()), signal.SIGKILL)  # the worker, in the middle of fold 0
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    starts = [line.split()[1] for line in log.read_text().splitlines()]
    assert starts.count("0") == 2 and starts.count("1") == 1, starts  # Ray ran fold 0 again, and only it
    assert _outputs(tmp_path / "out") == local_result


def test_sigterm_cancels_the_folds_keeps_what_finished_and_exits_4(tmp_path):
    args = [
        "run",
        "--demo",
        "--folds",
        "3",
        "--epochs",
        "40",
        "--hidden",
        "64",
        "--executor",
        "ray",
        "--set",
        "executor.cpus_per_fold=2",
        "--output-dir",
        "out",
    ]  # one fold at a time on 2 CPUs
    proc = start(*args, cwd=tmp_path)
    deadline = time.time() + 300
    while not list((tmp_path / "out").glob("runs/*/folds/fold-0.json")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4 and "Traceback" not in err
    (run_id,) = run_folders.list_runs(tmp_path / "out")
    rec = record.read(tmp_path / "out" / "runs" / run_id)
    assert rec.status == "interrupted" and 0 in [f.index for f in rec.folds]
    assert f"digits train --resume {run_id}" in err
    _eventually(lambda: not _fold_workers(), "a fold kept training after the driver stopped")


def test_an_unreachable_cluster_is_one_line_within_the_timeout(tmp_path):
    with socket.socket() as held:  # bound, never listening: refused for sure, and no one else can take the port
        held.bind(("127.0.0.1", 0))
        port = int(held.getsockname()[1])
        _unreachable(tmp_path, port)


def _unreachable(tmp_path: Path, port: int) -> None:
    t = time.monotonic()
    r = digits(
        "run",
        *SMALL,
        "--executor",
        "ray",
        "--ray-address",
        f"127.0.0.1:{port}",
        "--output-dir",
        "out",
        "--set",
        "executor.connect_timeout=5",
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 7 and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in error_line(r)
    assert time.monotonic() - t < 60


def test_sweep_trains_two_variants_on_ray_and_prints_the_comparison(tmp_path):
    variants = tmp_path / "variants.toml"
    variants.write_text("[variants.narrow]\nmodel.hidden = [32]\n\n[variants.wide]\nmodel.hidden = [96]\n")
    write_demo(tmp_path / "out" / "data")
    r = digits(
        "sweep",
        str(variants),
        "--model",
        "mlp",
        "--data-dir",
        "out/data",
        "--output-dir",
        "out",
        "--folds",
        "2",
        "--epochs",
        "2",
        "--executor",
        "ray",
        cwd=tmp_path,
        timeout=RAY_TIMEOUT,
    )
    assert r.returncode == 0, r.stderr
    ids = run_folders.list_runs(tmp_path / "out")
    recs = [record.read(tmp_path / "out" / "runs" / i) for i in ids]
    assert [r.variant for r in recs] == ["narrow", "wide"] and len({r.sweep for r in recs}) == 1
    assert [r.config.model.hidden for r in recs] == [(32,), (96,)] and all(r.status == "complete" for r in recs)
    assert all(i in r.stdout for i in ids) and "model.hidden" in r.stdout
    assert recs[0].config.train.seed == recs[1].config.train.seed  # one seed: the comparison is paired


def test_tracked_in_mlflow_the_driver_logs_each_folds_epochs_when_the_fold_comes_back(tmp_path):
    """Only the driver talks to MLflow (pipeline.nightly.tracking): here, so Ray tests never run two clusters at once."""
    mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed: pip install -e '.[mlflow]'")
    r = digits("run", *SMALL, "--executor", "ray", "--mlflow", "--output-dir", "out", cwd=tmp_path, timeout=RAY_TIMEOUT)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    (run_id,) = run_folders.list_runs(tmp_path / "out")
    rec = record.read(tmp_path / "out" / "runs" / run_id)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digit-recognizer")
    runs = client.search_runs([experiment.experiment_id], f"tags.`digits.run_id` = '{run_id}'")
    folds = {int(f.data.tags["digits.fold"]): f for f in runs if "digits.fold" in f.data.tags}
    assert len(runs) == 1 + 2 and sorted(folds) == [f.index for f in rec.folds]
    for fold in rec.folds:
        logged = client.get_metric_history(folds[fold.index].info.run_id, "val_accuracy")
        assert [(m.step, m.value) for m in logged] == list(enumerate(fold.history["val_accuracy"], start=1))
        assert len({m.timestamp for m in logged}) == 1  # all at once, with the fold's result: the worker logged none
