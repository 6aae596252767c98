"""digits: the nightly Kaggle Digit Recognizer job."""

__version__ = "0.1.0"
