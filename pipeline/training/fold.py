"""Train one fold: ``train_fold(task, data) -> FoldResult``, a pure function.

The fold's seed (mixed from the run's one seed) fixes weight initialisation,
shuffling, dropout and every distortion; TensorFlow's op determinism is on
and its thread count is fixed by the config (the arithmetic depends on it),
so the same task on the same data gives the same bytes on any machine with
the same CPU kernels.  Nothing here writes into the run folder: the result,
the saved model included as bytes, goes back to the driver, which writes it
(`pipeline.store.fold_files`), so an executor can run a fold anywhere.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from pipeline.competition.dataset import Dataset
from pipeline.core.config import Config, resolved
from pipeline.core.errors import BadInputError
from pipeline.store.fold_files import FoldResult
from pipeline.store.record import FoldRecord
from pipeline.training import checkpoint
from pipeline.training.splits import FoldTask

EpochCallback = Callable[[int, int, int, dict], None]  # (fold, epoch, epochs, logs)
StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class FoldPaused:
    """A fold that stopped at an epoch's end because the next epoch would not end inside the night's budget.

    Its checkpoint holds the `epoch` epochs trained so far (none when 0); the next night continues from it.
    """

    index: int
    epoch: int
    epochs: int
    epoch_seconds: float | None = None  # how long its last epoch took: what the next fold's start is judged by


FoldOutcome = FoldResult | FoldPaused
PREDICT_BATCH = 2048
log = logging.getLogger("digits")
_threads: int | None = None


def configure_threads(threads: int) -> None:
    """Fix TensorFlow's thread pools before its first op; they cannot change later in a process."""
    global _threads
    if _threads == threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already started in this process
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            raise BadInputError(
                f"option train.threads: TensorFlow already runs {current} threads in this process, not {threads}; "
                "run configurations with different thread counts in separate commands"
            ) from None
    _threads = threads


def check_size(config: Config) -> None:
    """Refuse a model whose weights and optimizer state cannot fit in this machine's memory."""
    from pipeline.training.networks import parameter_count

    params = parameter_count(config)
    need = params * 4 * 4  # float32 weights, gradients and Adam's two moments
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return
    if need > have:
        raise BadInputError(
            f"option model.hidden/model.filters: the model has {params:,} weights and needs about "
            f"{need / 2**30:,.0f} GiB for training; this machine has {have / 2**30:,.0f} GiB"
        )


def _dataset(x: np.ndarray, y: np.ndarray, task: FoldTask, first_epoch: int = 0) -> Any:
    """Shuffled, one-hot, distorted batches for the epochs from `first_epoch` on, from stateless seeds.

    Each epoch's order and distortions depend only on (seed, epoch), so a
    fold resumed at epoch k sees exactly the batches it would have seen.
    """
    import tensorflow as tf

    from pipeline.training.networks import distort

    config = task.config
    xs = tf.constant(x)
    ys = tf.constant(y.astype(np.int32))
    n = int(x.shape[0])
    seed = tf.constant(task.seed, tf.int64)

    def epoch(e: Any) -> Any:
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seed, e]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(resolved(config.train.batch_size)).enumerate()

        def load(i: Any, idx: Any) -> Any:
            images = tf.cast(tf.gather(xs, idx), tf.float32) / 255.0
            if config.augment.enabled:
                images = distort(images, tf.stack([seed * 7919 + e, i]), config.augment)
            return images, tf.one_hot(tf.gather(ys, idx), 10)

        return batches.map(load)

    epochs = tf.data.Dataset.range(first_epoch, resolved(config.train.epochs))
    return epochs.flat_map(epoch).prefetch(4)


