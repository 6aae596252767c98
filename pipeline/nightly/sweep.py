"""``digits sweep VARIANTS.toml``: several variants of the config trained as one pool of folds.

A variants file names each variant and its overrides, in the keys of ``--set``::

    [variants.wide]
    model.hidden = [2048, 1024]

    [variants.cnn]
    model.kind = "cnn"
    train.epochs = 12

Each variant becomes an ordinary run (blend-compatible with the nightly runs
wherever the data is the same); all of them carry one sweep id.  Their folds
go to the executor together, so a Ray cluster stays busy; the local executor
trains them one after another.  The command ends with ``digits compare`` of
the variants' runs.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.core import config as cfg
from pipeline.core.config_layers import load_toml
from pipeline.core.errors import BadInputError
from pipeline.core.progress import Progress
from pipeline.training import trainer
from pipeline.views import compare

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
Builder = Callable[[tuple[str, dict[str, Any]] | None], cfg.Config]


def load_variants(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(name, overrides) of every variant in the file, in file order; one line naming the file if it is not one."""
    data = load_toml(path)
    variants = data.get("variants")
    extra = sorted(set(data) - {"variants"})
    if extra:
        raise BadInputError(f"{path}: unknown table {extra[0]!r}; variants go in [variants.NAME] tables")
    if not isinstance(variants, dict) or not variants:
        raise BadInputError(f"{path}: no variants; give at least one [variants.NAME] table of config overrides")
    out = []
    for name, overrides in variants.items():
        if not NAME.fullmatch(name):
            raise BadInputError(f"{path}: variant name {name!r}: use letters, digits, '.', '_' or '-' (at most 40)")
        if not isinstance(overrides, dict):
            raise BadInputError(f"{path}: variant {name}: expected a table of overrides such as model.hidden = [512]")
        out.append((name, overrides))
    return out


def variant_configs(build: Builder, variants_file: str | Path) -> tuple[list[str], list[cfg.Config]]:
    """The variants' names and configs (each checked as a run's is); what a sweep trains, nothing trained yet."""
    variants = load_variants(variants_file)
    return [name for name, _ in variants], [build((f"{variants_file}: variant {name}", o)) for name, o in variants]


def sweep_id(when: _dt.datetime | None = None) -> str:
    return "sweep-" + (when or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")


def sweep(build: Builder, variants_file: str | Path, progress: Progress, resume: bool = False) -> list[Path]:
    """Train every variant (each the command's config with the variant's overrides); print their comparison.

    `build` turns a variant's ``(where, overrides)`` into a config, with the
    command line still on top.  With `resume`, each variant finishes its
    newest unfinished run with the same config instead of starting a new one.
    """
    names, configs = variant_configs(build, variants_file)
    # One seed for every variant that sets none: the same folds and initial draws, so the comparison
    # is paired fold by fold and measures the variants, not the luck of two seeds.  (A resumed sweep
    # finds its runs with any seed, and keeps theirs.)
    if not resume:
        seed = trainer.draw_seed()
        configs = [
            c if c.train.seed is not None else dataclasses.replace(c, train=dataclasses.replace(c.train, seed=seed))
            for c in configs
        ]
    ident = sweep_id()
    progress.info(f"{ident}: {len(names)} variant(s), {sum(c.train.folds for c in configs)} folds: {', '.join(names)}")
    dirs = trainer.train_runs(configs, progress, resume=resume or None, labels=names, sweep=ident)
    compare.compare(configs[0].output_dir, [str(d) for d in dirs], fmt="table")
    return dirs
