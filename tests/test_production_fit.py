"""``--split none``: a production fit selects on validation carved from all the data, refits on all of
it and writes a model that has seen every positive, with no test figures; its refusals."""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import raw_id_ratings

from irgan.adversarial.cfgan import CFGANRecommender
from irgan.adversarial.irgan.recipe import run_recipe
from irgan.checkpoint import load_model
from irgan.config import BPRConfig, IRGANConfig
from irgan.data import load_dataset, validation_split
from irgan.errors import DataError
from irgan.train import PRODUCTION_PROTOCOL, main

FAST = ["--epochs", "2", "--d-epochs", "1", "--g-epochs", "2", "--pretrain-epochs", "2"]
CONFIG = IRGANConfig(epochs=2, d_epochs=1, g_epochs=2, pretrain=BPRConfig(epochs=2))
RUN = ["--split", "none", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory) -> Path:
    """40 users x 30 items, 15 ratings (1-5) per user, raw ids that are not 0..n-1."""
    return raw_id_ratings(tmp_path_factory.mktemp("data") / "ratings.csv")


@pytest.fixture(scope="module")
def run_dir(ratings_csv, tmp_path_factory) -> Path:
    """A finished IRGAN production fit."""
    out = tmp_path_factory.mktemp("runs") / "irgan"
    assert main(["--dataset", str(ratings_csv), *RUN, *FAST, "--out", str(out)]) == 0
    return out


def positives(ratings_csv: Path) -> set[tuple[int, int]]:
    """Every (raw user, raw item) rated 4 or more in the file, read independently of irgan."""
    df = pd.read_csv(ratings_csv)
    return set(map(tuple, df.loc[df["rating"] >= 4, ["user", "item"]].to_numpy().tolist()))


def pairs(user_ids: np.ndarray, item_ids: np.ndarray, matrix) -> set[tuple[int, int]]:
    """The raw (user, item) pairs of a csr matrix."""
    coo = matrix.tocoo()
    return set(zip(user_ids[coo.row].tolist(), item_ids[coo.col].tolist()))


def test_load_dataset_none_puts_every_positive_in_train_and_holds_out_nothing(ratings_csv):
    data = load_dataset(str(ratings_csv), split="none")
    assert pairs(data.train.user_ids, data.train.item_ids, data.train.matrix) == positives(ratings_csv)
    assert data.test.shape == data.train.shape and data.test.nnz == 0 and data.test.same_maps(data.train)
    assert data.validation is None
    carved = load_dataset(str(ratings_csv), split="none", validation_fraction=0.1)
    assert carved.train.nnz + carved.validation.nnz == data.train.nnz and carved.validation.nnz > 0


def test_load_dataset_none_refuses_a_released_test_file(ratings_csv):
    with pytest.raises(DataError, match="no test set"):
        load_dataset(str(ratings_csv), split="none", test=str(ratings_csv))


def test_the_model_file_holds_every_positive_and_metrics_hold_validation_without_test(run_dir, ratings_csv):
    saved = load_model(run_dir / "model.pt")
    assert pairs(saved.user_ids, saved.item_ids, saved.user_items) == positives(ratings_csv)
    report = json.loads((run_dir / "metrics.json").read_text())
    assert report["test"] is None and report["test_discriminator"] is None and report["test_init"] is None
    assert report["protocol"] == PRODUCTION_PROTOCOL
    assert report["split"] == "none" and report["config"]["refit"] is True
    assert set(report["validation"]) >= {"P@5", "NDCG@5"} and "P@5" in report["validation_discriminator"]
    n = len(positives(ratings_csv))
    assert report["data"]["train"] == n and report["data"]["test"] == 0 and 0 < report["data"]["selection"] < n


def test_the_model_file_is_the_refit_on_all_the_data_not_the_validation_selected_one(run_dir, ratings_csv):
    data = load_dataset(str(ratings_csv), split="none")
    common = dict(seed=0, device="cpu")
    selected = run_recipe(data.train, None, dataclasses.replace(CONFIG, refit=False), **common)
    refit = run_recipe(data.train, None, dataclasses.replace(CONFIG, refit=True), **common)
    saved = load_model(run_dir / "model.pt").scorers["generator"].state_dict()
    for name, value in saved.items():
        assert torch.equal(value, refit.generator.scorer.state_dict()[name])
    assert any(not torch.equal(value, selected.generator.scorer.state_dict()[name]) for name, value in saved.items())
    fit_train, _ = validation_split(data.train, CONFIG.validation_fraction, 0)
    assert load_model(run_dir / "init.pt").user_items.nnz == fit_train.nnz < data.train.nnz  # selection's start


def test_the_table_shows_validation_figures_so_labelled(ratings_csv, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="irgan.train")
    assert main(["--dataset", str(ratings_csv), *RUN, *FAST, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines[0].startswith("validation (production fit)") and "test" not in lines[0]
    assert lines[-1].endswith(PRODUCTION_PROTOCOL)
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert f"{report['validation']['P@5']:9.4f}" in lines[1]
    n = len(positives(ratings_csv))
    assert f"the model knows 40 users, 30 items and all {n} positives" in caplog.text


@pytest.mark.parametrize("flags, says", [
    (["--test", "TEST"], "--test cannot apply"),
    (["--select-on", "test"], "no test set to select on"),
    (["--model", "cfgan", "--test", "TEST"], "--test cannot apply"),
    (["--model", "apr", "--no-refit"], "drop --no-refit"),
])
def test_refusals_are_one_error_line(flags, says, ratings_csv, tmp_path, capsys):
    flags = [str(ratings_csv) if flag == "TEST" else flag for flag in flags]
    assert main(["--dataset", str(ratings_csv), *RUN, *flags, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0]
    assert not (tmp_path / "run").exists()


def test_cfgan_production_fit_refits_on_every_positive(ratings_csv, tmp_path, capsys):
    out = tmp_path / "cfgan"
    flags = ["--epochs", "3", "--eval-every", "1", "--g-hidden", "8", "--d-hidden", "8"]
    assert main(["--model", "cfgan", "--dataset", str(ratings_csv), *RUN, *flags, "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("validation (production fit)")
    report = json.loads((out / "metrics.json").read_text())
    assert report["test"] is None and report["protocol"] == PRODUCTION_PROTOCOL and "P@5" in report["validation"]
    loaded = CFGANRecommender.load(out / "model.pt")
    assert pairs(loaded.user_ids_, loaded.item_ids_, loaded.user_items_) == positives(ratings_csv)


def test_a_comparison_refuses_a_split_without_a_test_set(ratings_csv, tmp_path, capsys):
    from irgan import compare as compare_cli
    code = compare_cli.main(["--dataset", str(ratings_csv), "--split", "none", "--models", "pop", "--seeds", "1",
                             "--trials", "0", "--quiet", "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "a comparison needs a test set" in err[-1] and "Traceback" not in "".join(err)
