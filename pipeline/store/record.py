"""The run record: what ``runs/<run-id>/report.json`` holds, as one typed object.

The job writes a `RunRecord`; compare, report, history, gc, the blend and
submit read it.  Reading goes through `read` only: it migrates an older
schema, validates every field's type (with pydantic, against the dataclasses
below) and checks the run id, so a malformed report costs one clear
`BadInputError` naming the file and the field, and no reader re-checks
fields by hand.

Schema history (`SCHEMA_VERSION`):

- 0: before versioning; no status, leaderboard, submission, fold mean/std.
- 1: adds them.
- 2: adds ``error`` (why a run failed), ``blend`` (the runs the submission
  blends and their weights), ``submit_decision``, ``sweep``/``variant``;
  the config is the full resolved config, the drawn seed included.
- 3: the figures are out-of-sample.  Folds no longer stop early on their own
  validation rows (``train.early_stopping`` is gone from the config);
  ``blend.estimate`` is the blend's cross-validated accuracy and
  ``blend.in_sample_accuracy`` (was ``blend.oof_accuracy``) the figure of the
  weights on the rows that chose them; ``plan`` says why the run trained
  its recipe; the submit decision carries the gate's test.  Records of
  schema 2 and older have no estimate: their figures were in-sample.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import re
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PlainSerializer, TypeAdapter, ValidationError

from pipeline.core import atomic_files, config_layers, file_reads
from pipeline.core import config as cfg
from pipeline.core.errors import BadInputError, StorageError

SCHEMA_VERSION = 3
REPORT = "report.json"
RUN_ID = re.compile(r"[0-9]{8}-[0-9]{6}(-[0-9]+)?")  # 20261125-233000, then -2, -3 in one second; \d is any script's
Status = Literal["running", "complete", "interrupted", "failed", "paused", "set-aside"]
# What `--resume` takes: a run that stopped before its end.  "paused" is a run the night's budget stopped at an
# epoch's end, which the next `digits run` continues even without --resume.  A run that failed the same way
# twice (or FAILURES_TO_SET_ASIDE times in all) is "set-aside": kept for inspection, never resumed again.
UNFINISHED = ("running", "interrupted", "failed", "paused")
PAUSED: Status = "paused"
FAILURES_TO_SET_ASIDE = 3
LIBRARIES = ("tensorflow", "tensorflow-cpu", "keras", "numpy", "pandas", "pyarrow", "scikit-learn", "ray")


def _run_id(value: Any) -> str:
    # A run id names files (submissions/<run-id>.csv): one read back is never trusted.
    if not isinstance(value, str) or not RUN_ID.fullmatch(value):
        raise ValueError(f"{str(value)[:40]!r} is not a run id (like 20261125-233000)")
    return value


def _config(value: Any) -> cfg.Config:
    if isinstance(value, cfg.Config):
        return value
    if not isinstance(value, dict):
        raise ValueError("expected a table of config sections")
    try:
        return config_layers.from_record(value)
    except BadInputError as e:
        raise ValueError(str(e)) from None


RunId = Annotated[str, BeforeValidator(_run_id)]
RecordedConfig = Annotated[cfg.Config, BeforeValidator(_config), PlainSerializer(cfg.to_dict)]


@dataclass
class DataFile:
    """One competition file as a run saw it."""

    sha256: str
    rows: int


@dataclass
class FoldRecord:
    """What one fold reports: its size, its accuracy, its learning curves, its cost."""

    index: int
    train_rows: int
    val_rows: int
    val_accuracy: float
    val_loss: float
    best_epoch: int  # 1-based
    epochs_run: int
    seconds: float
    samples_per_second: float
    history: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass
class Submission:
    """The run's own submission file."""

    path: str
    sha256: str
    rows: int


@dataclass
class Leaderboard:
    """What Kaggle said about the submission: accepted (a ref), scored, or refused."""

    status: str = "pending"  # pending | complete | error
    public_score: float | None = None
    message: str | None = None
    submitted_at: str | None = None
    ref: int | None = None
    error: str | None = None
    competition: str | None = None
    file: str | None = None

    @property
    def accepted(self) -> bool:
        """Kaggle took the file (it has a ref and did not fail to score it)."""
        return self.ref is not None and self.status != "error" and not self.error


@dataclass
class BlendMember:
    run_id: str
    weight: float
    oof_accuracy: float


@dataclass
class Blend:
    """The runs behind the submission, chosen on their out-of-fold probabilities, and what the blend is worth."""

    members: list[BlendMember]
    in_sample_accuracy: float  # the chosen weights scored on the rows that chose them: optimistic
    best_single_run: str
    best_single_oof_accuracy: float
    candidates: list[str] = field(default_factory=list)  # every compatible run considered
    seconds: float = 0.0
    estimate: float | None = None  # out-of-sample: the selection cross-validated (pipeline.nightly.blend)
    estimate_method: str | None = None


