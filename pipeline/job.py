"""The nightly job: each stage wired in order, one call each.

    download -> load/validate -> folds -> executor(train_fold) -> ensemble -> submission -> report

`train`, `predict`, `nightly` and `submit` are what the CLI commands call.
The output directory's lock is held by whatever writes runs or submissions.
SIGTERM is turned into the same clean stop as Ctrl-C: finished folds stay
saved, the report says "interrupted", and the exit code is 4.
"""

from __future__ import annotations

import contextlib
import platform
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline import config as cfg
from pipeline import data as data_mod
from pipeline import ensemble, files, folds, runs, submission
from pipeline.errors import BadInputError, DigitsError, InterruptedRun, KaggleError
from pipeline.progress import Progress

DEMO_OVERRIDES = {
    "train": {"folds": 3, "epochs": 30, "batch_size": 64, "early_stopping": 0},
    "model": {"hidden": (256, 128)},
}


def demo_config(config: cfg.Config) -> cfg.Config:
    """The demo's small data and short training, unless the user set them explicitly."""
    return cfg.build(overrides=DEMO_OVERRIDES, base=config)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM (cron timeouts, `kill`) stop a run as cleanly as Ctrl-C does."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. a test runner's worker)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def code_version() -> str:
    """The git commit of this code (``-dirty`` when modified), else the package version."""
    from pipeline import __version__

    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if sha.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=5
            )
            return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "pandas", "pyarrow", "scikit-learn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _find_resumable(config: cfg.Config, data: data_mod.Dataset) -> Path | None:
    """The newest unfinished run with this exact config and data, if any."""
    want = cfg.to_dict(config)
    for run_id in reversed(runs.list_runs(config.output_dir)):
        run_dir = runs.runs_root(config.output_dir) / run_id
        try:
            report = runs.read_report(run_dir)
        except DigitsError:
            continue
        if report.get("status") in ("running", "interrupted", "failed") and _same_inputs(report, want, data):
            return run_dir
    return None


def _same_inputs(report: dict, config_dict: dict, data: data_mod.Dataset) -> bool:
    return cfg.diff(report.get("config", {}), config_dict) == {} and report.get("data") == data.files


def train(
    config: cfg.Config,
    progress: Progress | None = None,
    resume: str | bool | None = None,
    hold_lock: bool = True,
) -> Path:
    """Train every fold of a new run (or finish an interrupted one); returns the run folder.

    `resume`: a run id/path to finish, or True for "the newest unfinished run
    with the same config and data, else a new run".
    """
    progress = progress or Progress()
    lock = runs.Lock(config.output_dir) if hold_lock else contextlib.nullcontext()
    with lock, _sigterm_as_interrupt():
        stage: dict[str, float] = {}
        t = time.perf_counter()
        data = data_mod.load(config.data.dir, config.train.folds, log=progress.warn)
        stage["load"] = round(time.perf_counter() - t, 3)
        progress.info(f"data: {len(data.y):,} training rows, {len(data.x_test):,} test rows from {config.data.dir}")

        run_dir = _resume_target(config, data, resume, progress)
        if run_dir is None:
            run_id, run_dir = runs.new_run(config.output_dir)
            report = {
                "schema_version": runs.SCHEMA_VERSION,
                "run_id": run_id,
                "status": "running",
                "started_at": runs.now(),
                "finished_at": None,
                "code_version": code_version(),
                "data": data.files,
                "config": cfg.to_dict(config),
                "folds": [],
                "stage_seconds": stage,
                "versions": library_versions(),
                "submission": None,
                "leaderboard": None,
            }
            runs.write_report(run_dir, report)
            _write_config_toml(run_dir, config)
            progress.info(
                f"run {run_id}: {config.train.folds} folds x {config.train.epochs} epochs, MLP {'-'.join(map(str, config.model.hidden))}"
            )
        else:
            report = runs.update_report(run_dir, status="running")
            report.setdefault("stage_seconds", {})["load"] = stage["load"]
            stage = report["stage_seconds"]

        from pipeline import train as train_mod

        tasks = folds.make_tasks(config, data.y, str(run_dir))
        done = {r.index: r for r in (train_mod.load_fold(run_dir, t.index) for t in tasks) if r is not None}
        todo = [t for t in tasks if t.index not in done]
        progress.start_folds(len(tasks), config.train.epochs, skipped=len(done))

        def on_result(result) -> None:
            done[result.index] = result
            progress.fold_done(result)
            _store_folds(run_dir, report, done)

        t = time.perf_counter()
        try:
            from pipeline.executor import run_in_process

            run_in_process(todo, data, on_epoch=progress.epoch, on_result=on_result)
        except KeyboardInterrupt:
            progress.close()
            report["status"] = "interrupted"
            report["finished_at"] = runs.now()
            runs.write_report(run_dir, report)
            raise InterruptedRun(
                f"interrupted after {len(done)} of {len(tasks)} folds; run {report['run_id']} is saved: "
                f"`digits train --resume {report['run_id']}` (or `digits run --resume`) trains only the rest"
            ) from None
        except BaseException:
            progress.close()
            report["status"] = "failed"
            report["finished_at"] = runs.now()
            with contextlib.suppress(DigitsError):
                runs.write_report(run_dir, report)
            raise
        progress.close()
        stage["train"] = round(stage.get("train", 0) + time.perf_counter() - t, 3)

        t = time.perf_counter()
        results = [done[k] for k in sorted(done)]
        summary = _ensemble_stage(run_dir, data, results)
        stage["ensemble"] = round(time.perf_counter() - t, 3)

        accs = [r.val_accuracy for r in results]
        report.update(summary)
        report.update(
            status="complete",
            finished_at=runs.now(),
            fold_accuracy_mean=float(np.mean(accs)),
            fold_accuracy_std=float(np.std(accs)),
            seconds=round(sum(stage.values()), 3),
        )
        runs.write_report(run_dir, report)
        progress.info(
            f"run {report['run_id']}: out-of-fold accuracy {summary['oof_accuracy']:.4%} "
            f"(folds {np.mean(accs):.4%} ± {np.std(accs):.4%})"
        )
        return run_dir


