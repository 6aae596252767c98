"""MkDocs hooks (mkdocs.yml, ``hooks:``): the manual's tables that the code already holds, generated from it.

A page asks for a table with a marker on a line of its own:

- ``<!-- digits:config-keys -->``: every key of every config section, with its default and, where the
  code names them, its allowed values (`pipeline.core.config`);
- ``<!-- digits:exit-codes -->``: every exit code and what it covers (`pipeline.core.errors.EXIT_MEANINGS`).

So the pages cannot drift from the code; the command reference is generated the same way, by mkdocs-click
(docs/reference.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.cli.option_help import config_default
from pipeline.core import config as cfg
from pipeline.core.errors import EXIT_MEANINGS

# The keys whose allowed values the code keeps in a tuple; every other key is bounded by `cfg.validate`.
CHOICES: dict[str, tuple[str, ...]] = {
    "model.kind": cfg.KINDS,
    "model.activation": cfg.ACTIVATIONS,
    "train.optimizer": cfg.OPTIMIZERS,
    "train.schedule": cfg.SCHEDULES,
    "train.precision": cfg.PRECISIONS,
    "plan.recipes": cfg.KINDS,
    "plan.rule": cfg.PLAN_RULES,
    "notify.on": cfg.NOTIFY_ON,
    "executor.kind": cfg.EXECUTORS,
}


def config_keys() -> str:
    """One table per config section: key, default, allowed values."""
    out = []
    defaults = cfg.Config()
    for section in dataclasses.fields(cfg.Config):
        value = getattr(defaults, section.name)
        if not dataclasses.is_dataclass(value):
            continue  # output_dir: --output-dir only, never a file's
        doc = (type(value).__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out += [f"### [{section.name}]", "", doc, "", "| key | default | values |", "| --- | --- | --- |"]
        for key in dataclasses.fields(value):
            path = f"{section.name}.{key.name}"
            values = ", ".join(f"`{c}`" for c in CHOICES.get(path, ()))
            out.append(f"| `{path}` | {config_default(path)} | {values} |")
        out.append("")
    return "\n".join(out)


def exit_codes() -> str:
    rows = [f"| {code} | {short} | {what} |" for code, (short, what) in EXIT_MEANINGS.items()]
    return "\n".join(["| code | meaning | covers |", "| --- | --- | --- |", *rows])


TABLES = {"<!-- digits:config-keys -->": config_keys, "<!-- digits:exit-codes -->": exit_codes}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    for marker, table in TABLES.items():
        if marker in markdown:
            markdown = markdown.replace(marker, table())
    return markdown
