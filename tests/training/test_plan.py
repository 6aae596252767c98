"""The plan of nights (pipeline.training.plan) on synthetic run records: which recipe comes next, and why."""

from __future__ import annotations

import dataclasses

from pipeline.core import config as cfg
from pipeline.store.record import Blend, BlendMember, RunRecord
from tests import runfactory as rf


def _run(run_id: str, kind: str, blend: dict[str, float] | None = None) -> RunRecord:
    config = dataclasses.replace(rf.RECORDED, model=dataclasses.replace(rf.RECORDED.model, kind=kind))
    rec = RunRecord(run_id=run_id, status="complete", config=config, started_at="2026-11-25T01:30:00+00:00")
    if blend:
        members = [BlendMember(r, w, 0.99) for r, w in blend.items()]
        rec.blend = Blend(
            members=members,
            in_sample_accuracy=0.99,
            best_single_run=members[0].run_id,
            best_single_oof_accuracy=0.99,
            estimate=0.99,
        )
    return rec


PLAN = cfg.PlanConfig(recipes=("cnn-wide", "cnn", "mlp"), rule="rotation")


def test_rotation_starts_with_the_first_recipe_and_follows_the_newest_run():
    first = cfg_choose(PLAN, [])
    assert first.recipe == "cnn-wide" and "no run of the plan yet" in first.reason
    after_wide = cfg_choose(PLAN, [_run("20261126-013000", "cnn-wide")])
    assert after_wide.recipe == "cnn" and "the newest run trained cnn-wide" in after_wide.reason
    after_mlp = cfg_choose(PLAN, [_run("20261127-013000", "mlp"), _run("20261126-013000", "cnn")])
    assert after_mlp.recipe == "cnn-wide"  # wraps around


def test_rotation_ignores_runs_of_recipes_outside_the_plan():
    plan = cfg.PlanConfig(recipes=("cnn-wide", "cnn"), rule="rotation")
    assert cfg_choose(plan, [_run("20261127-013000", "mlp"), _run("20261126-013000", "cnn-wide")]).recipe == "cnn"


def test_least_held_trains_what_the_blend_holds_least_of():
    plan = dataclasses.replace(PLAN, rule="least-held")
    runs = [
        _run("20261128-013000", "cnn", blend={"20261126-013000": 0.7, "20261128-013000": 0.3}),
        _run("20261127-013000", "mlp"),
        _run("20261126-013000", "cnn-wide"),
    ]
    choice = cfg_choose(plan, runs)
    assert choice.recipe == "mlp" and choice.rule == "least-held"  # it holds none of the MLP it has
    assert "cnn-wide 70%, cnn 30%, mlp 0%" in choice.reason


def test_least_held_breaks_a_tie_by_the_recipe_trained_longest_ago():
    plan = dataclasses.replace(PLAN, rule="least-held")
    runs = [
        _run("20261128-013000", "cnn", blend={"20261128-013000": 1.0}),  # the blend holds only this CNN
        _run("20261127-013000", "cnn-wide"),
        _run("20261126-013000", "mlp"),
    ]
    assert cfg_choose(plan, runs).recipe == "mlp"  # cnn-wide and mlp both 0%; mlp trained longer ago
    assert cfg_choose(plan, runs[:2]).recipe == "mlp"  # never trained counts as longest ago


def test_no_blend_yet_counts_as_holding_nothing():
    plan = dataclasses.replace(PLAN, rule="least-held")
    choice = cfg_choose(plan, [_run("20261126-013000", "cnn-wide")])
    assert choice.recipe == "cnn" and "no blend yet" in choice.reason


def cfg_choose(plan: cfg.PlanConfig, finished: list[RunRecord]):
    from pipeline.training import plan as plan_mod

    return plan_mod.choose(plan, finished)
