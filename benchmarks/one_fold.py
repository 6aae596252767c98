"""One fold of a config on the real data's holdout split: seconds per epoch and holdout accuracy.

The frontier of the CNN's accuracy against minutes was measured with this:
the same split as benchmarks/holdout.py (32,000 training rows, 10,000
holdout rows), fold 0 of 5 (25,600 rows trained, 6,400 validated), seed 7,
then the fold's model predicts the holdout rows.  A full `digits run` trains
five such folds, so its minutes are about five times a fold's.

    python benchmarks/one_fold.py model.kind=cnn model.filters=16,32 train.epochs=20
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from holdout import DEFAULT_ZIP, load_real, split  # noqa: E402

from pipeline.competition.dataset import Dataset  # noqa: E402
from pipeline.core import config_layers  # noqa: E402
from pipeline.training.splits import make_tasks  # noqa: E402


def main() -> None:
    import tempfile

    from pipeline.training.fold import train_fold

    with tempfile.TemporaryDirectory(prefix="digits-fold-") as tmp:
        x, y, _ = load_real(DEFAULT_ZIP, Path(tmp))
    x_tr, x_ho, y_tr, y_ho = split(x, y)
    config = config_layers.build(sets=config_layers.parse_set(sys.argv[1:]), named={"train": {"seed": 7}})
    task = make_tasks(config, y_tr)[0]
    t = time.perf_counter()

    def on_epoch(fold: int, epoch: int, epochs: int, logs: dict) -> None:
        print(
            f"  epoch {epoch}/{epochs} {time.perf_counter() - t:.0f}s val_acc {logs.get('val_accuracy', 0):.4f}",
            flush=True,
        )

    result = train_fold(task, Dataset(x=x_tr, y=y_tr, x_test=x_ho), on_epoch=on_epoch)
    r = result.record
    print(
        json.dumps(
            {
                "args": sys.argv[1:],
                "val": r.val_accuracy,
                "holdout": float(np.mean(result.test_proba.argmax(1) == y_ho)),
                "fold_seconds": round(time.perf_counter() - t, 1),
                "s_per_epoch": round(r.seconds / r.epochs_run, 1),
                "samples_per_second": r.samples_per_second,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
