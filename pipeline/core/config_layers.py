"""Building a `Config` in layers: defaults < a TOML file < ``--set`` < named options.

Each layer overrides the one before: the dataclass defaults (or the demo's,
`demo_base`), a TOML file (``--config FILE``), ``--set section.key=value``,
then the named options (``--epochs``...).  Values are coerced to each
field's type with a message that names the option; a value given both by
``--set`` and by a named option is an error rather than a silent winner.  A
bad value in the file is bad input (exit 1, naming the file); a bad value
on the command line is a usage error (exit 2), like any other bad option.

Hand-written rather than pydantic: the messages name options the way the
command line spells them (``option train.folds: ...``), and the layers,
conflicts and file/command-line exit codes need this control anyway.
"""

from __future__ import annotations

import codecs
import dataclasses
import math
import re
import tomllib
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from pipeline.core import file_reads
from pipeline.core.config import DEMO, Config, flatten, resolve, validate
from pipeline.core.errors import BadInputError, UsageError
from pipeline.core.text import ascii_float, ascii_int, quoted


def demo_base() -> Config:
    """The demo's small data and short training; the user's options still override it."""
    return _replace(Config(), DEMO, "")


def _coerce(value: Any, typ: Any, name: str) -> Any:
    """Turn a TOML or command-line value into the field's type, or say which option is wrong."""
    origin = get_origin(typ)
    args = get_args(typ)
    words = [w for a in args if get_origin(a) is Literal for w in get_args(a)]
    if words:  # X | Literal["auto"]: one of the words, or an X
        if isinstance(value, str) and value.strip().lower() in words:
            return value.strip().lower()
        try:
            return _coerce(value, next(a for a in args if get_origin(a) is not Literal), name)
        except BadInputError:
            shown = value if isinstance(value, (str, int, float)) else str(value)
            raise BadInputError(
                f"option {name}: expected {' or '.join(map(str, words))} or a number, got {quoted(shown)}"
            ) from None
    if args and type(None) in args and origin is not tuple:  # X | None
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        typ = next(a for a in args if a is not type(None))
        origin = get_origin(typ)
    try:
        if origin is tuple:
            inner = get_args(typ)[0]
            if isinstance(value, str):
                value = _items(value, name)
            if not isinstance(value, (list, tuple)):
                raise ValueError
            return tuple(_coerce(v, inner, name) for v in value)
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            whole = ascii_int(value, signed=True) if isinstance(value, str) else int(value)
            if whole is None:  # int() also reads '٣' and '1_0'; an option's number is written in 0-9
                raise ValueError
            return whole
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            number = ascii_float(value) if isinstance(value, str) else float(value)
            if number is None:
                raise ValueError
            if not math.isfinite(number):  # inf passes float(); no option means anything with it
                raise ValueError
            return number
        if typ is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            text = str(value)
            text.encode("utf-8")  # a name with undecodable bytes cannot be recorded in report.json or TOML
            if "\x00" in text:  # a TOML file can spell one (\u0000); no path or name may hold it
                raise ValueError
            return text
    except (TypeError, ValueError, OverflowError, UnicodeEncodeError):
        pass
    else:
        raise BadInputError(f"option {name}: unsupported type {typ}")
    kind = {int: "an integer", float: "a finite number", bool: "true or false", str: "UTF-8 text without NUL"}.get(
        typ, 'a comma-separated list or a TOML array such as ["a", "b"]'
    )
    shown = value if isinstance(value, (str, int, float)) else str(value)
    raise BadInputError(f"option {name}: expected {kind}, got {quoted(shown)}")


# Lists of URLs: a comma inside one (a query string) is kept, and only a comma before the next URL's scheme
# splits, so `--set notify.urls=URL` takes one URL the way `--notify URL` does.
URL_LISTS = ("notify.urls",)
_NEXT_URL = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def _items(text: str, name: str) -> list[Any]:
    """A list given as text: a TOML array (``["a,1", "b"]``, whose items may hold commas), else comma-separated."""
    text = text.strip()
    if text.startswith("["):
        try:
            items = tomllib.loads(f"v = {text}")["v"]
        except (tomllib.TOMLDecodeError, RecursionError):
            raise ValueError from None
        if not isinstance(items, list):
            raise ValueError
        return items
    if name in URL_LISTS:
        return [url.strip() for url in _NEXT_URL.split(text) if url.strip()]
    return [v for v in text.replace(" ", "").split(",") if v]


# Options that existed once: a config file that still sets one is told why it is gone, not just "unknown".
REMOVED = {
    "train.early_stopping": "it chose each fold's epoch on the rows the run's out-of-fold estimate is scored on; "
    "folds now train every epoch of the cosine schedule (delete the line)",
}


