"""The command line, end to end on a tiny ratings file: outputs, refusals, and flags <-> config."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from irgan.config import BPRConfig
from irgan.checkpoint import load_checkpoint
from irgan.config import IRGANConfig
from irgan.train import DERIVED_PRETRAIN_FIELDS, config_from_args, config_parser, main

N_USERS, N_ITEMS = 40, 30
FAST = ["--split", "random", "--epochs", "1", "--d-epochs", "1", "--g-epochs", "2", "--pretrain-epochs", "2",
        "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory) -> Path:
    """40 users x 30 items, 15 ratings (1-5) per user, with raw ids that are not 0..n-1."""
    rng = np.random.default_rng(0)
    lines = ["user,item,rating"]
    for u in range(N_USERS):
        for i in rng.choice(N_ITEMS, 15, replace=False):
            lines.append(f"{1000 + u},{7 * i + 3},{rng.integers(1, 6)}")
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def run_dir(ratings_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(out)]) == 0
    return out


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# --- a run -----------------------------------------------------------------------------------

def test_run_writes_metrics_and_checkpoint(run_dir):
    assert {"metrics.json", "model.pt"} <= {p.name for p in run_dir.iterdir()}
    report = json.loads((run_dir / "metrics.json").read_text())
    assert {"test", "test_discriminator", "validation", "config", "seconds", "history"} <= set(report)
    assert "selection_test" not in report
    assert {"P@3", "P@5", "P@10", "NDCG@10", "MRR"} <= set(report["test"])
    assert all(0 <= v <= 1 for v in report["test"].values())
    assert report["test_init"] is not None  # DNS-pretrained start, evaluated too
    assert len(report["history"]) == 2  # 1 epoch x 2 G-epochs
    assert report["config"]["epochs"] == 1 and report["config"]["pretrain"]["epochs"] == 2
    assert IRGANConfig(**report["config"]) == IRGANConfig(epochs=1, d_epochs=1, g_epochs=2, pretrain=BPRConfig(epochs=2))
    assert "validation" in report["protocol"] and "TEST" not in report["protocol"]
    assert report["seconds"] > 0 and report["device"] == "cpu"


def test_run_checkpoint_loads(run_dir):
    ckpt = load_checkpoint(run_dir / "model.pt")
    report = json.loads((run_dir / "metrics.json").read_text())
    assert ckpt.config == IRGANConfig(**report["config"])
    assert ckpt.user_ids.tolist() == [1000 + u for u in range(N_USERS)]
    assert ckpt.item_ids.tolist() == [7 * i + 3 for i in range(N_ITEMS)]
    assert (ckpt.generator.n_users, ckpt.generator.n_items) == (N_USERS, N_ITEMS)
    assert ckpt.extra["seed"] == 0


def test_run_prints_a_table(ratings_csv, tmp_path, capsys):
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(tmp_path / "r"), "--d-epochs", "0"]) == 0
    out = capsys.readouterr().out
    assert "IRGAN G" in out and "IRGAN D" in out and "P@3" in out and "init (dns)" in out


def test_rerun_into_non_empty_out_is_refused(ratings_csv, run_dir, capsys):
    before = snapshot(run_dir)
    capsys.readouterr()
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err
    assert snapshot(run_dir) == before


def test_unknown_dataset_is_one_line_error(tmp_path, capsys):
    assert main(["--dataset", "no-such-data", "--quiet", "--device", "cpu", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "no-such-data" in err


def test_failed_start_does_not_block_the_retry(ratings_csv, tmp_path):
    out = tmp_path / "r"
    assert main(["--dataset", str(ratings_csv) + ".typo", *FAST, "--out", str(out)]) == 2
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(out)]) == 0


def test_bad_config_value_is_an_error(ratings_csv, tmp_path, capsys):
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(tmp_path / "r"), "--g-mix", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "g_mix" in err
    assert not (tmp_path / "r").exists()


def test_select_on_test_says_test(ratings_csv, tmp_path):
    out = tmp_path / "r"
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(out), "--select-on", "test",
                 "--init", "random"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert "TEST" in report["protocol"]
    assert "selection_test" in report and "validation" not in report
    assert report["test_init"] is None  # random start: nothing to evaluate
    assert report["selection_test"] == report["test"]  # selected on test, so its test figures are the selection's


def test_out_that_is_a_file_is_an_error(ratings_csv, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(target)]) == 2
    assert target.read_text() == "keep me"


def test_unknown_select_metric_is_an_error(ratings_csv, tmp_path):
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(tmp_path / "r"), "--select-metric", "P@7"]) == 2


def test_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--d-exclude-positives" in out and "--pretrain-lr" in out and "--select-on" in out


# --- flags <-> IRGANConfig -------------------------------------------------------------------

def parse(*argv: str) -> IRGANConfig:
    parser = argparse.ArgumentParser()
    config_parser(parser)
    return config_from_args(parser.parse_args(list(argv)))


CHOICES = {"init": "random", "optimizer": "adam", "d_negatives": "refresh", "reward": "paper", "select_on": "test",
           "select_metric": "NDCG@10"}


def other_value(f: dataclasses.Field):
    """A valid value of the field that differs from its default, and the flag's text for it."""
    if f.name in CHOICES:
        return CHOICES[f.name], CHOICES[f.name]
    if f.type == "bool":
        return (not f.default), None
    if f.type == "int":
        return f.default + 1, str(f.default + 1)
    value = f.default / 2 if f.default else 0.25
    return value, repr(value)


