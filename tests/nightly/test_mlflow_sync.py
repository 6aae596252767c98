"""Runs in MLflow without training: backfill with `digits mlflow-sync`, what a run becomes, faults, the tracker's events.

The runs are synthetic run folders (`tests.runfactory`); MLflow is the real
package on a SQLite file in the test's folder, read back with `MlflowClient`
and `mlflow.search_runs`.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.progress import Progress
from pipeline.nightly import mlflow_sync, tracking
from pipeline.store import record
from pipeline.store.record import Leaderboard, PlanChoice, SubmitDecision
from tests.helpers import digits, error_line
from tests.runfactory import blend_of, corrupt_report, make_run

mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed: pip install -e '.[mlflow]' (CI installs it)")

NIGHTS = [dt.datetime(2026, 11, 20 + i, 1, 30) for i in range(3)]


@pytest.fixture(scope="module")
def pristine_db(tmp_path_factory) -> Path:
    """An empty MLflow database, its tables made once: each test copies it rather than migrating its own."""
    path = tmp_path_factory.mktemp("pristine") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def out(tmp_path, pristine_db) -> Path:
    shutil.copyfile(pristine_db, tmp_path / "mlflow.db")
    return tmp_path


class Lines(Progress):
    """A `Progress` that keeps its lines."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None:
        self.lines.append(f"warning: {message}")


def sync(out: Path, *refs: str, force: bool = False) -> list[str]:
    """`digits mlflow-sync` in this process (the command itself runs in a subprocess once): its lines."""
    progress = Lines()
    assert tracking.sync(out, refs, None, force, progress) == uri_of(out)
    return progress.lines


@pytest.fixture(autouse=True)
def mlflow_env(monkeypatch):
    """No tracking URI from the outside; the bounds `connect` sets are undone after each test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name, value in mlflow_sync.BOUNDS.items():
        monkeypatch.setenv(name, value)


def nights(out: Path) -> list[Path]:
    """Three finished runs; the second submitted (a blend of the first two) with a score and the gate's reason."""
    dirs = [make_run(out, when, folds=3, epochs=4, seed=i, submission=True) for i, when in enumerate(NIGHTS)]
    record.update(
        dirs[1],
        blend=blend_of((dirs[1], 0.6, 0.97), (dirs[0], 0.4, 0.96), estimate=0.971),
        leaderboard=Leaderboard(status="complete", public_score=0.9712, ref=7, competition="digit-recognizer"),
        submit_decision=SubmitDecision(True, "no earlier submission was accepted by Kaggle"),
        plan=PlanChoice("mlp", "rotation", "the rotation's turn: mlp"),
    )
    return dirs


def uri_of(out: Path) -> str:
    return "sqlite:///" + (out.resolve() / "mlflow.db").as_posix()


def read_back(uri: str) -> tuple[dict, list, object]:
    """The parents by digits run id, the fold runs, and the client."""
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("digit-recognizer")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = {r.data.tags["digits.run_id"]: r for r in runs if "digits.fold" not in r.data.tags}
    assert len(parents) == len(runs) - sum("digits.fold" in r.data.tags for r in runs)  # one parent per run id
    return parents, [r for r in runs if "digits.fold" in r.data.tags], client