@dataclass
class SubmitDecision:
    """Whether `run --submit` submitted, and why: the gate's figures and test (pipeline.nightly.gate)."""

    submitted: bool
    reason: str
    mode: str = "better"  # better | always
    previous_run: str | None = None  # the run behind the reference submission, when there is one
    previous_oof_accuracy: float | None = None  # the reference's figure: its estimate, or its public score
    ours: float | None = None  # tonight's estimate
    reference: str | None = None  # the ledger entry compared against
    disagree: int | None = None  # rows exactly one of the two blends gets right
    p_value: float | None = None
    test: str | None = None  # mcnemar | binomial


@dataclass
class PlanChoice:
    """Why the run trained its recipe: the plan's rule and reason, or the recipe named on the command line."""

    recipe: str
    rule: str  # rotation | least-held | named
    reason: str


@dataclass
class Attempt:
    """One command's training of the run: a night of a run that spans nights, or a resume after a stop."""

    started_at: str
    ended: str  # complete | paused | interrupted | failed
    seconds: float = 0.0  # the training's wall-clock seconds
    folds_done: int = 0  # folds finished when it ended
    epochs: dict[int, int] = field(default_factory=dict)  # unfinished folds: epochs saved (fold index -> epochs)
    error: str | None = None


@dataclass
class RunRecord:
    """One run: its config and data, its folds, its scores, its submission and what Kaggle said."""

    run_id: RunId
    status: Status
    config: RecordedConfig
    started_at: str
    finished_at: str | None = None
    data: dict[str, DataFile] = field(default_factory=dict)
    folds: list[FoldRecord] = field(default_factory=list)
    code_version: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None
    fold_accuracy_mean: float | None = None
    fold_accuracy_std: float | None = None
    oof_accuracy: float | None = None
    oof_rows: int | None = None
    per_class_accuracy: list[float | None] | None = None
    confusion_matrix: list[list[int]] | None = None
    submission: Submission | None = None
    leaderboard: Leaderboard | None = None
    blend: Blend | None = None
    submit_decision: SubmitDecision | None = None
    error: str | None = None
    sweep: str | None = None
    variant: str | None = None
    plan: PlanChoice | None = None
    oof_in_sample: bool = False  # schema 2 and older with early stopping (the default): out-of-fold figures optimistic
    attempts: list[Attempt] = field(default_factory=list)  # each command that trained it, oldest first
    schema_version: int = SCHEMA_VERSION

    # ---- views every reader shares -------------------------------------------------------

    @property
    def fold_accuracy(self) -> dict[int, float]:
        """Validation accuracy by fold index."""
        return {f.index: f.val_accuracy for f in self.folds}

    @property
    def folds_planned(self) -> int:
        return self.config.train.folds

    @property
    def train_sha(self) -> str | None:
        entry = self.data.get("train.csv")
        return entry.sha256 if entry else None

    @property
    def test_sha(self) -> str | None:
        entry = self.data.get("test.csv")
        return entry.sha256 if entry else None

    @property
    def lb_score(self) -> float | None:
        return self.leaderboard.public_score if self.leaderboard else None

    @property
    def lb_status(self) -> str | None:
        if self.leaderboard is None:
            return None
        return "error" if self.leaderboard.error else self.leaderboard.status

    @property
    def started(self) -> _dt.datetime | None:
        try:
            return _dt.datetime.fromisoformat(self.started_at)
        except ValueError:
            return None

    @property
    def submission_estimate(self) -> float | None:
        """What the run's submission is worth on rows it never saw: the one definition every reader uses.

        The blend's cross-validated estimate when the run blended; a run that
        wrote its own folds' submission (before blending) is worth its
        out-of-fold accuracy, unless its folds chose their epoch on those rows
        (schema 2 and older): then, as for an older blend, there is no estimate.
        """
        if self.blend is not None:
            return self.blend.estimate
        if self.submission is not None and self.oof_accuracy is not None and not self.oof_in_sample:
            return self.oof_accuracy
        return None

    @property
    def submission_runs(self) -> int | None:
        """How many runs the submission averages (None when the run wrote none)."""
        if self.blend is not None:
            return len(self.blend.members)
        return 1 if self.submission is not None else None

    @property
    def complete(self) -> bool:
        return self.status == "complete" and len(self.folds) == self.folds_planned

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON data (what report.json holds)."""
        return _adapter().dump_python(self, mode="json")


def standing(rec: RunRecord) -> str:
    """Where an unfinished run stands after its last attempt: 'fold 3 of 5, epoch 12 of 45' (and the rest)."""
    total, epochs = rec.folds_planned, rec.config.train.epochs
    last = rec.attempts[-1] if rec.attempts else None
    started = {k: e for k, e in (last.epochs if last else {}).items() if e > 0}
    waiting = total - len(rec.folds) - len(started)
    if not started:
        return f"{len(rec.folds)} of {total} folds done" + (f", {waiting} not started" if waiting else "")
    if len(started) == 1:
        ((k, e),) = started.items()
        text = f"fold {k + 1} of {total}, epoch {e} of {epochs}"
    else:
        folds, reached = zip(*sorted(started.items()))
        text = f"folds {', '.join(str(k + 1) for k in folds)} of {total} at epochs {', '.join(map(str, reached))} of {epochs}"
    done = f"; {len(rec.folds)} of {total} folds done" if rec.folds else ""
    return text + done + (f", {waiting} not started" if waiting and rec.folds else "")


def now() -> str:
    """The current local time with its UTC offset, to the second: the records' timestamp style."""
    return _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")


