"""What a run tells its operator while it works, and whoever else listens.

Every event becomes a line on the ``digits`` logger (one per stage and per
fold), which is what cron mails and ``--log-file`` keep.  On a terminal a
rich progress bar also shows the epochs of the fold in training; it is
transient, so the scrollback keeps only the lines.

Observers (`Progress.observers`) hear the same events, for a tracker such as
MLflow (`pipeline.nightly.tracking`).  An observer implements any of
``run_started(run_dir, record)``, ``epoch(run_id, fold, epoch, logs)``,
``fold_done(run_dir, fold_record)``, ``run_finished(run_dir, record)`` and
``command_finished(output_dir)``.  It is a bystander: the first exception it
raises costs one warning line and it hears nothing more in this command, so
it can never fail or flood a run.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.core.errors import DigitsError
from pipeline.core.text import one_line, printable

log = logging.getLogger("digits")


class Printable(logging.Filter):
    """Every logged line shows as text (`printable`): a Kaggle message, a path or a field read from a file
    cannot clear the screen, move the cursor or reorder the line, on a terminal, in cron's mail or in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = printable(record.getMessage()), None
        return True


class Progress:
    """Plain reporter: one line per stage and per fold; the events also go to its observers."""

    def __init__(self) -> None:
        self.observers: list[Any] = []

    def info(self, message: str) -> None:
        log.info(message)

    def warn(self, message: str) -> None:
        log.warning("warning: %s", message)

    total = 0

    def start_folds(self, total: int, skipped: int = 0) -> None:
        self.total = total
        if skipped:
            self.info(f"resuming: {skipped} of {total} folds already finished")

    def epoch(self, task: Any, epoch: int, epochs: int, logs: dict[str, Any]) -> None:
        """Epoch `epoch` of `epochs` of the fold `task` (a `FoldTask`: its run id and fold index) ended."""
        self.notify("epoch", task.run_id, task.index, epoch, logs)

    def fold_done(self, result: Any, label: str = "", run_dir: Path | None = None) -> None:
        r = result.record
        self.info(
            f"{label + ' ' if label else ''}fold {r.index + 1}: val accuracy {r.val_accuracy:.4%}, "
            f"best epoch {r.best_epoch}/{r.epochs_run}, {r.seconds:.0f}s, {r.samples_per_second:,.0f} samples/s"
        )
        if run_dir is not None:
            self.notify("fold_done", run_dir, r)

    def run_started(self, run_dir: Path, record: Any) -> None:
        """A run's folder and record exist (new or resumed): its folds are about to train."""
        self.notify("run_started", run_dir, record)

    def run_finished(self, run_dir: Path, record: Any) -> None:
        """A run's folds are trained and voted: its record is complete."""
        self.notify("run_finished", run_dir, record)

    def command_finished(self, output_dir: str | Path) -> None:
        """The command is done writing records in `output_dir` (blend, submission, leaderboard scores)."""
        self.notify("command_finished", output_dir)

    def notify(self, event: str, *args: Any) -> None:
        """Call `event` on every observer that has it; one that raises is warned about once and dropped."""
        for observer in list(self.observers):
            handler = getattr(observer, event, None)
            if handler is None:
                continue
            try:
                handler(*args)
            except Exception as e:  # an observer never fails the run; KeyboardInterrupt still stops it
                self.observers.remove(observer)
                name = getattr(observer, "name", type(observer).__name__)
                what = one_line(e, 400) if isinstance(e, DigitsError) else f"{type(e).__name__}: {one_line(e, 300)}"
                self.warn(f"{name}: {what}; off for the rest of this command")

    def close(self) -> None:
        pass


