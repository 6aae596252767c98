"""pipeline.kaggle_client against the fake Kaggle server (tests/fake_kaggle.py), through the real kaggle client."""

from __future__ import annotations

import base64
import email.utils
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import kaggle_client
from pipeline.core import atomic_files
from pipeline.core.errors import BadInputError, KaggleError, StorageError
from pipeline.kaggle_client import retry
from pipeline.kaggle_client.datadir import STALE_TMP_SECONDS
from pipeline.kaggle_client.downloads import NET_CHUNK
from tests.fake_kaggle import KEY, REAL_ZIP, TOKEN, USERNAME, competition_zip
from tests.helpers import ROOT, make_fifo

SECRETS = (KEY, TOKEN, base64.b64encode(f"{USERNAME}:{KEY}".encode()).decode())


class Log(list):
    """A `log` callable that keeps the lines (and checks each is one line)."""

    def __call__(self, line: str) -> None:
        assert isinstance(line, str) and "\n" not in line
        self.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self)


def temps(data_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(data_dir).rglob("*") if p.name.startswith(".fetch.") or ".tmp" in p.name)


def assert_secret_free(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def assert_failed_cleanly(err: pytest.ExceptionInfo, data_dir: Path, capsys, log: Log) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    assert temps(data_dir) == []
    out = capsys.readouterr()
    assert_secret_free(message, log.text, out.out, out.err)
    assert out.out == ""  # the kaggle client printed nothing
    return message


@functools.cache
def big_zip() -> bytes:
    """A zip several network chunks long, for the resume tests."""
    return competition_zip(n_train=800)[0]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def good_data(fake_kaggle, data_dir: Path) -> dict:
    """data_dir after a successful download, with its bytes kept for comparison."""
    kaggle_client.download(data_dir, log=Log())
    fake_kaggle.calls.clear()
    return {p.name: p.read_bytes() for p in data_dir.iterdir()}


def unchanged(data_dir: Path, before: dict) -> bool:
    return {p.name: p.read_bytes() for p in data_dir.iterdir()} == before


# ---- downloads -------------------------------------------------------------------------------


def test_download_installs_files_and_manifest(fake_kaggle, data_dir, capsys):
    log = Log()
    result = kaggle_client.download(data_dir, log=log)

    assert result["downloaded"] is True
    assert sorted(p.name for p in data_dir.iterdir()) == sorted([*kaggle_client.REQUIRED, kaggle_client.MANIFEST])
    assert (data_dir / "train.csv").read_text().startswith("label,pixel0,pixel1,")
    assert (data_dir / "test.csv").read_text().startswith("pixel0,pixel1,")
    assert (data_dir / "sample_submission.csv").read_text().startswith("ImageId,Label\n1,0\n")
    manifest = json.loads((data_dir / kaggle_client.MANIFEST).read_text())
    assert "downloaded" not in manifest
    assert {k: v for k, v in result.items() if k != "downloaded"} == manifest
    for name in kaggle_client.REQUIRED:
        assert manifest["files"][name]["size"] == (data_dir / name).stat().st_size
        assert manifest["files"][name]["sha256"] == atomic_files.sha256(data_dir / name)
    assert [f["name"] for f in manifest["kaggle_files"]] == sorted(kaggle_client.REQUIRED)
    assert manifest["zip"]["size"] == len(fake_kaggle.competitions["digit-recognizer"].zip)
    assert kaggle_client.have_data(data_dir)
    assert temps(data_dir) == []
    assert fake_kaggle.calls == ["ListDataFiles", "DownloadDataFiles"]
    assert set(fake_kaggle.auth) == {"basic"}
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert_secret_free(log.text, json.dumps(result))


def test_second_download_is_skipped_without_zip_bytes(fake_kaggle, data_dir, good_data):
    sent, requests_before = fake_kaggle.zip_bytes_sent, len(fake_kaggle.zip_requests)
    log = Log()
    result = kaggle_client.download(data_dir, log=log)
    assert result["downloaded"] is False
    assert fake_kaggle.zip_bytes_sent == sent and len(fake_kaggle.zip_requests) == requests_before
    assert fake_kaggle.calls == ["ListDataFiles"]
    assert "up to date" in log.text
    assert unchanged(data_dir, good_data)


def test_force_downloads_again(fake_kaggle, data_dir, good_data):
    sent = fake_kaggle.zip_bytes_sent
    result = kaggle_client.download(data_dir, force=True, log=None)
    assert result["downloaded"] is True
    assert fake_kaggle.zip_bytes_sent == 2 * sent
    assert unchanged(data_dir, {**good_data, kaggle_client.MANIFEST: (data_dir / kaggle_client.MANIFEST).read_bytes()})


def test_files_changed_on_kaggle_download_again(fake_kaggle, data_dir, good_data):
    fake_kaggle.touch()
    log = Log()
    assert kaggle_client.download(data_dir, log=log)["downloaded"] is True
    assert "changed" in log.text and len(fake_kaggle.zip_requests) == 2


def test_local_file_edited_in_place_is_downloaded_again(fake_kaggle, data_dir, good_data):
    path = data_dir / "test.csv"
    raw = bytearray(path.read_bytes())
    raw[-2] = ord("7") if raw[-2] != ord("7") else ord("8")
    path.write_bytes(bytes(raw))
    assert kaggle_client.have_data(data_dir)  # same size: the cheap check cannot tell...
    log = Log()
    assert kaggle_client.download(data_dir, log=log)["downloaded"] is True  # ...the hash can
    assert "test.csv changed" in log.text
    assert path.read_bytes() == good_data["test.csv"]


def test_have_data(fake_kaggle, data_dir, good_data):
    assert kaggle_client.have_data(data_dir)
    assert not kaggle_client.have_data(data_dir / "nowhere")
    (data_dir / "train.csv").write_bytes(b"label\n")
    assert not kaggle_client.have_data(data_dir)
    (data_dir / "train.csv").write_bytes(good_data["train.csv"])
    assert kaggle_client.have_data(data_dir)
    (data_dir / kaggle_client.MANIFEST).unlink()
    assert not kaggle_client.have_data(data_dir)


def test_files_without_manifest_are_not_trusted(fake_kaggle, data_dir):
    """What a killed run may leave: full-looking files (or our temporaries) but no manifest."""
    data_dir.mkdir()
    for name in kaggle_client.REQUIRED:
        (data_dir / name).write_text("half\n")
    stale = data_dir / ".fetch.train.csv.abc123.part"
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 2 * STALE_TMP_SECONDS,) * 2)
    assert not kaggle_client.have_data(data_dir)
    assert kaggle_client.download(data_dir, log=Log())["downloaded"] is True
    assert (data_dir / "train.csv").read_text().startswith("label,")
    assert temps(data_dir) == []


