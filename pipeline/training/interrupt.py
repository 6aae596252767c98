"""Stopping a training cleanly on SIGTERM, SIGHUP or Ctrl-C.

Raising KeyboardInterrupt from a signal handler lands wherever Python happens
to be, which inside Keras or TensorFlow may be a place that turns it into
another error.  While folds train, a signal therefore only sets a flag; the
training checks it after every batch and the executor between folds, and
the job then saves what finished and exits 4 within a batch (a fold checks
after each), or within half a second where the driver waits on worker
processes or Ray.  Further signals change nothing (they are counted, so that a
wait on MLflow or Kaggle gives up: `pipeline.core.stop_signals`), and once
digits is on its way out they are ignored, so they cannot cut the saving of
the records short.  A second signal used to raise KeyboardInterrupt at once,
and wherever it landed it broke what it landed in (a record being serialized:
pydantic made it another error, a traceback).  The handler takes no lock: a
signal landing inside it runs it again within itself.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

from pipeline.core import stop_signals


class StopRequest:
    """Set by the first SIGTERM/SIGINT/SIGHUP; read by the training loop and the executor."""

    def __init__(self) -> None:
        # a plain attribute, not a threading.Event: the signal handler sets it, and a signal landing inside
        # the handler ran it again within itself, waiting for the Event's lock the frame below held (a hang)
        self._set = False
        self.signal: str | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self, name: str = "stop") -> None:
        self.signal = self.signal or name
        self._set = True

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was requested (the job is then on its way out)."""
        if self._set:
            stop_signals.exiting()
            raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Within the block, SIGTERM, SIGINT and SIGHUP set the returned request; later ones change nothing.

    A signal ignored when the block starts stays ignored (``nohup``).
    """
    stop = StopRequest()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop_signals.note()  # so that a wait on MLflow inside an epoch's callback gives up (core.deadline)
        if stop_signals.is_exiting():
            return
        if not stop.is_set():  # a later one changes nothing: the stop under way ends the work within seconds
            stop.set(signal.Signals(signum).name)

    previous = {}
    try:
        try:  # installing sits inside the try: a signal between the two calls still restores the first
            for sig in stop_signals.STOP_SIGNALS:
                if not stop_signals.ignored_at_start(sig):
                    previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (a test runner's worker): signals stay as they were
            pass
        yield stop
    finally:
        if not stop_signals.is_exiting():  # on the way out, signals stay ignored
            for sig, old in previous.items():
                signal.signal(sig, old)
