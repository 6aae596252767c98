"""Text for people: error lines, quoted values, numbers, sizes and times, each formatted one way.

Every message the job prints is one line: `one_line` escapes what would break
it (a newline in a path, a terminal escape, bytes that are not UTF-8), and
`quoted` cuts a value read from a file to a readable length, so a 200 MB
header line costs one short line on stderr.
"""

from __future__ import annotations

import datetime as _dt
import math
import re

QUOTE_LIMIT = 60  # characters of a quoted value shown in a message
LINE_LIMIT = 1000  # characters of a whole message line
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(
        ch, f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
    )


def one_line(message: object, limit: int = LINE_LIMIT) -> str:
    """`message` as one printable line: control characters and undecodable bytes escaped, then cut."""
    text = _CONTROL.sub(_escape, str(message))
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
    """`x`, or None when it is not a finite number: a NaN or inf read from a record is shown as unknown ('—')."""
    return x if x is not None and math.isfinite(x) else None


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage without the sign: 0.99172 -> '99.17'; None (or NaN) -> '—'."""
    value = known(x)
    return "—" if value is None else f"{100 * value:.{digits}f}"


def signed_pct(x: float | None, digits: int = 2) -> str:
    """A change of a fraction in percentage points, with its sign: 0.0006 -> '+0.06'; None -> '—'."""
    value = known(x)
    return "—" if value is None else f"{100 * value:+.{digits}f}"


def mean_std(mean: float | None, std: float | None, digits: int = 2) -> str:
    """'99.17 ± 0.04' from fractions; '—' without a mean."""
    return "—" if known(mean) is None else f"{pct(mean, digits)} ± {pct(std or 0.0, digits)}"


def score_or_state(score: float | None, state: str | None, digits: int = 3) -> str:
    """A leaderboard score in %, else the submission's state ('pending', 'error'), else '—'."""
    return pct(score, digits) if known(score) is not None else (state or "—")


def number(x: float | None, digits: int = 0) -> str:
    """A count or a measurement with thousands separators: 12345.6 -> '12,346'; None -> '—'."""
    value = known(x)
    return "—" if value is None else f"{value:,.{digits}f}"


def blend_pct(x: float | None, runs: int | None, digits: int = 3) -> str:
    """A blend's accuracy and, in brackets, how many runs it averages: '99.310 (3)'; '—' without one."""
    if known(x) is None:
        return "—"
    return pct(x, digits) if runs is None else f"{pct(x, digits)} ({runs})"


def duration(seconds: float | None) -> str:
    """'42s', '9m58s', '1h02m'."""
    if seconds is None or known(seconds) is None:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def size(n: float | None) -> str:
    """Bytes in binary units: '512 B', '1.6 MiB'."""
    if n is None or known(n) is None:
        return "unknown size"
    value = float(n)
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
