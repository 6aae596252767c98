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


def test_the_help_and_the_readme_list_the_same_exit_codes_as_the_code():
    """The meanings live in pipeline/core/errors.py; the epilog is built from them, the README's table must agree."""
    import re

    from pipeline.core.errors import EXIT_MEANINGS
    from tests.helpers import ROOT

    shown = CliRunner().invoke(cli, ["--help"]).output
    for code, (short, what) in EXIT_MEANINGS.items():
        assert f"{code} {short} ({what})" in shown
    table = (ROOT / "README.md").read_text().split("### Exit codes", 1)[1].split("\n\n")[1]
    rows = re.findall(r"^\| (\d) \| (.+) \|$", table, re.M)
    assert [int(code) for code, _ in rows] == list(EXIT_MEANINGS)
    for code, text in rows:
        assert text.lower().startswith(EXIT_MEANINGS[int(code)][0].lower().split()[0])
