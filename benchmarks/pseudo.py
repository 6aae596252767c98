"""Does pseudo-labelling pay?  One fold trained again with the confident test rows added, against the same fold without.

The blend of a recipe's runs in a pool made by benchmarks/nights.py labels
the holdout rows (which play test.csv) it is sure of (top probability at or
above --confidence); fold 0 of the first run of that recipe is trained again,
with the same seed, on its own training rows plus those pseudo-labelled rows.
Both models then predict the holdout: the difference is what pseudo-labelling
gains for one fold.  The holdout's true labels are only ever used to score.

    python benchmarks/pseudo.py --pool /tmp/bench/pool --split /tmp/bench/split --holdout /tmp/bench/holdout_labels.npy
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.competition import dataset  # noqa: E402
from pipeline.nightly import blend  # noqa: E402
from pipeline.store import fold_files, record, run_arrays  # noqa: E402
from pipeline.training import splits  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--holdout", type=Path, required=True)
    p.add_argument("--recipe", default="cnn-wide")
    # label smoothing 0.1 caps a model's top probability near 0.91: 0.99 would keep almost no row
    p.add_argument("--confidence", type=float, default=0.85)
    a = p.parse_args()
    from pipeline.training.fold import train_fold

    y_ho = np.load(a.holdout)
    data = dataset.load(a.split)
    runs = [d for d in sorted((a.pool / "runs").glob("*")) if record.read(d).complete]
    runs = [d for d in runs if record.read(d).config.model.kind == a.recipe]
    labels = run_arrays.load_oof(runs[0])[0]
    oofs = [run_arrays.load_oof(d, finite=True)[1] for d in runs]
    tests = [run_arrays.load_test(d, len(y_ho)) for d in runs]
    counts = blend.select(labels, oofs)
    mixed = np.asarray(sum(c * t.astype(np.float64) for c, t in zip(counts, tests))) / counts.sum()
    sure = mixed.max(axis=1) >= a.confidence
    pseudo = mixed.argmax(axis=1)
    print(
        f"blend of {len(runs)} {a.recipe} runs: holdout {np.mean(pseudo == y_ho):.2%}; {sure.sum():,} rows at "
        f"confidence >= {a.confidence}, of which {np.mean(pseudo[sure] == y_ho[sure]):.3%} right",
        flush=True,
    )
    first = record.read(runs[0])
    task = splits.make_tasks(first.config, data.y, first.run_id)[0]
    with np.load(fold_files.fold_paths(runs[0], 0)["npz"]) as z:
        plain_holdout = float(np.mean(z["test_proba"].argmax(1) == y_ho))
    extra = np.flatnonzero(sure)
    n = len(data.y)
    widened = dataset.Dataset(
        x=np.concatenate([data.x, data.x_test[extra]]), y=np.concatenate([data.y, pseudo[extra]]), x_test=data.x_test
    )
    task = dataclasses.replace(task, train_idx=np.concatenate([task.train_idx, n + np.arange(len(extra))]))
    result = train_fold(task, widened)
    pseudo_holdout = float(np.mean(result.test_proba.argmax(1) == y_ho))
    print(
        json.dumps(
            {
                "recipe": a.recipe,
                "fold": 0,
                "seed": first.config.train.seed,
                "pseudo_rows": int(len(extra)),
                "holdout_without": plain_holdout,
                "holdout_with": pseudo_holdout,
                "minutes_with": result.record.seconds / 60,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
