"""Never stuck on the network: every outside call has a total deadline, and SIGTERM ends a command within 10 s.

The outside is a server that answers every request with its headers and
then one byte a second (`tests.slow_drip`): no connect or read timeout ever
fires against it.  Against it, each command that talks to MLflow, Apprise,
Kaggle or Ray ends within its deadline with its one line and documented
exit code, and a SIGTERM sent while it waits ends it within 10 seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import TINY, digits, error_line, start
from tests.runfactory import make_run

pytestmark = pytest.mark.slow

STOP_WITHIN = 10.0  # seconds from SIGTERM to the process's end, whatever it waits on


def _stop_while_waiting(p: subprocess.Popen, drip, settle: float = 1.5) -> tuple[int, str, float]:
    """Once the command is waiting on the drip, SIGTERM it: its exit code, its stderr, and how long it took to end."""
    drip.wait_for_request()
    time.sleep(settle)  # well inside the wait, not at its start
    assert p.poll() is None, p.communicate()[1]
    p.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        pytest.fail(f"SIGTERM did not end the command within 60 s:\n{err}")
    return p.returncode, err, time.monotonic() - sent


# ---- MLflow ------------------------------------------------------------------------------------------------

# MLflow's own settings, small: one attempt of 3 s a request.  A drip never trips the 3 s read timeout.
QUICK_MLFLOW = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
}


@pytest.fixture
def no_mlflow_settings(monkeypatch):
    for name in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(name)


def test_a_dripping_mlflow_server_costs_a_tracked_night_one_warning_not_the_night(
    tmp_path, slow_drip, no_mlflow_settings
):
    pytest.importorskip("mlflow")
    t = time.monotonic()
    r = digits(
        "run", "--demo", *TINY, "--mlflow", cwd=tmp_path, timeout=400,
        env={"MLFLOW_TRACKING_URI": slow_drip.url, **QUICK_MLFLOW},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if "warning: MLflow tracking" in line]
    assert len(warned) == 1 and "no answer within" in warned[0] and slow_drip.url in warned[0], r.stderr
    assert "Traceback" not in r.stderr
    assert (tmp_path / "demo" / "submissions" / "submission.csv").is_file()
    assert time.monotonic() - t < 300


def test_sigterm_while_mlflow_drips_ends_a_night_within_10_s_with_exit_4(tmp_path, slow_drip, no_mlflow_settings):
    pytest.importorskip("mlflow")
    p = start("run", "--demo", *TINY, "--mlflow", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": slow_drip.url})
    code, err, took = _stop_while_waiting(p, slow_drip)
    assert code == 4 and took < STOP_WITHIN, (took, err)
    assert "interrupted" in error_line(subprocess.CompletedProcess([], code, "", err))


def _runs(out: Path) -> None:
    make_run(out, "20261101-233000")
    make_run(out, "20261102-233000")


def test_mlflow_sync_against_a_dripping_server_is_one_line_and_exit_6_within_its_deadline(
    tmp_path, slow_drip, no_mlflow_settings
):
    pytest.importorskip("mlflow")
    _runs(tmp_path)
    t = time.monotonic()
    r = digits("mlflow-sync", "--uri", slow_drip.url, cwd=tmp_path, timeout=90, env=QUICK_MLFLOW)
    assert r.returncode == 6, r.stderr
    line = error_line(r)
    assert f"cannot write to MLflow at {slow_drip.url}" in line and "no answer within" in line, line
    assert time.monotonic() - t < 60


def test_sigterm_while_mlflow_sync_waits_ends_it_within_10_s_with_exit_4(tmp_path, slow_drip, no_mlflow_settings):
    pytest.importorskip("mlflow")
    _runs(tmp_path)
    p = start("mlflow-sync", "--uri", slow_drip.url, cwd=tmp_path)
    code, err, took = _stop_while_waiting(p, slow_drip)
    assert code == 4 and took < STOP_WITHIN, (took, err)
    assert "interrupted" in error_line(subprocess.CompletedProcess([], code, "", err))


# ---- Apprise -----------------------------------------------------------------------------------------------


def _failing_night(notify_url: str, *extra: str) -> list[str]:
    """A night that fails at once (no data: exit 1) and so notifies."""
    return ["run", "--offline", "--data-dir", "nothere", "--notify", notify_url, *extra]


def test_a_notification_to_a_dripping_receiver_is_one_warning_within_notify_timeout(tmp_path, slow_drip):
    pytest.importorskip("apprise")
    t = time.monotonic()
    url = f"json://127.0.0.1:{slow_drip.port}/night"
    r = digits(*_failing_night(url, "--set", "notify.timeout=3"), cwd=tmp_path, timeout=120)
    assert r.returncode == 1 and "data directory not found" in error_line(r)
    assert "warning: notification not sent: no answer within 3 s" in r.stderr, r.stderr
    assert slow_drip.requests and time.monotonic() - t < 60


def test_sigterm_while_notifying_of_a_failure_ends_within_10_s_with_the_failures_code(tmp_path, slow_drip):
    pytest.importorskip("apprise")
    p = start(*_failing_night(f"json://127.0.0.1:{slow_drip.port}/night"), cwd=tmp_path)
    code, err, took = _stop_while_waiting(p, slow_drip)
    assert code == 1 and took < STOP_WITHIN, (took, err)
    assert "warning: notification not sent: interrupted" in err and "Traceback" not in err


def test_a_second_sigterm_while_notifying_of_an_interrupted_night_ends_it_within_10_s(tmp_path, slow_drip):
    """The first SIGTERM stops the training (exit 4) and the night notifies; a second one stops the notifying."""
    pytest.importorskip("apprise")
    url = f"json://127.0.0.1:{slow_drip.port}/night"
    p = start("run", "--demo", *TINY, "--notify", url, cwd=tmp_path)
    assert p.stderr is not None
    while "demo: wrote" not in (line := p.stderr.readline()):  # signals are handled from here on
        assert line, p.communicate()[1]
    p.send_signal(signal.SIGTERM)
    code, err, took = _stop_while_waiting(p, slow_drip)
    assert code == 4 and took < STOP_WITHIN, (took, err)
    assert "warning: notification not sent: interrupted" in err and "Traceback" not in err


# ---- Kaggle ------------------------------------------------------------------------------------------------

QUICK_KAGGLE = {"DIGITS_TEST_KAGGLE_TIMEOUT": "2"}  # tests/kaggle_site: every Kaggle timeout 2 s, backoff short


@pytest.mark.parametrize("method", ["ListDataFiles", "DownloadDataFiles", "zip"])
def test_download_from_a_dripping_kaggle_is_one_line_and_exit_3_within_its_deadline(fake_kaggle, tmp_path, method):
    fake_kaggle.drip(method)
    t = time.monotonic()
    r = digits("download", "--data-dir", "d", cwd=tmp_path, timeout=120, env=QUICK_KAGGLE)
    assert r.returncode == 3, r.stderr
    assert "Kaggle did not answer within 2s while" in error_line(r), r.stderr
    assert time.monotonic() - t < 60
    assert not (tmp_path / "d" / "train.csv").exists()


def _submission(tmp_path: Path) -> Path:
    path = tmp_path / "mine.csv"
    path.write_text("ImageId,Label\n" + "".join(f"{i},{i % 10}\n" for i in range(1, 13)))
    return path


@pytest.mark.parametrize(
    "method, code, says",
    [
        ("StartSubmissionUpload", 3, "Kaggle did not answer within 2s while starting the upload"),
        ("upload", 3, "Kaggle did not answer within 2s while uploading mine.csv"),
        ("CreateSubmission", 3, "the submission may have been made all the same"),
        ("GetSubmission", 0, "see it on Kaggle later"),  # submitted; its score is for a later night to fill in
    ],
)
def test_submit_to_a_dripping_kaggle_ends_within_its_deadline(fake_kaggle, tmp_path, method, code, says):
    fake_kaggle.drip(method)
    t = time.monotonic()
    r = digits("submit", str(_submission(tmp_path)), "-m", "drip", cwd=tmp_path, timeout=120, env=QUICK_KAGGLE)
    assert r.returncode == code, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert time.monotonic() - t < 60


def test_a_night_whose_list_of_submissions_drips_warns_and_goes_on(fake_kaggle, tmp_path):
    fake_kaggle.drip("ListSubmissions")
    t = time.monotonic()
    r = digits("run", "--data-dir", "d", *TINY, cwd=tmp_path, timeout=300, env=QUICK_KAGGLE)
    assert r.returncode == 0, r.stderr
    assert "warning: Kaggle did not answer within 2s while listing the submissions" in r.stderr, r.stderr
    assert time.monotonic() - t < 240


def test_sigterm_while_kaggle_drips_ends_the_download_within_10_s_with_exit_4(fake_kaggle, tmp_path):
    fake_kaggle.drip("ListDataFiles")
    p = start("download", "--data-dir", "d", cwd=tmp_path)
    while not fake_kaggle.calls:  # the request has reached the fake: the client waits on the drip
        assert p.poll() is None, p.communicate()[1]
        time.sleep(0.1)
    time.sleep(1.5)
    p.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 4 and time.monotonic() - sent < STOP_WITHIN, err
    assert "interrupted" in error_line(subprocess.CompletedProcess([], 4, "", err))


# ---- Ray ---------------------------------------------------------------------------------------------------

RAY_NIGHT = ["run", "--demo", *TINY, "--executor", "ray", "--output-dir", "out"]


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_ray_head_that_accepts_and_never_answers_is_one_line_and_exit_7_within_connect_timeout(
    tmp_path, slow_drip, scheme
):
    pytest.importorskip("ray")
    address = f"{scheme}127.0.0.1:{slow_drip.port}"
    t = time.monotonic()
    r = digits(*RAY_NIGHT, "--ray-address", address, "--set", "executor.connect_timeout=5", cwd=tmp_path, timeout=120)
    assert r.returncode == 7, r.stderr
    assert f"cannot reach the Ray cluster at {address}" in error_line(r) and "within 5s" in error_line(r)
    assert time.monotonic() - t < 60


def test_sigterm_while_ray_init_waits_on_a_head_ends_the_night_within_10_s_with_exit_4(tmp_path, slow_drip):
    pytest.importorskip("ray")
    p = start(*RAY_NIGHT, "--ray-address", f"127.0.0.1:{slow_drip.port}", cwd=tmp_path)
    assert p.stderr is not None
    while "data: " not in (line := p.stderr.readline()):  # ray.init comes right after the data is loaded
        assert line, p.communicate()[1]
    time.sleep(5)
    p.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 4 and time.monotonic() - sent < STOP_WITHIN, err
    runs = tmp_path / "out" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # a cluster never reached costs no run folder


def test_sigterm_while_a_local_ray_starts_is_exit_4_and_one_line(tmp_path):
    """ray.init replaces SIGTERM's handler with sys.exit while it starts: that stop was exit 15 and no line."""
    pytest.importorskip("ray")
    p = start(*RAY_NIGHT, cwd=tmp_path)
    assert p.stderr is not None
    while "data: " not in (line := p.stderr.readline()):
        assert line, p.communicate()[1]
    time.sleep(4)  # importing Ray, then ray.init starting a Ray of our own
    p.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 4 and time.monotonic() - sent < STOP_WITHIN, err
    assert "interrupted" in error_line(subprocess.CompletedProcess([], 4, "", err))
