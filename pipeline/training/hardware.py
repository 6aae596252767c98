"""What this CPU offers, and the precision `train.precision = "auto"` picks from it.

TensorFlow trains in bfloat16 quickly only where the CPU computes it natively
(``amx_bf16`` or ``avx512_bf16`` in /proc/cpuinfo); elsewhere it emulates it
and is slower than float32.  Even on such a CPU it pays only for some models
(measured per recipe: `pipeline.core.config.BF16_PAYS`), so ``auto`` needs
both.  The choice is made once per run and recorded in its config, so a
resumed run trains its remaining folds as it began.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from pipeline.core import config as cfg

CPUINFO = Path("/proc/cpuinfo")
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" in microseconds, or "max PERIOD"


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo cannot be read, e.g. not Linux)."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cores() -> int:
    """The cores this process may use: its CPU affinity, and a cgroup's CPU quota (a container's --cpus) below it.

    Python 3.13's os.process_cpu_count() reads only the affinity; a quota is what containers and systemd's
    CPUQuota= set, and ignoring it would start more workers than the machine gives us.
    """
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = CPU_MAX.read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


@cache
def cpu_model() -> str:
    """The CPU's model name, as benchmarks print it beside every timing."""
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def native_bf16(flags: frozenset[str] | None = None) -> list[str]:
    """The native-bfloat16 flags this CPU has (empty: bfloat16 would be emulated)."""
    have = cpu_flags() if flags is None else flags
    return [f for f in cfg.BF16_FLAGS if f in have]


def precision_for(recipe: str, wanted: str, flags: frozenset[str] | None = None) -> str:
    """The precision a run of `recipe` trains in: `wanted`, or for ``auto`` what pays on this CPU."""
    if wanted != "auto":
        return wanted
    return "mixed_bfloat16" if native_bf16(flags) and recipe in cfg.BF16_PAYS else "float32"
