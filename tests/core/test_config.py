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


def test_workers_take_auto_or_a_count_from_the_command_line_and_a_file(tmp_path):
    assert cfg.Config().executor.workers == "auto"
    assert config_layers.build(sets={"executor": {"workers": " Auto "}}).executor.workers == "auto"
    assert config_layers.build(sets={"executor": {"workers": "3"}}).executor.workers == 3
    f = tmp_path / "c.toml"
    f.write_text("[executor]\nworkers = 4\n")
    assert config_layers.build(f).executor.workers == 4
    f.write_text('[executor]\nworkers = "all"\n')
    with pytest.raises(BadInputError, match="executor.workers: expected auto or a number, got 'all'"):
        config_layers.build(f)


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
        ({"executor": {"workers": "many"}}, "option executor.workers: expected auto or a number, got 'many'"),
        ({"executor": {"workers": "0"}}, "option executor.workers: must be auto or in 1..1024"),
        ({"model": {"kernel": "4"}}, "option model.kernel: must be one of 3, 5, 7"),
        ({"model": {"kind": "cnn", "kernel": "5"}}, "option model.kernel: is a cnn-wide option"),
        ({"plan": {"budget": "-1"}}, "option plan.budget: must be in 0..10080 minutes"),
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


# ---- every number has a bound; outputs move only with --output-dir; a key given once ---------------------------


def _numeric_fields() -> list[tuple[str, type]]:
    """Every int, float and tuple-of-numbers field of the config, as 'section.key' and its type."""
    import dataclasses
    import typing

    found = []
    for section in dataclasses.fields(cfg.Config):
        if not dataclasses.is_dataclass(section.type) and not isinstance(section.default_factory, type):
            continue
        cls = section.default_factory  # type: ignore[misc]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            kinds = list((typing.get_args(hint) if typing.get_origin(hint) is not tuple else ()) or (hint,))
            kinds = [k for k in kinds if k is not type(None)]
            numbers = (int, float)
            if (
                any(k in numbers or (typing.get_origin(k) is tuple and typing.get_args(k)[0] in numbers) for k in kinds)
                and bool not in kinds
            ):
                found.append((f"{section.name}.{f.name}", kinds[0]))
    return found


def test_every_numeric_field_is_found():
    names = [name for name, _ in _numeric_fields()]
    assert {"train.epochs", "train.learning_rate", "model.hidden", "executor.connect_timeout"} <= set(names)


@pytest.mark.parametrize("name, kind", _numeric_fields())
@pytest.mark.parametrize("huge", ["99999999999999999999999", "1e300"])
def test_every_number_has_an_upper_bound(name, kind, huge):
    section, key = name.split(".")
    value = huge if kind is not float or "e" in huge else "1e39"  # beyond float32 (a learning rate may be 1e30)
    with pytest.raises(UsageError) as e:  # a huge epoch count overflowed deep inside TensorFlow
        config_layers.build(sets={section: {key: value}})
    assert str(e.value).startswith(f"option {name}: ") and e.value.exit_code == 2


def test_a_huge_number_in_a_file_is_bad_input_naming_the_file(tmp_path):
    f = tmp_path / "c.toml"
    for text in (
        "[train]\nepochs = 1e300\n",
        "[train]\nepochs = 9223372036854775807\n",
        "[train]\nepochs = 1" + "0" * 5000,
    ):
        f.write_text(text)
        with pytest.raises(BadInputError) as e:
            config_layers.build(f)
        assert str(e.value).startswith(f"{f}: ") and e.value.exit_code == 1


@pytest.mark.parametrize(
    "address", ["localhost:abc", "127.0.0.1:99999", "ray://[::1", "ray://:10001", "http://head:8265", "host:0", " "]
)
def test_a_malformed_ray_address_is_a_usage_error(address):
    with pytest.raises(UsageError, match=r"^option executor\.address: ") as e:
        config_layers.build(named={"executor": {"address": address}})
    assert e.value.exit_code == 2


@pytest.mark.parametrize("address", ["auto", "ray://head.example:10001", "127.0.0.1:6379", "ray://[::1]:10001"])
def test_good_ray_addresses_pass(address):
    assert config_layers.build(named={"executor": {"address": address}}).executor.address == address


