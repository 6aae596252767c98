"""The typed configuration: every default of the job lives in this file.

Frozen dataclasses, one per section, with their defaults; the defaults that
depend on the model kind; the demo's; and the checks that name the option at
fault.  `pipeline.core.config_layers` builds a `Config` from a file and the command
line.  The config is frozen, so a run cannot change it half-way, and the
resolved config (the drawn seed and the model kind's defaults filled in) is
recorded in every run report.

Some defaults depend on the model: a field left ``None`` below takes its value
from `KIND_DEFAULTS` for ``model.kind`` when the config is built, so
``--model cnn`` (or ``kind = "cnn"`` in a file) brings the CNN's epochs,
batch size and widths unless they are set explicitly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pipeline.core import ray_address
from pipeline.core.errors import BadInputError


@dataclass(frozen=True)
class DataConfig:
    """Where the competition files live and which competition they are."""

    dir: str = "data"
    competition: str = "digit-recognizer"


@dataclass(frozen=True)
class ModelConfig:
    """The recipe (an MLP on the 784 pixels, or a CNN on the 28x28 image), its widths and regularisation."""

    kind: str | None = None  # the recipe, one of RECIPES; None: tonight's plan chooses ([plan])
    hidden: tuple[int, ...] | None = None  # dense widths (a CNN's head); None: the recipe's default
    filters: tuple[int, ...] | None = None  # CNN only: convolution widths per block; None: the recipe's default
    dropout: float | None = None
    input_dropout: float = 0.0
    batch_norm: bool = True
    activation: str = "relu"
    kernel: int | None = None  # cnn-wide: the convolution(s) before each strided one, KERNELS; None: the recipe's


@dataclass(frozen=True)
class AugmentConfig:
    """Random affine distortions applied to each training batch.

    One projective-transform op per batch does rotation, zoom, shear and
    shift together, which is far cheaper than stacking Keras' random layers.
    """

    enabled: bool = True
    rotation: float = 12.0  # degrees, uniform in [-r, r]
    shift: float = 2.5  # pixels
    zoom: float = 0.1  # relative, uniform in [1 - z, 1 + z]
    shear: float = 0.15


@dataclass(frozen=True)
class TrainConfig:
    """How each fold is trained, and how the folds are made."""

    folds: int = 5
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str = "adamw"  # adamw | adam | sgd
    learning_rate: float | None = None
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine | constant
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    seed: int | None = None  # None: a fresh seed each run, recorded in its report
    threads: int = 1  # TensorFlow's threads inside a fold; fixed, because the arithmetic depends on it
    precision: str = "auto"  # float32 | mixed_bfloat16 | auto (bfloat16 where the CPU has it and it pays: BF16_PAYS)


@dataclass(frozen=True)
class BlendConfig:
    """Which finished runs the submission may blend."""

    runs: int = 20  # the newest N compatible runs are candidates; 1 = this run's folds alone
    estimate_parts: int = 5  # the blend's estimate: selection cross-validated over this many parts of the rows


@dataclass(frozen=True)
class PlanConfig:
    """Which recipe a night trains when none is named (``--model`` overrides the plan)."""

    # Measured (benchmarks/RESULTS.md, "Which plan"): on the 10,000-row holdout, two wide-CNN nights blend to
    # 99.60% from 99.57%, while a CNN or an MLP night beside them gets no weight (or, in greedy selection on all
    # rows, spoils the blend): every night trains the wide CNN.  A list rotates, e.g. ["cnn-wide", "cnn"].
    recipes: tuple[str, ...] = ("cnn-wide",)
    rule: str = "rotation"  # one of PLAN_RULES (pipeline.training.plan); least-held measured worse
    # Minutes of training a night may spend (0: no limit).  A run that needs more stops at an epoch's end
    # (the fold's checkpoint), and the next night continues it; the submission waits for the finished run.
    # 40: with loading, predicting and blending a night stays within 45 minutes on any machine; a default run
    # needs about 36 minutes on 2 cores at the reference speed, so it spans nights only on slower machines or
    # with larger recipes (benchmarks/RESULTS.md).
    budget: float = 40.0


@dataclass(frozen=True)
class SubmitConfig:
    """When ``digits run --submit`` submits: the gate (pipeline.nightly.gate)."""

    alpha: float = 0.05  # significance level of the paired test against the best accepted submission
    wait: float = 600.0  # seconds `run --submit` waits for Kaggle's score (a later night fills in one still pending)


@dataclass(frozen=True)
class NotifyConfig:
    """Who hears about a night, through Apprise URLs (the ``notify`` extra)."""

    urls: tuple[str, ...] = ()
    on: tuple[str, ...] = ("failure",)  # failure | submitted | always
    timeout: float = 30.0  # seconds the sending may take in all; a receiver that does not answer by then is left


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking of every run (the ``mlflow`` extra); the run folder stays the record."""

    mlflow: bool = False
    uri: str | None = None  # None: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db beside the run folders


