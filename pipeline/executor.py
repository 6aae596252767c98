"""Run fold tasks.  In-process today; a Ray or Dask backend would keep this signature.

An executor knows nothing of what a fold does: it calls `train_fold` on each
task and hands every result to `on_result` as soon as it exists, so finished
folds are saved (and reported) before the next one starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pipeline.data import Dataset
from pipeline.folds import FoldTask


def run_in_process(
    tasks: Iterable[FoldTask],
    data: Dataset,
    on_epoch: Callable | None = None,
    on_result: Callable | None = None,
) -> list:
    """Train the tasks one after another in this process (both cores go to each fold's matrix products)."""
    from pipeline.train import train_fold

    results = []
    for task in tasks:
        result = train_fold(task, data, on_epoch)
        if on_result:
            on_result(result)
        results.append(result)
    return results
