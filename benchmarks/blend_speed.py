"""How long choosing the blend takes with many past runs: reading their arrays and the greedy selection.

Writes N synthetic finished runs of the competition's size (42,000
out-of-fold rows, 28,000 test rows, as the job leaves them: record,
oof.npz, test_proba.npy), then times `blend.candidates` (read the records and
arrays) and `blend.choose` (the forward selection), as `digits predict` runs them.

    python benchmarks/blend_speed.py --runs 50
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.core import atomic_files, config_layers  # noqa: E402
from pipeline.nightly import blend  # noqa: E402
from pipeline.store import record  # noqa: E402

ROWS, TEST_ROWS = 42_000, 28_000


def write_run(out: Path, k: int, labels: np.ndarray) -> Path:
    rng = np.random.default_rng(k)
    run_id = f"20261101-{k:06d}"
    run_dir = out / "runs" / run_id
    run_dir.mkdir(parents=True)
    correct = rng.random(ROWS) < rng.uniform(0.985, 0.993)
    top = np.where(correct, labels, (labels + rng.integers(1, 10, ROWS)) % 10)
    oof = rng.dirichlet(np.ones(10), ROWS).astype(np.float32) * 0.2
    oof[np.arange(ROWS), top] += 0.8
    config = config_layers.build(named={"train": {"seed": k}})
    fold = record.FoldRecord(0, 33_600, 8_400, 0.99, 0.1, 30, 40, 100.0, 10_000.0)
    rec = record.RunRecord(
        run_id=run_id,
        status="complete",
        config=config,
        started_at=record.now(),
        data={"train.csv": record.DataFile("a" * 64, ROWS), "test.csv": record.DataFile("b" * 64, TEST_ROWS)},
        folds=[record.FoldRecord(**{**fold.__dict__, "index": i}) for i in range(5)],
    )
    record.write(run_dir, rec)
    atomic_files.write_npz(run_dir / "oof.npz", labels=labels, proba=oof)
    atomic_files.write_npy(run_dir / "test_proba.npy", rng.dirichlet(np.ones(10), TEST_ROWS).astype(np.float32))
    return run_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=50)
    a = p.parse_args()
    labels = np.random.default_rng(0).integers(0, 10, ROWS)
    with tempfile.TemporaryDirectory(prefix="digits-blend-") as tmp:
        out = Path(tmp)
        dirs = [write_run(out, k, labels) for k in range(a.runs)]
        t = time.perf_counter()
        got_labels, found = blend.candidates(out, dirs[-1], limit=a.runs)
        read = time.perf_counter() - t
        t = time.perf_counter()
        info, chosen = blend.choose(got_labels, found)
        chose = time.perf_counter() - t
    print(
        f"{len(found)} runs: reading records and arrays {read:.2f} s, forward selection {chose:.2f} s "
        f"({len(info.members)} members, blend OOF {info.oof_accuracy:.4%} vs best single {info.best_single_oof_accuracy:.4%})"
    )


if __name__ == "__main__":
    main()