def _ensemble_stage(run_dir: Path, data: data_mod.Dataset, results: list) -> dict:
    """Soft-vote the folds; save out-of-fold and test probabilities and the OOF mistakes for reports."""
    oof = ensemble.out_of_fold(len(data.y), [(r.val_idx, r.val_proba) for r in results])
    pred = oof.argmax(axis=1)
    wrong = np.flatnonzero(pred != data.y)
    files.write_npz(run_dir / "oof.npz", labels=data.y, proba=oof)
    files.write_npz(
        run_dir / "misclassified.npz", images=data.x[wrong], true=data.y[wrong], pred=pred[wrong], index=wrong
    )
    with files.atomic_path(run_dir / "test_proba.npy") as tmp:
        np.save(tmp, ensemble.soft_vote([r.test_proba for r in results]), allow_pickle=False)
    return ensemble.summarise(data.y, oof)


def _resume_target(
    config: cfg.Config, data: data_mod.Dataset, resume: str | bool | None, progress: Progress
) -> Path | None:
    if not resume:
        return None
    if resume is True:
        run_dir = _find_resumable(config, data)
        if run_dir is None:
            progress.info("no unfinished run with this config and data; starting a new run")
        return run_dir
    run_dir = runs.resolve(config.output_dir, str(resume))
    report = runs.read_report(run_dir)
    if report.get("status") == "complete":
        raise BadInputError(f"run {report['run_id']} is already complete; nothing to resume")
    if not _same_inputs(report, cfg.to_dict(config), data):
        changed = ", ".join(cfg.diff(report.get("config", {}), cfg.to_dict(config))) or "the data files"
        raise BadInputError(
            f"run {report['run_id']} used a different config or data ({changed}); resume it with its own config: --config {run_dir / 'config.toml'}"
        )
    return run_dir


def _store_folds(run_dir: Path, report: dict, done: dict) -> None:
    report["folds"] = [done[k].summary() for k in sorted(done)]
    runs.write_report(run_dir, report)


def _write_config_toml(run_dir: Path, config: cfg.Config) -> None:
    import tomli_w

    data = cfg.to_dict(config)
    files.write_text(
        run_dir / "config.toml", "# the config this run used; reuse it with --config\n" + tomli_w.dumps(data)
    )


