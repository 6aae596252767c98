"""Name the first bad cell of a competition CSV: the slow, exact scan behind the fast reader's refusal.

pyarrow's reader parses 76 MB in about a second but only says *that* a file is
wrong: its conversion errors carry no row number.  When it refuses a file,
`first_fault` reads it again record by record with the csv module and names
the line (as an editor numbers it: the header is line 1; CR, LF and CRLF each
end a line) and the column of the first cell pyarrow refuses.

The scan must refuse exactly what the fast reader refuses, or it blames a good
cell or finds nothing.  The rules below are pyarrow's (26.x), and
tests/competition/test_bad_cells.py checks the two against each other on generated
files:

- one UTF-8 byte-order mark at the very start is skipped;
- empty lines are skipped anywhere, including before the header;
- quoting is the csv module's default dialect: ``"5"`` is 5, ``""`` inside
  quotes is a quote, text after a closing quote joins the cell (``"2"3`` is 23),
  and a quoted cell may run over line ends (never an integer, so always a fault);
- a cell is an unsigned integer, decimal (leading zeros allowed) or ``0x`` hex,
  with spaces and tabs around it allowed; no sign, not even ``-0``.

Bytes that are not UTF-8 are decoded with ``surrogateescape``, so the scan
never stops at them but names them.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from pipeline.core.text import quoted

_UNSIGNED = re.compile(r"0[xX](?P<hex>[0-9a-fA-F]+)|(?P<dec>[0-9]+)")
_NEGATIVE = re.compile(r"-0*[1-9][0-9]*")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what surrogateescape turns a non-UTF-8 byte into
_BYTE = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"


class _Lines:
    """The file's lines, counted as csv.reader pulls them (a quoted line end makes it pull more than one)."""

    def __init__(self, f: TextIO) -> None:
        self._f = f
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._f)
        self.number += 1
        return line


def first_fault(path: Path, expected: Sequence[str], highest: Sequence[int]) -> str | None:
    """The first fault in `path` as ``line N, column C: what``, or None if every record is good.

    `expected` is the header, `highest` the largest value each column may hold.
    OSError (the file cannot be opened or read) is the caller's to report.
    """
    screen = _screen(highest)
    with _no_field_limit(), open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        lines = _Lines(f)
        try:
            header = next(filter(None, (_record(line, lines) for line in lines)), None)
            if header is None:
                return "file is empty (expected a header line)"
            if fault := _header_fault(*header, expected):
                return fault
            rows = 0
            for line in lines:
                if screen is not None and screen.fullmatch(line.rstrip("\r\n")):  # one line end at most
                    rows += 1
                    continue
                if record := _record(line, lines):
                    rows += 1
                    cells = record[1]
                    # Quoted but good (the count first: a quoted "1,2" must not pass as two cells), which
                    # spares a fully quoted file the per-cell checks: 4 s instead of 50 on train.csv.
                    if screen is not None and len(cells) == len(expected) and screen.fullmatch(",".join(cells)):
                        continue
                    if fault := _record_fault(*record, expected, highest):
                        return fault
        except csv.Error as e:  # pragma: no cover - the default, non-strict dialect has no error left to raise
            return f"line {lines.number}: {quoted(str(e))}"
    return None if rows else "no data rows after the header"


@contextlib.contextmanager
def _no_field_limit() -> Iterator[None]:
    # csv refuses a cell over 128 KiB with an error naming no cell; pyarrow has no such limit, and a
    # 200 MB header cell must be named (and cut by `quoted`), not reported as a csv module error.
    old = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _screen(highest: Sequence[int]) -> re.Pattern[str] | None:
    """A regex matching only a plain, valid record (a line without its end), which needs no further check.

    The csv module plus a check per cell costs 13-50 s on the 42,000-line
    train.csv; with this screen the whole scan takes about 3 s (5 s for a file
    with every cell quoted, where the screen sees the cells csv unquoted).
    It never decides that a record is bad: one it does not match gets the full
    check.  None when a column's range has no simple pattern.
    """
    patterns = []
    for top in highest:
        if top == 255:
            patterns.append(_BYTE)
        elif 0 <= top <= 9:
            patterns.append(f"[0-{top}]")
        else:
            return None
    regex = ""
    for pattern, group in itertools.groupby(patterns):
        n = len(list(group))
        if not regex:
            regex, n = pattern, n - 1
        if n:
            regex += f"(?:,{pattern}){{{n}}}"
    return re.compile(regex)