def histories(client, runs) -> dict[tuple[str, str], list[tuple[int, float]]]:
    return {
        (run.info.run_id, key): [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        for run in runs
        for key in run.data.metrics
    }


def test_mlflow_sync_logs_old_runs_and_a_second_call_adds_nothing(out):
    tmp_path = out
    dirs = nights(tmp_path)
    first = digits("mlflow-sync", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == uri_of(tmp_path)
    assert "3 run(s) logged, 0 unchanged" in first.stderr
    lines = first.stderr.splitlines()  # ours only: no MLflow or database chatter
    assert len(lines) == 4 and all(re.fullmatch(r"\d{4}-\d\d-\d\d [\d:]{8} mlflow: .*", line) for line in lines)
    parents, folds, client = read_back(uri_of(tmp_path))
    assert sorted(parents) == [d.name for d in dirs] and len(folds) == 9
    before = histories(client, [*parents.values(), *folds])

    assert "0 run(s) logged, 3 unchanged" in sync(tmp_path)[-1]
    parents2, folds2, client = read_back(uri_of(tmp_path))
    assert {r.info.run_id for r in [*parents2.values(), *folds2]} == {
        r.info.run_id for r in [*parents.values(), *folds]
    }
    assert histories(client, [*parents2.values(), *folds2]) == before

    assert "1 run(s) logged, 0 unchanged" in sync(tmp_path, dirs[0].name, force=True)[-1]  # again: no duplicate
    parents3, folds3, client = read_back(uri_of(tmp_path))
    assert len(parents3) == 3 and len(folds3) == 9
    assert histories(client, [*parents3.values(), *folds3]) == before
    assert (tmp_path / "mlartifacts").is_dir()  # beside the database, not in the working folder's ./mlruns
    assert not (tmp_path / "mlruns").exists()


def test_what_a_run_becomes_in_mlflow(out):
    tmp_path = out
    dirs = nights(tmp_path)
    sync(tmp_path)
    rec = record.read(dirs[1])
    mlflow.set_tracking_uri(uri_of(tmp_path))
    frame = mlflow.search_runs(
        experiment_names=["digit-recognizer"], filter_string=f"tags.`digits.run_id` = '{rec.run_id}'"
    )
    parent = frame[frame["tags.digits.fold"].isna()].iloc[0]
    assert parent["tags.mlflow.runName"] == rec.run_id and parent["status"] == "FINISHED"
    assert parent["start_time"].to_pydatetime() == dt.datetime.fromisoformat(rec.started_at)  # when it ran, not now
    # params: the resolved config, flattened, with the drawn seed and the recipe; not where results are sent
    assert parent["params.train.seed"] == str(rec.config.train.seed) and parent["params.model.kind"] == "mlp"
    assert parent["params.train.epochs"] == str(rec.config.train.epochs)
    assert parent["params.model.hidden"] == str(list(rec.config.model.hidden))
    assert not [c for c in frame.columns if c.startswith(("params.notify", "params.tracking"))]
    # metrics: per fold, out-of-fold, the blend's estimate and in-sample figure, the public score
    assert parent["metrics.oof_accuracy"] == rec.oof_accuracy
    assert [parent[f"metrics.fold_accuracy/{k}"] for k in range(3)] == [f.val_accuracy for f in rec.folds]
    assert parent["metrics.blend_estimate"] == 0.971 and parent["metrics.blend_in_sample_accuracy"] == 0.972
    assert parent["metrics.leaderboard_public_score"] == 0.9712 and parent["metrics.blend_runs"] == 2
    # tags: data hashes, versions, the submit decision and the plan, with their reasons
    assert parent["tags.digits.data.train.csv.sha256"] == rec.train_sha
    assert parent["tags.digits.version.tensorflow"] == rec.versions["tensorflow"]
    assert parent["tags.digits.submit.decision"] == "submitted"
    assert parent["tags.digits.submit.reason"] == "no earlier submission was accepted by Kaggle"
    assert parent["tags.digits.plan.reason"] == "the rotation's turn: mlp"
    assert parent["tags.digits.blend.members"] == f"{dirs[1].name} x0.60, {dirs[0].name} x0.40"
    # the folds: nested, one per fold, each epoch's metrics at step = epoch
    folds = frame[frame["tags.digits.fold"].notna()].sort_values("tags.digits.fold")
    assert list(folds["tags.mlflow.parentRunId"]) == [parent["run_id"]] * 3
    assert list(folds["tags.mlflow.runName"]) == ["fold-0", "fold-1", "fold-2"]
    client = mlflow.MlflowClient(uri_of(tmp_path))
    for (_, fold_run), fold in zip(folds.iterrows(), rec.folds):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            logged = [(m.step, m.value) for m in client.get_metric_history(fold_run["run_id"], key)]
            assert logged == list(enumerate(fold.history[key], start=1)), key
        assert fold_run["metrics.fold_val_accuracy"] == fold.val_accuracy
    # artifacts: the page, the config, the submission and the history plot; not the arrays or the models
    names = sorted(a.path for a in client.list_artifacts(parent["run_id"]))
    assert names == sorted(["report.html", "config.toml", f"{rec.run_id}.csv", "history.png"])
    where = Path(client.download_artifacts(parent["run_id"], "", str(tmp_path / "downloaded")))
    assert rec.run_id in (where / "report.html").read_text() and "<img" in (where / "report.html").read_text()
    assert (where / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (where / f"{rec.run_id}.csv").read_bytes() == (tmp_path / "submissions" / f"{rec.run_id}.csv").read_bytes()
    assert (where / "config.toml").read_text() == (dirs[1] / "config.toml").read_text()


def test_a_score_that_arrives_later_is_logged_into_the_run_that_was_submitted(out):
    tmp_path = out
    dirs = nights(tmp_path)
    sync(tmp_path)
    record.update(dirs[2], leaderboard=Leaderboard(status="complete", public_score=0.975, ref=8))
    later = sync(tmp_path)
    assert "1 run(s) logged, 2 unchanged" in later[-1]
    parents, folds, client = read_back(uri_of(tmp_path))
    assert parents[dirs[2].name].data.metrics["leaderboard_public_score"] == 0.975
    assert len(client.get_metric_history(parents[dirs[2].name].info.run_id, "oof_accuracy")) == 1
    assert "leaderboard_public_score" not in parents[dirs[0].name].data.metrics and len(folds) == 9


def test_a_running_run_is_left_to_its_command_unless_named(out):
    tmp_path = out
    make_run(tmp_path, NIGHTS[0], folds=3)
    running = make_run(tmp_path, NIGHTS[1], folds=3, folds_done=1, status="running")
    assert "1 run(s) logged, 0 unchanged, 1 still running (not logged)" in sync(tmp_path)[-1]
    assert f"mlflow: logged run {running.name}" in sync(tmp_path, running.name)
    parents, folds, _ = read_back(uri_of(tmp_path))
    assert parents[running.name].info.status == "RUNNING" and len(folds) == 4


def test_an_unreadable_report_is_one_warning_and_the_others_are_logged(out):
    tmp_path = out
    dirs = nights(tmp_path)
    corrupt_report(dirs[0])
    lines = sync(tmp_path)
    assert "2 run(s) logged" in lines[-1]
    (warning,) = [line for line in lines if line.startswith("warning")]
    assert warning.startswith(f"warning: {dirs[0] / 'report.json'}: report is corrupt")
    assert sorted(read_back(uri_of(tmp_path))[0]) == [d.name for d in dirs[1:]]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_an_unreachable_server_is_the_sync_commands_one_line_and_exit_6(tmp_path):
    nights(tmp_path)
    r = digits("mlflow-sync", "--uri", f"http://127.0.0.1:{_closed_port()}", cwd=tmp_path, timeout=120)
    assert r.returncode == 6
    assert "cannot write to MLflow at http://127.0.0.1:" in error_line(r) and "Connection refused" in r.stderr


def test_no_mlflow_installed_is_one_line_saying_what_to_install(tmp_path):
    nights(tmp_path)
    script = "import sys; sys.modules['mlflow'] = None; from pipeline.cli.main import main; sys.argv = ['digits', 'mlflow-sync']; main()"  # fmt: skip
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 6 and "pip install 'digits[mlflow]'" in error_line(r), r.stderr


def test_the_tracking_uri_is_the_configs_else_the_environments_else_a_database_beside_the_runs(tmp_path, monkeypatch):
    assert mlflow_sync.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert (
        mlflow_sync.artifact_root(mlflow_sync.tracking_uri(tmp_path)) == (tmp_path.resolve() / "mlartifacts").as_uri()
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert mlflow_sync.tracking_uri(tmp_path) == "http://mlflow.example:5000"
    assert mlflow_sync.tracking_uri(tmp_path, "sqlite:///team.db") == "sqlite:///team.db"
    assert mlflow_sync.artifact_root("http://mlflow.example:5000") is None  # a server keeps its own artifacts
    monkeypatch.chdir(tmp_path)
    assert mlflow_sync.artifact_root("sqlite:///sub/team.db") == (tmp_path.resolve() / "sub" / "mlartifacts").as_uri()


# ---- the tracker's events, in process ----------------------------------------------------------------


def _tracker(out: Path):
    from pipeline.core.progress import Progress
    from pipeline.nightly.tracking import Tracker

    progress = Progress()
    tracker = Tracker(out)
    progress.observers.append(tracker)
    return progress, tracker


def _result(fold):
    return type("Result", (), {"record": fold})()


def test_epochs_are_logged_as_they_come_and_a_remote_folds_epochs_when_it_comes_back(out):
    tmp_path = out
    run_dir = make_run(tmp_path, NIGHTS[0], folds=2, epochs=3)
    rec = record.read(run_dir)
    progress, _ = _tracker(tmp_path)
    task = type("Task", (), {"run_id": rec.run_id, "index": 0})()
    progress.run_started(run_dir, rec)
    for epoch in (1, 2, 3):  # fold 0 trains here: its epochs are heard
        progress.epoch(task, epoch, 3, {k: v[epoch - 1] for k, v in rec.folds[0].history.items()})
    progress.fold_done(_result(rec.folds[0]), run_dir=run_dir)
    progress.fold_done(_result(rec.folds[1]), run_dir=run_dir)  # fold 1 trained on Ray: its epochs come back with it
    progress.run_finished(run_dir, rec)
    assert progress.observers, "the tracker failed"
    parents, folds, client = read_back(uri_of(tmp_path))
    assert parents[rec.run_id].info.status == "FINISHED" and len(folds) == 2
    for fold_run in folds:
        fold = rec.folds[int(fold_run.data.tags["digits.fold"])]
        logged = client.get_metric_history(fold_run.info.run_id, "val_accuracy")
        assert [(m.step, m.value) for m in logged] == list(enumerate(fold.history["val_accuracy"], start=1))
    heard = next(f for f in folds if f.data.tags["digits.fold"] == "0")
    stamps = [m.timestamp for m in client.get_metric_history(heard.info.run_id, "loss")]
    assert stamps == sorted(stamps)

    # the run resumed, and fold 0 trained again (its files were damaged): a fresh fold run replaces the old one
    progress, _ = _tracker(tmp_path)
    progress.run_started(run_dir, rec)
    progress.epoch(task, 1, 3, {"loss": 9.0})
    parents, folds, client = read_back(uri_of(tmp_path))
    again = next(f for f in folds if f.data.tags["digits.fold"] == "0")
    assert len(folds) == 2 and again.info.run_id != heard.info.run_id and again.info.status == "RUNNING"
    assert [m.value for m in client.get_metric_history(again.info.run_id, "loss")] == [9.0]


@pytest.mark.slow  # waits for MLflow's 20 s SQLite busy timeout, on purpose
def test_a_locked_database_costs_the_tracker_one_warning_and_the_command_goes_on(out):
    tmp_path = out
    dirs = nights(tmp_path)
    sync(tmp_path)
    record.update(dirs[2], leaderboard=Leaderboard(status="complete", public_score=0.975, ref=8))  # something to log
    progress, tracker = _tracker(tmp_path)
    warned: list[str] = []
    progress.warn = warned.append  # type: ignore[method-assign]
    holder = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        progress.command_finished(tmp_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(warned) == 1 and "database is locked" in warned[0] and "mlflow-sync` catches up" in warned[0]
    assert tracker not in progress.observers
    progress.command_finished(tmp_path)  # dropped: hears nothing more
    assert len(warned) == 1
    assert "1 run(s) logged, 2 unchanged" in sync(tmp_path)[-1]  # the catch-up


def test_a_score_from_digits_submit_reaches_a_tracked_run_at_once(fake_kaggle, out, monkeypatch):
    from click.testing import CliRunner

    from pipeline.cli import cli

    fake_kaggle.score = 0.98765
    tracked = make_run(out, NIGHTS[0], folds=2, submission=True, config_overrides={"tracking": {"mlflow": True}})
    untracked = make_run(out, NIGHTS[1], folds=2, submission=True)
    monkeypatch.chdir(out)
    sync(out)
    assert CliRunner().invoke(cli, ["submit", tracked.name, "--wait", "5"]).exit_code == 0  # tracked by its config
    parents, _, _ = read_back(uri_of(out))
    assert parents[tracked.name].data.metrics["leaderboard_public_score"] == 0.98765
    assert CliRunner().invoke(cli, ["submit", untracked.name, "--wait", "5"]).exit_code == 0
    parents, _, _ = read_back(uri_of(out))
    assert "leaderboard_public_score" not in parents[untracked.name].data.metrics  # until the next tracked command
    assert CliRunner().invoke(cli, ["submit", untracked.name, "--wait", "5", "--mlflow"]).exit_code == 0
    parents, _, _ = read_back(uri_of(out))
    assert parents[untracked.name].data.metrics["leaderboard_public_score"] == 0.98765


def test_a_commands_catch_up_logs_its_tracked_runs_and_leaves_older_ones_to_mlflow_sync(out):
    older = make_run(out, NIGHTS[0], folds=2)  # trained before tracking was on
    tracked = make_run(
        out, NIGHTS[1], folds=2, config_overrides={"tracking": {"mlflow": True}}
    )  # its night failed to log
    progress, tracker = _tracker(out)
    progress.command_finished(out)
    assert tracker in progress.observers
    assert sorted(read_back(uri_of(out))[0]) == [tracked.name]
    assert "1 run(s) logged, 1 unchanged" in sync(out)[-1]  # the backfill
    record.update(older, leaderboard=Leaderboard(status="complete", public_score=0.9, ref=3))  # now it is in MLflow
    progress.command_finished(out)
    assert read_back(uri_of(out))[0][older.name].data.metrics["leaderboard_public_score"] == 0.9


@pytest.mark.parametrize("value", ["²", "٣", "1" * 5000, "x"])
def test_a_tag_that_is_no_ascii_number_is_ignored_not_a_traceback(out, value):
    """Tags are text anyone with the server can set: '²' passes isdigit() and fails int(); '٣' is read as 3."""
    dirs = nights(out)
    sync(out)
    parents, folds, client = read_back(uri_of(out))
    client.set_tag(folds[0].info.run_id, "digits.fold", value)
    client.set_tag(folds[1].info.run_id, mlflow_sync.EPOCHS_TAG, value)
    lines = sync(out, force=True)
    assert not [line for line in lines if line.startswith("warning")], lines
    parents, folds, _ = read_back(uri_of(out))
    assert sorted(parents) == sorted(d.name for d in dirs)
    fold_tags = sorted((r.data.tags["digits.run_id"], r.data.tags["digits.fold"]) for r in folds)
    assert tuple(sorted({f for _, f in fold_tags if f in ("0", "1", "2")})) == ("0", "1", "2")


IN_MEMORY = [
    "sqlite://",
    "sqlite:///",
    "sqlite:///:memory:",
    "sqlite+pysqlite:///",
    "sqlite:///?mode=memory",
    "sqlite:///file::memory:?uri=true",
    "sqlite:///file:night?mode=memory&uri=true",
]


@pytest.mark.parametrize("uri", IN_MEMORY)
def test_an_in_memory_database_is_refused_as_a_usage_error(tmp_path, uri, monkeypatch):
    """It logged "1 run(s) logged" into a database that was gone when the command ended."""
    from click.testing import CliRunner

    from pipeline.cli import cli
    from pipeline.core import config as cfg
    from pipeline.core.errors import UsageError

    make_run(tmp_path, NIGHTS[0])
    r = CliRunner().invoke(cli, ["mlflow-sync", "--output-dir", str(tmp_path), "--uri", uri])
    assert r.exit_code == 2, r.output
    assert error_line(r).startswith("digits: option --uri") and "memory" in error_line(r)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    r = CliRunner().invoke(cli, ["mlflow-sync", "--output-dir", str(tmp_path)])
    assert r.exit_code == 2 and error_line(r).startswith("digits: MLFLOW_TRACKING_URI"), r.output
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    night = tracking.tracked(cfg.TrackingConfig(mlflow=True, uri=uri), tmp_path, Progress())
    with pytest.raises(UsageError, match=r"\[tracking\] uri"), night:  # a night refuses it before it trains
        pytest.fail("the command ran")


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "sqlite:////tmp/x/mlflow.db", "http://127.0.0.1:5000"])
def test_a_database_file_or_a_server_is_no_in_memory_database(uri):
    assert not mlflow_sync.in_memory(uri)
