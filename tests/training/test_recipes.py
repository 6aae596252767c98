"""Every recipe builds, trains on the demo data, resumes and blends like the others, whatever its precision."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.store import record, run_folders
from tests.helpers import digits

SMALL = {
    "mlp": ["--set", "model.hidden=32"],
    "cnn": ["--set", "model.filters=4,8", "--set", "model.hidden=16"],
    "cnn-wide": ["--set", "model.filters=4"],
}


@pytest.mark.slow
def test_each_recipe_trains_resumes_and_blends_with_the_others(tmp_path):
    for recipe, precision in (("mlp", "float32"), ("cnn", "mixed_bfloat16"), ("cnn-wide", "float32")):
        r = digits(
            "run",
            "--demo",
            "--model",
            recipe,
            *SMALL[recipe],
            "--folds",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--set",
            f"train.precision={precision}",
            "--set",
            "train.warmup_epochs=0",
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stderr
    out = tmp_path / "demo"
    recs = [record.read(out / "runs" / i) for i in run_folders.list_runs(out)]
    assert [(r.config.model.kind, r.config.train.precision) for r in recs] == [
        ("mlp", "float32"),
        ("cnn", "mixed_bfloat16"),
        ("cnn-wide", "float32"),
    ]
    assert all(r.status == "complete" and r.plan.rule == "named" for r in recs)
    assert recs[-1].blend is not None and set(recs[-1].blend.candidates) == {r.run_id for r in recs}

    # the wide run, its second fold lost: resumed, it trains that fold again to the same bytes
    wide = out / "runs" / recs[-1].run_id
    oof = (wide / "oof.npz").read_bytes()
    for f in (wide / "folds").glob("fold-1.*"):
        f.unlink()
    recs[-1].status = "interrupted"
    record.write(wide, recs[-1])
    resumed = digits(
        "train",
        "--resume",
        recs[-1].run_id,
        "--output-dir",
        "demo",
        "--data-dir",
        "demo/data",
        "--model",
        "cnn-wide",
        *SMALL["cnn-wide"],
        "--folds",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--set",
        "train.precision=float32",
        "--set",
        "train.warmup_epochs=0",
        "--seed",
        str(recs[-1].config.train.seed),
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (wide / "oof.npz").read_bytes() == oof
    saved = np.load(wide / "test_proba.npy")
    assert saved.shape == (300, 10) and np.allclose(saved.sum(axis=1), 1, atol=1e-3)