def predict(
    output_dir: str | Path,
    run: str = "latest",
    data_dir: str | None = None,
    progress: Progress | None = None,
    hold_lock: bool = True,
) -> Path:
    """Soft-vote the run's folds on test.csv; write ``submissions/<run-id>.csv`` and ``submission.csv``.

    Reuses the test probabilities saved at training time when test.csv is
    unchanged; otherwise loads each fold model and predicts again.
    """
    progress = progress or Progress()
    lock = runs.Lock(output_dir) if hold_lock else contextlib.nullcontext()
    with lock:
        run_dir = runs.resolve(output_dir, run)
        report = runs.read_report(run_dir)
        if report.get("status") != "complete":
            raise BadInputError(
                f"run {report['run_id']} is {report.get('status')}, not complete; finish it with `digits train --resume {report['run_id']}`"
            )
        t = time.perf_counter()
        data_dir = Path(data_dir or report["config"]["data"]["dir"])
        test_path = data_dir / "test.csv"
        x_test, digest = data_mod.load_array(test_path, data_mod.TEST_COLUMNS, log=progress.warn)
        saved = run_dir / "test_proba.npy"
        proba = None
        if digest == report.get("data", {}).get("test.csv", {}).get("sha256") and saved.is_file():
            try:
                proba = np.load(saved, allow_pickle=False)
                if proba.shape != (len(x_test), 10):
                    proba = None
            except (OSError, ValueError, EOFError):
                progress.warn(f"{saved} is unreadable; predicting with the fold models instead")
                proba = None
        if proba is None:
            from pipeline.train import fold_paths, predict_models

            models = [fold_paths(run_dir, f["index"])["keras"] for f in report["folds"]]
            missing = [str(m) for m in models if not m.is_file()]
            if missing or not models:
                raise BadInputError(
                    f"{missing[0] if missing else run_dir}: fold model missing; cannot predict with this run"
                )
            proba = predict_models(models, x_test)
        labels = proba.argmax(axis=1)
        out_dir = Path(output_dir) / runs.SUBMISSIONS
        own = out_dir / f"{report['run_id']}.csv"
        digest = submission.write(own, labels)
        submission.validate_file(own, expected_rows=len(x_test))
        latest = out_dir / "submission.csv"
        files.write_bytes(latest, own.read_bytes())
        report.setdefault("stage_seconds", {})["predict"] = round(time.perf_counter() - t, 3)
        report["submission"] = {"path": str(own), "sha256": digest, "rows": int(len(labels))}
        runs.write_report(run_dir, report)
        progress.info(f"submission: {latest} ({len(labels):,} rows, from run {report['run_id']})")
        return latest


def nightly(
    config: cfg.Config,
    offline: bool = False,
    demo: bool = False,
    force_download: bool = False,
    resume: bool = False,
    submit_message: str | None = None,
    do_submit: bool = False,
    progress: Progress | None = None,
) -> Path:
    """The whole job: download (unless offline or demo), train, predict, optionally submit."""
    progress = progress or Progress()
    data_dir = Path(config.data.dir)
    if demo:
        if not (data_dir / "train.csv").is_file():
            data_mod.write_demo(data_dir)
            progress.info(f"demo: wrote a small competition from scikit-learn's digits to {data_dir}")
    elif not offline:
        from pipeline import fetch

        try:
            fetch.download(data_dir, config.data.competition, force=force_download, log=progress.info)
        except KaggleError as e:
            if force_download or not fetch.have_data(data_dir):
                raise
            progress.warn(f"{e}; continuing with the files already in {data_dir}")
    with runs.Lock(config.output_dir):
        run_dir = train(config, progress, resume=resume or None, hold_lock=False)
        path = predict(config.output_dir, str(run_dir), config.data.dir, progress, hold_lock=False)
    if do_submit:
        submit(config.output_dir, str(run_dir), submit_message, competition=config.data.competition, progress=progress)
    return path


def submit(
    output_dir: str | Path,
    target: str,
    message: str | None = None,
    competition: str | None = None,
    progress: Progress | None = None,
    wait: float = 600.0,
) -> dict:
    """Validate and upload a run's submission (or any file), wait for its score, record it in the run's report."""
    from pipeline import fetch

    progress = progress or Progress()
    path = Path(target)
    run_dir = None
    if not (path.is_file() and path.suffix == ".csv"):
        run_dir = runs.resolve(output_dir, target)
        report = runs.read_report(run_dir)
        if not report.get("submission"):
            raise BadInputError(
                f"run {report['run_id']} has no submission yet; run `digits predict {report['run_id']}` first"
            )
        path = Path(report["submission"]["path"])
        competition = competition or report["config"]["data"]["competition"]
        data_dir = Path(report["config"]["data"]["dir"])
        oof = report.get("oof_accuracy")
        message = message or f"digits run {report['run_id']}" + (f", CV {oof:.4%}" if oof is not None else "")
    else:
        data_dir = Path(cfg.Config().data.dir)
        message = message or f"digits submission {path.name}"
    competition = competition or cfg.Config().data.competition
    expected = None
    test_csv = data_dir / "test.csv"
    if test_csv.is_file():
        expected = len(data_mod.load_array(test_csv, data_mod.TEST_COLUMNS)[0])
    submission.validate_file(path, expected_rows=expected)
    result = fetch.submit(path, competition, message, wait=wait, log=progress.info)
    if run_dir is not None:
        result = {**result, "file": str(path)}
        runs.update_report(run_dir, leaderboard=result)
    score = result.get("public_score")
    progress.info(
        f"submitted {path}: " + (f"public score {score}" if score is not None else f"status {result.get('status')}")
    )
    return result
