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
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import atomic_files
from pipeline.core import config as cfg
from pipeline.core.errors import StorageError
from pipeline.core.file_reads import UNREADABLE, NotRegularFile, open_regular
from pipeline.store import record
from pipeline.training.splits import FoldTask

log = logging.getLogger("digits")


@dataclass
class State:
    """Where a fold's training stands: the next epoch to train, the history so far, the seconds spent."""

    epoch: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def fingerprint(task: FoldTask) -> str:
    """What a checkpoint must have been made for: the config that decides the numbers, the fold and its rows,
    and the code and libraries that computed it (another version may build other variables, or other bytes)."""
    what = {
        "config": cfg.result_part(task.config),
        "seed": task.seed,
        "fold": task.index,
        "val_rows": hashlib.sha256(np.ascontiguousarray(task.val_idx).tobytes()).hexdigest(),
        "code": record.code_version(),
        "libraries": record.library_versions(),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def save(path: Path, model: Any, state: State, mark: str) -> None:
    """Write the state of `model` (and its optimizer) after `state.epoch` epochs; atomically."""
    arrays = {f"m{i}": np.asarray(v) for i, v in enumerate(model.variables)}
    arrays |= {f"o{i}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)}
    meta = {"fingerprint": mark, "epoch": state.epoch, "history": state.history, "seconds": state.seconds}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_files.write_npz(path, compress=False, **arrays)


def restore(path: Path, model: Any, mark: str, epochs: int) -> State:
    """The state saved in `path`, put back into `model`; a fresh State when there is none that fits.

    A checkpoint that cannot be used (damaged, made for another config, fold or version, of the wrong shape
    or type, holding NaN, or claiming more epochs than the fold has) costs one warning and is deleted, so the
    fold starts over and never meets it again.
    """
    if not path.exists() and not path.is_symlink():
        return State()
    try:
        with open_regular(path) as f, np.load(f, allow_pickle=False) as z:  # a FIFO there never hangs the fold
            meta = json.loads(bytes(z["meta"]).decode())
            model_vars = [z[f"m{i}"] for i in range(len(model.variables))]
            model.optimizer.build(model.trainable_variables)
            opt_vars = [z[f"o{i}"] for i in range(len(model.optimizer.variables))]
            extra = len(z.files) - 1 - len(model_vars) - len(opt_vars)
    except NotRegularFile:
        log.warning("warning: %s: not a regular file; the fold starts over", path)  # not ours to delete
        return State()
    except UNREADABLE + (UnicodeDecodeError, RecursionError) as e:
        return _discard(path, f"damaged ({type(e).__name__})")
    variables = [*model.variables, *model.optimizer.variables]
    why = _unusable(meta, mark, extra, epochs, variables, [*model_vars, *opt_vars])
    if why is not None:
        return _discard(path, why)
    for variable, value in zip(variables, [*model_vars, *opt_vars]):
        variable.assign(value)
    history = {k: [float(x) for x in v] for k, v in meta["history"].items()}
    return State(int(meta["epoch"]), history, float(meta["seconds"]))


def _unusable(meta: Any, mark: str, extra: int, epochs: int, variables: list, values: list) -> str | None:
    """Why a checkpoint read whole cannot be resumed from, or None."""
    if not isinstance(meta, dict) or meta.get("fingerprint") != mark or extra:
        return "saved by another config, fold or version of digits"
    epoch, seconds, history = meta.get("epoch"), meta.get("seconds"), meta.get("history")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 1 <= epoch <= epochs:
        return f"its epoch {str(epoch)[:20]} is not one of the fold's 1..{epochs}"
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < math.inf:
        return "its seconds are not a time"
    if not isinstance(history, dict) or not all(
        isinstance(v, list) and len(v) == epoch and all(isinstance(x, (int, float)) for x in v)
        for v in history.values()
    ):
        return "its history does not match its epochs"
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != value.shape or np.dtype(variable.dtype) != value.dtype:
            return "it does not fit this model (shape or type)"
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return "it holds NaN or infinite weights"
    return None


def _discard(path: Path, why: str) -> State:
    log.warning("warning: %s: %s; the fold starts over", path, why)
    path.unlink(missing_ok=True)
    return State()


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
            values = [np.asarray(v) for v in self.model.variables]
            if any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in values):
                return  # a diverging fold is not saved: resuming it would diverge again
            try:
                save(path, self.model, State(epoch + 1, history, spent), mark)
            except StorageError as e:  # a full disk costs the resume point, not the fold; a user's FIFO there stops it
                log.warning("warning: %s; this fold cannot resume from epoch %d", e, epoch + 1)

    return Checkpoint()


def remove(path: Path) -> None:
    """Drop a fold's checkpoint once the fold's own files are saved."""
    path.unlink(missing_ok=True)