def test_real_competition_zip(fake_kaggle, data_dir):
    if not REAL_ZIP.is_file():
        pytest.skip(f"the real competition zip is absent ({REAL_ZIP}); ../shared is not mounted here")
    fake_kaggle.serve_zip(REAL_ZIP)
    result = kaggle_client.download(data_dir, log=Log())
    with zipfile.ZipFile(REAL_ZIP) as z:
        sizes = {i.filename: i.file_size for i in z.infolist()}
    assert {name: result["files"][name]["size"] for name in kaggle_client.REQUIRED} == {
        n: sizes[n] for n in kaggle_client.REQUIRED
    }
    assert fake_kaggle.zip_bytes_sent == REAL_ZIP.stat().st_size
    with open(data_dir / "train.csv") as f:
        assert f.readline().strip() == "label," + ",".join(f"pixel{i}" for i in range(784))
    with open(data_dir / "sample_submission.csv") as f:
        assert f.readline().strip() == "ImageId,Label"
    assert kaggle_client.download(data_dir, log=Log())["downloaded"] is False
    assert fake_kaggle.zip_bytes_sent == REAL_ZIP.stat().st_size


def test_64_bit_integers_arrive_as_json_strings(fake_kaggle, data_dir, tmp_path):
    """proto3 JSON sends int64 (totalBytes, ref) as strings, as the real API does; they come out as ints."""
    import requests

    raw = requests.post(
        f"{fake_kaggle.api_url}/v1/competitions.CompetitionApiService/ListDataFiles",
        json={"competitionName": "digit-recognizer"},
        auth=(USERNAME, KEY),
        timeout=10,
    ).json()
    assert {type(f["totalBytes"]) for f in raw["files"]} == {str}
    result = kaggle_client.download(data_dir, log=Log())
    sizes = dict(fake_kaggle.competitions["digit-recognizer"].files)
    assert {f["name"]: f["size"] for f in result["kaggle_files"]} == sizes
    assert kaggle_client.download(data_dir, log=Log())["downloaded"] is False  # the manifest's ints compare equal
    submitted = kaggle_client.submit(
        submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", wait=5, poll=0.05, log=Log()
    )
    assert type(submitted["ref"]) is int and submitted["ref"] in fake_kaggle.submissions


def test_a_file_list_of_many_pages_is_read_whole(fake_kaggle, data_dir):
    extra = {f"extra/part-{i}.csv": f"a,b\n{i},{i}\n".encode() for i in range(4)}
    fake_kaggle.serve_zip(competition_zip(members=extra)[0])
    fake_kaggle.page_size = 2  # 7 files: 4 pages
    result = kaggle_client.download(data_dir, log=Log())
    names = [f["name"] for f in result["kaggle_files"]]
    assert names == sorted([*kaggle_client.REQUIRED, *extra]) and len(names) == 7
    assert fake_kaggle.calls.count("ListDataFiles") == 4
    assert kaggle_client.download(data_dir, log=Log())["downloaded"] is False


# ---- what arrives is checked ----------------------------------------------------------------


def test_truncated_zip_is_deleted_and_downloaded_once_more(fake_kaggle, data_dir, capsys):
    fake_kaggle.truncate_zip(times=1)
    log = Log()
    assert kaggle_client.download(data_dir, log=log)["downloaded"] is True
    assert len(fake_kaggle.zip_requests) == 2
    assert "damaged" in log.text
    assert kaggle_client.have_data(data_dir) and temps(data_dir) == []


def test_zip_damaged_twice_fails_and_keeps_good_data(fake_kaggle, data_dir, good_data, capsys):
    fake_kaggle.corrupt_zip(times=2)
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, force=True, log=log)
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert "damaged twice" in message and err.value.exit_code == 3
    assert unchanged(data_dir, good_data)


