"""The plan of nights: which recipe a run trains when none is named.

``digits run`` (and ``train``, ``sweep``) without ``--model`` asks the plan
(``[plan]`` in the config): a pure function of the finished runs in the
output directory and the blend the newest of them submitted.

- ``rotation``: the recipe after the one the newest finished run trained, in
  the order of ``plan.recipes`` (the first when no run is in the plan yet).
- ``least-held``: the recipe the current blend holds the least weight of, so
  the night adds what the blend lacks; ties go to the recipe trained longest
  ago (never before counts as longest), then to the order of ``plan.recipes``.

The choice and its reason are recorded in the run (``RunRecord.plan``), and
``digits history`` and ``compare`` show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.config import PlanConfig
from pipeline.store import run_folders
from pipeline.store.record import RunRecord


@dataclass
class Choice:
    """Tonight's recipe, and why."""

    recipe: str
    rule: str
    reason: str


def choose(plan: PlanConfig, finished: Sequence[RunRecord]) -> Choice:
    """Tonight's recipe from the plan and the finished runs (newest first, each with its blend if it wrote one)."""
    recipes = list(plan.recipes)
    trained = [r.config.model.kind for r in finished]
    if plan.rule == "least-held":
        return _least_held(recipes, trained, finished)
    last = next((k for k in trained if k in recipes), None)
    if last is None:
        return Choice(recipes[0], "rotation", f"rotation over {', '.join(recipes)}: no run of the plan yet")
    recipe = recipes[(recipes.index(last) + 1) % len(recipes)]
    return Choice(recipe, "rotation", f"rotation over {', '.join(recipes)}: the newest run trained {last}")


def _least_held(recipes: list[str], trained: list[str | None], finished: Sequence[RunRecord]) -> Choice:
    held = dict.fromkeys(recipes, 0.0)
    kinds = {r.run_id: r.config.model.kind for r in finished}
    current = next((r.blend for r in finished if r.blend is not None), None)
    for member in current.members if current else []:
        kind = kinds.get(member.run_id)
        if kind in held:
            held[kind] += member.weight
    # how many runs ago each recipe last trained (never: after every run)
    ago = {r: trained.index(r) if r in trained else len(trained) for r in recipes}
    recipe = min(recipes, key=lambda r: (held[r], -ago[r], recipes.index(r)))
    shares = ", ".join(f"{r} {held[r]:.0%}" for r in recipes)
    where = "the current blend holds " + shares if current else "no blend yet"
    return Choice(recipe, "least-held", f"least-held over {', '.join(recipes)}: {where}")


TRAINED = ("complete", "paused", "running")  # runs the rotation counts: finished, or under way (spanning nights)


def tonight(plan: PlanConfig, output_dir: str | Path) -> Choice:
    """`choose` over the runs in `output_dir` that finished or are under way (a night may open a run while
    the one before it still trains)."""
    finished = [rec for _, rec in run_folders.newest_first(output_dir) if rec.status in TRAINED]
    return choose(plan, finished)
