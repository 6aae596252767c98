"""The run record's migrations (pipeline.store.record): an older report reads as the current schema."""

from __future__ import annotations

import copy
import datetime as dt

from pipeline.store import record
from tests import runfactory as rf

T0 = dt.datetime(2026, 11, 25, 1, 30)


def _v2(report: dict, early_stopping: int) -> dict:
    """What a schema-2 digits wrote: early stopping in the config, the blend's in-sample figure as oof_accuracy."""
    old = copy.deepcopy(report)
    old["schema_version"] = 2
    old["config"]["train"]["early_stopping"] = early_stopping
    old["config"]["train"].pop("precision")
    for key in ("plan", "oof_in_sample"):
        old.pop(key, None)
    old["blend"] = {
        "members": [{"run_id": old["run_id"], "weight": 1.0, "oof_accuracy": 0.99}],
        "oof_accuracy": 0.991,
        "best_single_run": old["run_id"],
        "best_single_oof_accuracy": 0.99,
    }
    return old


def test_a_schema_2_report_reads_with_its_figures_marked_in_sample(tmp_path):
    current = rf.read(rf.make_run(tmp_path, T0, submission=True))
    rec = record.from_json(_v2(current, early_stopping=10))
    assert rec.schema_version == record.SCHEMA_VERSION and rec.oof_in_sample
    assert rec.blend.in_sample_accuracy == 0.991 and rec.blend.estimate is None
    assert rec.submission_estimate is None  # no honest figure was ever made for it
    assert rec.config.train.precision == "auto"  # the field's default: older runs trained in float32 anyway


def test_a_schema_2_run_without_early_stopping_keeps_its_out_of_fold_figure(tmp_path):
    current = rf.read(rf.make_run(tmp_path, T0, submission=True))
    old = _v2(current, early_stopping=0)
    old.pop("blend")
    rec = record.from_json(old)
    assert not rec.oof_in_sample and rec.submission_estimate == rec.oof_accuracy


def test_a_report_from_before_schema_2_is_in_sample_when_its_config_never_named_early_stopping(tmp_path):
    """Early stopping was on by default (patience 10) until schema 3; a config that does not name it had it on."""
    current = rf.read(rf.make_run(tmp_path, T0, submission=True))
    for version in (0, 1, 2):
        old = _v2(current, early_stopping=10)
        old["schema_version"] = version
        old["config"]["train"].pop("early_stopping")
        old.pop("blend")
        rec = record.from_json(old)
        assert rec.oof_in_sample, version
        assert rec.submission_estimate is None


def test_a_folder_named_in_other_digits_is_no_run(tmp_path):
    """'٢٠٢٦١١٢٥-٢٣٣٠٠٠' matched \\d{8}-\\d{6} and sorted after every real run id: it was `latest`."""
    from pipeline.store import run_folders

    real = rf.make_run(tmp_path, T0)
    (tmp_path / "runs" / "٢٠٢٦١١٢٥-٢٣٣٠٠٠").mkdir()
    (tmp_path / "runs" / "２０２６１１２５-２３３０００").mkdir()
    assert run_folders.list_runs(tmp_path) == [real.name]
    assert not record.RUN_ID.fullmatch("٢٠٢٦١١٢٥-٢٣٣٠٠٠")
