"""Nights on a holdout: which recipe climbs fastest per CPU-hour, is the estimate honest, does the gate hold noise?

Splits the real competition's 42,000 labelled rows as benchmarks/holdout.py
does (10,000 stratified holdout rows that no run trains on; they play
test.csv), then trains a pool of runs with `digits train` in subprocesses,
as cron would.  Every variant of a recipe (VARIANTS: precision, epochs,
folds, kernel size) trains night k with seed 4000 + k, so two variants of
the same night share their seed and their folds: the one thing under test
is the only difference.

    python benchmarks/nights.py --keep /work/bench/nights --runs wide:3,wide-f32:1,wide-k5:1 [--jobs 2]
    python benchmarks/nights.py --keep /work/bench/nights --no-train --plans "wide;wide,wide-k5,wide-k7"

A second call with the same --keep trains only what is missing (and resumes
an interrupted run); `--jobs 2` trains two runs at once, one worker of one
thread each, as `executor.workers = 2` would.  Then, with the job's own code
(`pipeline.nightly.blend.choose`, `pipeline.nightly.gate.decide`), it prints

- each variant's nights alone: night k blends the runs of nights 1..k, the
  blend's estimate beside its holdout accuracy, the gap in standard errors,
  and what the gate would have done (the holdout plays the leaderboard);
- each variant against the default recipe on the same seed: McNemar's test
  on the 32,000 out-of-fold rows and on the 10,000 holdout rows;
- each plan (a rotation of variants) night by night under a budget
  (`--budget` minutes on `--cores` cores, a run spanning nights where it
  needs more): the climb per CPU-hour.

Core-minutes are the runs' own fold seconds (one core each), or `--costs`
measured alone; with other work on the machine the pool's are not timings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from holdout import DEFAULT_ZIP, load_real, split, versions, write_competition  # noqa: E402

from pipeline.core import config as cfg  # noqa: E402
from pipeline.nightly import blend, gate  # noqa: E402
from pipeline.store import ledger, record, run_arrays  # noqa: E402
from pipeline.store.record import RunRecord  # noqa: E402

SEED = 4000  # night k of every variant trains with seed SEED + k: variants are paired by seed (and so by folds)
ALPHA = cfg.SubmitConfig().alpha
PARTS = cfg.BlendConfig().estimate_parts
# The variants a pool may hold: config values on top of the defaults (`digits train --set KEY=VALUE`).  The
# precision and the kernel are explicit, so a variant means the same on every CPU and after the recipe's
# default changed (the wide CNN's kernel went from 3 to 5); all train with the default thread count.
VARIANTS: dict[str, dict[str, object]] = {
    "wide": {"model.kind": "cnn-wide", "train.precision": "mixed_bfloat16", "model.kernel": 3},
    "wide-f32": {"model.kind": "cnn-wide", "train.precision": "float32", "model.kernel": 3},
    "wide-e45": {"model.kind": "cnn-wide", "train.precision": "mixed_bfloat16", "train.epochs": 45, "model.kernel": 3},
    "wide-10f": {"model.kind": "cnn-wide", "train.precision": "mixed_bfloat16", "train.folds": 10, "model.kernel": 3},
    "wide-k5": {"model.kind": "cnn-wide", "train.precision": "mixed_bfloat16", "model.kernel": 5},
    "wide-k7": {"model.kind": "cnn-wide", "train.precision": "mixed_bfloat16", "model.kernel": 7},
    "wide-f32-e45": {"model.kind": "cnn-wide", "train.precision": "float32", "train.epochs": 45, "model.kernel": 3},
    "k5-e45": {"model.kind": "cnn-wide", "train.precision": "mixed_bfloat16", "train.epochs": 45, "model.kernel": 5},
    "k5-10f": {"model.kind": "cnn-wide", "train.precision": "mixed_bfloat16", "train.folds": 10, "model.kernel": 5},
    "cnn": {"model.kind": "cnn", "train.precision": "mixed_bfloat16"},
    "mlp": {"model.kind": "mlp", "train.precision": "float32"},
}


@dataclasses.dataclass
class Run:
    """A finished run of the pool and what the replay needs of it."""

    dir: Path
    record: RunRecord
    oof: np.ndarray
    test: np.ndarray  # its own soft vote on the holdout rows
    variant: str

    @property
    def recipe(self) -> str:
        return str(self.record.config.model.kind)

    @property
    def seed(self) -> int:
        return int(self.record.config.train.seed or 0)

    @property
    def core_minutes(self) -> float:
        """The run's training on one core each fold: its folds' seconds, summed."""
        return sum(f.seconds for f in self.record.folds) / 60


def _expected(variant: str) -> dict:
    """What a run of `variant` records in the sections that decide its numbers (the seed aside)."""
    from pipeline.core import config_layers

    sets = {}
    for dotted, value in VARIANTS[variant].items():
        section, key = dotted.split(".")
        sets.setdefault(section, {})[key] = value
    part = cfg.result_part(config_layers.build(named=sets))
    part["train"].pop("seed")
    return part


def variant_of(rec: RunRecord) -> str | None:
    """The pool's name for a run, from its recorded config."""
    part = cfg.result_part(rec.config)
    part["train"].pop("seed")
    return next((v for v in VARIANTS if _expected(v) == part), None)