def _replace(obj: Any, updates: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(type(obj))
    known = {f.name for f in fields(obj)}
    changes = {}
    for key, value in updates.items():
        name = f"{where}{key}"
        if name in REMOVED:
            raise BadInputError(f"option {name} was removed: {REMOVED[name]}")
        if key not in known:
            raise BadInputError(f"unknown option {name} (known: {', '.join(sorted(where + k for k in known))})")
        current = getattr(obj, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise BadInputError(f"option {name}: expected a [{name}] table, got {quoted(str(value))}")
            changes[key] = _replace(current, value, name + ".")
        elif isinstance(value, dict):
            raise BadInputError(f"option {name}.{next(iter(value), '')}: {name} is a value, not a section")
        else:
            changes[key] = _coerce(value, hints[key], name)
    return dataclasses.replace(obj, **changes)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file; a syntax error names the file and line.

    Anything but a readable regular file is bad input (exit 1), like a
    missing one: a directory, or a FIFO, which would block the read for ever.
    """
    path = Path(path)
    try:
        text = file_reads.read_bytes(path)
        if text.startswith(codecs.BOM_UTF8):
            raise BadInputError(
                f"{path}: starts with a byte-order mark (BOM), which TOML does not allow; save it as UTF-8 without BOM"
            )
        decoded = text.decode("utf-8")
        _check_key_depth(path, decoded)
        return tomllib.loads(decoded)
    except BadInputError:
        raise
    except FileNotFoundError:
        raise BadInputError(f"{path}: config file not found") from None
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not a UTF-8 text file (TOML must be UTF-8)") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInputError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise BadInputError(f"{path}: cannot read config file: {e.strerror}") from None
    except file_reads.UNREADABLE as e:  # an integer of thousands of digits; arrays nested thousands deep
        raise BadInputError(f"{path}: not valid TOML: {file_reads.why(e)}") from None


KEY_PARTS = 100  # dotted parts of one key, far beyond any option's (section.key, a variant's three)


def _check_key_depth(path: Path, text: str) -> None:
    """Refuse a key of thousands of dotted parts (``a.a.a... = 1``) before tomllib reads it.

    tomllib's memory grows with the square of a dotted key's parts: 10,000 take 400 MB, 100,000 more
    than the machine has.  A key precedes the first ``=`` of its line, and a dotted key never spans lines.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.partition("=")[0].count(".") + 1
        if parts > KEY_PARTS:
            raise BadInputError(
                f"{path}: line {number}: a key of {parts:,} dotted parts; options have two (section.key)"
            )


def parse_set(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["train.epochs=3", "model.hidden=256,128"]`` -> nested dict of strings."""
    nested: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"option --set {quoted(item)}: expected SECTION.KEY=VALUE")
        node = nested
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UsageError(f"option --set {quoted(item)}: {p} is given both as a value and as a section")
        if isinstance(node.get(leaf), dict):
            raise UsageError(f"option --set {quoted(item)}: {key.strip()} is given both as a value and as a section")
        if leaf in node and node[leaf] != value.strip():
            raise UsageError(
                f"option {key.strip()} is given twice by --set, as {quoted(node[leaf])} and as "
                f"{quoted(value.strip())}; give it once"
            )
        node[leaf] = value.strip()
    return nested


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two nested dicts, `top` winning."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _value_at(config: Config, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def build(
    file: str | Path | None = None,
    sets: dict[str, Any] | None = None,
    named: dict[str, Any] | None = None,
    base: Config | None = None,
    variant: tuple[str, dict[str, Any]] | None = None,
) -> Config:
    """Defaults (or `base`) < the TOML `file` < a sweep's `variant` < `sets` (``--set``) < `named` options.

    Returns the config resolved (kind defaults filled) and validated.  A bad
    value in the file or the variant is a `BadInputError` naming where it
    came from (exit 1); a bad value on the command line a `UsageError` (exit
    2), like any other bad option.  The same key given by ``--set`` and a
    named option with different values is a `UsageError` too.
    """
    config = base or Config()
    layers = ([(str(file), load_toml(file))] if file is not None else []) + ([variant] if variant else [])
    for where, values in layers:
        if "output_dir" in values:  # a file or a variant moving outputs silently mixed up runs (two with one id)
            raise BadInputError(
                f"{where}: output_dir cannot be set in a config file; outputs go where --output-dir says "
                "(default: the current folder): delete the line and give --output-dir"
            )
        try:
            config = validate(_replace(config, values, ""))
        except BadInputError as e:
            message = str(e)
            raise BadInputError(message if message.startswith(where) else f"{where}: {message}") from None
    if "output_dir" in (sets or {}):
        raise UsageError("option --set output_dir: outputs are moved only by --output-dir; give that instead")
    try:
        with_sets = _replace(config, sets or {}, "")
        for key, value in flatten(named or {}).items():
            if key in flatten(sets or {}):
                given = _value_at(_replace(config, _nest(key, value), ""), key)
                if given != _value_at(with_sets, key):
                    raise UsageError(
                        f"option {key} is given twice, as {given!r} by its own option and as "
                        f"{_value_at(with_sets, key)!r} by --set; give it once"
                    )
        return validate(resolve(_replace(with_sets, named or {}, "")))
    except UsageError:
        raise
    except BadInputError as e:
        raise UsageError(str(e)) from None


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    *parents, leaf = dotted.split(".")
    out: dict[str, Any] = {leaf: value}
    for p in reversed(parents):
        out = {p: out}
    return out


def from_record(data: dict[str, Any]) -> Config:
    """The config a run report recorded (resolved: every field set); a `BadInputError` if it is not one."""
    return validate(resolve(_replace(Config(), data, "")))
