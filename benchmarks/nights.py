"""Nights on a holdout: does each night add, does the blend climb, what does the CNN cost, what does Ray cost?

Splits the real competition's 42,000 labelled rows as benchmarks/holdout.py
does (10,000 stratified holdout rows that no run trains on; they play
test.csv), then runs `digits run --offline` in subprocesses, as cron would,
into one output folder:

  mlp nights   the default MLP N times, each night with its own seed; each
               night's submission is the blend of every night so far
  cnn          one `--model cnn` run into the same folder: its own folds
               alone (what `--ensemble-runs 1` submits), and the blend of
               the MLP nights and the CNN
  ray          the first MLP night again, same seed, with `--executor ray`
               on a local Ray: minutes, time to the first saved fold, and
               whether the bytes equal the local run's

For each: holdout accuracy of the run's own folds and of the submission
(the blend), out-of-fold accuracy of both, and minutes.

    python benchmarks/nights.py [--mlp-nights 3] [--cnn] [--ray] [--keep DIR] [--json OUT.json] [-- extra digits options]

With --keep, a second call into the same folder measures the runs that
already finished there instead of training them again (their minutes are
the ones their report.json recorded), and finishes an interrupted one with
`digits run --resume`. "fold minutes" (the sum of the folds' own training
times) is the figure that stays honest across a resume.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from holdout import DEFAULT_ZIP, digits_command, load_real, split, versions, write_competition  # noqa: E402

MLP_SEED = 1000  # night k trains with seed MLP_SEED + k
CNN_SEED = 2001


def earlier(out: Path, seed: int, model: str) -> tuple[Path, str] | None:
    """A run already in `out` with this seed and model, and its status."""
    for run_dir in sorted((out / "runs").glob("*")) if (out / "runs").is_dir() else []:
        try:
            report = json.loads((run_dir / "report.json").read_text())
        except (OSError, ValueError):
            continue
        cfg = report.get("config", {})
        if cfg.get("train", {}).get("seed") == seed and cfg.get("model", {}).get("kind", "mlp") == model:
            return run_dir, report.get("status", "")
    return None


def run_night(data_dir: Path, out: Path, args: list[str], seed: int, model: str = "mlp") -> dict:
    """One `digits run --offline` in a subprocess; wall seconds and seconds until its first fold was saved.

    A run that already finished in `out` is measured, not trained again; an
    interrupted one is finished with --resume.
    """
    args = ["--seed", str(seed), *args]
    found = earlier(out, seed, model)
    if found and found[1] == "complete":
        run_dir = found[0]
        report = json.loads((run_dir / "report.json").read_text())
        fold0 = json.loads((run_dir / "folds" / "fold-0.json").read_text())
        print(f"{run_dir.name}: finished earlier, measured again", flush=True)
        return {
            "run_dir": run_dir,
            "wall": report["seconds"],
            "first_fold": fold0["seconds"],
            "log": "",
            "how": "earlier",
        }
    how = "resumed" if found else "trained"
    if found:
        args.append("--resume")
        print(f"{found[0].name}: interrupted earlier, resuming", flush=True)
    before = set((out / "runs").glob("*")) if (out / "runs").is_dir() else set()
    t = time.perf_counter()
    proc = subprocess.Popen(
        digits_command(data_dir, out, args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first: list[float] = []

    def watch() -> None:
        while proc.poll() is None and not first:
            new = [p for p in (out / "runs").glob("*") if p not in before] if (out / "runs").is_dir() else []
            if any((p / "folds" / f"fold-{k}.json").exists() for p in new for k in range(20)):
                first.append(time.perf_counter() - t)
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"digits run failed ({proc.returncode}):\n{err[-3000:]}")
    (run_dir,) = [found[0]] if found else [p for p in (out / "runs").glob("*") if p not in before]
    return {"run_dir": run_dir, "wall": wall, "first_fold": first[0] if first else None, "log": err, "how": how}


def measure(night: dict, out: Path, y_ho: np.ndarray, name: str) -> dict:
    run_dir = night["run_dir"]
    report = json.loads((run_dir / "report.json").read_text())
    own = np.load(run_dir / "test_proba.npy").argmax(axis=1)
    sub = np.loadtxt(out / "submissions" / f"{run_dir.name}.csv", delimiter=",", skiprows=1, dtype=np.int64)[:, 1]
    blend = report.get("blend") or {}
    return {
        "name": name,
        "run_id": run_dir.name,
        "seed": report["config"]["train"]["seed"],
        "holdout_run": float(np.mean(own == y_ho)),
        "holdout_submission": float(np.mean(sub == y_ho)),
        "oof_run": report["oof_accuracy"],
        "oof_blend": blend.get("oof_accuracy"),
        "members": [(m["run_id"], m["weight"]) for m in blend.get("members", [])],
        "how": night["how"],
        "minutes": night["wall"] / 60,
        "fold_minutes": sum(f["seconds"] for f in report["folds"]) / 60,
        "train_minutes": report["stage_seconds"]["train"] / 60,
        "first_fold_minutes": None if night["first_fold"] is None else night["first_fold"] / 60,
        "blend_seconds": blend.get("seconds"),
        "folds": [f["val_accuracy"] for f in report["folds"]],
        "epochs_run": [f["epochs_run"] for f in report["folds"]],
        "samples_per_second": [f["samples_per_second"] for f in report["folds"]],
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| night | holdout, the run's own folds | holdout, the submission (blend) | OOF run | OOF blend "
        "| blend members | minutes | fold minutes | run |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        members = ", ".join(f"{m[0][-6:]} x{m[1]:.2f}" for m in r["members"])
        blend = "—" if r["oof_blend"] is None else f"{r['oof_blend']:.2%}"
        lines.append(
            f"| {r['name']} | {r['holdout_run']:.2%} | {r['holdout_submission']:.2%} | {r['oof_run']:.2%} | {blend} "
            f"| {members} | {r['minutes']:.1f} | {r['fold_minutes']:.1f} | {r['how']} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    p.add_argument("--mlp-nights", type=int, default=3)
    p.add_argument("--cnn", action="store_true", help="Also one --model cnn run into the same output folder.")
    p.add_argument("--ray", action="store_true", help="Also the first MLP night again with --executor ray.")
    p.add_argument("--json", type=Path, help="Write every figure here as JSON.")
    p.add_argument("--keep", type=Path, help="Keep the output folders here (default: a temporary folder).")
    p.add_argument("digits_args", nargs="*", help="Extra options for every `digits run` (after --).")
    a = p.parse_args()
    if not a.zip.is_file():
        sys.exit(f"{a.zip}: real competition data not found; nothing to benchmark")
    with tempfile.TemporaryDirectory(prefix="digits-nights-") as tmp:
        work = a.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        x, y, _ = load_real(a.zip, work)
        x_tr, x_ho, y_tr, y_ho = split(x, y)
        write_competition(x_tr, y_tr, x_ho, work / "split")
        print(f"split: {len(x_tr):,} training rows, {len(x_ho):,} holdout rows", flush=True)
        out = work / "out"
        rows: list[dict] = []
        for k in range(1, a.mlp_nights + 1):
            night = run_night(work / "split", out, a.digits_args, MLP_SEED + k)
            rows.append(measure(night, out, y_ho, f"MLP night {k}"))
            print(json.dumps(rows[-1]), flush=True)
        if a.cnn:
            night = run_night(work / "split", out, ["--model", "cnn", *a.digits_args], CNN_SEED, "cnn")
            rows.append(measure(night, out, y_ho, "CNN run (+ the MLP nights in the blend)"))
            print(json.dumps(rows[-1]), flush=True)
        ray_row = None
        if a.ray:
            ray_out = work / "out-ray"
            night = run_night(work / "split", ray_out, ["--executor", "ray", *a.digits_args], MLP_SEED + 1)
            ray_row = measure(night, ray_out, y_ho, "MLP night 1 on a local Ray")
            local_dir = out / "runs" / rows[0]["run_id"] if rows else None
            same = local_dir is not None and (
                (local_dir / "test_proba.npy").read_bytes() == (night["run_dir"] / "test_proba.npy").read_bytes()
            )
            ray_row["identical_to_local"] = same
            print(json.dumps(ray_row), flush=True)
    text = table(rows)
    if ray_row and rows:
        local = rows[0]
        text += (
            f"\n\nRay: the same run (seed {local['seed']}) with `--executor ray` on a local Ray took "
            f"{ray_row['minutes']:.1f} min against {local['minutes']:.1f} min in-process (ratio "
            f"{ray_row['minutes'] / local['minutes']:.2f}); first fold saved after {ray_row['first_fold_minutes']:.1f} min "
            f"against {local['first_fold_minutes']:.1f} min; test probabilities byte-identical: {ray_row['identical_to_local']}."
        )
    text += f"\n\nMachine: {versions()}."
    print("\n" + text)
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "ray": ray_row}, indent=2, default=str))


if __name__ == "__main__":
    main()