def train_pool(data_dir: Path, pool: Path, wanted: list[tuple[str, int]], jobs: int) -> None:
    """Train every run of `wanted` that the pool lacks, `jobs` at a time; finish one that was interrupted.

    `jobs` trainings at once, each in its own `digits train` with one worker: on two cores, two trainings
    of one thread each use the machine as `executor.workers = 2` would, with the same bytes.
    """
    todo = []
    for variant, count in wanted:
        for k in range(1, count + 1):
            found = _existing(pool, variant, SEED + k)
            if found is None or found[1] != "complete":
                todo.append((variant, SEED + k, found))
    (pool / "logs").mkdir(parents=True, exist_ok=True)

    def one(item: tuple[str, int, tuple[Path, str] | None]) -> int:
        variant, seed, found = item
        sets = [a for key, value in VARIANTS[variant].items() for a in ("--set", f"{key}={value}")]
        # each training its own output folder: one output directory is one digits at a time (its lock)
        out = pool / f"{variant}-{seed}"
        args = ["--data-dir", str(data_dir), "--output-dir", str(out), "--seed", str(seed), *sets]
        args += ["--set", "executor.workers=1"]
        if found is not None:
            args = ["--resume", found[0].name, *args]
        print(f"training {variant} seed {seed}" + (" (resuming)" if found else ""), flush=True)
        with open(pool / "logs" / f"{variant}-{seed}.log", "a") as log:
            proc = subprocess.run(
                [sys.executable, "-m", "pipeline", "train", *args], cwd=ROOT, stdout=log, stderr=log, text=True
            )
        print(f"{variant} seed {seed}: exit {proc.returncode}", flush=True)
        return proc.returncode

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs) as runner:
        codes = list(runner.map(one, todo))
    if any(codes):
        sys.exit(f"digits train failed for {sum(c != 0 for c in codes)} run(s): see {pool / 'logs'}")


def _existing(pool: Path, variant: str, seed: int) -> tuple[Path, str] | None:
    found: list[tuple[Path, str]] = []
    for run_dir in _run_dirs(pool):
        try:
            rec = record.read(run_dir)
        except Exception:  # noqa: BLE001 - a folder without a readable report is not one of ours
            continue
        if rec.config.train.seed == seed and variant_of(rec) == variant:
            found.append((run_dir, rec.status))
    # a finished run wins over an abandoned start of the same seed; otherwise resume the newest
    found.sort(key=lambda f: (f[1] == "complete", f[0].name))
    return found[-1] if found else None


def _run_dirs(pool: Path) -> list[Path]:
    """The pool's run folders, oldest first: each training's output folder holds one (older pools: one for all)."""
    return sorted([*pool.glob("runs/*"), *pool.glob("*/runs/*")], key=lambda d: d.name)


