"""The manual (README.md, docs/, mkdocs.yml) is generated where the code holds the facts, and complete.

`make docs` (and CI) builds it with ``mkdocs build --strict``, which fails on a broken link or anchor and
on a page left out of the nav; these tests check, without building it, what the build cannot: that the
command reference is generated from the real group with every option of every command, that the
generated tables cover every config key and exit code, and that the pages name every module.
"""

from __future__ import annotations

import dataclasses
import re

import click
import pytest

import mkdocs_hooks
from pipeline.cli import cli
from pipeline.core import config as cfg
from pipeline.core.errors import EXIT_MEANINGS
from tests.helpers import ROOT

DOCS = ROOT / "docs"


def test_the_readme_is_at_most_200_lines_and_points_to_the_manual():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "make demo" in readme and "make test" in readme and "make docs" in readme
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", readme))
    assert {"night.md", "reference.md", "configuration.md", "exit-codes.md", "unattended.md"} <= linked
    assert all((DOCS / page).is_file() for page in linked)


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    nav = set(re.findall(r":\s*([\w-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M))
    assert nav == {p.name for p in DOCS.glob("*.md")}


def test_the_command_reference_is_generated_from_the_group_with_every_option_of_every_command():
    mkdocs_click = pytest.importorskip("mkdocs_click._docs")  # the docs extra (make setup installs it)
    page = (DOCS / "reference.md").read_text()
    assert ":module: pipeline.cli.main" in page and ":command: cli" in page
    assert re.search(r"^\s+:depth: 1$", page, re.M) and re.search(r"^\s+:style: plain$", page, re.M)
    from pipeline.cli.main import cli as group

    assert group is cli and isinstance(group, click.Group)
    lines = list(
        mkdocs_click.make_command_docs(
            "digits", group, depth=1, style="plain", list_subcommands=True, has_attr_list=True, show_hidden=True
        )
    )
    text = "\n".join(lines)
    for name, command in cli.commands.items():
        assert f"### digits {name} {{ #digits-{name} " in text, name
        section = text.split(f"### digits {name} ", 1)[1].split("\n### ", 1)[0]
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.opts[-1] in section, (name, param.opts)
    assert "[default: 5]" in text  # the defaults are shown (--folds), from the config


def test_the_generated_tables_cover_every_config_key_and_exit_code():
    assert "<!-- digits:config-keys -->" in (DOCS / "configuration.md").read_text()
    assert "<!-- digits:exit-codes -->" in (DOCS / "exit-codes.md").read_text()
    keys = mkdocs_hooks.config_keys()
    for section in dataclasses.fields(cfg.Config):
        value = getattr(cfg.Config(), section.name)
        if dataclasses.is_dataclass(value):
            for key in dataclasses.fields(value):
                assert f"| `{section.name}.{key.name}` |" in keys
    codes = mkdocs_hooks.exit_codes()
    for code, (short, what) in EXIT_MEANINGS.items():
        assert f"| {code} | {short} | {what} |" in codes
    page = mkdocs_hooks.on_page_markdown("a\n<!-- digits:exit-codes -->\nb")
    assert "<!--" not in page and "| 7 |" in page


def test_how_it_is_built_names_every_module_of_every_layer():
    page = (DOCS / "architecture.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)/` \| (.*) \|$", page, re.M))
    layers = sorted(p.name for p in (ROOT / "pipeline").iterdir() if (p / "__init__.py").is_file())
    assert sorted(rows) == layers
    for layer in layers:
        modules = {p.stem for p in (ROOT / "pipeline" / layer).glob("*.py")} - {"__init__"}
        missing = sorted(modules - set(re.findall(r"`(\w+)`", rows[layer])))
        assert missing == [], f"docs/architecture.md does not name pipeline/{layer}/{missing}"
