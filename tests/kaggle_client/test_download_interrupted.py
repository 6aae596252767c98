"""A download interrupted at any moment (Ctrl-C, or SIGTERM, which the CLI turns into the same)
leaves no temporary files and either the old files or the complete new set, never a mixture."""

from __future__ import annotations

import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from pipeline import kaggle_client
from pipeline.core import atomic_files
from pipeline.kaggle_client.datadir import read_manifest
from pipeline.kaggle_client.downloads import NET_CHUNK
from tests.fake_kaggle import competition_zip
from tests.helpers import ROOT, start

FETCH_SOURCES = {str(p) for p in (ROOT / "pipeline" / "kaggle_client").glob("*.py")} | {
    str(ROOT / "pipeline" / "core" / "atomic_files.py")
}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".fetch.") or ".tmp" in p.name)


@pytest.fixture
def installed(fake_kaggle, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """data_dir with an earlier download installed; Kaggle now has new, bigger files."""
    data_dir = tmp_path / "data"
    kaggle_client.download(data_dir, log=None)
    fake_kaggle.serve_zip(competition_zip(n_train=800, seed=3)[0])
    assert len(fake_kaggle.competitions["digit-recognizer"].zip) > 3 * NET_CHUNK
    fake_kaggle.touch()
    fake_kaggle.calls.clear()
    fake_kaggle.zip_requests.clear()
    return data_dir, snapshot(data_dir)


@pytest.mark.parametrize("stall", ["listing", "zip-headers", "zip-body"])
def test_sigterm_during_download(fake_kaggle, installed, stall):
    data_dir, before = installed
    if stall == "listing":
        fake_kaggle.delay("ListDataFiles", 30)
    elif stall == "zip-headers":
        fake_kaggle.delay("zip", 30)
    else:
        fake_kaggle.drop_zip(after_bytes=2 * NET_CHUNK, stall=30)
    proc = start("download", "--data-dir", str(data_dir), cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not _stalled(fake_kaggle, stall) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        while stall != "listing" and not [p for p in data_dir.iterdir() if p.name.startswith(".fetch.")]:
            assert proc.poll() is None and time.monotonic() < deadline, "no download under way"
            time.sleep(0.05)  # the client is now waiting for the server (and has written what it got)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 4, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("digits: ")]
    assert len(lines) == 1 and lines[0].startswith("digits: interrupted"), err
    assert leftovers(data_dir) == []
    assert snapshot(data_dir) == before


def _stalled(fake, stall: str) -> bool:
    if stall == "listing":
        return "ListDataFiles" in fake.calls
    if stall == "zip-headers":
        return "DownloadDataFiles" in fake.calls
    return bool(fake.zip_requests)


def test_an_interrupt_at_any_line_leaves_old_or_new_files(fake_kaggle, installed, tmp_path):
    """SIGINT raised at the lines the download runs in pipeline.kaggle_client and pipeline.core.atomic_files, one by one.

    The signal arrives while the download is in each of its states; afterwards
    data_dir holds no temporary file and either exactly the old files or the
    complete new set with its manifest.
    """
    data_dir, before = installed
    functions = _run(data_dir, tmp_path / "count", interrupt_at=None)
    lines = len(functions)
    assert lines > 100
    new = tmp_path / "new"
    shutil.copytree(data_dir, new)
    kaggle_client.download(new, log=None)
    after = {name: data for name, data in snapshot(new).items() if name != kaggle_client.MANIFEST}
    assert after != {name: data for name, data in before.items() if name != kaggle_client.MANIFEST}

    outcomes = {"old": 0, "new": 0}
    every = [n for n in range(1, lines + 1) if n % 10 == 0 or functions[n - 1] in CRITICAL]
    for n in every:
        folder = tmp_path / f"at-{n}"
        interrupted = _run(data_dir, folder, interrupt_at=n)
        assert interrupted is None or interrupted == 0, f"{WHERE}: the download finished uninterrupted"
        assert leftovers(folder) == [], f"interrupted at {WHERE}"
        now = snapshot(folder)
        if now == before:
            outcomes["old"] += 1
            continue
        assert {k: v for k, v in now.items() if k != kaggle_client.MANIFEST} == after, (
            f"a mixture after an interrupt at {WHERE}"
        )
        manifest = read_manifest(folder)
        assert manifest is not None, f"new files without a manifest after an interrupt at {WHERE}"
        assert all(atomic_files.sha256(folder / name) == meta["sha256"] for name, meta in manifest["files"].items())
        outcomes["new"] += 1
        shutil.rmtree(folder)
    assert outcomes["old"] > 10 and outcomes["new"] >= 1, outcomes


WHERE: list[str] = []  # where the last interrupt was raised
# Where an interrupt is tried at every line (elsewhere at every 10th): temporary files, installing, clean-up.
CRITICAL = {
    "download",
    "_download_and_install",
    "prepare_dir",
    "temp_path",
    "remove",
    "uninterrupted",
    "hold",
    "install",
    "_install",
    "atomic_path",
    "write_bytes",
    "write_json",
}


def _run(data_dir: Path, folder: Path, interrupt_at: int | None) -> list[str] | int | None:
    """Download into a copy of data_dir; raise SIGINT at line event `interrupt_at`.

    Returns the function of every line event when not interrupting; None when
    the KeyboardInterrupt came out of the download, 0 when it came just after it.
    """
    shutil.copytree(data_dir, folder)
    count = 0
    functions: list[str] = []

    def local(frame, event, arg):  # noqa: ANN001, ANN202
        nonlocal count
        if event == "line":
            count += 1
            functions.append(frame.f_code.co_name)
            if count == interrupt_at:
                WHERE[:] = [f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} in {frame.f_code.co_name}"]
                signal.raise_signal(signal.SIGINT)
        return local

    def calls(frame, event, arg):  # noqa: ANN001, ANN202
        return local if frame.f_code.co_filename in FETCH_SOURCES else None

    sys.settrace(calls)
    try:
        try:
            kaggle_client.download(folder, force=True, log=None)
        finally:
            sys.settrace(None)
    except KeyboardInterrupt:
        return None
    try:
        for _ in range(1000):  # a signal raised on the last lines is handled here at the latest
            pass
    except KeyboardInterrupt:
        return 0
    assert interrupt_at is None or interrupt_at > count, "the interrupt was lost"
    return functions
