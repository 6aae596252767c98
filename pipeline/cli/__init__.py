"""The top layer: the `digits` command line (the group, its commands, the options they share).

It may import every other layer, each command inside its own body, so ``digits --help`` imports none
of TensorFlow, Ray or kaggle.
"""

from pipeline.cli.main import cli, main

__all__ = ["cli", "main"]
