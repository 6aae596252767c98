"""Test-only fault injection for the Ray tests, loaded in every Python process started with this folder on PYTHONPATH.

Nothing in `pipeline` knows about this.  It wraps `pipeline.training.fold.train_fold`:

- DIGITS_TEST_FOLD_LOG=path: every attempt at a fold appends ``start <index> <pid>`` there, so a test can
  tell that Ray really ran a fold again.
- DIGITS_TEST_FAIL_FOLD=k: fold k raises, as a bug or a bad machine would; with DIGITS_TEST_FAIL_AFTER=glob
  it first waits until the glob matches (another fold saved by the driver), so which folds finished before
  the failure does not depend on how many run at once.
- DIGITS_TEST_HANG_FOLD=k with DIGITS_TEST_HANG_MARK=path: the first attempt at fold k writes its pid to
  that path after its first epoch and waits there to be killed; the next attempt trains normally.
"""

import glob
import os
import time

_log = os.environ.get("DIGITS_TEST_FOLD_LOG")
_fail = os.environ.get("DIGITS_TEST_FAIL_FOLD")
_fail_after = os.environ.get("DIGITS_TEST_FAIL_AFTER")
_hang = os.environ.get("DIGITS_TEST_HANG_FOLD")
_hang_mark = os.environ.get("DIGITS_TEST_HANG_MARK")

if _log or _fail is not None or _hang is not None:
    import pipeline.training.fold as _train

    _real = _train.train_fold

    def _injected(task, data, *args, **kwargs):  # type: ignore[no-untyped-def]
        if _log:
            with open(_log, "a") as f:
                f.write(f"start {task.index} {os.getpid()}\n")
        if _fail is not None and task.index == int(_fail):
            deadline = time.monotonic() + 600
            while _fail_after and not glob.glob(_fail_after) and time.monotonic() < deadline:
                time.sleep(0.1)
            raise RuntimeError(f"injected failure in fold {task.index}")
        if _hang is not None and task.index == int(_hang) and _hang_mark and not os.path.exists(_hang_mark):

            def hang_after_the_first_epoch(index, epoch, epochs, logs):  # type: ignore[no-untyped-def]
                with open(_hang_mark + ".tmp", "w") as f:
                    f.write(str(os.getpid()))
                os.replace(_hang_mark + ".tmp", _hang_mark)
                time.sleep(3600)  # mid-fold, until the test kills this worker

            return _real(task, data, hang_after_the_first_epoch)
        return _real(task, data, *args, **kwargs)

    _train.train_fold = _injected
