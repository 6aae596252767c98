"""Tests only: a crash at an exact point of training, as a power cut would cause it.

With ``DIGITS_KILL_AT="EPOCH:BATCH"`` (1-based epoch, 0-based batch) and
``DIGITS_KILL_ONCE`` naming a file that does not exist yet, the first Keras
``fit`` of the process that reaches that batch creates the file and sends
itself SIGKILL: no handler runs, nothing is flushed, exactly like a kill -9
or a reboot.  A later process (the resume) finds the file and trains on.
"""

import os

if os.environ.get("DIGITS_KILL_AT"):
    import signal

    import keras

    _epoch, _batch = (int(x) for x in os.environ["DIGITS_KILL_AT"].split(":"))
    _once = os.environ["DIGITS_KILL_ONCE"]
    _fit = keras.Model.fit

    class _Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1

        def on_train_batch_begin(self, batch, logs=None):
            if self.epoch == _epoch and batch == _batch and not os.path.exists(_once):
                open(_once, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)

    def fit(self, *args, callbacks=None, **kwargs):
        return _fit(self, *args, callbacks=[*(callbacks or []), _Kill()], **kwargs)

    keras.Model.fit = fit
