"""Resuming inside a fold: the training state at the end of every epoch, saved atomically, restored exactly.

A CNN fold takes many minutes; a kill or a reboot in the middle of one
should cost the epoch in progress, not the fold.  At the end of each epoch
`Checkpoint` saves every variable of the model and the optimizer (weights,
batch-norm statistics, the Dropout layers' seed-generator states, Adam's
moments and its iteration count, hence the learning-rate schedule) with the
epoch, the history so far and the seconds spent, in one file written to a
temporary name and renamed.  `restore` puts them back into a model built
and compiled the same way; the data pipeline draws each epoch's shuffle and
distortions from (seed, epoch), so it restarts at the saved epoch and the
fold ends with the same bytes as one never interrupted.

Keras' own ``BackupAndRestore`` is not used: its ``.weights.h5`` leaves out
the seed-generator states (a resumed fold drew other dropout masks, so other
bytes: measured), it writes the weights and then the epoch in two files (a
kill between them resumes the wrong epoch), and it keeps no history of the
epochs before the kill.

The file is the driver's: the trainer names it (``FoldTask.checkpoint``)
for folds that train in its own process and removes it once the fold's
files are saved; a fold on a Ray worker has none and starts over if killed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import atomic_files
from pipeline.core import config as cfg
from pipeline.core.errors import StorageError
from pipeline.core.file_reads import UNREADABLE, NotRegularFile, open_regular
from pipeline.training.splits import FoldTask

log = logging.getLogger("digits")


@dataclass
class State:
    """Where a fold's training stands: the next epoch to train, the history so far, the seconds spent."""

    epoch: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def fingerprint(task: FoldTask) -> str:
    """What a checkpoint must have been made for: the config that decides the numbers, the fold and its rows."""
    what = {
        "config": cfg.result_part(task.config),
        "seed": task.seed,
        "fold": task.index,
        "val_rows": hashlib.sha256(np.ascontiguousarray(task.val_idx).tobytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def save(path: Path, model: Any, state: State, mark: str) -> None:
    """Write the state of `model` (and its optimizer) after `state.epoch` epochs; atomically."""
    arrays = {f"m{i}": np.asarray(v) for i, v in enumerate(model.variables)}
    arrays |= {f"o{i}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)}
    meta = {"fingerprint": mark, "epoch": state.epoch, "history": state.history, "seconds": state.seconds}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_files.write_npz(path, compress=False, **arrays)


def restore(path: Path, model: Any, mark: str) -> State:
    """The state saved in `path`, put back into `model`; a fresh State when there is none that fits."""
    if not path.exists():
        return State()
    try:
        with open_regular(path) as f, np.load(f, allow_pickle=False) as z:  # a FIFO there never hangs the fold
            meta = json.loads(bytes(z["meta"]).decode())
            model_vars = [z[f"m{i}"] for i in range(len(model.variables))]
            model.optimizer.build(model.trainable_variables)
            opt_vars = [z[f"o{i}"] for i in range(len(model.optimizer.variables))]
            extra = len(z.files) - 1 - len(model_vars) - len(opt_vars)
    except UNREADABLE + (UnicodeDecodeError,) as e:
        why = "not a regular file" if isinstance(e, NotRegularFile) else f"damaged ({type(e).__name__})"
        log.warning("warning: %s: %s; the fold starts over", path, why)
        return State()
    if meta.get("fingerprint") != mark or extra:
        log.warning("warning: %s was saved by another config or fold; the fold starts over", path)
        return State()
    for variable, value in zip([*model.variables, *model.optimizer.variables], [*model_vars, *opt_vars]):
        if tuple(variable.shape) != value.shape:
            log.warning("warning: %s does not fit this model; the fold starts over", path)
            return State()
    for variable, value in zip([*model.variables, *model.optimizer.variables], [*model_vars, *opt_vars]):
        variable.assign(value)
    history = {k: [float(x) for x in v] for k, v in meta["history"].items()}
    return State(int(meta["epoch"]), history, float(meta["seconds"]))


def callback(path: Path, mark: str, history: dict[str, list[float]], seconds_before: float, started: float) -> Any:
    """A Keras callback that saves the state at the end of every epoch the fold finished whole.

    `history` is the fold's history so far (the epochs before a resume and
    those since), kept up to date by the callback before this one.
    """
    import keras

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if self.model.stop_training:  # stopped mid-epoch (a signal, a NaN): that epoch is not finished
                return
            spent = seconds_before + time.perf_counter() - started
            try:
                save(path, self.model, State(epoch + 1, history, spent), mark)
            except StorageError as e:  # a full disk costs the resume point, not the fold; a user's FIFO there stops it
                log.warning("warning: %s; this fold cannot resume from epoch %d", e, epoch + 1)

    return Checkpoint()


def remove(path: Path) -> None:
    """Drop a fold's checkpoint once the fold's own files are saved."""
    path.unlink(missing_ok=True)
