"""IRGANConfig and BPRConfig refuse bad values in one ValueError line naming the field: NaN and
infinite floats, negative counts (the pretraining's too), values of the wrong type (as a
hand-edited run.json gives them); the defaults stay valid and the dataclasses frozen."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import math
import typing
from pathlib import Path

import numpy as np
import pytest

from irgan.config import PRESETS, BPRConfig, IRGANConfig, preset

CONFIGS = (IRGANConfig, BPRConfig)


def fields_of(kind: type) -> list[tuple[type, str]]:
    """(config class, field name) of every field annotated ``kind``, in both configs."""
    return [(cls, f.name) for cls in CONFIGS for f in dataclasses.fields(cls)
            if typing.get_type_hints(cls)[f.name] is kind]


def refused(cls: type, name: str, value) -> str:
    with pytest.raises(ValueError) as err:
        cls(**{name: value})
    message = str(err.value)
    assert "\n" not in message and message.startswith(name), message
    return message


def test_defaults_are_valid_and_frozen():
    for cls in CONFIGS:
        config = cls()
        assert dataclasses.replace(config) == config
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.dim = 3


@pytest.mark.parametrize("cls, name", fields_of(float), ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_every_float_field_refuses_nan_and_infinity(cls, name, value):
    assert "must be a finite number" in refused(cls, name, value)


@pytest.mark.parametrize("cls, name", fields_of(int), ids=lambda v: getattr(v, "__name__", v))
def test_every_count_refuses_negatives(cls, name):
    assert "must be >=" in refused(cls, name, -5)


def test_pretraining_epochs_may_be_zero_not_negative():
    assert BPRConfig(epochs=0).epochs == 0  # G keeps its random start
    assert IRGANConfig(pretrain=BPRConfig(epochs=0)).pretrain.epochs == 0
    assert refused(BPRConfig, "epochs", -5) == "epochs must be >= 0, got -5"
    with pytest.raises(ValueError, match=r"^pretrain\.epochs must be >= 0, got -5$"):
        IRGANConfig(pretrain={"epochs": -5})


@pytest.mark.parametrize("cls, name", [(BPRConfig, "l2"), (BPRConfig, "init_scale"), (IRGANConfig, "d_l2"),
                                       (IRGANConfig, "g_l2"), (IRGANConfig, "init_scale")],
                         ids=lambda v: getattr(v, "__name__", v))
def test_penalties_and_scales_refuse_negatives(cls, name):
    assert "must be >= 0" in refused(cls, name, -0.1)
    assert getattr(cls(**{name: 0.0}), name) == 0.0


WRONG = {int: ["5", 5.0, True, None, [5]], float: ["0.1", True, None, {}], bool: [1, "true", None], str: [3, None, ["mf"]]}


@pytest.mark.parametrize("kind", [int, float, bool, str], ids=lambda k: k.__name__)
def test_every_field_refuses_a_value_of_the_wrong_type(kind):
    for cls, name in fields_of(kind):
        for value in WRONG[kind]:
            assert "must be" in refused(cls, name, value), (cls, name, value)


def test_pretrain_must_be_a_bpr_config_or_its_fields():
    assert refused(IRGANConfig, "pretrain", "dns") == "pretrain must be a BPRConfig, got 'dns'"
    assert refused(IRGANConfig, "pretrain", {"zzz": 1}) == "pretrain has unknown field(s) ['zzz']"
    assert refused(IRGANConfig, "pretrain", {"lr": "x"}) == "pretrain.lr must be a number, got 'x'"
    assert IRGANConfig(pretrain={"epochs": 3}).pretrain == BPRConfig(epochs=3)


def test_numpy_and_integer_values_become_python_numbers():
    """As grids of numpy values give them: stored as the annotated Python type, so the config saves as plain data."""
    config = IRGANConfig(dim=np.int64(3), epochs=np.int32(2), d_lr=np.float32(0.5), ease_l2=300,
                         pretrain=BPRConfig(lr=np.float64(0.1)))
    assert (type(config.dim), type(config.epochs), type(config.d_lr), type(config.ease_l2)) == (int, int, float, float)
    assert config.ease_l2 == 300.0 and config.d_lr == 0.5 and type(config.pretrain.lr) is float
    assert config == IRGANConfig(dim=3, epochs=2, d_lr=0.5, ease_l2=300.0, pretrain=BPRConfig(lr=0.1))


def test_a_config_round_trips_through_json_and_a_hand_edit_is_refused():
    """run.json stores asdict(config); reading it back gives the same config, an edited one fails in one line."""
    stored = json.loads(json.dumps(dataclasses.asdict(IRGANConfig(dim=7, pretrain=BPRConfig(epochs=3)))))
    assert IRGANConfig(**stored) == IRGANConfig(dim=7, pretrain=BPRConfig(epochs=3))
    for name, value, words in (("dim", "7", "dim must be an integer, got '7'"),
                               ("d_temperature", None, "d_temperature must be a number, got None"),
                               ("fast_path", "yes", "fast_path must be true or false, got 'yes'")):
        with pytest.raises(ValueError) as err:
            IRGANConfig(**{**stored, name: value})
        assert str(err.value) == words


def test_existing_range_checks_still_hold():
    assert "g_mix must be in [0, 1)" in refused(IRGANConfig, "g_mix", 1.0)
    assert "validation_fraction must be in (0, 1)" in refused(IRGANConfig, "validation_fraction", 0.0)
    for name in ("d_temperature", "g_temperature", "d_lr", "g_lr", "ease_l2"):
        assert "must be positive" in refused(IRGANConfig, name, 0.0)
    assert "lr must be positive" in refused(BPRConfig, "lr", 0.0)
    assert "dim must be >= 1" in refused(IRGANConfig, "dim", 0)
    assert IRGANConfig(d_epochs=0, g_epochs=0).d_epochs == 0


def test_a_nan_flag_is_refused_by_the_cli_parser():
    from irgan.train import config_from_args, config_parser

    parser = argparse.ArgumentParser()
    config_parser(parser)
    for flag, name in (("--d-temperature", "d_temperature"), ("--pretrain-lr", r"(pretrain\.)?lr")):
        with pytest.raises(ValueError, match=f"^{name} must be a finite number, got nan$"):
            config_from_args(parser.parse_args([flag, "nan"]))


def test_config_imports_nothing_of_irgan():
    tree = ast.parse((Path(__file__).resolve().parents[1] / "irgan" / "config.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not [name for name in imported if name.split(".")[0] == "irgan"], imported


def test_the_paper_preset_is_the_defaults():
    assert preset("paper") == IRGANConfig()


def test_a_preset_takes_overrides_and_merges_pretraining_fields():
    config = preset("strong", dim=8, pretrain={"epochs": 3})
    assert config.dim == 8 and config.g_lr == PRESETS["strong"]["g_lr"] and config.refit
    assert config.pretrain.epochs == 3 and config.pretrain.l2 == PRESETS["strong"]["pretrain"]["l2"]
    assert preset("strong", pretrain=BPRConfig(l2=0.5)).pretrain == BPRConfig(l2=0.5)  # a whole BPRConfig replaces


def test_preset_values_are_checked_like_any_config():
    with pytest.raises(ValueError, match="unknown preset 'fast': choose from paper, strong"):
        preset("fast")
    with pytest.raises(ValueError, match="pretrain.l2 must be >= 0"):
        preset("strong", pretrain={"l2": -1.0})
    with pytest.raises(ValueError, match="refit needs select_on='validation'"):
        preset("strong", select_on="test")
