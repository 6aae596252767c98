"""Train one fold: ``train_fold(task, data) -> FoldResult``.

A pure function of its inputs: the fold's seed (derived from the config's one
seed) fixes weight initialisation, shuffling, dropout and every distortion,
and TensorFlow's op determinism is on, so the same task on the same data gives
the same probabilities, bit for bit.

The result is written to ``<run>/folds/fold-<k>.{keras,npz,json}``; the
JSON goes last, so its presence marks a finished fold that a resumed run can
reuse.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from pipeline import files
from pipeline.data import Dataset
from pipeline.errors import BadInputError
from pipeline.folds import FoldTask

EpochCallback = Callable[[int, int, int, dict], None]  # (fold, epoch, epochs, logs)


@dataclass
class FoldResult:
    """What a fold leaves behind; plain data, so it can travel between processes."""

    index: int
    train_rows: int
    val_rows: int
    val_accuracy: float
    val_loss: float
    best_epoch: int  # 1-based
    epochs_run: int
    seconds: float
    samples_per_second: float
    history: dict = field(default_factory=dict)
    val_idx: np.ndarray | None = None
    val_proba: np.ndarray | None = None
    test_proba: np.ndarray | None = None
    model_path: str = ""

    def summary(self) -> dict:
        """The JSON-friendly part, as stored in the report."""
        d = asdict(self)
        for k in ("val_idx", "val_proba", "test_proba"):
            d.pop(k)
        return d


def fold_paths(run_dir: str | Path, index: int) -> dict[str, Path]:
    base = Path(run_dir) / "folds"
    return {ext: base / f"fold-{index}.{ext}" for ext in ("keras", "npz", "json")}


def _dataset(x: np.ndarray, y: np.ndarray, task: FoldTask, steps: int):
    """Shuffled, one-hot, distorted batches for all epochs, from stateless seeds."""
    import tensorflow as tf

    from pipeline.model import distort

    cfg = task.config
    xs = tf.constant(x)
    ys = tf.constant(y.astype(np.int32))
    n = int(x.shape[0])
    seed = tf.constant(task.seed, tf.int64)

    def epoch(e):
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seed, e]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(cfg.train.batch_size).enumerate()

        def load(i, idx):
            images = tf.cast(tf.gather(xs, idx), tf.float32) / 255.0
            if cfg.augment.enabled:
                images = distort(images, tf.stack([seed * 7919 + e, i]), cfg.augment)
            return images, tf.one_hot(tf.gather(ys, idx), 10)

        return batches.map(load)

    return tf.data.Dataset.range(cfg.train.epochs).flat_map(epoch).prefetch(4)


def _callbacks(task: FoldTask, on_epoch: EpochCallback | None) -> list:
    import keras

    class Report(keras.callbacks.Callback):
        """Records the learning rate and forwards each epoch to the progress display."""

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            lr = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
            self.model.history.history.setdefault("learning_rate", []).append(logs["learning_rate"])
            if on_epoch:
                on_epoch(task.index, epoch + 1, task.config.train.epochs, logs)

    cbs: list = [Report()]
    if task.config.train.early_stopping:
        cbs.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=task.config.train.early_stopping, restore_best_weights=True
            )
        )
    return cbs


def train_fold(task: FoldTask, data: Dataset, on_epoch: EpochCallback | None = None) -> FoldResult:
    """Train the fold's model, evaluate it on its validation rows, predict the test rows, save it all."""
    import keras
    import tensorflow as tf

    from pipeline.model import build_mlp, compile_model

    tf.get_logger().setLevel("ERROR")  # retracing notices between folds are expected
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(task.seed)
    cfg = task.config.train
    x_train, y_train = data.x[task.train_idx], data.y[task.train_idx]
    x_val = data.x[task.val_idx].astype(np.float32) / 255.0
    y_val = keras.utils.to_categorical(data.y[task.val_idx], 10)
    steps = math.ceil(len(x_train) / cfg.batch_size)

    model = build_mlp(task.config)
    compile_model(model, cfg, steps)
    start = time.perf_counter()
    history = model.fit(
        _dataset(x_train, y_train, task, steps),
        steps_per_epoch=steps,
        epochs=cfg.epochs,
        validation_data=(x_val, y_val),
        validation_batch_size=2048,
        callbacks=_callbacks(task, on_epoch),
        shuffle=False,  # the dataset shuffles itself, reproducibly
        verbose=0,
    )
    seconds = time.perf_counter() - start
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    epochs_run = len(hist.get("loss", []))
    val_losses = hist.get("val_loss", [math.nan])
    best = int(np.nanargmin(val_losses)) if cfg.early_stopping else epochs_run - 1

    val_proba = model.predict(x_val, batch_size=2048, verbose=0).astype(np.float32)
    test_proba = model.predict(data.x_test.astype(np.float32) / 255.0, batch_size=2048, verbose=0).astype(np.float32)
    val_accuracy = float(np.mean(val_proba.argmax(1) == data.y[task.val_idx]))
    val_loss = float(keras.losses.CategoricalCrossentropy()(y_val, val_proba))

    paths = fold_paths(task.run_dir, task.index)
    with files.atomic_path(paths["keras"]) as tmp:  # the temporary name keeps the .keras suffix Keras insists on
        model.save(tmp)
    result = FoldResult(
        index=task.index,
        train_rows=int(len(task.train_idx)),
        val_rows=int(len(task.val_idx)),
        val_accuracy=val_accuracy,
        val_loss=val_loss,
        best_epoch=best + 1,
        epochs_run=epochs_run,
        seconds=round(seconds, 2),
        samples_per_second=round(len(x_train) * epochs_run / seconds, 1),
        history=hist,
        val_idx=task.val_idx,
        val_proba=val_proba,
        test_proba=test_proba,
        model_path=str(paths["keras"]),
    )
    save_fold(task.run_dir, result)
    return result


def save_fold(run_dir: str | Path, result: FoldResult) -> None:
    paths = fold_paths(run_dir, result.index)
    files.write_npz(paths["npz"], val_idx=result.val_idx, val_proba=result.val_proba, test_proba=result.test_proba)
    files.write_json(paths["json"], result.summary())


def load_fold(run_dir: str | Path, index: int) -> FoldResult | None:
    """A finished fold from disk, or None if it never finished; corrupt files are an error."""
    paths = fold_paths(run_dir, index)
    if not paths["json"].is_file():
        return None
    try:
        summary = json.loads(paths["json"].read_text())
        with np.load(paths["npz"], allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("val_idx", "val_proba", "test_proba")}
        return FoldResult(**summary, **arrays)
    except (OSError, ValueError, KeyError, TypeError, EOFError) as e:
        raise BadInputError(
            f"{paths['npz']}: fold {index} results are corrupt ({type(e).__name__}); delete the fold's files to retrain it"
        ) from None


def predict_models(model_paths: list[Path], x: np.ndarray) -> np.ndarray:
    """Average the softmax outputs of saved fold models on `x` (uint8 pixels)."""
    import keras

    x = x.astype(np.float32) / 255.0
    total = None
    for path in model_paths:
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as e:  # Keras raises many types for a damaged zip
            raise BadInputError(f"{path}: fold model is corrupt or unreadable ({type(e).__name__})") from None
        proba = model.predict(x, batch_size=2048, verbose=0).astype(np.float64)
        total = proba if total is None else total + proba
    return (total / len(model_paths)).astype(np.float32)
