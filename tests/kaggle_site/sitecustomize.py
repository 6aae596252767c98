"""Tests only: a subprocess started with this directory on PYTHONPATH talks to the fake Kaggle server.

With ``DIGITS_FAKE_KAGGLE_PORT`` set, Kaggle's host names resolve to loopback
and kagglesdk's production endpoint is ``http://api.kaggle.com:PORT`` (see
kaggle_loopback.py).  Without it, nothing happens.  With ``DIGITS_TEST_KAGGLE_TIMEOUT`` also set,
the Kaggle client's timeouts are that many seconds and its backoff is short,
so a test of a server that never finishes answering ends in seconds.
"""

import os

if os.environ.get("DIGITS_FAKE_KAGGLE_PORT"):
    import kaggle_loopback

    kaggle_loopback.install(int(os.environ["DIGITS_FAKE_KAGGLE_PORT"]))
    if os.environ.get("DIGITS_TEST_KAGGLE_TIMEOUT"):
        kaggle_loopback.shorten(float(os.environ["DIGITS_TEST_KAGGLE_TIMEOUT"]))