def flag_for(f: dataclasses.Field, prefix: str = "") -> list[str]:
    value, text = other_value(f)
    name = prefix + f.name.replace("_", "-")
    if text is None:
        return [f"--{name}" if value else f"--no-{name}"]
    return [f"--{name}", text]


def test_no_flags_give_the_defaults():
    assert parse() == IRGANConfig()


@pytest.mark.parametrize("field", [f for f in dataclasses.fields(IRGANConfig) if f.name != "pretrain"],
                         ids=lambda f: f.name)
def test_each_config_field_has_its_flag(field):
    expected = dataclasses.replace(IRGANConfig(), **{field.name: other_value(field)[0]})
    assert parse(*flag_for(field)) == expected


@pytest.mark.parametrize("field", [f for f in dataclasses.fields(BPRConfig) if f.name not in DERIVED_PRETRAIN_FIELDS],
                         ids=lambda f: f.name)
def test_each_pretrain_field_has_its_flag(field):
    pretrain = dataclasses.replace(BPRConfig(), **{field.name: other_value(field)[0]})
    assert parse(*flag_for(field, "pretrain-")) == IRGANConfig(pretrain=pretrain)


def test_all_flags_at_once_and_nothing_else():
    argv = [a for f in dataclasses.fields(IRGANConfig) if f.name != "pretrain" for a in flag_for(f)]
    argv += [a for f in dataclasses.fields(BPRConfig) if f.name not in DERIVED_PRETRAIN_FIELDS
             for a in flag_for(f, "pretrain-")]
    config = parse(*argv)
    for f in dataclasses.fields(IRGANConfig):
        if f.name != "pretrain":
            assert getattr(config, f.name) == other_value(f)[0], f.name
    parser = argparse.ArgumentParser(add_help=False)
    config_parser(parser)
    n_fields = len(dataclasses.fields(IRGANConfig)) - 1 + len(dataclasses.fields(BPRConfig)) - len(DERIVED_PRETRAIN_FIELDS)
    assert len(parser._actions) == n_fields  # one flag per field, no more


def test_named_flags():
    config = parse("--pretrain-lr", "0.2", "--no-d-exclude-positives", "--d-lr", "0.01", "--g-epochs", "7")
    assert config.pretrain.lr == 0.2 and config.d_exclude_positives is False
    assert config.d_lr == 0.01 and config.g_epochs == 7
    assert parse("--d-exclude-positives").d_exclude_positives is True


def test_derived_pretrain_fields_have_no_flag():
    with pytest.raises(SystemExit):
        parse("--pretrain-negatives", "uniform")
    with pytest.raises(SystemExit):
        parse("--pretrain-dim", "8")


def test_config_from_args_validates():
    with pytest.raises(ValueError, match="optimizer"):
        parse("--optimizer", "rmsprop")
    with pytest.raises(ValueError, match="dns_candidates"):
        parse("--pretrain-dns-candidates", "0")
