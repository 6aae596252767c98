import subprocess
import sys

from click.testing import CliRunner

from pipeline.cli import cli


def test_cli_starts_without_tensorflow_or_kaggle():
    code = "import sys, pipeline.cli; heavy = [m for m in ('tensorflow', 'keras', 'kaggle', 'matplotlib') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_every_command_and_the_exit_codes():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0
    for command in ("download", "train", "predict", "run", "submit", "compare", "report", "history", "runs", "gc"):
        assert f"  {command} " in r.output
    assert "4 interrupted" in r.output and "5 output dir busy" in r.output


def test_demo_and_submit_together_is_a_usage_error():
    r = CliRunner().invoke(cli, ["run", "--demo", "--submit"])
    assert r.exit_code == 2 and "cannot be submitted" in r.output