def test_broken_off_download_resumes_with_range(fake_kaggle, data_dir):
    fake_kaggle.serve_zip(big_zip())
    size = len(fake_kaggle.competitions["digit-recognizer"].zip)
    cut = 3 * NET_CHUNK
    assert size > cut + NET_CHUNK
    fake_kaggle.drop_zip(after_bytes=cut)
    log = Log()
    assert kaggle_client.download(data_dir, log=log)["downloaded"] is True
    assert [r["status"] for r in fake_kaggle.zip_requests] == [200, 206]
    assert fake_kaggle.zip_requests[1]["range"] == f"bytes={cut}-"
    assert fake_kaggle.zip_bytes_sent == size  # nothing fetched twice
    assert "resuming" in log.text
    assert kaggle_client.have_data(data_dir) and temps(data_dir) == []


def test_stalled_download_times_out_and_resumes(fake_kaggle, data_dir):
    fake_kaggle.serve_zip(big_zip())
    fake_kaggle.drop_zip(after_bytes=2 * NET_CHUNK, stall=3)
    log = Log()
    assert kaggle_client.download(data_dir, timeout=0.3, log=log)["downloaded"] is True
    assert "timed out after 0.3s" in log.text
    assert [r["range"] for r in fake_kaggle.zip_requests] == [None, f"bytes={2 * NET_CHUNK}-"]


def test_server_ignoring_range_restarts_from_zero(fake_kaggle, data_dir):
    fake_kaggle.serve_zip(big_zip())
    size = len(fake_kaggle.competitions["digit-recognizer"].zip)
    fake_kaggle.ignore_ranges = True
    fake_kaggle.drop_zip(after_bytes=2 * NET_CHUNK)
    result = kaggle_client.download(data_dir, log=Log())
    assert [r["status"] for r in fake_kaggle.zip_requests] == [200, 200]
    assert result["zip"]["size"] == size and kaggle_client.have_data(data_dir) and temps(data_dir) == []


def test_zip_member_escaping_data_dir_is_refused(fake_kaggle, data_dir, tmp_path, capsys):
    evil, _ = competition_zip(members={"../escaped.csv": b"owned\n"})
    fake_kaggle.serve_zip(evil)
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, log=log)
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert "refusing" in message and "../escaped.csv" in message
    assert not (tmp_path / "escaped.csv").exists()
    assert sorted(p.name for p in data_dir.iterdir()) == []


def test_absolute_member_path_is_refused(fake_kaggle, data_dir):
    evil, _ = competition_zip(members={"/tmp/evil.csv": b"x\n"})
    fake_kaggle.serve_zip(evil)
    with pytest.raises(KaggleError, match="refusing"):
        kaggle_client.download(data_dir, log=Log())


def test_zip_without_a_required_file_is_refused(fake_kaggle, data_dir, good_data, capsys):
    partial, _ = competition_zip(members={"test.csv": None})
    fake_kaggle.serve_zip(partial)
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, force=True, log=log)
    assert "lacks test.csv" in assert_failed_cleanly(err, data_dir, capsys, log)
    assert unchanged(data_dir, good_data)


# ---- Kaggle says no ---------------------------------------------------------------------------


def test_bad_key_401(fake_kaggle, data_dir, monkeypatch, capsys):
    data_dir.mkdir()
    (data_dir / "train.csv").write_text("precious\n")
    monkeypatch.setenv("KAGGLE_KEY", KEY[::-1])
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, log=log)
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert "401" in message and "revokes the old one" in message and "KAGGLE_KEY" in message
    assert KEY[::-1] not in message
    assert (data_dir / "train.csv").read_text() == "precious\n"


def test_rules_not_accepted_403(fake_kaggle, data_dir, good_data, capsys):
    fake_kaggle.competitions["digit-recognizer"].rules_accepted = False
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, force=True, log=log)
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert "403" in message and "rules" in message and "kaggle.com/competitions/digit-recognizer/rules" in message
    assert unchanged(data_dir, good_data)


def test_misspelt_competition_404(fake_kaggle, data_dir, capsys):
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, "digit-recogniser", log=log)
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert "digit-recogniser" in message and "not found" in message and "spelling" in message
    assert fake_kaggle.calls == ["ListDataFiles"]  # not retried


@pytest.mark.parametrize("status, method", [(429, "ListDataFiles"), (500, "DownloadDataFiles"), (503, "zip")])
def test_transient_error_then_success(fake_kaggle, data_dir, status, method):
    fake_kaggle.fail(method, status, times=1, retry_after=0 if status == 429 else None)
    log = Log()
    assert kaggle_client.download(data_dir, log=log)["downloaded"] is True
    assert f"HTTP {status}" in log.text and "retry 1/3" in log.text
    assert kaggle_client.have_data(data_dir)


@pytest.mark.parametrize("status, words", [(429, "rate-limited"), (502, "server error")])
def test_persistent_error_gives_up_after_bounded_retries(fake_kaggle, data_dir, good_data, capsys, status, words):
    fake_kaggle.fail("ListDataFiles", status, times=None)
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, retries=2, log=log)
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert words in message and f"HTTP {status}" in message and "3 attempts" in message
    assert fake_kaggle.calls == ["ListDataFiles"] * 3
    assert unchanged(data_dir, good_data)


def http_date(seconds_from_now: float) -> str:
    return email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


