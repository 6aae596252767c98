"""`train.precision = "auto"` chooses by the CPU's flags and the recipe (pipeline.training.hardware)."""

from __future__ import annotations

import pytest

from pipeline.core import config as cfg
from pipeline.training import hardware

AMX = frozenset({"avx2", "avx512f", "amx_bf16", "amx_tile"})
AVX512_BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})
AVX2 = frozenset({"avx2", "fma"})


@pytest.mark.parametrize("flags", [AMX, AVX512_BF16])
def test_auto_picks_bfloat16_where_it_is_native_and_pays(flags):
    for recipe in cfg.KINDS:
        expected = "mixed_bfloat16" if recipe in cfg.BF16_PAYS else "float32"
        assert hardware.precision_for(recipe, "auto", flags) == expected
    assert "mlp" not in cfg.BF16_PAYS  # measured: the MLP is no faster in bfloat16 (benchmarks/RESULTS.md)


def test_auto_keeps_float32_where_bfloat16_would_be_emulated():
    assert all(hardware.precision_for(recipe, "auto", AVX2) == "float32" for recipe in cfg.KINDS)


def test_a_named_precision_is_kept_whatever_the_cpu():
    assert hardware.precision_for("mlp", "mixed_bfloat16", AVX2) == "mixed_bfloat16"
    assert hardware.precision_for("cnn-wide", "float32", AMX) == "float32"


def test_the_cpu_is_read_from_proc_cpuinfo(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512_bf16\n")
    monkeypatch.setattr(hardware, "CPUINFO", fake)
    hardware.cpu_flags.cache_clear()
    hardware.cpu_model.cache_clear()
    try:
        assert hardware.cpu_model() == "Test CPU 9000"
        assert hardware.native_bf16() == ["avx512_bf16"]
    finally:
        hardware.cpu_flags.cache_clear()
        hardware.cpu_model.cache_clear()