def load_pool(pool: Path, holdout_rows: int) -> list[Run]:
    runs = []
    for run_dir in _run_dirs(pool):
        rec = record.read(run_dir)
        if rec.complete:
            labels, oof = run_arrays.load_oof(run_dir, finite=True)
            variant = variant_of(rec) or f"{rec.config.model.kind}?"
            runs.append(Run(run_dir, rec, oof, run_arrays.load_test(run_dir, holdout_rows), variant))
    return runs


def replay(nights: list[Run], labels: np.ndarray, y_ho: np.ndarray, name: str) -> list[dict]:
    """Nights 1..n of a scenario as `digits run --submit` would live them: night k adds run k."""
    return replay_sets([nights[:k] for k in range(1, len(nights) + 1)], labels, y_ho, name)


def replay_sets(sets: list[list[Run]], labels: np.ndarray, y_ho: np.ndarray, name: str) -> list[dict]:
    """Night k blends the finished runs `sets[k - 1]` (its newest last), then the gate decides; a row a night.

    A night that finished no new run (one that spans nights) changes nothing: its row repeats the blend.
    """
    rows: list[dict] = []
    submitted: list[tuple[ledger.Entry, tuple[np.ndarray, np.ndarray]]] = []
    for k, finished in enumerate(sets, start=1):
        if not finished:
            continue
        night = finished[-1]
        new = not rows or rows[-1]["run"] != night.record.run_id
        found = [blend.Candidate(r.dir, r.record, r.oof, r.test) for r in reversed(finished)]
        info, chosen, estimate = blend.choose(labels, found, PARTS)
        test = sum(w * c.test.astype(np.float64) for c, w in chosen if c.test is not None)
        holdout = float(np.mean(np.asarray(test).argmax(axis=1) == y_ho))
        tonight = gate.Tonight(estimate.accuracy, labels, estimate.predictions, night.record.train_sha)
        entries = [e for e, _ in submitted]
        kept = {e.id: arrays for e, arrays in submitted}
        decision = gate.decide(
            tonight, entries, "digit-recognizer", lambda e, kept=kept: kept.get(e.id), ALPHA, "better"
        )
        if decision.submitted and new:
            entry = ledger.Entry(
                id=f"night-{k}",
                competition="digit-recognizer",
                status="complete",
                ref=k,
                run_id=night.record.run_id,
                estimate=estimate.accuracy,
                train_sha=night.record.train_sha,
                public_score=holdout,  # the holdout plays the leaderboard
            )
            submitted.append((entry, (labels, estimate.predictions)))
        se = np.sqrt(holdout * (1 - holdout) / len(y_ho))
        average = np.mean([r.test for r in finished], axis=0)  # every finished run, equal weights: for comparison
        rows.append(
            {
                "scenario": name,
                "night": k,
                "run": night.record.run_id,
                "recipe": night.variant,
                "run_holdout": float(np.mean(night.test.argmax(axis=1) == y_ho)),
                "run_oof": night.record.oof_accuracy,
                "members": [(m.run_id, m.weight) for m in info.members],
                "estimate": estimate.accuracy,
                "in_sample": info.in_sample_accuracy,
                "holdout": holdout,
                "average_holdout": float(np.mean(average.argmax(axis=1) == y_ho)),
                "gap_se": (estimate.accuracy - holdout) / se,
                "submitted": decision.submitted and new,
                "p_value": decision.p_value if new else None,
                "disagree": decision.disagree if new else None,
                "train_minutes": night.core_minutes if new else 0.0,
                "precision": night.record.config.train.precision,
            }
        )
    return rows


