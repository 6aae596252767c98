import pytest

from pipeline.core import config as cfg
from pipeline.core import config_layers
from pipeline.core.errors import BadInputError, UsageError


def test_defaults_are_valid_and_resolved_by_the_recipe():
    open_ = config_layers.build()
    assert open_.model.kind is None and open_.train.epochs is None  # the plan chooses the recipe when a run starts
    assert open_.train.precision == "auto"
    c = config_layers.build(named={"model": {"kind": "mlp"}})
    assert c.model.kind == "mlp" and c.model.hidden == (1024, 512) and c.train.epochs == 40
    assert c.train.seed is None  # drawn by each run
    cnn = config_layers.build(named={"model": {"kind": "cnn"}})
    assert cnn.model.hidden == cfg.RECIPES["cnn"]["model"]["hidden"]
    assert cnn.train.epochs == cfg.RECIPES["cnn"]["train"]["epochs"]
    wide = config_layers.build(named={"model": {"kind": "cnn-wide"}})
    assert wide.model.filters == (32, 64) and wide.model.hidden == () and wide.train.batch_size == 128
    flat = cfg.flatten(cfg.to_dict(c))
    assert flat["train.folds"] == 5 and isinstance(flat["model.hidden"], list)


def test_a_kind_in_a_file_brings_its_defaults_but_not_over_explicit_values(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[model]\nkind = "cnn"\n[train]\nepochs = 3\n')
    c = config_layers.build(f)
    assert c.model.kind == "cnn" and c.train.epochs == 3
    assert c.train.batch_size == cfg.RECIPES["cnn"]["train"]["batch_size"]


def test_precedence_file_then_set_then_named_options(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[train]\nepochs = 7\nseed = 3\nfolds = 4\n[model]\nhidden = [64, 32]\n[augment]\nenabled = false\n")
    c = config_layers.build(f, sets={"train": {"epochs": "9", "seed": "5"}}, named={"train": {"seed": 5, "folds": 3}})
    assert (c.train.epochs, c.train.seed, c.train.folds) == (9, 5, 3)
    assert c.model.hidden == (64, 32) and c.augment.enabled is False


def test_demo_base_yields_to_what_the_user_sets():
    c = config_layers.build(named={"train": {"epochs": 5}}, base=config_layers.demo_base())
    assert c.train.epochs == 5 and c.train.folds == 3 and c.model.kind == "mlp" and c.model.hidden == (1024, 512)
    wide = config_layers.build(named={"model": {"kind": "cnn-wide"}}, base=config_layers.demo_base())
    assert wide.model.kind == "cnn-wide" and wide.model.hidden == () and wide.train.epochs == 30


def test_set_strings_are_coerced_to_field_types():
    sets = config_layers.parse_set(
        ["model.hidden=128, 64", "augment.enabled=no", "train.learning_rate=1e-3", "train.optimizer=adam"]
    )
    c = config_layers.build(sets=sets)
    assert c.model.hidden == (128, 64) and c.augment.enabled is False
    assert c.train.learning_rate == 0.001 and c.train.optimizer == "adam"


@pytest.mark.parametrize(
    "sets, message",
    [
        ({"train": {"epochs": "many"}}, "option train.epochs: expected an integer, got 'many'"),
        ({"train": {"epochs": 2.5}}, "option train.epochs: expected an integer"),
        ({"model": {"hidden": "64,x"}}, "option model.hidden: expected an integer"),
        ({"augment": {"enabled": "maybe"}}, "option augment.enabled: expected true or false"),
        ({"train": {"epoch": 3}}, "unknown option train.epoch"),
        ({"nosuch": {"a": 1}}, "unknown option nosuch"),
        ({"train": "3"}, "option train: expected a [train] table"),
        ({"train": {"epochs": {"x": "1"}}}, "option train.epochs.x: train.epochs is a value, not a section"),
        ({"train": {"folds": 1}}, "option train.folds: must be at least 2"),
        ({"train": {"optimizer": "lbfgs"}}, "option train.optimizer: must be one of adamw, adam, sgd"),
        ({"model": {"dropout": 1.0}}, "option model.dropout: must be in [0, 1)"),
        ({"model": {"hidden": ""}}, "option model.hidden: must list at least one positive width"),
        ({"train": {"learning_rate": "inf"}}, "option train.learning_rate: expected a finite number, got 'inf'"),
        ({"train": {"learning_rate": "nan"}}, "option train.learning_rate: expected a finite number"),
        ({"train": {"seed": str(2**32)}}, "option train.seed: must be in 0..4294967295"),
        ({"model": {"kind": "rnn"}}, "option model.kind: must be one of mlp, cnn, cnn-wide"),
        ({"train": {"early_stopping": "10"}}, "option train.early_stopping was removed: it chose each fold's epoch"),
        ({"train": {"precision": "float16"}}, "option train.precision: must be one of float32, mixed_bfloat16, auto"),
        ({"plan": {"recipes": "cnn,rnn"}}, "option plan.recipes: must name recipes among mlp, cnn, cnn-wide"),
        ({"plan": {"rule": "random"}}, "option plan.rule: must be one of rotation, least-held"),
        ({"submit": {"alpha": "1.5"}}, "option submit.alpha: must be in (0, 1)"),
        ({"notify": {"on": "never"}}, "option notify.on: must list some of failure, submitted, always"),
        ({"model": {"kind": "cnn-wide", "filters": "8,16,32"}}, "option model.filters: must list one or two"),
        ({"notify": {"timeout": "0"}}, "option notify.timeout: must be in (0, 3600] seconds"),
    ],
)
def test_bad_command_line_values_are_usage_errors_naming_the_option(sets, message):
    with pytest.raises(UsageError) as e:
        config_layers.build(sets=sets)
    assert message in str(e.value) and e.value.exit_code == 2


def test_bad_values_in_a_file_are_bad_input_naming_the_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[train]\nfolds = 1\n")
    with pytest.raises(BadInputError) as e:
        config_layers.build(f)
    assert str(e.value) == f"{f}: option train.folds: must be at least 2" and e.value.exit_code == 1


@pytest.mark.parametrize(
    "sets, named",
    [
        ({"train": {"folds": "3"}}, {"train": {"folds": 2}}),
        ({"model": {"hidden": "64"}}, {"model": {"hidden": "32"}}),
    ],
)
def test_the_same_value_from_set_and_a_named_option_is_refused(sets, named):
    with pytest.raises(UsageError, match="is given twice"):
        config_layers.build(sets=sets, named=named)


def test_the_same_value_twice_with_the_same_meaning_is_fine():
    assert config_layers.build(sets={"train": {"folds": "3"}}, named={"train": {"folds": 3}}).train.folds == 3


def test_bad_toml_names_the_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[train\nepochs=3\n")
    with pytest.raises(BadInputError, match=r"bad\.toml: not valid TOML"):
        config_layers.build(f)
    with pytest.raises(BadInputError, match="config file not found"):
        config_layers.build(tmp_path / "missing.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[data]\ndir = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(BadInputError, match=r"latin\.toml: not a UTF-8 text file"):
        config_layers.build(latin)


def test_a_path_that_is_not_utf8_is_refused_with_its_option():
    with pytest.raises(UsageError, match="option data.dir: expected UTF-8 text"):
        config_layers.build(named={"data": {"dir": "caf\udce9"}})


def test_parse_set_rejects_malformed_items():
    with pytest.raises(UsageError, match="expected SECTION.KEY=VALUE"):
        config_layers.parse_set(["train.epochs"])
    with pytest.raises(UsageError, match="both as a value and as a section"):
        config_layers.parse_set(["train=3", "train.folds=2"])


def test_the_toml_of_a_resolved_config_builds_the_same_config(tmp_path):
    c = config_layers.build(named={"train": {"seed": 11}, "model": {"kind": "cnn"}})
    f = tmp_path / "again.toml"
    f.write_text(cfg.to_toml(c))
    assert config_layers.build(f) == c


def test_diff_lists_exactly_the_changed_values():
    a = cfg.to_dict(config_layers.build())
    b = cfg.to_dict(config_layers.build(sets={"train": {"epochs": "3"}, "model": {"hidden": "8"}}))
    assert cfg.diff(a, b) == {"model.hidden": (a["model"]["hidden"], [8]), "train.epochs": (a["train"]["epochs"], 3)}
    old = {k: v for k, v in a.items() if k != "augment"}  # a report from before augmentation existed
    assert set(cfg.diff(old, a)) == {f"augment.{k}" for k in a["augment"]}


def test_the_notify_urls_are_never_recorded():
    """An Apprise URL often holds a password: a run's report, config.toml and HTML page must not copy it."""
    config = cfg.Config(notify=cfg.NotifyConfig(urls=("mailto://me:s3cret@example.com",), on=("always",)))
    assert "urls" not in cfg.to_dict(config)["notify"] and cfg.to_dict(config)["notify"]["on"] == ["always"]
    assert "s3cret" not in cfg.to_toml(config)