@cache
def _adapter() -> TypeAdapter[RunRecord]:
    """The pydantic validator of `RunRecord`, built once on first use."""
    return TypeAdapter(RunRecord)


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a report written by an older version up to `SCHEMA_VERSION` (on the plain JSON data)."""
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"schema_version {version!r} is not a number")
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema {version} is newer than this digits understands ({SCHEMA_VERSION}); upgrade digits")
    if version < 1:
        data.setdefault("status", "complete" if data.get("oof_accuracy") is not None else "failed")
        data.setdefault("leaderboard", None)
        data.setdefault("submission", None)
        folds = data.get("folds")
        given = [f.get("val_accuracy") for f in folds if isinstance(f, dict)] if isinstance(folds, list) else []
        accs: list[float] = [float(a) for a in given if isinstance(a, (int, float))]
        if accs and "fold_accuracy_mean" not in data:
            data["fold_accuracy_mean"] = statistics.fmean(accs)
            data["fold_accuracy_std"] = statistics.pstdev(accs)
    if version < 2:
        if data.get("status") == "unknown":
            data["status"] = "failed"
        folds = data.get("folds")
        for f in folds if isinstance(folds, list) else []:
            if isinstance(f, dict):
                f.pop("model_path", None)  # fold files are found by index; a stored path went stale on a move
        data.setdefault("started_at", "")
    if version < 3:
        config = data.get("config")
        train = config.get("train") if isinstance(config, dict) else None
        # Its folds chose their epoch on the rows they were scored on: early stopping was on (patience 10) by
        # default until schema 3, so a config that does not name it (schema 0 and 1 kept partial configs) had it.
        if not isinstance(train, dict) or train.pop("early_stopping", 10):
            data["oof_in_sample"] = True
        blend = data.get("blend")
        if isinstance(blend, dict) and "oof_accuracy" in blend:
            blend["in_sample_accuracy"] = blend.pop("oof_accuracy")
    data["schema_version"] = SCHEMA_VERSION
    return data


def from_json(data: Any, where: str = REPORT) -> RunRecord:
    """Validate plain JSON data as a run record; a `BadInputError` naming `where` and the field at fault.

    Beyond the types: no integer beyond 64 bits (`file_reads.bounded`), and every accuracy, weight and
    estimate a fraction from 0 to 1 (`_out_of_range`).  A time that is NaN or inf is kept, and shown as
    unknown ('—'): it says nothing the other figures depend on.
    """
    if not isinstance(data, dict) or "run_id" not in data:
        raise BadInputError(f"{where}: not a digits run report")
    try:
        rec = _adapter().validate_python(migrate(dict(file_reads.bounded(data))))
        problem = _out_of_range(rec)
        if problem:
            raise BadInputError(f"{where}: {problem}")
        return rec
    except ValidationError as e:
        raise BadInputError(f"{where}: {_first_error(e)}") from None
    except ValueError as e:
        raise BadInputError(f"{where}: {e}") from None
    except file_reads.UNREADABLE as e:  # an older schema's migration met a value of the wrong type or size
        raise BadInputError(f"{where}: {file_reads.why(e)}") from None


def _out_of_range(rec: RunRecord) -> str | None:
    """The first accuracy, weight, estimate or p-value of the record that is not a fraction from 0 to 1."""
    fractions: list[tuple[str, float | None]] = [
        ("fold_accuracy_mean", rec.fold_accuracy_mean),
        ("fold_accuracy_std", rec.fold_accuracy_std),
        ("oof_accuracy", rec.oof_accuracy),
        *((f"per_class_accuracy.{i}", a) for i, a in enumerate(rec.per_class_accuracy or [])),
        *((f"folds.{i}.val_accuracy", f.val_accuracy) for i, f in enumerate(rec.folds)),
    ]
    if rec.blend is not None:
        b = rec.blend
        fractions += [
            ("blend.in_sample_accuracy", b.in_sample_accuracy),
            ("blend.estimate", b.estimate),
            ("blend.best_single_oof_accuracy", b.best_single_oof_accuracy),
            *((f"blend.members.{i}.weight", m.weight) for i, m in enumerate(b.members)),
            *((f"blend.members.{i}.oof_accuracy", m.oof_accuracy) for i, m in enumerate(b.members)),
        ]
    if rec.submit_decision is not None:
        d = rec.submit_decision
        fractions += [("submit_decision.ours", d.ours), ("submit_decision.p_value", d.p_value)]
    # a public score (and a reference's, which may be one) need not be a fraction in another competition
    scores = [
        ("leaderboard.public_score", rec.leaderboard.public_score if rec.leaderboard else None),
        (
            "submit_decision.previous_oof_accuracy",
            rec.submit_decision.previous_oof_accuracy if rec.submit_decision else None,
        ),
    ]
    for name, score in scores:
        if score is not None and not math.isfinite(score):
            return f"field {name}: {score} is not a finite number"
    for name, value in fractions:
        if value is not None and not 0 <= value <= 1:  # also NaN: every comparison with it is false
            return f"field {name}: {value} is not a fraction from 0 to 1"
    return None


def _first_error(error: Any) -> str:
    """The first validation error as 'field folds.0.val_accuracy: <what>', one line."""
    from pipeline.core.text import quoted

    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "report"
    message = str(first["msg"]).removeprefix("Value error, ")
    shown = first.get("input")
    got = "" if isinstance(shown, (dict, list)) or "input" not in first else f", got {quoted(shown, 40)}"
    more = len(error.errors()) - 1
    return f"field {where}: {message}{got}" + (f" (and {more} more problem(s))" if more else "")


def read(run_dir: str | Path) -> RunRecord:
    """The run's record, migrated and checked; a one-line `BadInputError` if it is missing or malformed."""
    path = Path(run_dir) / REPORT
    try:
        data = json.loads(file_reads.read_text(path))  # a FIFO is refused, never waited on
    except BadInputError:
        raise
    except FileNotFoundError:
        raise BadInputError(f"{path}: report missing (the run never finished its first stage?)") from None
    except OSError as e:
        raise BadInputError(f"{path}: cannot read report: {e.strerror}") from None
    except file_reads.UNREADABLE as e:  # not JSON, lists nested thousands deep, a number of thousands of digits
        raise BadInputError(f"{path}: report is corrupt: {file_reads.why(e)}") from None
    return from_json(data, str(path))


