"""digits: the nightly Kaggle Digit Recognizer job.

For a notebook, the runs as pandas DataFrames (`pipeline.views.frames`)::

    import pipeline
    runs = pipeline.runs_frame("path/to/output-dir")      # one row per run
    folds = pipeline.folds_frame("path/to/output-dir")    # one row per fold, its curves in ``history``
    epochs = pipeline.epochs_frame("path/to/output-dir")  # one row per epoch of each fold

They are loaded on first use, so ``import pipeline`` (and the command line) stays light.
"""

from typing import Any

__version__ = "0.1.0"
FRAMES = ("runs_frame", "folds_frame", "epochs_frame")
__all__ = ["__version__", *FRAMES]


def __getattr__(name: str) -> Any:
    if name in FRAMES:
        from pipeline.views import frames

        return getattr(frames, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
