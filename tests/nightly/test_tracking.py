"""Nights tracked in MLflow, as cron runs them: live epochs, nested folds, a late score, a real server, faults, off.

Each night is a tiny `digits run` in a subprocess (`tests.helpers.TINY`);
MLflow is the real package, read back with `mlflow.search_runs` and
`MlflowClient`: from the default SQLite file beside the runs, and from a
real ``mlflow server`` started on loopback for the test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.nightly import mlflow_sync
from pipeline.store import record, run_folders
from pipeline.store.record import Leaderboard
from tests.helpers import ROOT, TINY, digits, write_competition

mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed: pip install -e '.[mlflow]' (CI installs it)")

pytestmark = pytest.mark.slow
CURVES = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


@pytest.fixture(scope="module", autouse=True)
def no_outside_tracking():
    """The nights' subprocesses see no tracking URI and no MLflow setting from the outside."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("MLFLOW_")]:
            mp.delenv(name)
        yield


def night(cwd: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    r = digits("run", "--offline", "--data-dir", "data", *TINY, *extra, cwd=cwd, env=env or {})
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """Two tracked nights (--mlflow, then [tracking] mlflow = true); between them the first night's score arrives."""
    cwd = tmp_path_factory.mktemp("tracked")
    write_competition(cwd / "data", n_train=300)
    first = night(cwd, "--mlflow")
    (first_id,) = run_folders.list_runs(cwd)
    record.update(cwd / "runs" / first_id, leaderboard=Leaderboard(status="complete", public_score=0.5, ref=1))
    second = night(cwd, "--set", "tracking.mlflow=true")
    ids = run_folders.list_runs(cwd)
    return cwd, ids, [record.read(cwd / "runs" / i) for i in ids], [first, second]


def runs_of(uri: str) -> tuple[dict, dict, object]:
    """Parents by digits run id, fold runs by (run id, fold index), and the client."""
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("digit-recognizer")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = {r.data.tags["digits.run_id"]: r for r in runs if "digits.fold" not in r.data.tags}
    folds = {(r.data.tags["digits.run_id"], int(r.data.tags["digits.fold"])): r for r in runs if "digits.fold" in r.data.tags}  # fmt: skip
    assert len(parents) + len(folds) == len(runs)  # no duplicates
    return parents, folds, client


def check_night(uri: str, rec: record.RunRecord, parents: dict, folds: dict, client) -> None:
    """One night, as MLflow shows it: the parent, its nested folds, their epochs, params, metrics, artifacts."""
    parent = parents[rec.run_id]
    assert parent.info.run_name == rec.run_id and parent.info.status == "FINISHED"
    assert parent.data.params["train.seed"] == str(rec.config.train.seed)  # the drawn seed
    assert parent.data.params["model.kind"] == "mlp" and parent.data.params["train.epochs"] == "2"
    assert parent.data.metrics["oof_accuracy"] == rec.oof_accuracy
    assert parent.data.metrics["blend_estimate"] == rec.submission_estimate
    assert parent.data.metrics["blend_in_sample_accuracy"] == rec.blend.in_sample_accuracy
    assert parent.data.tags["digits.data.train.csv.sha256"] == rec.train_sha
    assert parent.data.tags["digits.plan.reason"] == rec.plan.reason
    for fold in rec.folds:
        fold_run = folds[(rec.run_id, fold.index)]
        assert fold_run.data.tags["mlflow.parentRunId"] == parent.info.run_id and fold_run.info.status == "FINISHED"
        assert parent.data.metrics[f"fold_accuracy/{fold.index}"] == fold.val_accuracy
        for key in CURVES:
            logged = client.get_metric_history(fold_run.info.run_id, key)
            assert [(m.step, m.value) for m in logged] == list(enumerate(fold.history[key], start=1)), key
        stamps = [m.timestamp for m in client.get_metric_history(fold_run.info.run_id, "val_loss")]
        assert stamps[0] < stamps[1]  # logged as each epoch ended, not all at once afterwards
    names = sorted(a.path for a in client.list_artifacts(parent.info.run_id))
    assert names == sorted(["config.toml", "history.png", "report.html", f"{rec.run_id}.csv"])


def test_each_night_is_a_run_with_its_folds_nested_their_epochs_logged_live(tracked):
    cwd, ids, recs, _ = tracked
    uri = f"sqlite:///{cwd / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    frame = mlflow.search_runs(experiment_names=["digit-recognizer"])
    assert len(frame) == 2 + 2 * 2 and sorted(frame["tags.digits.run_id"].unique()) == ids
    assert sorted(frame.loc[frame["tags.digits.fold"].isna(), "tags.mlflow.runName"]) == ids
    parents, folds, client = runs_of(uri)
    for rec in recs:
        check_night(uri, rec, parents, folds, client)
    assert (cwd / "mlartifacts").is_dir() and not (cwd / "mlruns").exists()


def test_a_score_that_arrived_after_its_night_is_logged_by_the_next_one(tracked):
    cwd, ids, _, _ = tracked
    parents, _, _ = runs_of(f"sqlite:///{cwd / 'mlflow.db'}")
    assert parents[ids[0]].data.metrics["leaderboard_public_score"] == 0.5
    assert "leaderboard_public_score" not in parents[ids[1]].data.metrics


def test_a_tracked_night_prints_what_an_untracked_one_does(tracked):
    _, _, _, results = tracked
    for r in results:
        assert r.stdout.strip() == "submissions/submission.csv"  # no "View run" lines from MLflow
        assert "warning" not in r.stderr and "mlflow" not in r.stderr.lower(), r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path):
    """A real `mlflow server` on loopback, a free port, its own SQLite file and artifacts; stopped afterwards."""
    port = _free_port()
    where = tmp_path / "server"
    where.mkdir()
    log = (where / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{where / 'server.db'}", "--artifacts-destination", str(where / "artifacts")],
        cwd=where, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # its first start migrates the database: slow on a busy machine
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (where / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
        yield url, where
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the workers it started
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_a_night_through_a_real_mlflow_server(tmp_path, server):
    url, where = server
    write_competition(tmp_path / "data", n_train=300)
    r = night(tmp_path, "--mlflow", env={"MLFLOW_TRACKING_URI": url})
    assert r.stdout.strip() == "submissions/submission.csv" and "warning" not in r.stderr, r.stderr
    (run_id,) = run_folders.list_runs(tmp_path)
    rec = record.read(tmp_path / "runs" / run_id)
    parents, folds, client = runs_of(url)
    check_night(url, rec, parents, folds, client)
    assert not (tmp_path / "mlflow.db").exists()  # everything went to the server
    page = client.download_artifacts(parents[run_id].info.run_id, "report.html", str(tmp_path / "got"))
    assert run_id in Path(page).read_text()
    assert list((where / "artifacts").rglob("report.html"))  # stored by the server, where it keeps artifacts


def test_an_unreachable_tracking_server_warns_once_and_the_night_still_submits(tmp_path):
    write_competition(tmp_path / "data", n_train=300)
    r = night(tmp_path, "--mlflow", "--set", f"tracking.uri=http://127.0.0.1:{_free_port()}")
    assert (tmp_path / "submissions" / "submission.csv").is_file()
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, r.stderr
    assert "MLflow tracking: cannot write to MLflow at http://127.0.0.1:" in warnings[0]
    assert "Connection refused" in warnings[0] and "`digits mlflow-sync` catches up" in warnings[0]
    assert "Traceback" not in r.stderr and r.stdout.strip() == "submissions/submission.csv"


OFF = """
import json, sys
from pipeline.cli import cli
code = cli(sys.argv[1:], standalone_mode=False)
print(json.dumps({"code": code, "mlflow": sorted(m for m in sys.modules if m.split(".")[0] == "mlflow")}))
"""


def test_a_night_with_tracking_off_imports_no_mlflow(tmp_path):
    write_competition(tmp_path / "data", n_train=300)
    args = ["run", "--offline", "--data-dir", "data", *TINY]
    done = subprocess.run(
        [sys.executable, "-c", OFF, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["mlflow"] == [] and (tmp_path / "submissions" / "submission.csv").is_file()
    assert not (tmp_path / mlflow_sync.DB).exists() and not (tmp_path / mlflow_sync.ARTIFACTS).exists()