def test_retry_after_as_a_date_is_honoured_up_to_backoff_max(fake_kaggle, data_dir, monkeypatch):
    monkeypatch.setattr(retry, "BACKOFF_MAX", 0.5)
    fake_kaggle.fail("ListDataFiles", 429, times=1, retry_after=http_date(3600))
    log = Log()
    began = time.monotonic()
    assert kaggle_client.download(data_dir, log=log)["downloaded"] is True
    assert "HTTP 429 while listing the data files of digit-recognizer; retry 1/3 in 0.5s" in log.text
    assert time.monotonic() - began >= 0.5


def test_retry_after_as_a_date_is_waited_for(fake_kaggle, data_dir, monkeypatch):
    monkeypatch.setattr(retry, "BACKOFF_MAX", 10.0)
    fake_kaggle.fail("DownloadDataFiles", 503, times=1, retry_after=http_date(2.5))
    fake_kaggle.fail("zip", 503, times=1, retry_after=http_date(-60))  # a date in the past: no extra wait
    log = Log()
    began = time.monotonic()
    assert kaggle_client.download(data_dir, log=log)["downloaded"] is True
    waits = [float(line.rsplit(" in ", 1)[1].rstrip("s")) for line in log if "; retry " in line]
    assert len(waits) == 2 and 1.0 <= waits[0] <= 3.0 and waits[1] <= 0.1
    assert time.monotonic() - began >= 1.0


def test_slow_server_hits_the_timeout(fake_kaggle, data_dir, capsys):
    fake_kaggle.delay("ListDataFiles", 120)  # far beyond the bound below, which a loaded machine meets too
    log = Log()
    began = time.monotonic()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, timeout=0.3, retries=1, log=log)
    assert time.monotonic() - began < 30
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert "did not answer within 0.3s" in message and "2 attempts" in message


def test_slow_zip_hits_the_timeout(fake_kaggle, data_dir, good_data):
    fake_kaggle.delay("zip", 10)
    with pytest.raises(KaggleError, match="did not answer within 0.3s"):
        kaggle_client.download(data_dir, force=True, timeout=0.3, retries=0, log=Log())
    assert temps(data_dir) == [] and unchanged(data_dir, good_data)


def test_a_garbled_answer_is_not_taken_for_a_timeout(fake_kaggle, data_dir, capsys):
    """What went wrong is told by the exception's type, not by words in it: here the server's own text."""
    fake_kaggle.garble("ListDataFiles", "504 Gateway timed out, Connection refused\r\n", times=None)
    log = Log()
    began = time.monotonic()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, timeout=30, retries=1, log=log)
    assert time.monotonic() - began < 5
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert "did not answer" not in message and "timed out" not in message and "refused" not in message
    assert "not HTTP" in message and "2 attempts" in message
    assert "not HTTP" in log.text and "retry 1/1" in log.text


def test_a_garbled_answer_to_create_is_not_retried(fake_kaggle, tmp_path):
    """The request reached the server, so it may have acted: no retry, whatever the answer says."""
    fake_kaggle.garble("CreateSubmission", "NewConnectionError NameResolutionError\r\n", times=None)
    with pytest.raises(KaggleError, match="not HTTP.*may have been made"):
        kaggle_client.submit(submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", log=Log())
    assert fake_kaggle.calls.count("CreateSubmission") == 1


def test_unresolvable_host_is_named(fake_kaggle, data_dir, monkeypatch):
    import kagglesdk.kaggle_env as env

    monkeypatch.setitem(env._env_to_endpoint, env.KaggleEnv.PROD, "http://api.kaggle.invalid")
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, retries=0, log=Log())
    assert "cannot reach Kaggle at api.kaggle.invalid" in str(err.value)
    assert "the host name could not be resolved" in str(err.value)


def test_connection_refused(fake_kaggle, data_dir, capsys):
    fake_kaggle.refuse_connections()
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, retries=1, log=log)
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert f"cannot reach Kaggle at api.kaggle.com:{fake_kaggle.port}" in message and "connection refused" in message
    assert "proxy" in message


def test_proxy_setting_is_honoured(fake_kaggle, data_dir, monkeypatch):
    monkeypatch.setenv(
        "KAGGLE_PROXY", f"http://127.0.0.1:{fake_kaggle.port}"
    )  # the fake answers proxy-form requests too
    assert kaggle_client.download(data_dir, log=Log())["downloaded"] is True
    assert fake_kaggle.proxied >= 3  # ListDataFiles, DownloadDataFiles, the zip


def test_dead_proxy_is_named_in_the_error(fake_kaggle, data_dir, monkeypatch):
    monkeypatch.setenv("KAGGLE_PROXY", "http://user:pw@127.0.0.1:9")
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, retries=0, log=Log())
    assert "proxy" in str(err.value) and "127.0.0.1:9" in str(err.value) and "pw" not in str(err.value)


# ---- credentials ------------------------------------------------------------------------------


def test_no_credentials(fake_kaggle, data_dir, monkeypatch, capsys):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, log=log)
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert message.startswith("no Kaggle credentials")
    assert "KAGGLE_USERNAME" in message and "KAGGLE_API_TOKEN" in message
    assert str(fake_kaggle.config_dir) in message and "kaggle.json" in message
    assert fake_kaggle.calls == []