def _callbacks(
    task: FoldTask, history: dict[str, list[float]], on_epoch: EpochCallback | None, should_stop: StopCheck | None
) -> list:
    import keras

    epochs = resolved(task.config.train.epochs)

    class Report(keras.callbacks.Callback):
        """Keeps each epoch's metrics and learning rate in `history`; forwards them to the progress display;
        stops at the next batch when asked."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = dict(logs or {})
            lr = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
            for key, value in logs.items():
                history.setdefault(key, []).append(float(value))
            if on_epoch:
                on_epoch(task.index, epoch + 1, epochs, logs)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if should_stop is not None and should_stop():  # SIGTERM: stop at the next batch, not mid-op
                self.model.stop_training = True

    # No early stopping: it chose the epoch on the validation rows, whose predictions are the run's
    # out-of-fold estimate.  The cosine schedule decays to zero, so the last epoch is the model
    # (measured: restoring the best epoch on those rows changed the holdout by 0.01 point).
    return [Report(), keras.callbacks.TerminateOnNaN()]


def _check_finite(history: dict[str, list[float]], task: FoldTask) -> None:
    for epoch, loss in enumerate(history.get("loss", []), start=1):
        if not math.isfinite(loss):
            raise BadInputError(
                f"fold {task.index} diverged: the training loss became {loss} in epoch {epoch}; lower "
                f"train.learning_rate (now {task.config.train.learning_rate:g})"
            )


def train_fold(
    task: FoldTask, data: Dataset, on_epoch: EpochCallback | None = None, should_stop: StopCheck | None = None
) -> FoldOutcome:
    """Train the fold's model, evaluate it on its validation rows, predict the test rows; return it all.

    Raises KeyboardInterrupt when `should_stop` turns true (checked after every batch, and between the
    batches it predicts).  With a deadline (`task.deadline`), returns a `FoldPaused` instead when the next
    epoch would not end by then: estimated from this fold's last epoch, or before its first epoch tonight
    from its own earlier epochs or the run's (`task.epoch_seconds`).
    """
    config = task.config
    configure_threads(config.train.threads)
    check_size(config)
    import keras
    import tensorflow as tf

    # The precision is a process-wide Keras policy: set for this fold, put back after it.
    keras.mixed_precision.set_global_policy(resolved_precision(config))
    try:
        return _train(task, data, on_epoch, should_stop)
    except (tf.errors.ResourceExhaustedError, MemoryError):
        raise BadInputError(
            f"fold {task.index}: out of memory; choose a smaller model (model.hidden, model.filters) "
            "or train.batch_size"
        ) from None
    finally:
        keras.mixed_precision.set_global_policy("float32")
        keras.backend.clear_session()  # the next fold starts from a clean graph


def resolved_precision(config: Config) -> str:
    """The fold's precision: a run settles ``auto`` when it starts; a bare task (a benchmark) settles it here."""
    from pipeline.training.hardware import precision_for

    return precision_for(resolved(config.model.kind), config.train.precision)


def _budget(deadline: float, epochs: int, paused: list[tuple[int, float]]) -> Any:
    """A Keras callback that stops training at an epoch's end when another epoch as long would end too late.

    It runs after the checkpoint's callback, so the epoch it stops after is saved.
    """
    import keras

    class Budget(keras.callbacks.Callback):
        began = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.began = time.time()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if self.model.stop_training or epoch + 1 >= epochs:
                return
            now = time.time()
            if now + (now - self.began) > deadline:
                self.model.stop_training = True
                paused.append((epoch + 1, now - self.began))

    return Budget()


def _predict(model: Any, x: np.ndarray, should_stop: StopCheck | None) -> np.ndarray:
    """The model's probabilities for `x`, in the batches `predict` would use; a stop is heard between them.

    Predicting a CNN fold's validation and test rows takes tens of seconds on one thread: a SIGTERM must not
    wait for it.
    """
    parts = []
    for start in range(0, len(x), PREDICT_BATCH):
        if should_stop is not None and should_stop():
            raise KeyboardInterrupt
        parts.append(model.predict(x[start : start + PREDICT_BATCH], batch_size=PREDICT_BATCH, verbose=0))
    return np.concatenate(parts) if parts else np.zeros((0, 10), np.float32)


