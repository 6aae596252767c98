"""The defaults the options' help shows, read from the config, so the help (and the manual's command
reference, generated from it) cannot drift from what the code does.

A named option that sets a config field (``--epochs`` sets ``train.epochs``) keeps None as its value
when it is not given, so that `pipeline.cli.app.build_config` can layer it over the defaults, the
``--config`` file and ``--set``; Click would then show no default at all.  `DescribedDefault` shows the
config's own instead: the dataclass default, each recipe's where the recipe decides (`RECIPES`), or
what None means for the fields whose default is "someone else decides" (`NONE_MEANS`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from pipeline.core import config as cfg

# The named options that set a config field: option (its Python name) -> SECTION.KEY.  `build_config`
# layers exactly these; tests/cli/test_help_texts.py checks each one's help against the config.
NAMED: dict[str, str] = {
    "data_dir": "data.dir",
    "model": "model.kind",
    "hidden": "model.hidden",
    "folds": "train.folds",
    "epochs": "train.epochs",
    "seed": "train.seed",
    "batch_size": "train.batch_size",
    "ensemble_runs": "blend.runs",
    "executor": "executor.kind",
    "ray_address": "executor.address",
    "mlflow": "tracking.mlflow",
}

_PLAN = cfg.PlanConfig()

# What a field's None default means, where it is not "the recipe's value".
NONE_MEANS: dict[str, str] = {
    "model.kind": (
        f"the plan's choice among plan.recipes ({', '.join(_PLAN.recipes)}) by plan.rule "
        f"({_PLAN.rule}; or {', '.join(r for r in cfg.PLAN_RULES if r != _PLAN.rule)})"
    ),
    "train.seed": "a fresh one each run, recorded in its report",
    "executor.address": "RAY_ADDRESS, else a local Ray started for the run",
    "tracking.uri": "MLFLOW_TRACKING_URI, else sqlite:///mlflow.db beside runs/",
}


class DescribedDefault(click.Option):
    """A click option whose help shows `described_default` as its default while its value stays None.

    (Click's own ``show_default="text"`` shows the text in parentheses, as if it were not the default.)
    """

    def __init__(self, *args: Any, described_default: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.described_default = described_default

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        extra["default"] = self.described_default
        return extra


def config_option(*decls: str, path: str, **kwargs: Any) -> Any:
    """`click.option` for a named option that sets the config field `path`, showing that field's default."""
    return described_option(*decls, default_text=config_default(path), **kwargs)


def described_option(*decls: str, default_text: str, **kwargs: Any) -> Any:
    """`click.option` whose help shows `default_text` as the default."""
    return click.option(*decls, cls=DescribedDefault, described_default=default_text, **kwargs)


def config_default(path: str) -> str:
    """The default of config field SECTION.KEY as the help shows it."""
    section, key = path.split(".")
    value = getattr(getattr(cfg.Config(), section), key)
    if value is not None:
        return shown(value)
    if path in NONE_MEANS:
        return NONE_MEANS[path]
    if any(key in cfg.RECIPES[kind].get(section, {}) for kind in cfg.KINDS):
        return "the recipe's: " + "; ".join(
            f"{kind} {shown(cfg.RECIPES[kind].get(section, {}).get(key))}" for kind in cfg.KINDS
        )
    return "none"


def shown(value: Any) -> str:
    """A config value as the command line would spell it: 1024,512 for a tuple, none for an empty one."""
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def either(items: tuple[str, ...] | list[str]) -> str:
    """'a, b or c'."""
    return " or ".join(filter(None, (", ".join(items[:-1]), items[-1])))


def config_tables() -> list[str]:
    """The config's sections, each a [table] of a --config file and the SECTION of --set."""
    return [f.name for f in dataclasses.fields(cfg.Config) if dataclasses.is_dataclass(getattr(cfg.Config(), f.name))]
