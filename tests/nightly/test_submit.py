"""The ledger entry a submission gets (pipeline.nightly.submit): what it says the file is worth, and the rows behind it."""

from __future__ import annotations

import datetime as dt

import numpy as np

from pipeline.core import atomic_files
from pipeline.nightly import submit
from pipeline.store import ledger, record, run_arrays
from tests import runfactory as rf

T0 = dt.datetime(2026, 11, 25, 1, 30)


def _entry(out, run_dir) -> ledger.Entry:
    rec = record.read(run_dir)
    return submit._entry(out, run_arrays_path(out, rec), "digit-recognizer", "m", run_dir, rec)


def run_arrays_path(out, rec):
    return out / "submissions" / f"{rec.run_id}.csv"


def test_a_blend_that_lost_its_estimate_never_keeps_its_anchors_predictions_as_the_blends(tmp_path):
    member = rf.make_run(tmp_path, T0 - dt.timedelta(days=1), seed=1)
    run_id = T0.strftime("%Y%m%d-%H%M%S")
    blend = rf.blend_of((run_id, 0.5, 0.97), (member, 0.5, 0.96), estimate=0.975)
    run_dir = rf.make_run(tmp_path, T0, seed=2, submission=True, blend=blend)  # no estimate.npz: lost
    entry = _entry(tmp_path, run_dir)
    assert entry.predictions is None and entry.estimate == 0.975
    assert [m.run_id for m in entry.members] == [run_id, member.name]
    # with the blend's own rows kept, those are what the entry keeps
    labels = np.arange(600) % 10
    atomic_files.write_npz(run_dir / run_arrays.ESTIMATE, labels=labels, predictions=labels)
    kept = ledger.load_predictions(tmp_path, _entry(tmp_path, run_dir))
    assert kept is not None and np.array_equal(kept[1], labels)


def test_a_run_whose_out_of_fold_figure_is_in_sample_keeps_no_predictions_and_no_estimate(tmp_path):
    run_dir = rf.make_run(tmp_path, T0, submission=True)
    record.update(run_dir, oof_in_sample=True)
    entry = _entry(tmp_path, run_dir)
    assert entry.predictions is None and entry.estimate is None
    plain = rf.make_run(tmp_path, T0 + dt.timedelta(days=1), submission=True, seed=3)
    honest = _entry(tmp_path, plain)
    assert honest.predictions is not None and honest.estimate == record.read(plain).oof_accuracy