def _record(line: str, lines: _Lines) -> tuple[int, list[str], bool] | None:
    """(line where the record starts, its cells, whether it ran over a line end), or None for an empty line."""
    start = lines.number
    # One record from a reader fed this line and, only while a quote is open at a line end, the next ones.
    cells = next(csv.reader(itertools.chain([line], lines)))
    return (start, cells, lines.number > start) if cells else None  # pyarrow skips empty lines; so does the scan


def _undecodable(line: int, cells: Sequence[str], names: Sequence[str]) -> str | None:
    for i, cell in enumerate(cells):
        if bad := _UNDECODABLE.search(cell):
            name = names[i] if i < len(names) else str(i + 1)
            return f"line {line}, column {name}: byte 0x{ord(bad.group()) - 0xDC00:02x} is not UTF-8 text"
    return None


def _header_fault(line: int, cells: list[str], _spans: bool, expected: Sequence[str]) -> str | None:
    numbers = [str(i + 1) for i in range(len(cells))]
    if fault := _undecodable(line, cells, numbers):
        return fault
    for i, (got, want) in enumerate(zip(cells, expected)):
        if got != want:  # pyarrow keeps names as written, spaces and all, so the comparison is exact
            return f"line {line}, column {i + 1}: header is {quoted(got)}, expected {want!r}"
    if len(cells) != len(expected):
        what = "missing columns after" if len(cells) < len(expected) else "unexpected extra column after"
        last = expected[min(len(cells), len(expected)) - 1]
        return (
            f"line {line}: {what} {last!r} "
            f"(expected {len(expected)} columns: {expected[0]}, ..., {expected[-1]}; got {len(cells)})"
        )
    return None


def _record_fault(
    line: int, cells: list[str], spans: bool, expected: Sequence[str], highest: Sequence[int]
) -> str | None:
    if fault := _undecodable(line, cells, expected):
        return fault
    if spans:
        for i, cell in enumerate(cells):
            if "\n" in cell or "\r" in cell:
                name = expected[i] if i < len(expected) else str(i + 1)
                return (
                    f"line {line}, column {name}: a quoted cell runs on past the end of its line "
                    "(is a closing quote missing?)"
                )
    if len(cells) != len(expected):
        return f"line {line}: {len(cells)} cell{'s' if len(cells) != 1 else ''}, expected {len(expected)}"
    for name, top, cell in zip(expected, highest, cells):
        if fault := _cell_fault(cell, top):
            return f"line {line}, column {name}: {fault}"
    return None


def _cell_fault(cell: str, top: int) -> str | None:
    value = cell.strip(" \t")  # pyarrow trims spaces and tabs around a number, and no other white space
    if value == "":
        return "empty cell"
    shown = value if len(value) <= 20 else quoted(value)
    if match := _UNSIGNED.fullmatch(value):
        digits, base = (match["hex"], 16) if match["hex"] is not None else (match["dec"], 10)
        significant = digits.lstrip("0") or "0"
        # The length test first: int() refuses strings over 4,300 digits, and anything over 3 is too big anyway.
        if len(significant) <= 3 and int(significant, base) <= top:
            return None
        return f"{shown} is outside 0-{top}"
    if _NEGATIVE.fullmatch(value):
        return f"{shown} is outside 0-{top}"
    return f"{quoted(cell)} is not an integer"