@dataclass(frozen=True)
class ExecutorConfig:
    """Where folds run.  None of this changes a result, only where and how fast it is computed."""

    kind: str = "local"  # local | ray
    # local: folds trained side by side in this many worker processes; auto = the cores this process may use
    # // train.threads (at most one per fold).  The bytes do not depend on it: each fold's arithmetic depends
    # only on its own thread count.
    workers: int | Literal["auto"] = "auto"
    address: str | None = None  # ray: auto, ray://host:10001 or host:6379; None = RAY_ADDRESS, else a local Ray
    cpus_per_fold: float = 1.0  # ray: as train.threads, so each fold has its cores and no more
    gpus_per_fold: float = 0.0
    max_retries: int = 3  # ray: a fold whose worker died is run again this many times
    connect_timeout: float = 60.0  # ray: seconds to reach the cluster


@dataclass(frozen=True)
class Config:
    """Everything a run depends on besides the data itself."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    submit: SubmitConfig = field(default_factory=SubmitConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    output_dir: str = "."


RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    # Each recipe's defaults, measured on the real data: benchmarks/RESULTS.md.  A field set anywhere
    # else (a file, --set, a named option) wins over its recipe's default.
    "mlp": {
        "model": {"hidden": (1024, 512), "filters": (), "dropout": 0.1, "kernel": 3},
        "train": {"epochs": 40, "batch_size": 512, "learning_rate": 2e-3},
    },
    "cnn": {  # two blocks of two 3x3 convolutions and a 2x2 max-pool, a dense layer of 256
        "model": {"hidden": (256,), "filters": (16, 32), "dropout": 0.25, "kernel": 3},
        "train": {"epochs": 20, "batch_size": 256, "learning_rate": 2e-3},
    },
    # per block a 5x5 and a strided 5x5 convolution; then a 4x4 convolution of twice the last width.  Kernel 5
    # where Deotte's design has two 3x3: as accurate (paired, McNemar), 1.6x as fast (benchmarks/RESULTS.md)
    "cnn-wide": {
        "model": {"hidden": (), "filters": (32, 64), "dropout": 0.4, "kernel": 5},
        "train": {"epochs": 30, "batch_size": 128, "learning_rate": 2e-3},
    },
}
KINDS = tuple(RECIPES)
DEFAULT_RECIPE = "mlp"  # what a config names when no plan chooses (a library call without a kind)
PRECISIONS = ("float32", "mixed_bfloat16", "auto")
# Where `auto` picks mixed_bfloat16: the CPU flags that make bfloat16 native, and the recipes for which it
# was measured to pay on such a CPU (benchmarks/RESULTS.md); anywhere else float32.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
BF16_PAYS: tuple[str, ...] = ("cnn", "cnn-wide")
PLAN_RULES = ("rotation", "least-held")
NOTIFY_ON = ("failure", "submitted", "always")
# The demo trains the MLP (about a minute on two cores); `--demo --model cnn-wide` shows a CNN on it.
DEMO = {"train": {"folds": 3, "epochs": 30, "batch_size": 64}, "model": {"kind": "mlp"}}
RESULT_SECTIONS = ("data", "model", "augment", "train")  # what decides a run's numbers (resume compares these)
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant")
ACTIVATIONS = ("relu", "gelu", "elu", "swish", "tanh")
EXECUTORS = ("local", "ray")
MAX_SEED = 2**32 - 1  # what numpy, scikit-learn and Keras accept as a seed
KERNELS = (3, 5, 7)  # cnn-wide: two stacked 3x3 convolutions per block, or one 5x5, or one 7x7 (An et al. 2020)
MAX_WIDTH = 2**40  # a sane bound on a layer's width; what fits in memory is checked before training
T = TypeVar("T")


def resolved(value: T | None) -> T:
    """A field that `resolve` filled; for code that runs on built configs only."""
    if value is None:
        raise RuntimeError("config used before resolve(): a kind default is missing")
    return value


def to_dict(config: Config) -> dict[str, Any]:
    """The config as plain JSON-friendly data (tuples become lists), without the notify URLs.

    What every run records (report.json, config.toml, the HTML report), so
    ``notify.urls`` is left out: an Apprise URL often holds a password or a
    token, and where a night is told changes none of its numbers.
    """
    data: dict[str, Any] = dataclasses.asdict(
        config, dict_factory=lambda items: {k: list(v) if isinstance(v, tuple) else v for k, v in items}
    )
    data["notify"].pop("urls", None)
    return data


def to_toml(config: Config) -> str:
    """The config as a TOML file (TOML has no null: unset values are left out)."""
    import tomli_w

    def drop_none(d: dict[str, Any]) -> dict[str, Any]:
        return {k: drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    whole = to_dict(config)
    whole.pop("output_dir")  # outputs go where --output-dir says: a saved config must not move the next run's
    return tomli_w.dumps(drop_none(whole))


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 3}}`` -> ``{"train.epochs": 3}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Config values that differ between two runs, as ``{"train.epochs": (40, 30)}``."""
    fa, fb = flatten(a), flatten(b)
    missing = object()
    out = {}
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, missing), fb.get(key, missing)
        if va != vb:
            out[key] = (None if va is missing else va, None if vb is missing else vb)
    return out