def write_kaggle_json(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kaggle.json"
    path.write_text(json.dumps({"username": USERNAME, "key": KEY}))
    path.chmod(0o600)
    return path


def test_kaggle_json_in_config_dir(fake_kaggle, data_dir, monkeypatch, capsys):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    write_kaggle_json(fake_kaggle.config_dir)
    log = Log()
    assert kaggle_client.download(data_dir, log=log)["downloaded"] is True
    out = capsys.readouterr()
    assert_secret_free(log.text, out.out, out.err)


def test_kaggle_json_in_home(fake_kaggle, data_dir, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.delenv("KAGGLE_CONFIG_DIR")
    path = write_kaggle_json(fake_kaggle.home / ".kaggle")
    path.chmod(0o644)
    log = Log()
    assert kaggle_client.download(data_dir, log=log)["downloaded"] is True
    assert "readable by other users" in log.text and "chmod 600" in log.text


def test_wrong_key_in_kaggle_json_names_the_file(fake_kaggle, data_dir, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    path = fake_kaggle.config_dir / "kaggle.json"
    path.write_text(json.dumps({"username": USERNAME, "key": "wrong-" + KEY}))
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, log=Log())
    assert str(path) in str(err.value) and "401" in str(err.value)
    assert_secret_free(str(err.value))
    assert "wrong-" not in str(err.value)


@pytest.mark.parametrize("where", ["env", "file"])
def test_api_token(fake_kaggle, data_dir, monkeypatch, capsys, where):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    if where == "file":
        token_file = fake_kaggle.home / "token.txt"
        token_file.write_text(TOKEN + "\n")
        monkeypatch.setenv("KAGGLE_API_TOKEN", str(token_file))
    else:
        monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    log = Log()
    assert kaggle_client.download(data_dir, log=log)["downloaded"] is True
    assert "bearer" in fake_kaggle.auth and "basic" not in fake_kaggle.auth
    out = capsys.readouterr()
    assert_secret_free(log.text, out.out, out.err)


def test_expired_api_token(fake_kaggle, data_dir, monkeypatch, capsys):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN[::-1])
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, log=log)
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert "invalid or expired" in message and TOKEN[::-1] not in message


def use_token(monkeypatch) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)


def test_slow_token_check_hits_the_timeout(fake_kaggle, data_dir, monkeypatch, capsys):
    use_token(monkeypatch)
    fake_kaggle.delay("IntrospectToken", 120)
    log = Log()
    began = time.monotonic()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, timeout=0.5, log=log)
    assert time.monotonic() - began < 30
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert "did not answer within 0.5s while checking the API token" in message
    assert fake_kaggle.calls == ["IntrospectToken"]


def test_slow_token_check_in_a_fresh_process_hits_the_timeout(fake_kaggle, data_dir, monkeypatch, tmp_path):
    """`import kaggle` checks the token itself, without a timeout: it must not hang a new process."""
    use_token(monkeypatch)
    fake_kaggle.delay("IntrospectToken", 120)  # far beyond the bound below: a start-up slowed by load still passes
    code = (
        "import sys\n"
        "from pipeline import kaggle_client\n"
        "from pipeline.core.errors import KaggleError\n"
        "try:\n"
        "    kaggle_client.download(sys.argv[1], timeout=1, log=None)\n"
        "except KaggleError as e:\n"
        "    print(e)\n"
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=150
    )
    elapsed = time.monotonic() - began
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.count("\n") == 1 and "did not answer within 1s while checking the API token" in done.stdout
    assert elapsed < 60, f"took {elapsed:.1f}s with a 1s timeout"
    assert fake_kaggle.calls == ["IntrospectToken"]  # the import sent none of its own


def test_token_check_server_error(fake_kaggle, data_dir, monkeypatch, capsys):
    use_token(monkeypatch)
    fake_kaggle.fail("IntrospectToken", 503, times=None)
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, log=log)
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert "Kaggle had a server error (HTTP 503) while checking the API token" in message


def test_token_check_401_says_the_token_is_invalid(fake_kaggle, data_dir, monkeypatch, capsys):
    use_token(monkeypatch)
    fake_kaggle.fail("IntrospectToken", 401, times=None)
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, log=log)
    message = assert_failed_cleanly(err, data_dir, capsys, log)
    assert "API token" in message and "invalid" in message and "HTTP 401" in message
    assert "KAGGLE_API_TOKEN" in message and "kaggle.com/settings/api" in message


# ---- storage ------------------------------------------------------------------------------------


def test_data_dir_not_writable(fake_kaggle, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError) as err:
        kaggle_client.download(blocker / "data", log=Log())
    assert err.value.exit_code == 6 and str(blocker / "data") in str(err.value)
    assert fake_kaggle.calls == []  # checked before talking to Kaggle


