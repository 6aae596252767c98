"""The `digits` group: its help, its commands, and a usage error (start-up time: test_startup.py)."""

from click.testing import CliRunner

from pipeline.cli import cli


def test_help_lists_every_command_and_the_exit_codes():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0
    for command in ("download", "train", "predict", "run", "submit", "compare", "report", "history", "runs", "gc"):
        assert f"  {command} " in r.output
    assert "4 interrupted" in r.output and "5 output dir busy" in r.output


def test_demo_and_submit_together_is_a_usage_error():
    r = CliRunner().invoke(cli, ["run", "--demo", "--submit"])
    assert r.exit_code == 2 and "cannot be submitted" in r.output
