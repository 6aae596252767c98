"""Terminal output of the read-only commands: consoles, warnings, tables and styled cells, through rich.

rich is imported inside the functions only, so ``digits --help`` and the
training commands never load it.  When stdout is not a terminal (a file, a
pipe, a CI log) the output is plain text 120 columns wide: rich would fall
back to 80 and wrap the runs tables badly (``COLUMNS`` still wins when set).

Much of what these consoles print was read from files (run ids, config
values, Kaggle's messages, a ledger entry's fields), so a console shows every
string as text: `text.printable` escapes what would act on the terminal, and
rich's markup (``[red]``, ``[/]``) and emoji codes (``:smile:``) are off, so a
``[`` in a file is a ``[`` on the screen (and an unbalanced ``[/]`` no
MarkupError).  Styles come only from `styled`, never from markup in a string;
`write_data` is the same rule for the formats scripts read (markdown, csv).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any, TextIO

from pipeline.core.text import printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

PLAIN_WIDTH = 120  # table width when stdout is not a terminal
STATUS_STYLE = {
    "complete": "green",
    "interrupted": "yellow",
    "paused": "yellow",
    "failed": "red",
    "set-aside": "red",
    "running": "cyan",
}
BEST = "bold green"  # the best value of a column among several runs


def console(stderr: bool = False, file: TextIO | None = None) -> Console:
    """A rich Console on stdout (or stderr, or `file`) that shows strings as text; 120 columns wide when not a
    terminal."""
    shows_text = _text_console()
    con = shows_text(file=file, stderr=stderr)
    if not con.is_terminal and not os.environ.get("COLUMNS"):
        con = shows_text(file=file, stderr=stderr, width=PLAIN_WIDTH)
    return con


@functools.cache
def _text_console() -> type[Console]:
    """rich's Console, made to show every string it is given (printed, or a table's cell) as plain text."""
    from rich.console import Console

    class TextConsole(Console):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(highlight=False, markup=False, emoji=False, **kwargs)

        def render_str(self, text: str, **kwargs: Any) -> Any:
            # Every str a Console renders comes through here: print's arguments, table cells and headers.
            return super().render_str(printable(text), **{**kwargs, "markup": False, "emoji": False})

    return TextConsole


def write_data(text: str, file: IO[str]) -> None:
    """Text for scripts (markdown, csv) to stdout: line by line through `printable`, its newlines kept."""
    file.write("\n".join(printable(line) for line in text.split("\n")))


def warn(message: str, err: Console | None = None) -> None:
    """One line on stderr about something that cannot be shown (never wrapped, so grep finds it whole)."""
    (err or console(stderr=True)).print(styled(f"warning: {message}", "yellow"), soft_wrap=True)


def warn_each(messages: Iterable[str], err: Console | None = None) -> None:
    for message in messages:
        warn(message, err)


def styled(text: str, style: str = "") -> Text:
    """A table cell or a line with a style (colour, bold); plain text when not a terminal.  Shown as text
    (`printable`): a `Text` never goes through the console's `render_str`."""
    from rich.text import Text

    return Text(printable(text), style=style)


def status(name: str) -> Text:
    """A run's status, coloured by what it means (complete green, failed red...)."""
    return styled(name, STATUS_STYLE.get(name, "dim"))


def change(delta: float | None, text: str) -> Text:
    """`text` about a change: green when `delta` is up, red when down, plain when none or unknown."""
    if delta is None or abs(delta) < 1e-12:  # float noise in B - A of equal accuracies is no change
        return styled(text)
    return styled(text, "green" if delta > 0 else "red")


def table(columns: Iterable[tuple[str, str]] = (), tight: bool = False, wrap: Iterable[str] = ()) -> Table:
    """A borderless table with a rule under the header: reads the same in a terminal and in a log.

    `columns` are (header, justify) pairs of columns that never wrap, except
    those named in `wrap`: on a narrow terminal Rich folds those onto more
    lines before it cuts any other column (so numbers stay whole).  More can
    be added with ``add_column``.  A `tight` table has one space between
    columns instead of two, for when the roomy one would not fit (see `fits`).
    """
    from rich import box
    from rich.table import Table

    t = Table(
        box=box.SIMPLE_HEAD,
        padding=(0, 0) if tight else (0, 1),
        collapse_padding=True,
        pad_edge=False,
        show_edge=False,
    )
    folding = set(wrap)
    for name, justify in columns:
        folds = name in folding
        t.add_column(name, justify=justify, no_wrap=not folds, overflow="fold" if folds else "ellipsis")  # type: ignore[arg-type]
    return t


def fits(con: Console, renderable: Table) -> bool:
    """Whether `renderable` fits the console's width without squeezing or cutting any column."""
    natural = con.measure(renderable, options=con.options.update_width(1_000_000)).maximum
    return natural <= con.width


def first_fitting(con: Console, layouts: Iterable[Callable[[], Table]]) -> Table:
    """The first of the tables built by `layouts` that fits the console; else the last one."""
    chosen = None
    for build in layouts:
        chosen = build()
        if fits(con, chosen):
            break
    assert chosen is not None, "no layout given"
    return chosen


def heading(con: Console, text: str) -> None:
    """A blank line and a bold heading over a table."""
    con.print()
    con.print(styled(text, "bold"))


def hint(con: Console, text: str) -> None:
    """A dim line after a table: what else the user can ask for."""
    con.print()
    con.print(styled(text, "dim"))
