import pytest

from pipeline import config as cfg
from pipeline.errors import BadInputError


def test_defaults_are_valid_and_complete():
    c = cfg.build()
    assert c == cfg.Config()
    flat = cfg.flatten(cfg.to_dict(c))
    assert flat["train.folds"] == 5 and isinstance(flat["model.hidden"], list)


def test_file_then_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[train]\nepochs = 7\nseed = 3\n[model]\nhidden = [64, 32]\n[augment]\nenabled = false\n")
    c = cfg.build(f, {"train": {"epochs": "9"}})
    assert c.train.epochs == 9 and c.train.seed == 3
    assert c.model.hidden == (64, 32) and c.augment.enabled is False


def test_set_strings_are_coerced_to_field_types():
    c = cfg.build(
        overrides=cfg.parse_set(
            ["model.hidden=128, 64", "augment.enabled=no", "train.learning_rate=1e-3", "train.optimizer=adam"]
        )
    )
    assert c.model.hidden == (128, 64) and c.augment.enabled is False
    assert c.train.learning_rate == 0.001 and c.train.optimizer == "adam"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"train": {"epochs": "many"}}, "option train.epochs: expected an integer, got 'many'"),
        ({"train": {"epochs": 2.5}}, "option train.epochs: expected an integer"),
        ({"model": {"hidden": "64,x"}}, "option model.hidden: expected an integer"),
        ({"augment": {"enabled": "maybe"}}, "option augment.enabled: expected true or false"),
        ({"train": {"epoch": 3}}, "unknown option train.epoch"),
        ({"nosuch": {"a": 1}}, "unknown option nosuch"),
        ({"train": 3}, "option train: expected a [train] table"),
        ({"train": {"folds": 1}}, "option train.folds: must be at least 2"),
        ({"train": {"optimizer": "lbfgs"}}, "option train.optimizer: must be one of adamw, adam, sgd"),
        ({"model": {"dropout": 1.0}}, "option model.dropout: must be in [0, 1)"),
        ({"model": {"hidden": ""}}, "option model.hidden: must list at least one positive width"),
    ],
)
def test_bad_values_name_the_option(overrides, message):
    with pytest.raises(BadInputError) as e:
        cfg.build(overrides=overrides)
    assert message in str(e.value)


def test_bad_toml_names_the_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[train\nepochs=3\n")
    with pytest.raises(BadInputError, match=r"bad\.toml: not valid TOML"):
        cfg.build(f)
    with pytest.raises(BadInputError, match="config file not found"):
        cfg.build(tmp_path / "missing.toml")


def test_parse_set_rejects_malformed_items():
    with pytest.raises(BadInputError, match="expected SECTION.KEY=VALUE"):
        cfg.parse_set(["train.epochs"])


def test_diff_lists_exactly_the_changed_values():
    a = cfg.to_dict(cfg.Config())
    b = cfg.to_dict(cfg.build(overrides={"train": {"epochs": 3}, "model": {"hidden": "8"}}))
    assert cfg.diff(a, b) == {"model.hidden": (a["model"]["hidden"], [8]), "train.epochs": (a["train"]["epochs"], 3)}
    old = {k: v for k, v in a.items() if k != "augment"}  # a report from before augmentation existed
    assert set(cfg.diff(old, a)) == {f"augment.{k}" for k in a["augment"]}