def by_budget(sequence: list[Run], cost: dict[str, float], night_core_minutes: float, nights: int) -> list[list[Run]]:
    """The finished runs after each of `nights` nights of `night_core_minutes`, training `sequence` in order.

    As `pipeline.training.trainer.train_night` does: a night continues the run the budget paused last night
    and then, since runs span nights, fills its budget with the next runs (on every core, so the cores'
    minutes add up); a night with nothing to continue starts one run, and if that run fits the night, it is
    the night's only one.  A run costs `cost[variant]` core-minutes; idle cores at a run's last folds are
    not counted.
    """
    finished: list[Run] = []
    out: list[list[Run]] = []
    k, left = 0, 0.0  # the next run of the sequence, and the core-minutes the paused one still needs
    for _ in range(nights):
        budget = night_core_minutes
        spanning = left > 0
        while k < len(sequence) and budget > 1e-9:
            need = left if left > 0 else cost[sequence[k].variant]
            if need <= budget:
                budget -= need
                finished.append(sequence[k])
                k, left = k + 1, 0.0
                if not spanning:
                    break  # a run that fits a night is the night's only one
            else:
                left = need - budget
                budget = 0.0
        out.append(list(finished))
    return out


def paired(a: Run, b: Run, labels: np.ndarray, y_ho: np.ndarray) -> dict:
    """Variant b against variant a on the same seed (so the same folds): McNemar on out-of-fold and holdout rows."""
    from pipeline.core.mcnemar import mcnemar

    out = {"a": a.variant, "b": b.variant, "seed": a.seed, "minutes_a": a.core_minutes, "minutes_b": b.core_minutes}
    for where, truth, pa, pb in (("oof", labels, a.oof, b.oof), ("holdout", y_ho, a.test, b.test)):
        test = mcnemar(truth, pa.argmax(axis=1), pb.argmax(axis=1))
        out[where] = {
            "a": float(np.mean(pa.argmax(axis=1) == truth)),
            "b": float(np.mean(pb.argmax(axis=1) == truth)),
            "a_only": test.a_only,
            "b_only": test.b_only,
            "p": test.p_value,
        }
    return out


