import os
import sys

import pytest

pytest_plugins = ["tests.slow_drip", "tests.fake_kaggle", "tests.notify_receiver"]


@pytest.fixture(autouse=True)
def no_tracking_uri_leaks_between_tests():
    """`mlflow.set_tracking_uri` also sets MLFLOW_TRACKING_URI in os.environ (so subprocesses inherit it).

    A test that calls it would send every later `digits` subprocess of the same pytest worker to its
    database: CI's Ray test found its night logged into another test's store.  Each test starts clean.
    """
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(None)  # also unsets the variable
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def pytest_configure(config):
    """Each pytest-xdist worker keeps to a core of its own, as do the `digits` processes its tests start.

    Two workers on two cores each starting `digits` with ``executor.workers = auto`` (one worker process per
    core) ran four TensorFlow processes on two cores, each importing TensorFlow first: the suite took 20
    minutes instead of 12.  Pinned, ``auto`` is one, so folds train in the test's own `digits` process; the
    tests of worker processes (tests/training/test_workers.py, the Ctrl-C burst) ask for two explicitly.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[int(worker[2:]) % len(cpus)]})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter stays out of the output
    # Folds that train in the test's own process (CliRunner) take the default thread count, and TensorFlow
    # fixes its pools at its first op: a test that builds a model directly must not fix them at its own.
    from pipeline.core.config import TrainConfig
    from pipeline.training.fold import configure_threads

    configure_threads(TrainConfig().threads)