def resolve(config: Config) -> Config:
    """Fill the fields left None with the recipe's defaults (nothing while the plan has not chosen a recipe)."""
    changes = {}
    for section, values in RECIPES.get(config.model.kind or "", {}).items():
        current = getattr(config, section)
        unset = {k: v for k, v in values.items() if getattr(current, k) is None}
        if unset:
            changes[section] = dataclasses.replace(current, **unset)
    return dataclasses.replace(config, **changes) if changes else config


def validate(config: Config) -> Config:
    """Check values that are well-typed but meaningless; name the option at fault.  None is 'not set yet'."""
    t, m, a, e = config.train, config.model, config.augment, config.executor

    def unset_or(value: Any, ok: bool) -> bool:
        return value is None or ok

    def up_to(value: Any, low: float, high: float) -> bool:  # every number has a sane upper bound
        return value is None or low <= value <= high

    address = ray_address.problem(e.address) if e.address is not None else None

    checks = [
        (t.folds >= 2, "train.folds", "must be at least 2"),
        (t.folds <= 100, "train.folds", "must be at most 100"),
        (up_to(t.epochs, 1, 10_000), "train.epochs", "must be in 1..10000"),
        (up_to(t.batch_size, 1, 65_536), "train.batch_size", "must be in 1..65536"),
        (  # a rate too large to learn with is the divergence check's to name; beyond float32 it is meaningless
            unset_or(t.learning_rate, 0 < (t.learning_rate or 0) <= 1e38),
            "train.learning_rate",
            "must be in (0, 1e38] (what float32 holds)",
        ),
        (0 <= t.weight_decay <= 1, "train.weight_decay", "must be in [0, 1]"),
        (0 <= t.warmup_epochs <= 10_000, "train.warmup_epochs", "must be in 0..10000"),
        (0 <= t.label_smoothing < 1, "train.label_smoothing", "must be in [0, 1)"),
        (unset_or(t.seed, 0 <= (t.seed or 0) <= MAX_SEED), "train.seed", f"must be in 0..{MAX_SEED}"),
        (1 <= t.threads <= 1024, "train.threads", "must be in 1..1024"),
        (t.optimizer in OPTIMIZERS, "train.optimizer", f"must be one of {', '.join(OPTIMIZERS)}"),
        (t.schedule in SCHEDULES, "train.schedule", f"must be one of {', '.join(SCHEDULES)}"),
        (unset_or(m.kind, m.kind in KINDS), "model.kind", f"must be one of {', '.join(KINDS)}"),
        (t.precision in PRECISIONS, "train.precision", f"must be one of {', '.join(PRECISIONS)}"),
        (
            unset_or(
                m.hidden, (len(m.hidden or ()) >= 1 or m.kind == "cnn-wide") and all(h >= 1 for h in m.hidden or ())
            ),
            "model.hidden",
            "must list at least one positive width",
        ),
        (  # a model too big for this machine is the memory check's to name (training.fold.check_size)
            unset_or(m.hidden, len(m.hidden or ()) <= 64 and all(h <= MAX_WIDTH for h in m.hidden or ())),
            "model.hidden",
            f"must list at most 64 widths of at most {MAX_WIDTH:,}",
        ),
        (
            unset_or(
                m.filters,
                all(f >= 1 for f in m.filters or ()) and (m.kind != "cnn" or len(m.filters or ()) in (1, 2, 3)),
            ),
            "model.filters",
            "must list one to three positive widths (each block halves the image: 28, 14, 7, 3)",
        ),
        (
            m.kind != "cnn-wide" or m.filters is None or (len(m.filters) in (1, 2) and all(f >= 1 for f in m.filters)),
            "model.filters",
            "must list one or two positive widths for cnn-wide (each block takes the image from 28 to 12 to 4)",
        ),
        (
            unset_or(m.filters, len(m.filters or ()) <= 3 and all(f <= MAX_WIDTH for f in m.filters or ())),
            "model.filters",
            f"must list at most 3 widths of at most {MAX_WIDTH:,}",
        ),
        (unset_or(m.dropout, 0 <= (m.dropout or 0) < 1), "model.dropout", "must be in [0, 1)"),
        (0 <= m.input_dropout < 1, "model.input_dropout", "must be in [0, 1)"),
        (m.activation in ACTIVATIONS, "model.activation", f"must be one of {', '.join(ACTIVATIONS)}"),
        (unset_or(m.kernel, m.kernel in KERNELS), "model.kernel", f"must be one of {', '.join(map(str, KERNELS))}"),
        (
            m.kernel in (None, 3) or m.kind in (None, "cnn-wide"),
            "model.kernel",
            "is a cnn-wide option (3 for the others)",
        ),
        (0 <= a.rotation <= 180, "augment.rotation", "must be in [0, 180] degrees"),
        (0 <= a.shift <= 14, "augment.shift", "must be in [0, 14] pixels"),
        (0 <= a.zoom < 1, "augment.zoom", "must be in [0, 1)"),
        (0 <= a.shear < 1, "augment.shear", "must be in [0, 1)"),
        (1 <= config.blend.runs <= 1000, "blend.runs", "must be in 1..1000 (1 = this run alone)"),
        (2 <= config.blend.estimate_parts <= 100, "blend.estimate_parts", "must be in 2..100"),
        (len(config.plan.recipes) >= 1, "plan.recipes", "must name at least one recipe"),
        (
            all(r in KINDS for r in config.plan.recipes),
            "plan.recipes",
            f"must name recipes among {', '.join(KINDS)}",
        ),
        (config.plan.rule in PLAN_RULES, "plan.rule", f"must be one of {', '.join(PLAN_RULES)}"),
        (0 < config.submit.alpha < 1, "submit.alpha", "must be in (0, 1)"),
        (0 <= config.submit.wait <= 86_400, "submit.wait", "must be in 0..86400 seconds"),
        (all(o in NOTIFY_ON for o in config.notify.on), "notify.on", f"must list some of {', '.join(NOTIFY_ON)}"),
        (0 < config.notify.timeout <= 3600, "notify.timeout", "must be in (0, 3600] seconds"),
        (e.kind in EXECUTORS, "executor.kind", f"must be one of {', '.join(EXECUTORS)}"),
        (e.workers == "auto" or 1 <= e.workers <= 1024, "executor.workers", "must be auto or in 1..1024"),
        (0 <= config.plan.budget <= 10_080, "plan.budget", "must be in 0..10080 minutes (0: no limit)"),
        (address is None, "executor.address", address or ""),
        (0 < e.cpus_per_fold <= 1024, "executor.cpus_per_fold", "must be in (0, 1024]"),
        (0 <= e.gpus_per_fold <= 64, "executor.gpus_per_fold", "must be in [0, 64]"),
        (0 <= e.max_retries <= 100, "executor.max_retries", "must be in 0..100"),
        (0 < e.connect_timeout <= 86_400, "executor.connect_timeout", "must be in (0, 86400] seconds"),
    ]
    for ok, name, message in checks:
        if not ok:
            raise BadInputError(f"option {name}: {message}")
    return config


def result_part(config: Config) -> dict[str, Any]:
    """The sections that decide a run's numbers, as plain data (what resume compares).

    Not the data's folder: its files' hashes decide, and records hold it absolute (older ones relative).
    """
    whole = to_dict(config)
    part = {k: whole[k] for k in RESULT_SECTIONS}
    part["data"] = {k: v for k, v in part["data"].items() if k != "dir"}
    return part
