"""Small competitions and command runners shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click.testing
import numpy as np

from pipeline.competition.dataset import PIXEL_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SHARED_ZIP = ROOT.parent / "shared" / "data" / "digit-recognizer.zip"
# A run small enough for a test: 2 folds, 2 epochs, one narrow layer.
TINY = [
    "--model",
    "mlp",
    "--folds",
    "2",
    "--epochs",
    "2",
    "--hidden",
    "32",
    "--batch-size",
    "64",
    "--set",
    "train.warmup_epochs=0",
]


def table(n: int, seed: int = 0, labels: bool = True) -> np.ndarray:
    """Random images whose brightest region depends on the label, so a model can learn a little."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    rng.shuffle(y)
    x = rng.integers(0, 60, size=(n, 784))
    for digit in range(10):
        x[y == digit, digit * 70 : digit * 70 + 70] = 255
    return np.column_stack([y, x]) if labels else x


def write_csv(path: Path, header: list[str], rows: np.ndarray | list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(str(v) for v in row) + "\n")
    return path


def write_competition(data_dir: Path, n_train: int = 200, n_test: int = 40, seed: int = 0) -> Path:
    write_csv(data_dir / "train.csv", ["label", *PIXEL_COLUMNS], table(n_train, seed))
    write_csv(data_dir / "test.csv", list(PIXEL_COLUMNS), table(n_test, seed + 1, labels=False))
    return data_dir


def digits(*args: str, cwd: Path, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run `python -m pipeline ARGS` in a subprocess, as cron would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.update(kw.pop("env", {}))
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,
    )


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `python -m pipeline ARGS` in a subprocess, its output piped; `env` is added to the environment."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def error_line(result: subprocess.CompletedProcess | click.testing.Result) -> str:
    """The one line a failed command printed, checking that it is one line and no traceback.

    A subprocess's stderr, or all a `CliRunner` invocation printed.
    """
    text = result.stderr if isinstance(result, subprocess.CompletedProcess) else result.output
    lines = [line for line in text.splitlines() if line.startswith("digits: ")]
    assert "Traceback" not in text, text
    assert len(lines) == 1, text
    return lines[0]


def make_fifo(path: Path, unblock_after: float = 20.0) -> Path:
    """A FIFO at `path`, as a hostile user might leave where a file is read.

    A reader or a writer that blocks on it would hang the test for ever;
    after `unblock_after` seconds a daemon thread opens its other end and
    closes it again, so a blocked reader sees an empty file, a blocked writer
    a broken pipe, and the test fails instead.
    """
    import threading
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)

    def unblock() -> None:
        time.sleep(unblock_after)
        for _ in range(120):
            for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
                try:
                    os.close(os.open(path, flags))
                except OSError:  # no reader now (ENXIO), or the FIFO is gone
                    pass
            time.sleep(0.5)

    threading.Thread(target=unblock, daemon=True).start()
    return path
