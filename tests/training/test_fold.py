"""Training one fold (pipeline.training.fold): what shapes a row's out-of-fold prediction."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.competition.dataset import Dataset
from pipeline.core import config_layers
from pipeline.training import splits
from pipeline.training.fold import train_fold
from tests.helpers import table


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "cnn-wide"])
def test_no_validation_label_shapes_its_own_prediction(kind):
    """The out-of-fold estimate is honest only if nothing that made a row's prediction saw the row's label:
    the same fold trained with every validation label changed must predict the same bytes."""
    rows = table(240, seed=3)
    data = Dataset(
        x=rows[:, 1:].astype(np.uint8),
        y=rows[:, 0].astype(np.int64),
        x_test=table(20, 4, labels=False).astype(np.uint8),
    )
    model = {"kind": kind, "hidden": "16"} if kind == "mlp" else {"kind": kind, "filters": "4"}
    config = config_layers.build(
        named={"model": model, "train": {"seed": 5, "epochs": 3, "folds": 2, "batch_size": 32}},
        sets={"train": {"precision": "float32", "warmup_epochs": "1"}},
    )
    task = splits.make_tasks(config, data.y)[0]
    honest = train_fold(task, data)
    lied = data.y.copy()
    lied[task.val_idx] = (lied[task.val_idx] + 3) % 10  # every validation label wrong
    other = train_fold(task, Dataset(x=data.x, y=lied, x_test=data.x_test))
    assert honest.val_proba.tobytes() == other.val_proba.tobytes()
    assert honest.test_proba.tobytes() == other.test_proba.tobytes()
    assert honest.record.val_accuracy != other.record.val_accuracy  # the labels do reach the score, and only it
    assert honest.record.best_epoch == honest.record.epochs_run == 3
