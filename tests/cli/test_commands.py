"""The `digits` group: its help, its commands, and a usage error (start-up time: test_startup.py)."""

import pytest
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


def test_the_help_lists_the_same_exit_codes_as_the_code():
    """The meanings live in pipeline/core/errors.py; the epilog is built from them (the manual's page too:
    tests/cli/test_manual.py)."""
    from pipeline.core.errors import EXIT_MEANINGS

    shown = CliRunner().invoke(cli, ["--help"]).output
    for code, (short, what) in EXIT_MEANINGS.items():
        assert f"{code} {short} ({what})" in shown


def test_offline_or_demo_with_force_download_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (["--offline", "--force-download"], ["--demo", "--force-download"]):
        r = CliRunner().invoke(cli, ["run", *args])
        assert r.exit_code == 2 and "--force-download" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "demo").exists()


def test_a_key_given_twice_by_set_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["train", "--set", "train.epochs=3", "--set", "train.epochs=4"])
    assert r.exit_code == 2 and "train.epochs is given twice by --set" in r.output, r.output


def test_a_config_or_variants_path_that_is_a_folder_is_bad_input_like_a_missing_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    for args in (["train", "--config", "conf"], ["train", "--config", "missing.toml"], ["sweep", "conf"]):
        r = CliRunner().invoke(cli, args)
        lines = [line for line in r.output.splitlines() if line.startswith("digits: ")]
        assert r.exit_code == 1 and len(lines) == 1, (args, r.output)
    assert "conf: not a regular file" in r.output


@pytest.mark.parametrize("address", ["localhost:abc", "127.0.0.1:99999", "ray://[::1"])
def test_a_malformed_ray_address_is_a_usage_error(tmp_path, monkeypatch, address):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["train", "--executor", "ray", "--ray-address", address])
    assert r.exit_code == 2 and "option executor.address" in r.output and "Traceback" not in r.output, r.output


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--wait", "nan"],
        ["submit", "--wait", "inf"],
        ["submit", "--wait", "1e300"],
        ["predict", "--ensemble-runs", "99999999999999999999"],
        ["compare", "--last", "99999999999999999999"],
        ["gc", "--keep", "99999999999999999999"],
    ],
)
def test_every_number_on_the_command_line_has_a_bound(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
