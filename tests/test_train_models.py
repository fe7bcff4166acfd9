"""``irgan train --model cfgan|apr``: flags from each model's config, validation carved as IRGAN's
recipe does, the refit on all of train, the run folder, refusals; IRGAN's default run unchanged."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import raw_id_ratings

from irgan.adversarial.apr import APRConfig, APRRecommender
from irgan.adversarial.cfgan import CFGANConfig, CFGANRecommender
from irgan.cli import main as irgan_main
from irgan.data import load_dataset, validation_split
from irgan.metrics import eval_ks, evaluate
from irgan.train import build_parser, config_flags, main, model_config_from_args

N_USERS, N_ITEMS = 40, 30
DATA = ["--split", "random", "--quiet", "--device", "cpu"]
FLAGS = {  # a few epochs, each checked on validation, so that the chosen epoch can differ from the last
    "cfgan": ["--epochs", "3", "--eval-every", "1", "--g-hidden", "8", "--d-hidden", "8"],
    "apr": ["--pretrain-epochs", "3", "--epochs", "3", "--eval-every", "1", "--dim", "4", "--batch-size", "16"],
}
CONFIGS = {"cfgan": CFGANConfig(epochs=3, eval_every=1, g_hidden=8, d_hidden=8),
           "apr": APRConfig(pretrain_epochs=3, epochs=3, eval_every=1, dim=4, batch_size=16)}
ESTIMATORS = {"cfgan": CFGANRecommender, "apr": APRRecommender}
IRGAN_FAST = ["--epochs", "1", "--d-epochs", "1", "--g-epochs", "2", "--pretrain-epochs", "2"]


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory) -> Path:
    """40 users x 30 items, 15 ratings (1-5) per user, raw ids that are not 0..n-1."""
    return raw_id_ratings(tmp_path_factory.mktemp("data") / "ratings.csv", N_USERS, N_ITEMS)


@pytest.fixture(scope="module")
def runs(ratings_csv, tmp_path_factory) -> dict[str, Path]:
    """One finished run folder per model."""
    folders = {}
    for model, flags in FLAGS.items():
        folders[model] = tmp_path_factory.mktemp("runs") / model
        assert main(["--model", model, "--dataset", str(ratings_csv), *DATA, *flags, "--out", str(folders[model])]) == 0
    return folders


def split_of(ratings_csv: Path):
    """The split the runs trained and tested on, read again."""
    return load_dataset(str(ratings_csv), split="random", seed=0)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# --- a run of each model ----------------------------------------------------------------------

@pytest.mark.parametrize("model", FLAGS)
def test_a_run_writes_its_folder_and_a_model_file_that_serves_its_test_figures(model, runs, ratings_csv):
    folder = runs[model]
    assert {p.name for p in folder.iterdir()} == {"run.json", "metrics.json", "model.pt"}
    report = json.loads((folder / "metrics.json").read_text())
    request = json.loads((folder / "run.json").read_text())
    assert report["model"] == request["model"] == model
    assert request["config"] == report["config"] == dataclasses.asdict(CONFIGS[model])
    assert request["refit"] is True and request["validation_fraction"] == 0.1
    assert "then refit on all of train" in report["protocol"]
    loaded = ESTIMATORS[model].load(folder / "model.pt")
    assert type(loaded) is ESTIMATORS[model]
    data = split_of(ratings_csv)
    ks = eval_ks(N_ITEMS)
    assert evaluate(loaded.model_, data.train.matrix, data.test.matrix, ks) == report["test"]
    if model == "apr":
        assert evaluate(loaded.start_, data.train.matrix, data.test.matrix, ks) == report["test_start"]
    assert (loaded.user_items_ != data.train.matrix).nnz == 0  # refit on all of train, validation included
    assert report["data"]["train"] == data.train.nnz


@pytest.mark.parametrize("model", FLAGS)
def test_epochs_are_chosen_on_validation_carved_as_irgan_does_then_refit_for_that_many(model, runs, ratings_csv):
    report = json.loads((runs[model] / "metrics.json").read_text())
    data = split_of(ratings_csv)
    fit_train, selection = validation_split(data.train, 0.1, 0)  # IRGAN's recipe: its fraction, the run's seed
    params = {**dataclasses.asdict(CONFIGS[model]), "seed": 0, "device": "cpu"}
    chosen = ESTIMATORS[model](**params).fit(fit_train, validation=selection)
    assert report["validation"] == chosen.validation_metrics_ and report["history"] == chosen.history_
    epochs = {"epochs": chosen.best_epoch_}
    if model == "apr":
        epochs["pretrain_epochs"] = chosen.best_pretrain_epoch_
    assert {k: report[f"best_{k}"] for k in epochs} == epochs
    assert {k: ESTIMATORS[model].load(runs[model] / "model.pt").get_params()[k] for k in epochs} == epochs
    refit = ESTIMATORS[model](**{**params, **epochs}).fit(data.train)
    assert evaluate(refit.model_, data.train.matrix, data.test.matrix, eval_ks(N_ITEMS)) == report["test"]


def test_the_table_names_each_model_tested(ratings_csv, tmp_path, capsys):
    assert main(["--model", "apr", "--dataset", str(ratings_csv), *DATA, *FLAGS["apr"], "--out", str(tmp_path / "a"),
                 "--cutoffs", "2,20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-4:] == ["P@2", "P@20", "NDCG@2", "NDCG@20"]
    assert lines[1].startswith("BPR start (") and lines[2].startswith("APR ")
    report = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert {"P@2", "NDCG@20", "P@5"} <= set(report["test"]) and report["cutoffs"] == [2, 20]


def test_no_refit_tests_the_model_fitted_on_train_less_validation(ratings_csv, tmp_path):
    out = tmp_path / "c"
    assert main(["--model", "cfgan", "--dataset", str(ratings_csv), *DATA, *FLAGS["cfgan"], "--out", str(out),
                 "--no-refit", "--validation-fraction", "0.2"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["refit"] is False and "refit" not in report["protocol"]
    data = split_of(ratings_csv)
    fit_train, _ = validation_split(data.train, 0.2, 0)
    loaded = CFGANRecommender.load(out / "model.pt")
    assert (loaded.user_items_ != fit_train.matrix).nnz == 0 and report["data"]["train"] == fit_train.nnz
    assert loaded.get_params()["epochs"] == 3  # not refit: the fit that chose the epoch is what serves
    assert evaluate(loaded.model_, data.train.matrix, data.test.matrix, eval_ks(N_ITEMS)) == report["test"]


# --- flags --------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, own", [("cfgan", ["--scheme", "--zr-coefficient", "--patience", "--d-steps"]),
                                        ("apr", ["--adv-reg", "--eps", "--pretrain-epochs", "--patience"])])
def test_help_with_a_model_lists_its_flags(model, own, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--model", model, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in [*own, "--validation-fraction", "--no-refit", "--cutoffs", "--test"])
    assert "--g-scorer" not in out and "--preset" not in out and "--tensorboard" not in out


def test_irgan_train_takes_the_model_too(capsys):
    with pytest.raises(SystemExit):
        irgan_main(["train", "--model", "cfgan", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: irgan train") and "CFGAN (CFGANConfig)" in out


def test_a_flag_of_another_model_is_refused_in_one_line(ratings_csv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "apr", "--dataset", str(ratings_csv), *DATA, "--g-scorer", "mlp", "--out", str(tmp_path / "r")])
    assert exit_.value.code == 2
    assert last_line(capsys.readouterr().err).endswith(
        "error: unrecognized arguments: --g-scorer mlp (--g-scorer is a flag of --model irgan)")
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit):
        main(["--dim", "4", "--eps=0.5"])
    assert last_line(capsys.readouterr().err).endswith("--eps is a flag of --model apr)")


@pytest.mark.parametrize("model", FLAGS)
def test_patience_none_parses_to_none(model):
    parse = build_parser(model).parse_args
    assert model_config_from_args(model, parse(["--patience", "none"])).patience is None
    assert model_config_from_args(model, parse(["--patience", "NONE"])).patience is None
    assert model_config_from_args(model, parse(["--patience", "7"])).patience == 7
    assert model_config_from_args(model, parse([])) == type(CONFIGS[model])()  # no flag: the config's defaults


def test_every_config_field_has_its_flag():
    args = build_parser("cfgan").parse_args(["--mode", "user", "--zr-ratio", "0.5", "--g-layers", "2"])
    assert model_config_from_args("cfgan", args) == CFGANConfig(mode="user", zr_ratio=0.5, g_layers=2)
    args = build_parser("apr").parse_args(["--item-bias", "--eps", "0.25", "--select-metric", "NDCG@10"])
    assert model_config_from_args("apr", args) == APRConfig(item_bias=True, eps=0.25, select_metric="NDCG@10")
    for model, config in (("cfgan", CFGANConfig), ("apr", APRConfig)):
        options = build_parser(model)._option_string_actions
        assert all("--" + f.name.replace("_", "-") in options for f in dataclasses.fields(config))


@dataclasses.dataclass(frozen=True)
class Example:
    """A config of every kind of field a flag takes; its annotations are strings (future annotations)."""

    count: int = 3
    rate: float = 0.5
    name: str = "a"
    on: bool = False
    limit: int | None = 2
    scale: float | None = None


def test_the_flag_builder_takes_any_config_dataclass():
    parser = argparse.ArgumentParser()
    config_flags(parser, Example, prefix="x-", missing=argparse.SUPPRESS)
    args = vars(parser.parse_args(["--x-count", "4", "--x-rate", "0.25", "--x-name", "b", "--x-on",
                                   "--x-limit", "none", "--x-scale", "1.5"]))
    assert args == {"x_count": 4, "x_rate": 0.25, "x_name": "b", "x_on": True, "x_limit": None, "x_scale": 1.5}
    assert vars(parser.parse_args([])) == {}
    assert vars(parser.parse_args(["--no-x-on"])) == {"x_on": False}

    @dataclasses.dataclass
    class Nested:
        inner: Example = dataclasses.field(default_factory=Example)
    with pytest.raises(TypeError, match="Nested.inner"):
        config_flags(argparse.ArgumentParser(), Nested)


# --- refusals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, words", [(["--scheme", "XX"], "error: scheme must be one of"),
                                          (["--patience", "0"], "error: patience must be an integer >= 1 or None"),
                                          (["--select-metric", "P@50"], "error: select_metric P@50 needs more than "
                                                                        "the catalog's 30 items")])
def test_a_bad_value_is_one_line_and_leaves_no_folder(ratings_csv, tmp_path, capsys, flags, words):
    out = tmp_path / "r"
    assert main(["--model", "cfgan", "--dataset", str(ratings_csv), *DATA, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(words)
    assert not out.exists()


@pytest.mark.parametrize("flags, words", [(["--patience", "soon"], "argument --patience: expected an integer or 'none', got 'soon'"),
                                          (["--validation-fraction", "1"], "argument --validation-fraction: expected a number strictly between 0 and 1"),
                                          (["--epochs", "many"], "argument --epochs: invalid int value: 'many'")])
def test_a_value_of_the_wrong_type_is_refused_by_argparse(capsys, flags, words):
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "cfgan", *flags])
    assert exit_.value.code == 2 and words in last_line(capsys.readouterr().err)


def test_resume_is_refused_in_one_line_for_another_model(runs, capsys):
    assert main(["--model", "cfgan", "--resume", str(runs["cfgan"])]) == 2
    err = capsys.readouterr().err
    assert err == "error: --resume continues IRGAN runs only: a cfgan run cannot be resumed; start it again\n"
    assert main(["--resume", str(runs["apr"])]) == 2  # IRGAN's --resume on an APR run folder
    assert capsys.readouterr().err == f"error: {runs['apr']} is a run of --model apr: --resume continues IRGAN runs only\n"


# --- IRGAN, the default, as before ---------------------------------------------------------------

def test_the_default_irgan_run_writes_what_it_wrote_before(ratings_csv, tmp_path, capsys):
    default, named = tmp_path / "default", tmp_path / "named"
    assert main(["--dataset", str(ratings_csv), *DATA, *IRGAN_FAST, "--out", str(default)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert main(["--model", "irgan", "--dataset", str(ratings_csv), *DATA, *IRGAN_FAST, "--out", str(named)]) == 0
    assert capsys.readouterr().out.splitlines()[:-1] == table[:-1]  # the last line holds the seconds
    assert [line.split()[0] for line in table[1:4]] == ["init", "IRGAN", "IRGAN"]
    assert {p.name for p in default.iterdir()} == {"run.json", "history.jsonl", "init.pt", "metrics.json", "model.pt"}
    request = json.loads((default / "run.json").read_text())
    assert set(request) == {"dataset", "data_dir", "split", "seed", "device", "read", "config", "data_fingerprint"}
    assert request == json.loads((named / "run.json").read_text())
    report = json.loads((default / "metrics.json").read_text())
    assert "model" not in report and report["test"] == json.loads((named / "metrics.json").read_text())["test"]


def test_plot_names_a_cfgan_or_apr_run_in_one_line(runs, capsys):
    from irgan.plot import main as plot
    for model, folder in runs.items():
        assert plot([str(folder)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"is a {model} run: irgan plot draws IRGAN's learning curves only" in err[0]
