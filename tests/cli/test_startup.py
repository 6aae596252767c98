"""`digits --help` and every command's --help start fast: they import none of the heavy libraries.

The commands import the library inside their bodies, and lint-imports (`make lint`) keeps TensorFlow,
Ray and kaggle out of every module the command line imports at start-up; this checks the result in a
fresh interpreter, as the console script starts.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT

HEAVY = ("tensorflow", "keras", "ray", "kaggle", "kagglesdk", "matplotlib", "mlflow", "apprise")

COMMANDS = sorted(
    ["compare", "download", "gc", "history", "mlflow-sync", "predict", "report", "run", "runs", "schedule"]
    + ["submit", "sweep", "train"]
)

HELP = """
import json, sys
from pipeline.cli import cli
codes = [cli(["--help"], standalone_mode=False)]
codes += [cli([name, "--help"], standalone_mode=False) for name in sorted(cli.commands)]
print(json.dumps({"codes": codes, "commands": sorted(cli.commands), "modules": sorted(sys.modules)}))
"""


def test_help_of_digits_and_of_every_command_imports_no_heavy_library():
    done = subprocess.run([sys.executable, "-c", HELP], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    *helps, last = done.stdout.splitlines()
    seen = json.loads(last)
    assert seen["codes"] == [0] * (1 + len(seen["commands"]))
    assert seen["commands"] == COMMANDS and "Usage: " in "\n".join(helps)
    heavy = sorted({name.split(".")[0] for name in seen["modules"]} & set(HEAVY))
    assert heavy == [], f"`digits --help` imported {heavy}"
