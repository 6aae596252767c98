"""What reaches a cron log: TensorFlow's native chatter filtered out, its fatal last words kept."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, sys
from pipeline.core.progress import filter_native_stderr
filter_native_stderr()
os.write(2, b"I0000 00:00:1795740159.623698    2593 cudart_stub.cc:31] Could not find cuda drivers\\n")
os.write(2, b"E0000 00:00:1795740160.854336    2593 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\\n")
os.write(2, b"F0000 00:00:1795740161.000000    2593 op_kernel.cc:1] Check failed: the last words\\n")
{ending}
"""


def _run(ending: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(ending=ending)], capture_output=True, timeout=60)


def test_a_fatal_native_message_reaches_stderr_when_the_process_aborts():
    r = _run("os.abort()")
    assert r.returncode != 0
    assert b"Check failed: the last words" in r.stderr
    assert b"cuda" not in r.stderr  # the expected GPU-less start-up chatter is dropped


def test_python_stderr_and_a_normal_exit_keep_every_line_in_order():
    r = _run('print("python line", file=sys.stderr); sys.exit(3)')
    assert r.returncode == 3
    assert b"the last words" in r.stderr and b"python line" in r.stderr
