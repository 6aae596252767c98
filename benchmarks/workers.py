"""Every core: folds side by side in worker processes against one after another, and the bytes of each.

Trains the same run (the default recipe, fixed seed) on the benchmark's
32,000 rows three ways, one after another, each in a fresh `digits train`:

  1 x 1   executor.workers = 1, train.threads = 1   (folds one after another, one thread)
  2 x 1   executor.workers = 2, train.threads = 1   (two folds side by side, one thread each)
  1 x 2   executor.workers = 1, train.threads = 2   (what a night did before workers)

and prints each one's wall time for the training, the speed-up against 1 x 1,
and the hashes of the test probabilities and out-of-fold probabilities
(1 x 1 and 2 x 1 must be equal; 1 x 2 computes with two threads, so other
bytes).  Then it works out, from the per-fold minutes measured, what a night
takes on 4, 8 and 16 cores.

    python benchmarks/workers.py [--folds 4] [--epochs 3] [--keep DIR]

A second call with the same --keep reads the runs it kept back (their wall time is then unknown).

Use the machine alone: the three are compared with each other, within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from holdout import DEFAULT_ZIP, load_real, split, versions, write_competition  # noqa: E402
from speed import reference  # noqa: E402

from pipeline.core import config as cfg  # noqa: E402

WAYS = {"1 x 1": (1, 1), "2 x 1": (2, 1), "1 x 2": (1, 2)}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def train(data: Path, out: Path, workers: int, threads: int, args: list[str]) -> dict:
    """One `digits train` of the run, timed; its record's fold seconds and the hashes of what it wrote.

    A complete run already in `out` (a second call with the same --keep) is read back, not trained again.
    """
    kept = sorted(out.glob("runs/*/report.json"))
    if kept and json.loads(kept[-1].read_text()).get("status") == "complete":
        run_dir, wall = kept[-1].parent, float("nan")
    else:
        command = [sys.executable, "-m", "pipeline", "--output-dir", str(out), "train", "--data-dir", str(data)]
        command += [*args, "--set", f"executor.workers={workers}", "--set", f"train.threads={threads}"]
        started = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"digits train failed ({proc.returncode}): {proc.stderr[-2000:]}")
        run_dir = Path(proc.stdout.strip().splitlines()[-1])
    report = json.loads((run_dir / "report.json").read_text())
    return {
        "wall_seconds": wall,
        "train_seconds": report["stage_seconds"]["train"],
        "fold_seconds": [f["seconds"] for f in report["folds"]],
        "test_proba": sha(run_dir / "test_proba.npy"),
        "oof": sha(run_dir / "oof.npz"),
    }


MATMUL = """
import time, numpy as np
a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
a @ a
n, t = 0, time.perf_counter()
while time.perf_counter() - t < 8:
    a @ a
    n += 1
print(2 * 1024**3 * n / (time.perf_counter() - t) / 1e9)
"""


def cores_alone_and_together() -> tuple[float, list[float]]:
    """GFLOP/s of a one-thread float32 matrix product: one process alone, then one on each of two cores at once.

    Whether two cores give twice one: on a VM whose two vCPUs share a physical core, they do not, whatever
    the job does.
    """
    import os

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", MATMUL], stdout=subprocess.PIPE, text=True, env=env)

    alone = float(start().communicate()[0])
    pair = [start(), start()]
    return alone, [float(p.communicate()[0]) for p in pair]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    p.add_argument("--model", default="cnn-wide")
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--keep", type=Path, help="Keep the data split and the runs here.")
    a = p.parse_args()
    if not a.zip.is_file():
        sys.exit(f"{a.zip}: real competition data not found; nothing to benchmark")
    args = ["--model", a.model, "--folds", str(a.folds), "--epochs", str(a.epochs), "--seed", "1"]
    with tempfile.TemporaryDirectory(prefix="digits-workers-") as tmp:
        work = a.keep or Path(tmp)
        if not (work / "split" / "train.csv").is_file():
            x, y, _ = load_real(a.zip, work)
            x_tr, x_ho, y_tr, _ = split(x, y)
            write_competition(x_tr, y_tr, x_ho, work / "split")
        ref = reference()
        alone, together = cores_alone_and_together()
        got = {name: train(work / "split", work / name.replace(" ", ""), *way, args) for name, way in WAYS.items()}
        ref_after = reference()
    base = got["1 x 1"]["train_seconds"]
    lines = [
        f"{a.model}, {a.folds} folds x {a.epochs} epochs on 32,000 rows, seed 1",
        "| workers x threads | training (s) | speed-up against 1 x 1 | fold seconds | test_proba | oof |",
        "| --- | ---: | ---: | --- | --- | --- |",
    ]
    for name, r in got.items():
        folds = ", ".join(f"{x:.0f}" for x in r["fold_seconds"])
        lines.append(
            f"| {name} | {r['train_seconds']:.0f} | ×{base / r['train_seconds']:.2f} | {folds} "
            f"| {r['test_proba']} | {r['oof']} |"
        )
    same = got["1 x 1"]["test_proba"] == got["2 x 1"]["test_proba"] and got["1 x 1"]["oof"] == got["2 x 1"]["oof"]
    lines.append(f"\n2 x 1 writes the bytes of 1 x 1: {'yes' if same else 'NO'}.")
    # On paper: a fold on one thread takes what it took beside another (2 x 1, the fastest pair: a slower
    # pair is other work on the machine), scaled to the default night's epochs and rows (42,000 rows, F - 1
    # of F folds each); the cores are assumed as fast as these two, each with its own share of memory.
    epochs = int(cfg.RECIPES[a.model]["train"]["epochs"])  # the recipe's default, as a night trains it
    per_row_epoch = min(got["2 x 1"]["fold_seconds"]) / (a.epochs * 32_000 * (a.folds - 1) / a.folds)
    lines.append(
        f"\nA fold beside another on one thread: {min(got['2 x 1']['fold_seconds']):.0f} s for {a.epochs} epochs; "
        f"on paper, a night of {a.model} ({epochs} epochs, all 42,000 rows), alone and with runs "
        "following runs (plan.budget: no core idles while the next run's folds wait):"
    )
    for folds in (5, 10):
        fold = per_row_epoch * epochs * 42_000 * (folds - 1) / folds
        for cores in (2, 4, 8, 16):
            alone, packed = math.ceil(folds / cores) * fold, folds * fold / cores
            lines.append(
                f"- {folds} folds on {cores:2d} cores: one run alone {alone / 60:5.1f} min, "
                f"runs following runs {packed / 60:5.1f} min a run"
            )
    lines.append(
        f"\nThe cores themselves, a one-thread 1024x1024 float32 matrix product: {alone:.1f} GFLOP/s alone, "
        f"{' + '.join(f'{x:.1f}' for x in together)} = {sum(together):.1f} two at once "
        f"(×{sum(together) / alone:.2f})."
    )
    lines.append(
        f"\nReference (precision.py cnn 16,32 256 float32): {ref:,.0f} samples/s before, {ref_after:,.0f} after."
        f"\nMachine: {versions()}."
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
