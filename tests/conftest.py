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
