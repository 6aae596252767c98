"""Test-only fault injection for the Ray tests, loaded in every Python process started with this folder on PYTHONPATH.

With DIGITS_TEST_FAIL_FOLD=k, training fold k raises, as a bug or a bad
machine would; the Ray worker that runs it reports the error to the driver.
Nothing in `pipeline` knows about this.
"""

import os

_fold = os.environ.get("DIGITS_TEST_FAIL_FOLD")
if _fold is not None:
    import pipeline.training.fold as _train

    _real = _train.train_fold

    def _failing(task, data, *args, **kwargs):  # type: ignore[no-untyped-def]
        if task.index == int(_fold):
            raise RuntimeError(f"injected failure in fold {task.index}")
        return _real(task, data, *args, **kwargs)

    _train.train_fold = _failing