def test_symlinked_files_are_written_through(fake_kaggle, data_dir, good_data, tmp_path):
    """A data file that is a symlink (to a shared copy) stays a link; the new bytes go to its target."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "train.csv").write_text("old shared copy\n")
    (data_dir / "train.csv").unlink()
    (data_dir / "train.csv").symlink_to(shared / "train.csv")
    (data_dir / "test.csv").unlink()
    (data_dir / "test.csv").symlink_to(shared / "test-not-there-yet.csv")  # dangling: its target is created
    stale = shared / ".fetch.train.csv.x1y2z3.part"  # what a killed run left beside the link's target
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 2 * STALE_TMP_SECONDS,) * 2)
    fake_kaggle.serve_zip(competition_zip(seed=7)[0])
    fake_kaggle.touch()
    result = kaggle_client.download(data_dir, log=Log())
    assert result["downloaded"] is True
    assert (data_dir / "train.csv").is_symlink() and (data_dir / "test.csv").is_symlink()
    assert os.readlink(data_dir / "train.csv") == str(shared / "train.csv")
    assert os.readlink(data_dir / "test.csv") == str(shared / "test-not-there-yet.csv")
    with zipfile.ZipFile(io.BytesIO(fake_kaggle.competitions["digit-recognizer"].zip)) as z:
        assert (shared / "train.csv").read_bytes() == z.read("train.csv")
        assert (shared / "test-not-there-yet.csv").read_bytes() == z.read("test.csv")
    assert result["files"]["train.csv"]["sha256"] == atomic_files.sha256(shared / "train.csv")
    assert temps(data_dir) == [] and temps(shared) == []
    assert sorted(p.name for p in shared.iterdir()) == ["test-not-there-yet.csv", "train.csv"]
    assert kaggle_client.have_data(data_dir)
    assert kaggle_client.download(data_dir, log=Log())["downloaded"] is False  # the links are trusted next time


def test_disk_full(fake_kaggle, data_dir, good_data, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: type("U", (), {"free": 1000})())
    with pytest.raises(StorageError, match="no space left"):
        kaggle_client.download(data_dir, force=True, log=Log())
    assert temps(data_dir) == [] and unchanged(data_dir, good_data)
    assert len(fake_kaggle.zip_requests) == 1  # refused before downloading again


# ---- submissions -----------------------------------------------------------------------------


def submission_file(tmp_path: Path, fake, correct: int | None = None) -> Path:
    labels = fake.competitions["digit-recognizer"].labels
    rows = [
        f"{i + 1},{label if correct is None or i < correct else (label + 1) % 10}" for i, label in enumerate(labels)
    ]
    path = tmp_path / "submission.csv"
    path.write_text("ImageId,Label\n" + "\n".join(rows) + "\n")
    return path


def test_submit_and_poll_until_scored(fake_kaggle, tmp_path, capsys):
    path = submission_file(tmp_path, fake_kaggle, correct=9)  # 9 of 12 right
    fake_kaggle.polls_until_scored = 2
    log = Log()
    result = kaggle_client.submit(path, "digit-recognizer", "nightly 2024-01-01", wait=10, poll=0.05, log=log)

    assert result["status"] == "complete" and result["error"] is None
    assert result["public_score"] == pytest.approx(0.75)
    assert result["ref"] in fake_kaggle.submissions and result["message"] == "nightly 2024-01-01"
    assert result["submitted_at"].endswith("Z")
    [upload] = fake_kaggle.uploads
    assert upload["content"] == path.read_bytes() and upload["file_name"] == "submission.csv"
    assert upload["description"] == "nightly 2024-01-01"
    assert fake_kaggle.calls.count("GetSubmission") == 3
    assert "0.75" in log.text
    out = capsys.readouterr()
    assert out.out == ""
    assert_secret_free(log.text, json.dumps(result), out.err)


def test_submit_returns_pending_when_the_wait_runs_out(fake_kaggle, tmp_path):
    fake_kaggle.polls_until_scored = 10_000
    began = time.monotonic()
    log = Log()
    result = kaggle_client.submit(
        submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", wait=0.3, poll=0.05, log=log
    )
    assert time.monotonic() - began < 3
    assert result["status"] == "pending" and result["public_score"] is None
    assert str(result["ref"]) in log.text and "still being scored" in log.text


def test_submission_error_on_kaggle(fake_kaggle, tmp_path, capsys):
    fake_kaggle.submission_error = "Submission must have 28000 rows"
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.submit(
            submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", wait=5, poll=0.05, log=log
        )
    assert "failed on Kaggle" in str(err.value) and "Submission must have 28000 rows" in str(err.value)
    assert err.value.submission["status"] == "error"
    assert err.value.submission["error"] == "Submission must have 28000 rows"
    out = capsys.readouterr()
    assert_secret_free(str(err.value), log.text, out.out, out.err)


def test_daily_limit_is_refused_before_uploading(fake_kaggle, tmp_path):
    fake_kaggle.submissions_today = fake_kaggle.daily_limit
    with pytest.raises(KaggleError, match="daily submission limit reached") as err:
        kaggle_client.submit(submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", log=Log())
    assert err.value.exit_code == 3
    assert fake_kaggle.uploads == []


@pytest.mark.parametrize("status, says", [(200, "allowance"), (400, "limit of 5 submissions")])
def test_daily_limit_refused_by_create_is_named(fake_kaggle, tmp_path, capsys, status, says):
    """The limits endpoint is down; CreateSubmission refuses: HTTP 200 with a message and no ref, or HTTP 400."""
    fake_kaggle.fail("GetSubmissionLimits", 500, times=None)
    fake_kaggle.submissions_today = fake_kaggle.daily_limit
    fake_kaggle.limit_status = status
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.submit(submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", log=log)
    message = str(err.value)
    assert message.startswith("daily submission limit reached for digit-recognizer") and says in message
    assert "\n" not in message and err.value.exit_code == 3
    assert fake_kaggle.submissions == {} and fake_kaggle.calls.count("CreateSubmission") == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert_secret_free(message, log.text, out.err)


def test_submit_retries_a_rate_limited_create(fake_kaggle, tmp_path):
    fake_kaggle.fail("CreateSubmission", 429, times=1)
    fake_kaggle.fail("upload", 503, times=1)
    result = kaggle_client.submit(
        submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", wait=5, poll=0.05, log=Log()
    )
    assert result["status"] == "complete" and len(fake_kaggle.submissions) == 1


@pytest.mark.parametrize("status", [308, 204, 202])
def test_incomplete_upload_is_not_submitted(fake_kaggle, tmp_path, capsys, status):
    """Cloud storage answers 308 Resume Incomplete to a partial upload: only 200/201 mean the file is there."""
    fake_kaggle.fail("upload", status, times=None)
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.submit(submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", log=log)
    message = str(err.value)
    assert "\n" not in message and f"HTTP {status}" in message and "upload" in message
    assert "nothing was submitted" in message
    assert "CreateSubmission" not in fake_kaggle.calls and fake_kaggle.submissions == {}
    out = capsys.readouterr()
    assert out.out == ""
    assert_secret_free(message, log.text, out.err)


def test_submit_does_not_retry_an_ambiguous_create_failure(fake_kaggle, tmp_path):
    """A 500 from CreateSubmission may have created it: retrying could spend a second daily slot."""
    fake_kaggle.fail("CreateSubmission", 500, times=None)
    with pytest.raises(KaggleError, match="HTTP 500.*may have been made"):
        kaggle_client.submit(submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", log=Log())
    assert fake_kaggle.calls.count("CreateSubmission") == 1


def test_submit_bad_credentials(fake_kaggle, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLE_KEY", "x" + KEY)
    log = Log()
    with pytest.raises(KaggleError) as err:
        kaggle_client.submit(submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", log=log)
    assert "401" in str(err.value)
    out = capsys.readouterr()
    assert_secret_free(str(err.value), log.text, out.out, out.err)
    assert "x" + KEY not in str(err.value) + log.text
    assert fake_kaggle.uploads == []


def test_submit_rules_not_accepted(fake_kaggle, tmp_path):
    fake_kaggle.competitions["digit-recognizer"].rules_accepted = False
    with pytest.raises(KaggleError, match="403.*rules"):
        kaggle_client.submit(submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", log=Log())


def test_submit_missing_file(fake_kaggle, tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        kaggle_client.submit(tmp_path / "nope.csv", "digit-recognizer", "m", log=Log())
    assert fake_kaggle.calls == []


# ---- the module itself ----------------------------------------------------------------------------


def test_importing_the_kaggle_client_does_not_import_kaggle():
    code = "import sys, pipeline.kaggle_client; sys.exit('kaggle' in sys.modules or 'requests' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# ---- the fake's network: production URLs, a separate storage host, loopback only -------------


@pytest.mark.parametrize("credentials", ["key", "token"])
def test_storage_host_never_sees_kaggle_credentials(fake_kaggle, data_dir, tmp_path, monkeypatch, credentials):
    """As in production, the zip and the upload live on another host: requests drops Authorization there."""
    if credentials == "token":
        monkeypatch.delenv("KAGGLE_USERNAME")
        monkeypatch.delenv("KAGGLE_KEY")
        monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
    kaggle_client.download(data_dir, log=Log())
    kaggle_client.submit(submission_file(tmp_path, fake_kaggle), "digit-recognizer", "m", wait=5, poll=0.05, log=Log())
    methods = [r["method"] for r in fake_kaggle.storage_requests]
    assert methods == ["GET", "PUT"]
    assert {r["host"] for r in fake_kaggle.storage_requests} == {"storage.googleapis.com"}
    assert [r["authorization"] for r in fake_kaggle.storage_requests] == [None, None]
    assert set(fake_kaggle.auth) == {"bearer" if credentials == "token" else "basic"}  # the API host got them


def test_only_the_fake_hosts_and_loopback_resolve(fake_kaggle, data_dir, monkeypatch):
    import socket

    assert socket.getaddrinfo("api.kaggle.com", 443)[0][4][0] == "127.0.0.1"
    assert socket.getaddrinfo("storage.googleapis.com", 443)[0][4][0] == "127.0.0.1"
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("www.kaggle.com", 443)
    monkeypatch.setenv("KAGGLE_PROXY", "http://proxy.example.com:3128")
    with pytest.raises(KaggleError, match="proxy"):
        kaggle_client.download(data_dir, retries=0, log=Log())
    assert fake_kaggle.calls == []


def test_list_submissions_pages_through_and_reads_every_state(fake_kaggle):
    fake_kaggle.page_size = 2
    made = [fake_kaggle.add_submission(f"ImageId,Label\n1,{k}\n".encode(), f"try {k}") for k in range(3)]
    fake_kaggle.submissions[made[1]]["error"] = "Submission must have 28000 rows"
    listed = kaggle_client.list_submissions("digit-recognizer", log=None)
    assert [s["ref"] for s in listed] == made[::-1]  # newest first, across two pages
    assert fake_kaggle.calls.count("ListSubmissions") == 2
    by_ref = {s["ref"]: s for s in listed}
    assert by_ref[made[0]]["status"] == "complete" and by_ref[made[0]]["public_score"] is not None
    assert by_ref[made[0]]["message"] == "try 0" and by_ref[made[0]]["submitted_at"]
    assert by_ref[made[1]]["status"] == "error" and by_ref[made[1]]["error"] == "Submission must have 28000 rows"
    assert by_ref[made[1]]["public_score"] is None


MALFORMED_PROXIES = ["http://127.0.0.1:abc", "http://127.0.0.1:99999", "http://[::1"]


@pytest.mark.parametrize("proxy", MALFORMED_PROXIES)
@pytest.mark.parametrize("variable", ["HTTP_PROXY", "KAGGLE_PROXY"])
def test_a_malformed_proxy_in_use_is_named_in_one_line(fake_kaggle, data_dir, monkeypatch, variable, proxy):
    monkeypatch.setenv(variable, proxy)
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.delenv("no_proxy")
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, retries=0, log=Log())
    message = str(err.value)
    assert "proxy" in message and variable in message and "\n" not in message, message


@pytest.mark.parametrize("proxy", MALFORMED_PROXIES)
def test_a_malformed_https_proxy_is_named_before_anything_is_sent(fake_kaggle, data_dir, monkeypatch, proxy):
    # the fake speaks http, so requests would never use HTTPS_PROXY; the real Kaggle does, and the message of
    # any failure shows the proxy: `HTTPS_PROXY=http://127.0.0.1:abc digits download` crashed writing it
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    fake_kaggle.refuse_connections()
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, retries=0, log=Log())
    assert str(err.value).startswith(f"proxy HTTPS_PROXY={proxy!r} is not a valid URL"), str(err.value)


def test_a_malformed_proxy_in_kaggle_json_is_named(fake_kaggle, data_dir, monkeypatch):
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.delenv("no_proxy")
    path = write_kaggle_json(fake_kaggle.config_dir)
    path.write_text(json.dumps({"username": USERNAME, "key": KEY, "proxy": "http://127.0.0.1:abc"}))
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, retries=0, log=Log())
    assert str(err.value).startswith(f"proxy in {path}='http://127.0.0.1:abc' is not a valid URL"), str(err.value)


def _kaggle_json_fifo(path: Path) -> None:
    make_fifo(path)


def _kaggle_json_dir(path: Path) -> None:
    path.mkdir()


def _kaggle_json_not_json(path: Path) -> None:
    path.write_text('{"username": "someone", "key": ')


def _kaggle_json_not_utf8(path: Path) -> None:
    path.write_bytes(b'{"username": "\xff"}')


def _kaggle_json_a_list(path: Path) -> None:
    path.write_text("[1, 2]")


@pytest.mark.parametrize(
    "make, says",
    [
        (_kaggle_json_fifo, "not a regular file"),
        (_kaggle_json_dir, "not a regular file"),
        (_kaggle_json_not_json, "not a valid kaggle.json (JSONDecodeError"),
        (_kaggle_json_not_utf8, "not a valid kaggle.json (UnicodeDecodeError"),
        (_kaggle_json_a_list, "not a valid kaggle.json (expected a JSON object"),
        (lambda path: path.write_text('{"username": "someone"}'), "holds no username and key"),
    ],
)
def test_an_unreadable_kaggle_json_is_named_not_taken_for_no_credentials(
    fake_kaggle, data_dir, monkeypatch, make, says
):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    path = fake_kaggle.config_dir / "kaggle.json"
    make(path)
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, retries=0, log=Log())
    assert str(err.value).startswith(f"{path}: {says}"), str(err.value)
    assert fake_kaggle.calls == []


def test_a_kaggle_json_fifo_never_hangs_even_with_credentials_in_the_environment(fake_kaggle, data_dir):
    path = make_fifo(fake_kaggle.config_dir / "kaggle.json")  # the kaggle client itself would wait on it
    with pytest.raises(KaggleError) as err:
        kaggle_client.download(data_dir, retries=0, log=Log())
    assert str(err.value).startswith(f"{path}: not a regular file")


@pytest.mark.parametrize("name", ["train.csv", ".manifest.json"])
def test_a_fifo_in_the_data_dir_is_refused_never_waited_on(fake_kaggle, data_dir, good_data, name):
    (data_dir / name).unlink()
    make_fifo(data_dir / name)  # the download would write through it, or read it, and wait for ever
    with pytest.raises(BadInputError, match=f"{name}: not a regular file"):
        kaggle_client.download(data_dir, retries=0, log=Log())


@pytest.mark.parametrize(
    ("headers", "length", "start"),
    [
        ({"Content-Length": "²", "Content-Range": "bytes ²-9/10"}, None, None),
        ({"Content-Length": "٣", "Content-Range": "bytes ٣-9/10"}, None, None),
        ({"Content-Length": "9" * 5000, "Content-Range": "bytes " + "9" * 5000 + "-9/10"}, None, None),
        ({"Content-Length": "12", "Content-Range": "bytes 3-9/10"}, 12, 3),
    ],
)
def test_sizes_in_http_headers_are_ascii_numbers_or_nothing(headers, length, start):
    """A header's '²' passed isdigit() and raised in int(); '٣' was read as 3."""
    from types import SimpleNamespace

    from pipeline.kaggle_client import downloads

    response = SimpleNamespace(headers=headers)
    assert downloads._content_length(response) == length
    assert downloads._range_start(response) == start
