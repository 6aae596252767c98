"""``digits sweep``: variants trained as one pool, compared like with like."""

from __future__ import annotations

import pytest

from pipeline.competition.dataset import write_demo
from pipeline.store import record, run_folders
from tests.helpers import digits


@pytest.mark.slow
def test_a_sweep_draws_one_seed_so_its_comparison_is_paired(tmp_path):
    variants = tmp_path / "variants.toml"
    variants.write_text(
        "[variants.narrow]\nmodel.hidden = [16]\n\n[variants.wide]\nmodel.hidden = [48]\n\n"
        "[variants.own-seed]\nmodel.hidden = [16]\ntrain.seed = 7\n"
    )
    write_demo(tmp_path / "out" / "data")
    r = digits(
        "sweep",
        str(variants),
        "--model",
        "mlp",
        "--data-dir",
        "out/data",
        "--output-dir",
        "out",
        "--folds",
        "2",
        "--epochs",
        "1",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    recs = [record.read(tmp_path / "out" / "runs" / i) for i in run_folders.list_runs(tmp_path / "out")]
    seeds = {rec.variant: rec.config.train.seed for rec in recs}
    assert seeds["narrow"] == seeds["wide"] and seeds["own-seed"] == 7 != seeds["narrow"]
    narrow_vs_wide = digits("compare", recs[0].run_id, recs[1].run_id, "--output-dir", "out", cwd=tmp_path)
    assert narrow_vs_wide.returncode == 0 and "not paired" not in narrow_vs_wide.stdout
    assert "McNemar" in narrow_vs_wide.stdout
