"""Training throughput of each recipe: precision, XLA, op determinism, batch size and the input pipeline.

Each variant trains the recipe's real model (`pipeline.training.networks`)
on the real input pipeline (`pipeline.training.fold._dataset`: shuffle and
distortion per batch) for a warm-up epoch and a measured epoch, in a fresh
process (precision policy, thread pools and determinism are process-wide),
with the run's thread count.  Variants are interleaved and repeated, and the
median is printed, so the ratios within one run compare like with like.

    python benchmarks/speed.py [--recipes mlp,cnn,cnn-wide] [--repeat 3] [--json OUT]

Also prints this machine's reference figure (precision.py's `cnn 16,32 256
float32`, about 2,400 samples/s on the Xeon the issues were measured on):
divide a night's minutes by the ratio to compare machines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROWS = 6_400  # rows per measured epoch (a quarter of a benchmark fold)


def one(
    recipe: str, precision: str, jit: bool, determinism: bool, batch: int, augment: bool, sets: dict | None = None
) -> dict:
    """Samples per second of one variant, in this process (`sets`: more config values, {"model": {"kernel": 5}})."""
    import dataclasses

    import keras
    import numpy as np
    import tensorflow as tf

    from pipeline.core import config_layers
    from pipeline.training import fold, networks, splits

    named = config_layers.merge(sets or {}, {"model": {"kind": recipe}, "train": {"seed": 1, "batch_size": batch}})
    config = config_layers.build(named=named)
    config = dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, precision=precision, epochs=2),
        augment=dataclasses.replace(config.augment, enabled=augment),
    )
    fold.configure_threads(config.train.threads)
    if determinism:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (ROWS, 784), dtype=np.uint8)
    y = rng.integers(0, 10, ROWS)
    task = splits.FoldTask(config, 0, np.arange(ROWS), np.arange(0))
    steps = ROWS // batch
    model = networks.build_model(config)
    networks.compile_model(model, config.train, steps, jit_compile=jit)
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            times.append(time.perf_counter())

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            times.append(time.perf_counter())

    model.fit(fold._dataset(x, y, task), steps_per_epoch=steps, epochs=2, callbacks=[Clock()], verbose=0)
    return {"samples_per_second": steps * batch / (times[3] - times[2])}


def variants(recipe: str) -> list[dict]:
    from pipeline.core import config as cfg

    batch = cfg.RECIPES[recipe]["train"]["batch_size"]
    base = {"recipe": recipe, "determinism": True, "batch": batch, "augment": True}
    out = [{**base, "precision": p, "jit": j} for p in ("float32", "mixed_bfloat16") for j in (False, True)]
    for precision in ("float32", "mixed_bfloat16"):
        plain = {**base, "precision": precision, "jit": False}
        out += [
            {**plain, "determinism": False},
            {**plain, "batch": batch // 2},
            {**plain, "batch": batch * 2},
            {**plain, "augment": False},
        ]
    return out


def reference() -> float:
    """precision.py's `cnn 16,32 256 float32`: the figure machines are compared by."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "precision.py"), "cnn", "16,32", "256", "float32"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1].split(":")[-1].split()[0].replace(",", ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", default="mlp,cnn,cnn-wide")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path)
    p.add_argument("--one", help=argparse.SUPPRESS)  # a variant as JSON: measured in this process
    a = p.parse_args()
    if a.one:
        v = json.loads(a.one)
        print(
            json.dumps(
                one(v["recipe"], v["precision"], v["jit"], v["determinism"], v["batch"], v["augment"], v.get("sets"))
            )
        )
        return
    from holdout import versions

    todo = [v for recipe in a.recipes.split(",") for v in variants(recipe)]
    got: dict[str, list[float]] = {json.dumps(v, sort_keys=True): [] for v in todo}
    refs = []
    for r in range(a.repeat):
        refs.append(reference())
        for v in todo:  # interleaved: drift in the machine's speed touches every variant alike
            out = subprocess.run(
                [sys.executable, __file__, "--one", json.dumps(v)], capture_output=True, text=True, check=True
            )
            got[json.dumps(v, sort_keys=True)].append(
                json.loads(out.stdout.strip().splitlines()[-1])["samples_per_second"]
            )
            print(f"repeat {r + 1}: {v} {got[json.dumps(v, sort_keys=True)][-1]:,.0f}", flush=True)
    rows = [{**json.loads(k), "samples_per_second": statistics.median(vals), "all": vals} for k, vals in got.items()]
    lines = [
        "| recipe | precision | XLA | determinism | batch | augment | samples/s (median) | vs float32 same recipe |",
        "| --- | --- | --- | --- | ---: | --- | ---: | ---: |",
    ]
    for row in rows:
        base = next(
            b["samples_per_second"]
            for b in rows
            if b["recipe"] == row["recipe"]
            and b["precision"] == "float32"
            and not b["jit"]
            and b["determinism"]
            and b["augment"]
            and b["batch"] == variants(row["recipe"])[0]["batch"]
        )
        lines.append(
            f"| {row['recipe']} | {row['precision']} | {'on' if row['jit'] else 'off'} "
            f"| {'on' if row['determinism'] else 'off'} | {row['batch']} | {'on' if row['augment'] else 'off'} "
            f"| {row['samples_per_second']:,.0f} | ×{row['samples_per_second'] / base:.2f} |"
        )
    ref = statistics.median(refs)
    load = os.getloadavg()
    print("\n" + "\n".join(lines))
    print(
        f"\nReference (precision.py cnn 16,32 256 float32): {ref:,.0f} samples/s (runs: "
        f"{', '.join(f'{x:,.0f}' for x in refs)}); load average at the end {load[0]:.2f}.\nMachine: {versions()}."
    )
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "reference": refs, "machine": versions()}, indent=2))


if __name__ == "__main__":
    main()
