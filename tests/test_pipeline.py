"""``irgan.adversarial.irgan.recipe.run_recipe`` on small planted data: the selection split, selection on test,
refitting on all of train up to the selected point, the cached pretrained start (``init_file``)
and scorers of one's own in both roles."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import irgan.adversarial.irgan.recipe as pipeline
import irgan.adversarial.irgan.game as trainer
from irgan.checkpoint import load_model
from irgan.config import BPRConfig, IRGANConfig
from irgan.data import Interactions, validation_split
from irgan.metrics import evaluate
from irgan.models import MatrixFactorization
from irgan.adversarial.irgan.recipe import initial_generator, run_recipe
from helpers import planted

# A couple of short rounds from a G pretrained for two epochs of DNS-BPR.
TINY = IRGANConfig(init="dns", pretrain=BPRConfig(epochs=2), epochs=2, d_epochs=2, g_epochs=2, d_batch_size=64,
                   g_batch_users=16, d_sample_every=1, validation_fraction=0.2)
FIGURES = {"P@3", "P@5", "P@10", "NDCG@5", "NDCG@10", "MRR"}


def interactions(seed: int = 0, **kwargs) -> tuple[Interactions, Interactions]:
    train, test = planted(seed, **kwargs)
    ids = np.arange(train.shape[0]) + 1, np.array([f"i{i}" for i in range(train.shape[1])])
    return Interactions(train, *ids), Interactions(test, *ids)


@pytest.fixture(scope="module")
def data() -> tuple[Interactions, Interactions]:
    return interactions()


@pytest.fixture(scope="module")
def plain(data):
    train, test = data
    return run_recipe(train, test, TINY, seed=0, device="cpu")


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def same(a: nn.Module, b: nn.Module) -> bool:
    x, y = params(a), params(b)
    return len(x) == len(y) and all(p.shape == q.shape and torch.equal(p, q) for p, q in zip(x, y))


def strip(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# --- (a) selection on a validation split carved from train -----------------------------------

def test_recipe_carves_a_validation_split_and_tests_every_player(plain, data):
    train, test = data
    fit, validation = validation_split(train, TINY.validation_fraction, seed=0)
    assert plain.sizes == {"n_users": 60, "n_items": 60, "train": fit.nnz, "selection": validation.nnz,
                           "test": test.nnz}
    assert plain.sizes["train"] + plain.sizes["selection"] == train.nnz and plain.sizes["selection"] > 0
    assert plain.refit is False
    # selection ran on that carved split, training on the rest
    assert evaluate(plain.generator, fit.matrix, validation.matrix) == plain.best_generator["metrics"]
    assert evaluate(plain.discriminator, fit.matrix, validation.matrix) == plain.best_discriminator["metrics"]
    assert [(r["epoch"], r["g_epoch"]) for r in plain.history] == [(e, g) for e in range(2) for g in range(2)]
    # G started from DNS-BPR pretrained on the carved train only
    assert isinstance(plain.init, MatrixFactorization)
    assert same(plain.init, initial_generator(TINY, fit.matrix, seed=0))
    # test figures of G, D and G's start, ranking past every train positive (validation's included)
    assert set(plain.test) == {"generator", "discriminator", "init"}
    for role, model in (("generator", plain.generator), ("discriminator", plain.discriminator), ("init", plain.init)):
        assert FIGURES <= set(plain.test[role])
        assert plain.test[role] == evaluate(model, train.matrix, test.matrix), role
    assert set(plain.seconds) == {"pretrain", "play", "test"}


def test_recipe_uses_a_given_validation_set_and_needs_no_test(data):
    train, test = data
    fit, validation = validation_split(train, 0.3, seed=5)  # not the split the recipe would carve
    config = dataclasses.replace(TINY, init="random", epochs=1)
    result = run_recipe(fit, None, config, validation=validation, seed=0, device="cpu")
    assert result.sizes == {"n_users": 60, "n_items": 60, "train": fit.nnz, "selection": validation.nnz, "test": 0}
    assert result.test is None and result.init is None
    assert evaluate(result.generator, fit.matrix, validation.matrix) == result.best_generator["metrics"]


# --- (b) selection on test -------------------------------------------------------------------

def test_select_on_test_needs_a_test_set(data):
    train, _ = data
    with pytest.raises(ValueError, match="select_on='test' needs a test set"):
        run_recipe(train, None, dataclasses.replace(TINY, select_on="test"), device="cpu")


def test_select_on_test_trains_on_all_train_and_selects_on_test(data):
    train, test = data
    config = dataclasses.replace(TINY, select_on="test", epochs=1)
    result = run_recipe(train, test, config, seed=0, device="cpu")
    assert result.sizes["train"] == train.nnz and result.sizes["selection"] == result.sizes["test"] == test.nnz
    assert result.best_generator["metrics"] == result.test["generator"]  # the optimistic protocol
    assert result.best_discriminator["metrics"] == result.test["discriminator"]
    assert same(result.init, initial_generator(config, train.matrix, seed=0))


# --- (c) refit on all of train, up to the selected point --------------------------------------

def record_games(monkeypatch, force_best: tuple[int, int] | None = None) -> list[dict]:
    """Record each game the pipeline plays (its data, config, stop_at, G- and D-epochs run); with
    ``force_best``, the selection game reports that (epoch, g_epoch) as where it kept G."""
    games, real_fit, real_g, real_d = [], pipeline.fit_irgan, trainer.g_epoch, trainer.d_epoch

    def g_epoch(*args, **kwargs):
        games[-1]["g_epochs"] += 1
        return real_g(*args, **kwargs)

    def d_epoch(*args, **kwargs):
        games[-1]["d_epochs"] += 1
        return real_d(*args, **kwargs)

    def fit_irgan(train, selection, config, **kwargs):
        games.append({"train": train, "selection": selection, "config": config, "stop_at": kwargs.get("stop_at"),
                      "g_epochs": 0, "d_epochs": 0})
        result = real_fit(train, selection, config, **kwargs)
        if force_best is not None and selection is not None:
            result.best_generator = {**result.best_generator, "epoch": force_best[0], "g_epoch": force_best[1]}
        return result

    monkeypatch.setattr(pipeline, "fit_irgan", fit_irgan)
    monkeypatch.setattr(trainer, "g_epoch", g_epoch)
    monkeypatch.setattr(trainer, "d_epoch", d_epoch)
    return games


def test_refit_plays_again_on_all_train_up_to_the_selected_point(data, monkeypatch):
    train, test = data
    config = dataclasses.replace(TINY, optimizer="adam", g_lr=0.02, d_lr=0.05)  # here G improves on its start
    plain = run_recipe(train, test, config, seed=0, device="cpu")
    games = record_games(monkeypatch)
    refit = run_recipe(train, test, dataclasses.replace(config, refit=True), seed=0, device="cpu")
    assert plain.refit is False and refit.refit is True
    assert set(refit.seconds) == {"pretrain", "play", "refit", "test"}
    select, again = games
    assert select["selection"] is not None and select["train"].nnz == plain.sizes["train"] < train.nnz
    assert again["selection"] is None and (again["train"] != train.matrix).nnz == 0  # all of train
    # the same selection as without refit ...
    assert refit.best_generator == plain.best_generator and strip(refit.history) == strip(plain.history)
    assert refit.sizes == {**plain.sizes, "train": train.nnz}  # the refit players trained on all of train
    # ... then a new start pretrained on all of train, and a game cut where selection kept G
    assert same(refit.init, initial_generator(config, train.matrix, seed=0)) and not same(refit.init, plain.init)
    epoch, g_ep = plain.best_generator["epoch"], plain.best_generator["g_epoch"]
    assert again["stop_at"] == (epoch, g_ep)
    assert again["g_epochs"] == (0 if epoch < 0 else epoch * config.g_epochs + g_ep + 1)
    assert not same(refit.generator, plain.generator)
    assert refit.test["generator"] == evaluate(refit.generator, train.matrix, test.matrix)
    assert refit.test["init"] == evaluate(refit.init, train.matrix, test.matrix) != plain.test["init"]


def test_refit_stops_after_the_selected_g_epoch(data, monkeypatch):
    train, test = data
    games = record_games(monkeypatch, force_best=(1, 0))  # kept after the 1st G-epoch of the 2nd outer epoch
    result = run_recipe(train, test, dataclasses.replace(TINY, refit=True), seed=0, device="cpu")
    select, again = games
    assert (select["g_epochs"], select["d_epochs"]) == (4, 4)  # the whole selection game
    assert again["stop_at"] == (1, 0)
    assert (again["g_epochs"], again["d_epochs"]) == (1 * TINY.g_epochs + 1, 2 * TINY.d_epochs)
    assert not same(result.generator, result.init)  # G moved from its start


def test_refit_that_kept_g_start_returns_the_pretrained_start(data, monkeypatch):
    train, test = data
    games = record_games(monkeypatch, force_best=(-1, -1))  # selection kept G's start
    result = run_recipe(train, test, dataclasses.replace(TINY, refit=True), seed=0, device="cpu")
    select, again = games
    assert select["g_epochs"] == 4 and (again["g_epochs"], again["d_epochs"]) == (0, 0)
    assert isinstance(result.generator.scorer, MatrixFactorization)
    assert same(result.generator.scorer, result.init)  # no G step at all
    assert same(result.init, initial_generator(TINY, train.matrix, seed=0))  # pretrained on all of train
    assert result.test["generator"] == result.test["init"]


# --- (d) init_file: the pretrained start, cached ---------------------------------------------

def count_pretraining(monkeypatch) -> list[int]:
    calls, real = [], pipeline.fit_bpr
    monkeypatch.setattr(pipeline, "fit_bpr", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_init_file_is_pretrained_once_and_reused(data, tmp_path, monkeypatch):
    train, test = data
    calls = count_pretraining(monkeypatch)
    path = tmp_path / "init.pt"
    config = dataclasses.replace(TINY, epochs=1)
    first = run_recipe(train, test, config, seed=0, device="cpu", init_file=path)
    assert len(calls) == 1 and path.is_file()
    saved = load_model(path)
    fit, _ = validation_split(train, config.validation_fraction, seed=0)
    assert saved.estimator == "BPRRecommender" and set(saved.scorers) == {"model"}
    assert (saved.user_items != fit.matrix).nnz == 0 and saved.item_ids.tolist() == train.item_ids.tolist()
    assert same(saved.scorers["model"], first.init)
    second = run_recipe(train, test, config, seed=0, device="cpu", init_file=path)
    assert len(calls) == 1  # read back, not pretrained again
    assert same(second.init, first.init)
    assert strip(second.history) == strip(first.history) and second.test == first.test
    assert same(second.generator, first.generator) and same(second.discriminator, first.discriminator)


def test_the_memory_check_leaves_out_pretraining_a_cached_start_spares(data, tmp_path, monkeypatch):
    train, test = data
    counted = []
    monkeypatch.setattr(pipeline, "check_fits", lambda *a, pretraining: counted.append(pretraining))
    config = dataclasses.replace(TINY, epochs=1)
    for _ in range(2):
        run_recipe(train, test, config, seed=0, device="cpu", init_file=tmp_path / "init.pt")
    assert counted == [True, False]


def test_init_file_of_other_data_is_refused(data, tmp_path, monkeypatch):
    train, test = data
    path = tmp_path / "init.pt"
    config = dataclasses.replace(TINY, epochs=1, d_epochs=1, g_epochs=1)
    run_recipe(train, test, config, seed=0, device="cpu", init_file=path)
    calls = count_pretraining(monkeypatch)
    before = path.read_bytes()
    other_positives = interactions(seed=1)  # same shape, other positives
    with pytest.raises(ValueError, match="pretrained on other data"):
        run_recipe(*other_positives, config, seed=0, device="cpu", init_file=path)
    other_shape = interactions(users_per_group=10)
    with pytest.raises(ValueError, match="pretrained on other data"):
        run_recipe(*other_shape, config, seed=0, device="cpu", init_file=path)
    with pytest.raises(ValueError, match="pretrained on other data"):  # another seed carves another split
        run_recipe(train, test, config, seed=1, device="cpu", init_file=path)
    assert calls == [] and path.read_bytes() == before  # refused before pretraining, file untouched
    path.write_text("not a model file")
    with pytest.raises(ValueError, match="cannot resume from the pretrained start"):
        run_recipe(train, test, config, seed=0, device="cpu", init_file=path)


# --- (e) scorers of one's own ----------------------------------------------------------------

class Bilinear(nn.Module):
    """A scorer irgan does not know: score(u, i) = <a_u, b_i> on 4 dimensions, no bias."""

    def __init__(self, n_users: int, n_items: int, seed: int = 0) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        g = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(0.1 * torch.randn(n_users, 4, generator=g))
        self.b = nn.Parameter(0.1 * torch.randn(n_items, 4, generator=g))

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.a[users] * self.b[items]).sum(-1)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.a[users] @ self.b.T


@pytest.mark.parametrize("instance_role", ["generator", "discriminator"])
def test_custom_scorers_play_as_instance_and_as_callable(data, instance_role):
    train, test = data
    instance, start = Bilinear(60, 60, seed=1), params(Bilinear(60, 60, seed=1))
    built = []

    def factory(n_users: int, n_items: int) -> Bilinear:
        built.append(Bilinear(n_users, n_items, seed=2))
        return built[-1]

    other_role = "discriminator" if instance_role == "generator" else "generator"
    config = dataclasses.replace(TINY, init="random", optimizer="adam", g_lr=0.05, d_lr=0.05)
    result = run_recipe(train, test, config, seed=0, device="cpu", **{instance_role: instance, other_role: factory})
    assert type(result.generator.scorer) is Bilinear and type(result.discriminator.scorer) is Bilinear
    assert len(built) == 1 and (built[0].n_users, built[0].n_items) == (60, 60)
    assert all(torch.equal(p, q) for p, q in zip(params(instance), start))  # the instance was copied, not trained
    # the scorer the callable built played its role all game: it moved
    assert not all(torch.equal(p, q) for p, q in zip(params(built[0]), params(Bilinear(60, 60, seed=2))))
    assert len(result.history) == config.epochs * config.g_epochs
    assert all(np.isfinite([row["d_loss"], row["g_reward"], row["g_entropy"]]).all() for row in result.history)
    assert result.test["init"] is None and FIGURES <= set(result.test["generator"])
    assert result.test["generator"] == evaluate(result.generator, train.matrix, test.matrix)


def test_refit_pretrains_for_the_selected_number_of_pretraining_epochs(data, monkeypatch):
    """With pretrain_select, the refit's pretraining stops where selection kept the pretrained start."""
    train, test = data
    config = dataclasses.replace(TINY, pretrain=BPRConfig(epochs=6), pretrain_select=True)
    runs, real = [], pipeline.fit_bpr

    def fit_bpr(matrix, pretrain, **kwargs):
        runs.append({"epochs": pretrain.epochs, "select": kwargs.get("on_epoch") is not None, "nnz": matrix.nnz})
        return real(matrix, pretrain, **kwargs)

    monkeypatch.setattr(pipeline, "fit_bpr", fit_bpr)
    fit, validation = validation_split(train, config.validation_fraction, 0)
    best = {}
    real(fit.matrix, dataclasses.replace(config.pretrain, dim=config.dim), seed=0, device="cpu",
         on_epoch=lambda epoch, model: best.setdefault("scores", []).append(
             evaluate(model, fit.matrix, validation.matrix)[config.select_metric]))
    selected = int(np.argmax(best["scores"])) + 1  # the first best epoch, as KeepBest keeps it
    run_recipe(train, test, dataclasses.replace(config, refit=True), seed=0, device="cpu")
    first, again = runs
    assert first == {"epochs": 6, "select": True, "nnz": fit.nnz}
    assert again == {"epochs": selected, "select": False, "nnz": train.nnz}
