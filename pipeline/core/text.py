"""Text for people: error lines, quoted values, numbers, sizes and times, each formatted one way.

Text from outside (a file, Kaggle, a path) is shown through `printable`: it
escapes every character that would act on a terminal rather than show (C0 and
C1 controls with their escape sequences, DEL, the bidi overrides and
invisible format marks that reorder or hide what is shown, and the halves of
undecodable bytes), so a ledger line cannot clear the screen or fake a line.
`pipeline.core.console` and `pipeline.core.progress` pass everything they
print through it.  Every message is one line: `one_line` also cuts it, and
`quoted` cuts a value read from a file to a readable length, so a 200 MB
header line costs one short line on stderr.
"""

from __future__ import annotations

import datetime as _dt
import math
import re

QUOTE_LIMIT = 60  # characters of a quoted value shown in a message
LINE_LIMIT = 1000  # characters of a whole message line
# C0, DEL, C1; the Arabic letter mark, Mongolian vowel separator, zero-width and directional marks, line and
# paragraph separators, bidi embeddings, overrides and isolates, invisible operators, the BOM, interlinear
# annotations, tag characters; surrogates (undecodable bytes under surrogateescape).  Named ranges rather
# than unicodedata's categories: a class built from those at import would cost a scan of every code point.
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
    r"\U000e0000-\U000e007f\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
    return named or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def printable(value: object) -> str:
    """`value` as text that only shows: controls, escapes, bidi and invisible marks, undecodable bytes escaped.

    ``\x1b[2J`` becomes the six characters ``\x1b[2J``, a newline ``\n``, U+202E ``\u202e``.
    """
    return _CONTROL.sub(_escape, str(value))


def one_line(message: object, limit: int = LINE_LIMIT) -> str:
    """`message` as one printable line (`printable`), cut to `limit` characters."""
    text = printable(message)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def has_control(text: str) -> bool:
    """Whether `text` holds a control character (a line break, tab, escape, C1) or an undecodable byte."""
    return _CONTROL.search(text) is not None


_ASCII_INT = re.compile(r"[+-]?[0-9]+")


def ascii_int(text: str, signed: bool = False, max_digits: int = 30) -> int | None:
    """`text` as an integer when it is one in ASCII digits (a sign only if `signed`), else None.

    Not int() alone: it also reads '٣' (3), '３' and '1_0' (10) and ' 3', and raises on '²' (which
    isdigit() accepts) and on more than 4,300 digits.  What Kaggle, a header or a config file means
    by a number is written in 0-9.
    """
    if len(text) > max_digits + 1 or not _ASCII_INT.fullmatch(text) or (not signed and text[0] in "+-"):
        return None
    return int(text)


def ascii_float(text: str) -> float | None:
    """`text` as a float when it is written in ASCII (no '٣.٥', no '1_0.5', both of which float() reads), else None."""
    if not text.isascii() or "_" in text or len(text) > 100:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr``-style quoting of a value from a file or the command line, cut to `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return repr(text[:limit]) + f"… ({len(text):,} characters)"
    return repr(text)


def known(x: float | None) -> float | None:
    """`x` as a float when it is a finite number; None for None, NaN, inf or an int too large for a float.

    Figures come from files a user can edit: a NaN time or a 400-digit count is shown as missing ('—'),
    never a traceback of the formatting.
    """
    if x is None:
        return None
    try:
        value = float(x)
    except (OverflowError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage without the sign: 0.99172 -> '99.17'; None (or not finite) -> '—'."""
    x = known(x)
    return "—" if x is None else f"{100 * x:.{digits}f}"


def signed_pct(x: float | None, digits: int = 2) -> str:
    """A change of a fraction in percentage points, with its sign: 0.0006 -> '+0.06'; None -> '—'."""
    x = known(x)
    return "—" if x is None else f"{100 * x:+.{digits}f}"


def mean_std(mean: float | None, std: float | None, digits: int = 2) -> str:
    """'99.17 ± 0.04' from fractions; '—' without a mean."""
    return "—" if known(mean) is None else f"{pct(mean, digits)} ± {pct(known(std) or 0.0, digits)}"


def score_or_state(score: float | None, state: str | None, digits: int = 3) -> str:
    """A leaderboard score in %, else the submission's state ('pending', 'error'), else '—'."""
    return pct(score, digits) if known(score) is not None else (state or "—")


def number(x: float | None, digits: int = 0) -> str:
    """A count or a measurement with thousands separators: 12345.6 -> '12,346'; None -> '—'."""
    x = known(x)
    return "—" if x is None else f"{x:,.{digits}f}"


def blend_pct(x: float | None, runs: int | None, digits: int = 3) -> str:
    """A blend's accuracy and, in brackets, how many runs it averages: '99.310 (3)'; '—' without one."""
    if known(x) is None:
        return "—"
    return pct(x, digits) if runs is None else f"{pct(x, digits)} ({runs})"


def duration(seconds: float | None) -> str:
    """'42s', '9m58s', '1h02m'; '—' when unknown (or not a finite number)."""
    seconds = known(seconds)
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def size(n: float | None) -> str:
    """Bytes in binary units: '512 B', '1.6 MiB'."""
    value = known(n)
    if value is None:
        return "unknown size"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def when(stamp: str | _dt.datetime | None, seconds: bool = False) -> str:
    """A timestamp in the one style tables and pages use: '2026-11-25 01:45' (local time of the record).

    `seconds` adds them ('2026-11-25 01:45:07') where one run is described
    rather than many listed; a stamp that is not ISO 8601 is shown as it is.
    """
    if stamp is None or stamp == "":
        return "—"
    try:
        value = stamp if isinstance(stamp, _dt.datetime) else _dt.datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return str(stamp)
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def toml_value(value: object) -> str:
    """A config value as a user would type it in TOML or ``--set``: 'true', '[512,256]', '0.001'.

    A sha256 is cut to its first 12 hex digits, as people quote commits.
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(toml_value(x) for x in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and len(value) == 64 and all(ch in "0123456789abcdef" for ch in value):
        return value[:12]
    return str(value)
