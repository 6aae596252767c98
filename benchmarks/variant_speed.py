"""What a run of each variant costs in core-minutes, measured as the workers train: two at once, one thread each.

For each variant of `benchmarks/nights.py` (VARIANTS), two copies of
`speed.py --one` run side by side (each one thread: how `executor.workers = 2`
trains on two cores), each timing one epoch of 6,400 rows through the
recipe's real model and input pipeline after a warm-up epoch.  A run's
core-minutes are then folds x epochs x (rows x (folds - 1) / folds) / rate.

    python benchmarks/variant_speed.py [--variants wide,wide-f32,wide-k5,wide-k7] [--rows 32000] [--json costs.json]

The JSON is `nights.py --costs`.  Use the machine alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from holdout import versions  # noqa: E402
from nights import VARIANTS  # noqa: E402
from speed import reference  # noqa: E402

from pipeline.core import config as cfg  # noqa: E402
from pipeline.core import config_layers  # noqa: E402


def spec(variant: str) -> tuple[dict, cfg.Config]:
    """speed.py's --one argument for a variant, and the variant's resolved config."""
    sets: dict = {}
    for dotted, value in VARIANTS[variant].items():
        section, key = dotted.split(".")
        sets.setdefault(section, {})[key] = value
    config = config_layers.build(named=sets)
    extra = {k: v for k, v in sets.items() if k != "train"}
    extra.setdefault("model", {}).pop("kind", None)
    one = {
        "recipe": config.model.kind,
        "precision": config.train.precision,
        "jit": False,
        "determinism": True,
        "batch": config.train.batch_size,
        "augment": True,
        "sets": extra,
    }
    return one, config


def side_by_side(one: dict, copies: int) -> list[float]:
    """Samples per second of each of `copies` processes training the variant at once."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--one", json.dumps(one)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(copies)
    ]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1])["samples_per_second"] for p in procs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default="wide,wide-f32,wide-k5,wide-k7,wide-e45,wide-10f")
    p.add_argument("--rows", type=int, default=32_000, help="Training rows of the competition (the benchmark's).")
    p.add_argument("--copies", type=int, default=2, help="Processes side by side (the workers).")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    ref = reference()
    costs, lines = {}, []
    for variant in a.variants.split(","):
        one, config = spec(variant)
        rates = [r for _ in range(a.repeat) for r in side_by_side(one, a.copies)]
        rate = statistics.median(rates)
        folds, epochs = config.train.folds, cfg.resolved(config.train.epochs)
        minutes = folds * epochs * (a.rows * (folds - 1) / folds) / rate / 60
        costs[variant] = minutes
        lines.append(
            f"| {variant} | {rate:,.0f} ({', '.join(f'{r:,.0f}' for r in rates)}) | {folds} x {epochs} "
            f"| {minutes:.0f} | {minutes / a.copies:.0f} |"
        )
    print(
        f"| variant | samples/s a worker, {a.copies} side by side (each) | folds x epochs | core-minutes a run "
        f"| minutes on {a.copies} cores |\n| --- | ---: | --- | ---: | ---: |"
    )
    print("\n".join(lines))
    print(f"\nReference (precision.py cnn 16,32 256 float32): {ref:,.0f} samples/s.\nMachine: {versions()}.")
    if a.json:
        a.json.write_text(json.dumps(costs, indent=2))


if __name__ == "__main__":
    main()