def paired_table(pairs: list[dict]) -> str:
    lines = [
        "| b against a | seed | OOF a → b | a only / b only | p | holdout a → b | a only / b only | p "
        "| core-min a → b |",
        "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for x in pairs:
        o, h = x["oof"], x["holdout"]
        lines.append(
            f"| {x['b']} vs {x['a']} | {x['seed']} | {o['a']:.3%} → **{o['b']:.3%}** | {o['a_only']} / {o['b_only']} "
            f"| {o['p']:.3g} | {h['a']:.2%} → **{h['b']:.2%}** | {h['a_only']} / {h['b_only']} | {h['p']:.3g} "
            f"| {x['minutes_a']:.0f} → {x['minutes_b']:.0f} |"
        )
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    lines = [
        "| scenario | night | recipe | run alone: holdout | blend: estimate | blend: holdout | gap (SE) "
        "| in-sample | gate | p | disagree | members | all runs averaged: holdout | core-min |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        members = ", ".join(f"{m[0][-6:]} x{m[1]:.2f}" for m in r["members"])
        p = "—" if r["p_value"] is None else f"{r['p_value']:.3g}"
        lines.append(
            f"| {r['scenario']} | {r['night']} | {r['recipe']} | {r['run_holdout']:.2%} | {r['estimate']:.2%} "
            f"| **{r['holdout']:.2%}** | {r['gap_se']:+.1f} | {r['in_sample']:.2%} "
            f"| {'submit' if r['submitted'] else 'hold'} | {p} | {r['disagree'] if r['disagree'] is not None else '—'} "
            f"| {members} | {r['average_holdout']:.2%} | {r['train_minutes']:.0f} |"
        )
    return "\n".join(lines)


def plan_sequence(pool: list[Run], plan_text: str) -> list[Run]:
    """The runs a plan trains night after night: its variants in rotation, each taking its next seed."""
    names = plan_text.split(",")
    by = {v: sorted((r for r in pool if r.variant == v), key=lambda r: r.seed) for v in names}
    sequence: list[Run] = []
    for turn in range(max(len(runs) for runs in by.values())):
        for name in names:
            if turn < len(by[name]):
                sequence.append(by[name][turn])
            else:
                return sequence  # the rotation stops where the pool runs out of this variant
    return sequence


def costs(pool: list[Run], rates: Path | None) -> dict[str, float]:
    """Core-minutes a run of each variant takes: measured rates if given (speed.py --threads 1), else the pool's."""
    if rates is not None:
        return {k: float(v) for k, v in json.loads(rates.read_text()).items()}
    out: dict[str, float] = {}
    for variant in {r.variant for r in pool}:
        out[variant] = float(np.median([r.core_minutes for r in pool if r.variant == variant]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    p.add_argument("--runs", default="wide:3", help="variant:count,... to train into the pool (VARIANTS)")
    p.add_argument("--jobs", type=int, default=2, help="Trainings at once (each one worker of one thread).")
    p.add_argument("--keep", type=Path, help="Keep the pool here (default: a temporary folder).")
    p.add_argument("--json", type=Path, help="Write every figure here as JSON.")
    p.add_argument("--no-train", action="store_true", help="Only replay the runs the pool already holds.")
    p.add_argument(
        "--plans", default="wide", help="Plans to replay by budget, ';' between plans, ',' between a plan's variants."
    )
    p.add_argument("--budget", type=float, default=45.0, help="Minutes of training a night (plan.budget).")
    p.add_argument("--cores", type=int, default=2, help="Cores a night trains on (one worker each).")
    p.add_argument("--nights", type=int, default=5)
    p.add_argument("--costs", type=Path, help="JSON {variant: core-minutes a run} measured alone (else the pool's).")
    a = p.parse_args()
    if not a.zip.is_file():
        sys.exit(f"{a.zip}: real competition data not found; nothing to benchmark")
    wanted = [(name, int(count)) for name, count in (item.split(":") for item in a.runs.split(","))]
    unknown = [name for name, _ in wanted if name not in VARIANTS]
    unknown += [v for plan_text in a.plans.split(";") for v in plan_text.split(",") if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory(prefix="digits-nights-") as tmp:
        work = a.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not (work / "split" / "train.csv").is_file():
            x, y, _ = load_real(a.zip, work)
            x_tr, x_ho, y_tr, y_ho = split(x, y)
            write_competition(x_tr, y_tr, x_ho, work / "split")
            np.save(work / "holdout_labels.npy", y_ho)
        y_ho = np.load(work / "holdout_labels.npy")
        if not a.no_train:
            train_pool(work / "split", work / "pool", wanted, a.jobs)
        pool = load_pool(work / "pool", len(y_ho))
        labels = run_arrays.load_oof(pool[0].dir)[0]
        rows: list[dict] = []
        for variant in VARIANTS:
            runs = sorted((r for r in pool if r.variant == variant), key=lambda r: r.seed)
            if runs:
                rows += replay(runs, labels, y_ho, f"{variant} nights")
        reference = {r.seed: r for r in pool if r.variant == "wide"}
        pairs = [
            paired(reference[r.seed], r, labels, y_ho) for r in pool if r.variant != "wide" and r.seed in reference
        ]
        cost = costs(pool, a.costs)
        capacity = a.budget * a.cores
        for plan_text in a.plans.split(";"):
            sequence = plan_sequence(pool, plan_text)
            sets = by_budget(sequence, cost, capacity, a.nights)
            rows += replay_sets(sets, labels, y_ho, f"plan {plan_text}, {a.budget:g} min x {a.cores} cores a night")
    costs_text = ", ".join(f"{k} {v:.0f}" for k, v in sorted(cost.items()))
    text = (
        table(rows)
        + "\n\nPaired (same seed, same folds):\n\n"
        + paired_table(pairs)
        + f"\n\nCore-minutes a run: {costs_text}.\n\nMachine: {versions()}."
    )
    print("\n" + text)
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "pairs": pairs, "costs": cost}, indent=2, default=str))


if __name__ == "__main__":
    main()
