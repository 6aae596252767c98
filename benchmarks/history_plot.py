"""The README's `digits history` plot, from a pool that benchmarks/nights.py trained: its nights lived in order.

Each run of the given order is copied into a fresh output directory, one
night at a time, and `digits predict` blends it with the nights before it
(as `digits run` does after training); then `digits history --plot` draws
the climb.  The runs are copied, never changed; predict reads the saved
probabilities, so nothing is trained.

    python benchmarks/history_plot.py --pool /tmp/bench/pool --order cnn-wide,cnn,mlp,cnn-wide --plot docs/history.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.store import record  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", type=Path, required=True, help="nights.py's pool folder (its runs/)")
    p.add_argument("--order", required=True, help="recipes, night by night: each takes the pool's next unused run")
    p.add_argument("--plot", type=Path, required=True)
    a = p.parse_args()
    runs = [d for d in sorted((a.pool / "runs").iterdir()) if record.read(d).complete]
    unused = {name: [d for d in runs if record.read(d).config.model.kind == name] for name in set(a.order.split(","))}
    with tempfile.TemporaryDirectory(prefix="digits-history-") as tmp:
        out = Path(tmp)
        for recipe in a.order.split(","):
            run_dir = unused[recipe].pop(0)
            shutil.copytree(run_dir, out / "runs" / run_dir.name)
            digits = [sys.executable, "-m", "pipeline", "--output-dir", str(out), "--quiet"]
            subprocess.run([*digits, "predict", run_dir.name], cwd=ROOT, check=True)
        subprocess.run([*digits, "history", "--plot", str(a.plot.resolve())], cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