def write(run_dir: str | Path, record: RunRecord) -> None:
    """Write the record atomically (a reader sees the old or the new report, never half of one).

    Never into a run folder that is gone: that left a husk holding only report.json that showed as complete.
    """
    if not Path(run_dir).is_dir():
        raise StorageError(f"cannot write {Path(run_dir) / REPORT}: the run folder is gone (removed while in use?)")
    record.schema_version = SCHEMA_VERSION
    atomic_files.write_json(Path(run_dir) / REPORT, record.to_json())


def update(run_dir: str | Path, **changes: Any) -> RunRecord:
    """Read, change some fields, write back."""
    record = read(run_dir)
    for key, value in changes.items():
        if key not in RunRecord.__dataclass_fields__:
            raise AttributeError(key)
        setattr(record, key, value)
    write(run_dir, record)
    return record


def fold_summary(records: list[FoldRecord]) -> tuple[float | None, float | None]:
    """Mean and (population) standard deviation of the folds' validation accuracy."""
    accs = [f.val_accuracy for f in records]
    if not accs:
        return None, None
    return statistics.fmean(accs), statistics.pstdev(accs)


def as_dict(value: Any) -> Any:
    """A record part (a dataclass) as plain data, for JSON output of commands."""
    return asdict(value)


# ---- what produced a run ---------------------------------------------------------------------


@cache
def code_version() -> str:
    """The git commit of this code (``-dirty`` when modified), else the package version."""
    from pipeline import __version__

    here = Path(__file__).resolve().parents[1]  # the package: a change anywhere in it makes the run -dirty
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if sha.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=5
            )
            return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


@cache
def library_versions() -> dict[str, str]:
    """Python's and the numerical libraries' versions, as the record keeps them."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