def _train(task: FoldTask, data: Dataset, on_epoch: EpochCallback | None, should_stop: StopCheck | None) -> FoldOutcome:
    import keras
    import tensorflow as tf

    from pipeline.training.networks import build_model, compile_model

    tf.get_logger().setLevel("ERROR")  # retracing notices between folds are expected
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(task.seed)
    train = task.config.train
    batch_size = resolved(train.batch_size)
    x_train, y_train = data.x[task.train_idx], data.y[task.train_idx]
    x_val = data.x[task.val_idx].astype(np.float32) / 255.0
    y_val = keras.utils.to_categorical(data.y[task.val_idx], 10)
    steps = math.ceil(len(x_train) / batch_size)

    model = build_model(task.config)
    compile_model(model, train, steps)
    saved = Path(task.checkpoint) if task.checkpoint else None
    mark = checkpoint.fingerprint(task) if saved else ""
    state = checkpoint.restore(saved, model, mark, resolved(train.epochs)) if saved else checkpoint.State()
    if state.epoch:
        log.info("fold %d: resuming after epoch %d of %d (%s)", task.index + 1, state.epoch, train.epochs, saved)
    epochs = resolved(train.epochs)
    paused: list[tuple[int, float]] = []
    if saved and task.deadline is not None and state.epoch < epochs and not task.start_anyway:
        per_epoch = task.epoch_seconds or (state.seconds / state.epoch if state.epoch else None)
        if per_epoch is not None and time.time() + per_epoch > task.deadline:
            return FoldPaused(task.index, state.epoch, epochs, per_epoch)
    hist = {k: list(v) for k, v in state.history.items()}
    callbacks = _callbacks(task, hist, on_epoch, should_stop)
    start = time.perf_counter()
    if saved:
        callbacks.append(checkpoint.callback(saved, mark, hist, state.seconds, start))
        if task.deadline is not None:
            callbacks.append(_budget(task.deadline, epochs, paused))
    if state.epoch < epochs:
        model.fit(
            _dataset(x_train, y_train, task, first_epoch=state.epoch),
            steps_per_epoch=steps,
            initial_epoch=state.epoch,
            epochs=epochs,
            validation_data=(x_val, y_val),
            validation_batch_size=PREDICT_BATCH,
            callbacks=callbacks,
            shuffle=False,  # the dataset shuffles itself, reproducibly
            verbose=0,
        )
    if should_stop is not None and should_stop():
        raise KeyboardInterrupt
    seconds = state.seconds + time.perf_counter() - start
    _check_finite(hist, task)
    if paused:
        return FoldPaused(task.index, paused[0][0], epochs, paused[0][1])
    epochs_run = len(hist.get("loss", []))

    val_proba = _predict(model, x_val, should_stop).astype(np.float32)
    test_proba = _predict(model, data.x_test.astype(np.float32) / 255.0, should_stop)
    val_accuracy = float(np.mean(val_proba.argmax(1) == data.y[task.val_idx]))
    val_loss = float(keras.losses.CategoricalCrossentropy()(y_val, val_proba))
    with tempfile.TemporaryDirectory(prefix="digits-fold-") as tmp:
        path = Path(tmp) / f"fold-{task.index}.keras"
        model.save(path)
        model_bytes = path.read_bytes()
    record = FoldRecord(
        index=task.index,
        train_rows=int(len(task.train_idx)),
        val_rows=int(len(task.val_idx)),
        val_accuracy=val_accuracy,
        val_loss=val_loss,
        best_epoch=epochs_run,  # the model is its last epoch: nothing chooses one on the validation rows
        epochs_run=epochs_run,
        seconds=round(seconds, 2),
        samples_per_second=round(len(x_train) * epochs_run / max(seconds, 1e-9), 1),
        history={k: list(v) for k, v in hist.items()},
    )
    return FoldResult(record, task.val_idx, val_proba, test_proba.astype(np.float32), model_bytes)


def predict_models(model_paths: list[Path], x: np.ndarray, threads: int) -> np.ndarray:
    """Average the softmax outputs of saved fold models on `x` (uint8 pixels)."""
    configure_threads(threads)
    import keras

    x = x.astype(np.float32) / 255.0
    total = None
    for path in model_paths:
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as e:  # Keras raises many types for a damaged zip
            raise BadInputError(f"{path}: fold model is corrupt or unreadable ({type(e).__name__})") from None
        proba = model.predict(x, batch_size=PREDICT_BATCH, verbose=0).astype(np.float64)
        total = proba if total is None else total + proba
    assert total is not None
    return (total / len(model_paths)).astype(np.float32)
