"""The typed configuration: every default of the job lives in this file.

A `Config` is built in three layers, each overriding the one before:
the dataclass defaults below, a TOML file (``--config FILE``), then command
line options (named ones such as ``--epochs`` and the generic
``--set section.key=value``).  The config is frozen, so a run cannot change
it half-way, and it is recorded in full in every run report.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from pipeline.errors import BadInputError


@dataclass(frozen=True)
class DataConfig:
    """Where the competition files live and which competition they are."""

    dir: str = "data"
    competition: str = "digit-recognizer"


@dataclass(frozen=True)
class ModelConfig:
    """The MLP: hidden layer widths and their regularisation."""

    hidden: tuple[int, ...] = (1024, 512)
    dropout: float = 0.1
    input_dropout: float = 0.0
    batch_norm: bool = True
    activation: str = "relu"


@dataclass(frozen=True)
class AugmentConfig:
    """Random affine distortions applied to each training batch.

    One projective-transform op per batch does rotation, zoom, shear and
    shift together, which is far cheaper than stacking Keras' random layers.
    """

    enabled: bool = True
    rotation: float = 12.0  # degrees, uniform in [-r, r]
    shift: float = 2.5  # pixels
    zoom: float = 0.1  # relative, uniform in [1 - z, 1 + z]
    shear: float = 0.15


@dataclass(frozen=True)
class TrainConfig:
    """How each fold is trained, and how the folds are made."""

    folds: int = 5
    epochs: int = 40
    batch_size: int = 512
    optimizer: str = "adamw"  # adamw | adam | sgd
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine | constant
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    early_stopping: int = 10  # patience in epochs on the fold's validation loss; 0 = off
    seed: int = 42


@dataclass(frozen=True)
class Config:
    """Everything a run depends on besides the data itself."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = "."


SECTIONS = ("data", "model", "augment", "train")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant")
ACTIVATIONS = ("relu", "gelu", "elu", "swish", "tanh")


def to_dict(config: Config) -> dict[str, Any]:
    """The config as plain JSON/TOML-friendly data (tuples become lists)."""
    return dataclasses.asdict(
        config, dict_factory=lambda items: {k: list(v) if isinstance(v, tuple) else v for k, v in items}
    )


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 3}}`` -> ``{"train.epochs": 3}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Config values that differ between two runs, as ``{"train.epochs": (40, 30)}``.

    Works on the dicts stored in reports, so reports written by older versions
    (with keys that no longer exist, or lacking new ones) compare too.
    """
    fa, fb = flatten(a), flatten(b)
    missing = object()
    out = {}
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, missing), fb.get(key, missing)
        if va != vb:
            out[key] = (None if va is missing else va, None if vb is missing else vb)
    return out


def _coerce(value: Any, typ: Any, name: str) -> Any:
    """Turn a TOML or command-line value into the field's type, or say which option is wrong."""
    origin = get_origin(typ)
    try:
        if origin is tuple:
            (inner, _) = get_args(typ)
            if isinstance(value, str):
                value = [v for v in value.replace(" ", "").split(",") if v]
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
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        raise BadInputError(f"option {name}: unsupported type {typ}")
    kind = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        typ, "a comma-separated list of integers"
    )
    raise BadInputError(f"option {name}: expected {kind}, got {value!r}")


def _replace(obj: Any, updates: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(type(obj))
    known = {f.name for f in fields(obj)}
    changes = {}
    for key, value in updates.items():
        name = f"{where}{key}"
        if key not in known:
            raise BadInputError(f"unknown option {name} (known: {', '.join(sorted(where + k for k in known))})")
        current = getattr(obj, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise BadInputError(f"option {name}: expected a [{name}] table")
            changes[key] = _replace(current, value, name + ".")
        else:
            changes[key] = _coerce(value, hints[key], name)
    return dataclasses.replace(obj, **changes)


def validate(config: Config) -> Config:
    """Check values that are well-typed but meaningless; name the option at fault."""
    t, m, a = config.train, config.model, config.augment
    checks = [
        (t.folds >= 2, "train.folds", "must be at least 2"),
        (t.epochs >= 1, "train.epochs", "must be at least 1"),
        (t.batch_size >= 1, "train.batch_size", "must be at least 1"),
        (t.learning_rate > 0, "train.learning_rate", "must be positive"),
        (t.weight_decay >= 0, "train.weight_decay", "must not be negative"),
        (t.warmup_epochs >= 0, "train.warmup_epochs", "must not be negative"),
        (0 <= t.label_smoothing < 1, "train.label_smoothing", "must be in [0, 1)"),
        (t.early_stopping >= 0, "train.early_stopping", "must not be negative (0 turns it off)"),
        (t.seed >= 0, "train.seed", "must not be negative"),
        (t.optimizer in OPTIMIZERS, "train.optimizer", f"must be one of {', '.join(OPTIMIZERS)}"),
        (t.schedule in SCHEDULES, "train.schedule", f"must be one of {', '.join(SCHEDULES)}"),
        (len(m.hidden) >= 1 and all(h >= 1 for h in m.hidden), "model.hidden", "must list at least one positive width"),
        (0 <= m.dropout < 1, "model.dropout", "must be in [0, 1)"),
        (0 <= m.input_dropout < 1, "model.input_dropout", "must be in [0, 1)"),
        (m.activation in ACTIVATIONS, "model.activation", f"must be one of {', '.join(ACTIVATIONS)}"),
        (0 <= a.rotation <= 180, "augment.rotation", "must be in [0, 180] degrees"),
        (0 <= a.shift <= 14, "augment.shift", "must be in [0, 14] pixels"),
        (0 <= a.zoom < 1, "augment.zoom", "must be in [0, 1)"),
        (0 <= a.shear < 1, "augment.shear", "must be in [0, 1)"),
    ]
    for ok, name, message in checks:
        if not ok:
            raise BadInputError(f"option {name}: {message}")
    return config


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file; a syntax error names the file and line."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise BadInputError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInputError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise BadInputError(f"{path}: cannot read config file: {e.strerror}") from None


def parse_set(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["train.epochs=3", "model.hidden=256,128"]`` -> nested dict of strings."""
    nested: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"option --set {item!r}: expected SECTION.KEY=VALUE")
        node = nested
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise BadInputError(f"option --set {item!r}: {p} is not a section")
        node[leaf] = value.strip()
    return nested


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two nested dicts, `top` winning."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build(
    file: str | Path | None = None, overrides: dict[str, Any] | None = None, base: Config | None = None
) -> Config:
    """Defaults (or `base`), then the TOML `file`, then `overrides`; validated."""
    config = base or Config()
    if file is not None:
        config = _replace(config, load_toml(file), "")
    if overrides:
        config = _replace(config, overrides, "")
    return validate(config)


def from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a config stored in a report (used by resume and predict)."""
    return build(overrides=data)
