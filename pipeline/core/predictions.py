"""Soft voting over folds, and the accuracy figures the report keeps."""

from __future__ import annotations

import numpy as np

CLASSES = 10


def soft_vote(probas: list[np.ndarray]) -> np.ndarray:
    """Mean of the folds' softmax outputs: (n, 10) float32."""
    if not probas:
        raise ValueError("soft_vote needs at least one set of probabilities")
    return np.mean(np.stack(probas).astype(np.float64), axis=0).astype(np.float32)


def out_of_fold(n: int, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Assemble each row's probabilities from the one fold that did not train on it.

    `folds` holds (val_idx, val_proba) pairs; rows no fold validated are NaN.
    """
    oof = np.full((n, CLASSES), np.nan, dtype=np.float32)
    for idx, proba in folds:
        oof[idx] = proba
    return oof


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """10x10 counts; rows are true labels, columns predictions."""
    return np.bincount(y_true * CLASSES + y_pred, minlength=CLASSES * CLASSES).reshape(CLASSES, CLASSES)


def summarise(y: np.ndarray, oof: np.ndarray) -> dict:
    """Out-of-fold accuracy, per-class accuracy and confusion matrix over the validated rows."""
    seen = ~np.isnan(oof).any(axis=1)
    y_true, y_pred = y[seen], oof[seen].argmax(axis=1)
    cm = confusion(y_true, y_pred)
    per_class = np.divide(np.diag(cm), cm.sum(axis=1), out=np.full(CLASSES, np.nan), where=cm.sum(axis=1) > 0)
    return {
        "oof_accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else None,
        "oof_rows": int(seen.sum()),
        "per_class_accuracy": [None if np.isnan(v) else float(v) for v in per_class],
        "confusion_matrix": cm.tolist(),
    }
