"""Does test-time augmentation pay?  The pool's saved fold models predict shifted copies of the rows.

For every finished run in a pool made by benchmarks/nights.py, each fold's
saved model predicts its own validation rows and the holdout rows, plain and
shifted by one pixel each way (up, down, left, right); the five predictions
are averaged.  Prints each run's out-of-fold and holdout accuracy without and
with the shifts, and the same for the blend of each recipe's runs (chosen,
as the job does, on the out-of-fold probabilities).  TTA touches nothing but
prediction, so the models need not be trained again.

    python benchmarks/tta.py --pool /tmp/bench/pool --holdout /tmp/bench/holdout_labels.npy --split /tmp/bench/split
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pipeline.competition import dataset  # noqa: E402
from pipeline.nightly import blend  # noqa: E402
from pipeline.store import fold_files, record, run_arrays  # noqa: E402

SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def shifted(x: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Images moved by (dx, dy) pixels, the edge that comes in left blank."""
    images = x.reshape(-1, 28, 28)
    out = np.zeros_like(images)
    ys, yd = (slice(0, 28 - dy), slice(dy, 28)) if dy >= 0 else (slice(-dy, 28), slice(0, 28 + dy))
    xs, xd = (slice(0, 28 - dx), slice(dx, 28)) if dx >= 0 else (slice(-dx, 28), slice(0, 28 + dx))
    out[:, yd, xd] = images[:, ys, xs]
    return out.reshape(-1, 784)


def with_tta(run_dir: Path, x_train: np.ndarray, x_ho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(out-of-fold, holdout) probabilities averaged over the plain and shifted rows, fold by fold."""
    import keras

    rec = record.read(run_dir)
    oof = np.zeros((len(x_train), 10))
    test = np.zeros((len(x_ho), 10))
    for f in rec.folds:
        with np.load(fold_files.fold_paths(run_dir, f.index)["npz"]) as z:
            val_idx = z["val_idx"]
        model = keras.models.load_model(fold_files.fold_paths(run_dir, f.index)["keras"], compile=False)
        for dx, dy in ((0, 0), *SHIFTS):
            v = shifted(x_train[val_idx], dx, dy).astype(np.float32) / 255.0
            t = shifted(x_ho, dx, dy).astype(np.float32) / 255.0
            oof[val_idx] += model.predict(v, batch_size=2048, verbose=0) / (1 + len(SHIFTS))
            test += model.predict(t, batch_size=2048, verbose=0) / (1 + len(SHIFTS)) / len(rec.folds)
        keras.backend.clear_session()
    return oof.astype(np.float32), test.astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", type=Path, required=True)
    p.add_argument("--holdout", type=Path, required=True, help="holdout_labels.npy written by nights.py")
    p.add_argument("--split", type=Path, required=True, help="the split folder (train.csv, test.csv) of nights.py")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    y_ho = np.load(a.holdout)
    data = dataset.load(a.split)
    rows, arrays = [], {}
    for run_dir in sorted((a.pool / "runs").glob("*")):
        rec = record.read(run_dir)
        if not rec.complete:
            continue
        labels, oof = run_arrays.load_oof(run_dir, finite=True)
        test = run_arrays.load_test(run_dir, len(y_ho))
        cache = run_dir / "tta.npz"
        if cache.exists():
            with np.load(cache) as z:
                oof_t, test_t = z["oof"], z["test"]
        else:
            oof_t, test_t = with_tta(run_dir, data.x, data.x_test)
            np.savez(cache, oof=oof_t, test=test_t)
        arrays[rec.run_id] = (rec, oof, test, oof_t, test_t)
        row = {
            "run": rec.run_id,
            "recipe": rec.config.model.kind,
            "oof": float(np.mean(oof.argmax(1) == labels)),
            "oof_tta": float(np.mean(oof_t.argmax(1) == labels)),
            "holdout": float(np.mean(test.argmax(1) == y_ho)),
            "holdout_tta": float(np.mean(test_t.argmax(1) == y_ho)),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    for recipe in sorted({r["recipe"] for r in rows}):
        members = [v for v in arrays.values() if v[0].config.model.kind == recipe]
        if len(members) < 2:
            continue
        for tta in (False, True):
            oofs = [m[3] if tta else m[1] for m in members]
            tests = [m[4] if tta else m[2] for m in members]
            counts = blend.select(labels, oofs)
            mixed = sum(c * t.astype(np.float64) for c, t in zip(counts, tests))
            est = blend.cross_validated(labels, oofs, 5).accuracy
            row = {
                "run": f"blend of {len(members)} {recipe} runs",
                "recipe": recipe,
                "tta": tta,
                "estimate": est,
                "holdout": float(np.mean(np.asarray(mixed).argmax(1) == y_ho)),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
