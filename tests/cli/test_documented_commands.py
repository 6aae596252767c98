"""Every `digits` command line that the README and the manual (docs/*.md) show parses as `digits` would parse it.

The lines are taken from the shell-like fenced code blocks (sh, cron, a systemd unit's ExecStart=...) and
from inline code that starts with `digits `; each is split as a shell would (shlex), and its `digits ...`
part is parsed by the real Click group without running anything: the group's options, the command, the
command's options with their types, choices and checks, and, for the commands that train, the config the
options build (so a `--set` key that no longer exists fails too).  `digits schedule ... -- JOB` checks its
JOB the same way.  So a renamed command or option fails here, not in a reader's terminal.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from pipeline.cli import cli
from pipeline.cli.app import App, build_config
from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = {"", "sh", "bash", "shell", "console", "cron", "ini"}  # where a line may run digits
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`((?:\S*/)?digits [^`]+)`")
CONTROL = {"&&", "||", "|", ";", "&"}
REDIRECT = {">", ">>", "<", ">&", "2>"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def shown_lines(path: Path) -> Iterator[tuple[str, str, bool]]:
    """(where, shell text, whole line?) of every place in the page that may run digits."""
    text = path.read_text()
    for block in FENCE.finditer(text):
        if block.group(1) in SHELL_BLOCKS:
            first = text.count("\n", 0, block.start(2)) + 1
            for offset, line in enumerate(block.group(2).replace("\\\n", " ").splitlines()):
                line = line.removeprefix("$ ").removeprefix("ExecStart=")
                yield f"{path.name}:{first + offset}", line, True
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # same line numbers, no code blocks
    for span in INLINE.finditer(prose):
        yield f"{path.name}:{prose.count(chr(10), 0, span.start()) + 1}", span.group(1), False


class NotShell(ValueError):
    """A line that mentions digits but cannot be split as a shell would (an open quote)."""


def digits_argvs(line: str) -> Iterator[list[str]]:
    """The arguments of every `digits` (any path to it) in command position on a shell line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    try:
        tokens = [*lexer, ";"]
    except ValueError as e:  # prose in a code block ("the run's ..."): only a problem where digits runs
        if re.search(r"(^|[\s/])digits\s", line):
            raise NotShell(f"{line!r}: {e}") from None
        return
    for token in tokens:
        if token not in CONTROL:
            words.append(token)
            continue
        while words and ASSIGNMENT.match(words[0]):  # RAY_ADDRESS=... digits run
            words.pop(0)
        if words and Path(words[0]).name == "digits":
            argv, skip = [], False
            for word in words[1:]:
                if skip or word in REDIRECT:
                    skip = word in REDIRECT
                    continue
                argv.append(word)
            yield argv
        words = []


def parse(argv: list[str], partial: bool = False) -> None:
    """Parse `digits ARGV` as the console script would, running nothing; raise what Click or the config raise.

    `partial`: inline code may name a command without its required arguments (`digits gc`).
    """
    with cli.make_context("digits", list(argv), obj=App()) as ctx:  # the group's own options
        # Click keeps the command's name apart until it invokes the group
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, command, args = cli.resolve_command(ctx, rest)  # an unknown command raises here
        assert name is not None and command is not None
        try:
            sub = command.make_context(name, args, parent=ctx)
        except click.MissingParameter:
            if partial:
                return
            raise
        if "sets" in sub.params:  # a command that trains: the config its options build
            build_config(App(), {**sub.params, "config_file": None}, demo=bool(sub.params.get("demo")))
        if name == "schedule" and sub.params["job"]:
            parse(list(sub.params["job"]))


def documented() -> list[tuple[str, list[str] | str, bool]]:
    """(where, the arguments after `digits`, whole line?); a line that cannot be split: its error instead."""
    found: list[tuple[str, list[str] | str, bool]] = []
    for page in PAGES:
        for where, line, whole in shown_lines(page):
            try:
                found += [(where, argv, whole) for argv in digits_argvs(line)]
            except NotShell as e:
                found.append((where, str(e), whole))
    return found


def test_the_readme_and_the_manual_show_digits_command_lines_of_every_kind():
    shown = documented()
    commands = {argv[0] for _, argv, _ in shown if isinstance(argv, list) and argv}
    assert len(shown) >= 50, len(shown)  # the extraction itself works
    assert {"run", "train", "schedule", "sweep", "compare", "history", "gc", "submit"} <= commands, commands
    assert any(where.startswith("README.md") for where, _, _ in shown)


@pytest.mark.parametrize("where, argv, whole", documented(), ids=lambda v: v if isinstance(v, str) else None)
def test_a_documented_command_line_parses(where, argv, whole, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing runs, but nothing could touch the checkout either
    if isinstance(argv, str):
        pytest.fail(f"{where}: not a shell line: {argv}")
    try:
        parse(argv, partial=not whole)
    except click.exceptions.Exit as e:  # --help, --version
        assert e.exit_code == 0
    except click.ClickException as e:
        pytest.fail(f"{where}: `digits {shlex.join(argv)}`: {e.format_message()}")


@pytest.mark.parametrize(
    "line",
    [
        "digits run --no-such-option",
        r"digits train [--model mlp\|cnn]",  # a synopsis as a table once spelled it: not a command line
        r"digits train --model mlp\|cnn",
        "digits train --model transformer",
        "digits nosuch",
        "digits run --submit sometimes",
        "cd /home/you/digits && .venv/bin/digits run --resum >/dev/null",
        "digits --quiet run --epochs many",
        "digits gc",  # --keep is required on a whole line
        "digits schedule cron -- run --no-such-option",
    ],
)
def test_the_check_fails_a_command_line_digits_would_refuse(line):
    (argv,) = digits_argvs(line)
    with pytest.raises(click.ClickException):
        parse(argv)


def test_the_check_fails_a_set_key_the_config_does_not_have():
    (argv,) = digits_argvs("digits run --set train.no_such_key=1")
    with pytest.raises(Exception, match="unknown option train.no_such_key"):
        parse(argv)


def test_every_option_the_pages_name_on_its_own_is_an_option_of_digits():
    """`--ensemble-runs` in a sentence: some digits command (or the group) has that option."""
    known = {"--help", "--version"}
    for command in (cli, *cli.commands.values()):
        known.update(name for param in command.params for name in (*param.opts, *param.secondary_opts))
    named = [
        (page.name, span.group(1))
        for page in PAGES
        for span in re.finditer(r"`(--?[a-z][\w-]*)[^`]*`", FENCE.sub("", page.read_text()))
    ]
    assert len(named) > 30
    assert [(page, option) for page, option in named if option not in known] == []


def test_lines_are_found_in_command_position_only():
    assert list(digits_argvs("cd /home/you/digits && /x/.venv/bin/digits run --quiet >/dev/null")) == [
        ["run", "--quiet"]
    ]
    assert list(digits_argvs("RAY_ADDRESS=ray://h:10001 digits run --executor ray  # a comment")) == [
        ["run", "--executor", "ray"]
    ]
    assert list(digits_argvs("command: digits run")) == []
    assert list(digits_argvs("ls digits")) == []