def test_output_dir_in_a_config_file_or_variant_is_refused(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('output_dir = "elsewhere"\n[train]\nepochs = 3\n')
    with pytest.raises(BadInputError) as e:
        config_layers.build(f)
    assert str(e.value).startswith(f"{f}: output_dir cannot be set in a config file") and "--output-dir" in str(e.value)
    with pytest.raises(BadInputError, match=r"^v\.toml: variant a: output_dir cannot be set"):
        config_layers.build(variant=("v.toml: variant a", {"output_dir": "x"}))
    with pytest.raises(UsageError, match=r"--set output_dir.*--output-dir"):
        config_layers.build(sets={"output_dir": "x"})
    assert config_layers.build(named={"output_dir": "mine"}).output_dir == "mine"  # --output-dir itself


def test_the_saved_config_does_not_carry_the_output_dir():
    c = config_layers.build(named={"output_dir": "/somewhere/else", "train": {"seed": 3}})
    assert "output_dir" not in cfg.to_toml(c) and "somewhere" not in cfg.to_toml(c)


def test_a_key_given_twice_by_set_with_two_values_is_refused():
    with pytest.raises(UsageError, match=r"train\.epochs is given twice by --set"):
        config_layers.parse_set(["train.epochs=3", "train.epochs=4"])
    assert config_layers.parse_set(["train.epochs=3", "train.epochs=3"]) == {"train": {"epochs": "3"}}


def test_a_toml_file_with_a_byte_order_mark_is_named(tmp_path):
    f = tmp_path / "bom.toml"
    f.write_bytes(b"\xef\xbb\xbf[train]\nepochs = 3\n")
    with pytest.raises(BadInputError, match=r"bom\.toml: starts with a byte-order mark \(BOM\)"):
        config_layers.build(f)


def test_a_config_path_that_is_a_folder_is_bad_input_like_a_missing_one(tmp_path):
    with pytest.raises(BadInputError, match="not a regular file") as e:
        config_layers.build(tmp_path)
    assert e.value.exit_code == 1


def test_a_nul_character_in_a_text_value_is_refused(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[data]\ndir = "da\\u0000ta"\n')
    with pytest.raises(BadInputError, match=r"option data\.dir: expected UTF-8 text without NUL") as e:
        config_layers.build(f)
    assert str(e.value).startswith(str(f))


@pytest.mark.parametrize("value", ["٣", "３", "1_0", "²"])
def test_a_number_in_other_digits_is_no_number(value):
    """int() reads '٣' as 3 and '1_0' as 10; a config value is written in ASCII digits or refused, naming the option."""
    from pipeline.core import config_layers
    from pipeline.core.errors import UsageError

    with pytest.raises(UsageError, match="option train.epochs: expected an integer"):
        config_layers.build(sets=config_layers.parse_set([f"train.epochs={value}"]))
    with pytest.raises(UsageError, match="option train.learning_rate: expected a finite number"):
        config_layers.build(sets=config_layers.parse_set([f"train.learning_rate=0.{value}"]))


@pytest.mark.parametrize(
    ("given", "urls"),
    [
        ("json://localhost:8080/hook?a=1,2", ("json://localhost:8080/hook?a=1,2",)),  # one URL, as --notify takes it
        ("ntfy://topic,json://localhost/hook?a=1,2", ("ntfy://topic", "json://localhost/hook?a=1,2")),
        ("ntfy://topic, mailto://me@example.com", ("ntfy://topic", "mailto://me@example.com")),
        ('["json://h/p?a=1,2", "ntfy://x"]', ("json://h/p?a=1,2", "ntfy://x")),  # a TOML array: any item, any comma
        ("", ()),
    ],
)
def test_notify_urls_on_the_command_line_keep_their_commas(given, urls):
    config = config_layers.build(sets=config_layers.parse_set([f"notify.urls={given}"]))
    assert config.notify.urls == urls


def test_any_list_can_be_given_as_a_toml_array_and_a_broken_one_names_the_option():
    config = config_layers.build(sets=config_layers.parse_set(["model.hidden=[512, 256]", 'plan.recipes=["cnn"]']))
    assert config.model.hidden == (512, 256) and config.plan.recipes == ("cnn",)
    with pytest.raises(UsageError, match=r"option notify.urls: expected a comma-separated list or a TOML array"):
        config_layers.build(sets=config_layers.parse_set(['notify.urls=["json://h/p?a=1,2"']))