class LiveProgress(Progress):
    """Plain lines plus a live bar of each fold in training (several side by side with workers; terminals only)."""

    def __init__(self, console: Any):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self.bar = Bar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.bars: dict[tuple[str, int], Any] = {}  # rich's TaskID of each fold in training, by (run id, fold)
        super().__init__()

    def epoch(self, task: Any, epoch: int, epochs: int, logs: dict[str, Any]) -> None:
        super().epoch(task, epoch, epochs, logs)
        key = (task.run_id, task.index)
        metrics = f"loss {logs.get('loss', 0):.4f} val acc {logs.get('val_accuracy', 0):.4f}"
        if key not in self.bars:
            if not self.bars:
                self.bar.start()
            folds = task.config.train.folds
            self.bars[key] = self.bar.add_task(f"fold {task.index + 1}/{folds}", total=epochs, metrics=metrics)
        self.bar.update(self.bars[key], completed=epoch, total=epochs, metrics=metrics)

    def fold_done(self, result: Any, label: str = "", run_dir: Path | None = None) -> None:
        run_id = Path(run_dir).name if run_dir is not None else ""
        bar = self.bars.pop((run_id, result.record.index), None)
        if bar is not None:
            self.bar.remove_task(bar)
        super().fold_done(result, label, run_dir)

    def close(self) -> None:
        self.bar.stop()
        self.bars.clear()


# TensorFlow's C++ runtime writes start-up chatter straight to file descriptor 2,
# ignoring TF_CPP_MIN_LOG_LEVEL for some of it; these lines carry no news.
_NATIVE_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IW]\d{4} [\d:.]+ +\d+ \S+\] "
    rb"|E\d{4} [\d:.]+ +\d+ node_def_util\.cc:\d+\] NodeDef mentions attribute"
    # Ray's native info and warning lines (its retries while it connects, for one): the job says what failed
    rb"|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [IW] \d+ \d+\] "
    # the GPU build of TensorFlow on a machine without a GPU: expected, not an error of the job
    rb"|E\d{4} [\d:.]+ +\d+ cuda_(?:platform|driver|executor)\.cc:\d+\] failed call to cuInit)"
)
_filtered = False


def filter_native_stderr() -> None:
    """Drop TensorFlow's native log chatter from stderr; pass every other line through.

    Python's own ``sys.stderr`` is moved to a duplicate of the real stderr
    (so rich still sees a terminal); only what native code writes to fd 2
    goes through a pipe to a filter.  The filter is a forked child process,
    not a thread: when TensorFlow aborts the process, its last message (the
    one a cron log needs most) is still in the pipe, and only a process that
    outlives ours can pass it on.  DIGITS_RAW_STDERR=1 turns this off.
    """
    global _filtered
    if _filtered or os.environ.get("DIGITS_RAW_STDERR"):
        return
    _filtered = True
    try:
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        child = os.fork()
    except OSError:
        return
    if child == 0:  # the filter: reads until every writer is gone, then exits
        os.close(write_end)
        _pump(read_end)
    real = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    os.close(read_end)
    sys.stderr = os.fdopen(
        real, "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8", errors="backslashreplace"
    )

    def drain() -> None:
        """On a normal exit, give the filter a moment to pass the last lines on before the shell moves on.

        Bounded: processes we started (Ray's) may still hold the pipe open.
        """
        with contextlib.suppress(OSError, KeyboardInterrupt):  # a Ctrl-C at the very end: no traceback
            os.close(2)
            deadline = time.monotonic() + 2.0
            while os.waitpid(child, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
                time.sleep(0.01)

    atexit.register(drain)


def _pump(read_end: int) -> None:
    """The filter process's whole life: copy lines from the pipe to the real stderr, minus the noise."""
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a Ctrl-C for the job must not cut off its last words
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not _NATIVE_NOISE.match(line):
                    os.write(2, line)
    finally:
        os._exit(0)


def setup(verbose: bool = True, log_file: str | None = None, live: bool | None = None) -> Progress:
    """Configure the ``digits`` logger's handlers and return the matching reporter."""
    from rich.console import Console

    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    console = Console(stderr=True)
    live = console.is_terminal if live is None else live
    if live:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=console, show_path=False, show_level=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    handler.addFilter(Printable())
    log.addHandler(handler)
    if log_file:
        from pipeline.core.errors import StorageError

        try:
            fh = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as e:
            raise StorageError(f"cannot open log file {log_file}: {e.strerror}") from None
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
        fh.addFilter(Printable())
        log.addHandler(fh)
    return LiveProgress(console) if live and verbose else Progress()
