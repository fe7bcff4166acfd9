"""The adversarial loop on planted data, its config, G's proposals to D and G's starting points
(model files: tests/test_checkpoint.py; the recipe around the loop: tests/test_pipeline_units.py)."""
from __future__ import annotations

import dataclasses
import logging
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import irgan.adversarial.irgan.game as trainer
from irgan.config import BPRConfig, IRGANConfig
from irgan.data import Interactions, validation_split
from irgan.metrics import evaluate
from irgan.models import Discriminator, Generator, MatrixFactorization, Popularity
from irgan.adversarial.irgan.recipe import initial_generator
from irgan.training.bpr import fit_bpr
from irgan.training.sampling import PositiveSet, sample_fake
from irgan.adversarial.irgan.game import fit_irgan
from helpers import Evil, planted

HISTORY_KEYS = {"epoch", "g_epoch", "d_loss", "g_reward", "g_entropy", "g_coverage", "selection", "seconds"}

# The smallest game: a couple of rounds at the paper's learning rates, from a random G.
TINY = IRGANConfig(init="random", epochs=2, d_epochs=3, g_epochs=3, d_batch_size=64, g_batch_users=16,
                   d_sample_every=1)
# A short game that learns the planted groups from a random start: Adam at 0.05 for both
# players, and D refreshes G's samples every D-epoch (with 'first', D keeps judging the random
# G's draws and G learns far less).
LEARNS = IRGANConfig(init="random", epochs=4, d_epochs=5, g_epochs=3, optimizer="adam", g_lr=0.05, d_lr=0.05,
                     d_l2=0.01, d_batch_size=64, g_batch_users=16, init_scale=0.1, d_sample_every=1,
                     d_negatives="refresh")




@pytest.fixture(scope="module")
def data():
    """(fit, validation, train, test): validation is carved from train for model selection."""
    train, test = planted()
    ids = np.arange(train.shape[0]), np.arange(train.shape[1])
    fit, validation = validation_split(Interactions(train, *ids), 0.2, seed=0)
    return fit.matrix, validation.matrix, train, test


@pytest.fixture(scope="module")
def tiny_result(data):
    fit, validation, _, _ = data
    return fit_irgan(fit, validation, TINY, seed=0, device="cpu")


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]



# --- fit_irgan -------------------------------------------------------------------------------

def test_fit_irgan_sizes_and_history(tiny_result, data):
    fit, _, _, _ = data
    G, D = tiny_result.generator, tiny_result.discriminator
    assert isinstance(G, Generator) and isinstance(D, Discriminator)
    assert isinstance(G.scorer, MatrixFactorization) and isinstance(D.scorer, MatrixFactorization)
    assert (G.scorer.n_users, G.scorer.n_items, G.scorer.dim) == (*fit.shape, TINY.dim)
    assert (D.scorer.n_users, D.scorer.n_items, D.scorer.dim) == (*fit.shape, TINY.dim)
    history = tiny_result.history
    assert len(history) == TINY.epochs * TINY.g_epochs  # eval_every=1
    for row in history:
        assert HISTORY_KEYS <= set(row)
        assert {"P@5", "NDCG@10", "MRR"} <= set(row["selection"])
        assert np.isfinite([row["d_loss"], row["g_reward"], row["g_entropy"], row["g_coverage"]]).all()
        assert 0 < row["g_coverage"] <= 1 and 0 < row["g_entropy"] <= np.log(fit.shape[1]) + 1e-6
    assert [(r["epoch"], r["g_epoch"]) for r in history] == [(e, g) for e in range(2) for g in range(3)]
    assert all(a["seconds"] <= b["seconds"] for a, b in zip(history, history[1:]))
    assert {"epoch", "g_epoch", "metrics"} <= set(tiny_result.best_generator)
    assert {"epoch", "metrics"} <= set(tiny_result.best_discriminator)


def test_selected_models_score_what_the_history_says(tiny_result, data):
    fit, validation, _, _ = data
    best = tiny_result.best_generator
    assert evaluate(tiny_result.generator, fit, validation) == best["metrics"]
    best_seen = max([r["selection"]["P@5"] for r in tiny_result.history] + [best["metrics"]["P@5"]])
    assert best["metrics"]["P@5"] == best_seen
    assert evaluate(tiny_result.discriminator, fit, validation) == tiny_result.best_discriminator["metrics"]


def test_same_seed_same_run(tiny_result, data):
    fit, validation, _, _ = data
    again = fit_irgan(fit, validation, TINY, seed=0, device="cpu")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(again.history) == strip(tiny_result.history)
    assert all(torch.equal(a, b) for a, b in zip(weights(again.generator), weights(tiny_result.generator)))
    assert all(torch.equal(a, b) for a, b in zip(weights(again.discriminator), weights(tiny_result.discriminator)))
    other = fit_irgan(fit, validation, TINY, seed=1, device="cpu")
    assert strip(other.history) != strip(tiny_result.history)


def test_short_irgan_from_random_beats_popularity(data):
    fit, validation, train, test = data
    popularity = evaluate(Popularity(train), train, test)["P@5"]
    result = fit_irgan(fit, validation, LEARNS, seed=0, device="cpu")
    g = evaluate(result.generator, train, test)["P@5"]
    assert popularity < 0.3
    assert g > 0.6 and g > popularity + 0.4, (g, popularity)


@pytest.mark.parametrize("mode, expected_draws", [("first", 1), ("refresh", 6)])
def test_d_negatives_first_and_refresh(data, monkeypatch, mode, expected_draws):
    fit, validation, _, _ = data
    draws = []
    real = trainer.sample_fake
    monkeypatch.setattr(trainer, "sample_fake", lambda *a, **k: draws.append(1) or real(*a, **k))
    config = dataclasses.replace(TINY, d_negatives=mode)  # 2 epochs x 3 D-epochs, a draw every D-epoch
    result = fit_irgan(fit, validation, config, seed=0, device="cpu")
    assert len(draws) == expected_draws
    assert len(result.history) == 6


def test_reward_paper_runs(data):
    fit, validation, _, _ = data
    result = fit_irgan(fit, validation, dataclasses.replace(TINY, reward="paper", epochs=1), seed=0, device="cpu")
    assert all(row["g_reward"] > 0 for row in result.history)  # softplus is positive
    code = fit_irgan(fit, validation, dataclasses.replace(TINY, epochs=1), seed=0, device="cpu")
    assert all(-1 < row["g_reward"] < 1 for row in code.history)


def test_zero_d_or_g_epochs(data):
    fit, validation, _, _ = data
    no_g = fit_irgan(fit, validation, dataclasses.replace(TINY, g_epochs=0), seed=0, device="cpu")
    assert no_g.history == [] and no_g.best_generator["epoch"] == -1
    no_d = fit_irgan(fit, validation, dataclasses.replace(TINY, d_epochs=0, epochs=1), seed=0, device="cpu")
    assert len(no_d.history) == 3 and "d_loss" not in no_d.history[0]


def test_fit_irgan_starts_from_init(data):
    fit, validation, _, _ = data
    init = MatrixFactorization(*fit.shape, TINY.dim, init_scale=0.3, generator=torch.Generator().manual_seed(5))
    result = fit_irgan(fit, validation, dataclasses.replace(TINY, g_epochs=0, epochs=1), init=init, seed=0, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(weights(result.generator), weights(init)))  # G never moved
    with pytest.raises(ValueError, match="cannot start G"):
        fit_irgan(fit, validation, TINY, init=MatrixFactorization(fit.shape[0], fit.shape[1] + 1, TINY.dim))


def test_fit_irgan_refuses_empty_train(data):
    _, validation, _, _ = data
    with pytest.raises(ValueError, match="no positives"):
        fit_irgan(sp.csr_matrix(validation.shape, dtype=np.float32), validation, TINY, device="cpu")


# --- sample_fake -----------------------------------------------------------------------------

def peaked_generator(train: sp.csr_matrix) -> Generator:
    """A G whose softmax puts almost all mass on each user's own positives."""
    dense = train.toarray()
    return Generator(MatrixFactorization.from_arrays(dense, 10 * np.eye(dense.shape[1], dtype=np.float32),
                                                     np.zeros(dense.shape[1])))


def test_g_keeps_no_rows_of_its_draws_so_a_kept_copy_holds_only_its_tables():
    import copy
    import pickle

    rng = np.random.default_rng(1)
    train = sp.csr_matrix((rng.random((30, 40)) < 0.3).astype(np.float32))
    positives, users = PositiveSet(train), torch.arange(30)
    G = peaked_generator(train)
    before = len(pickle.dumps(copy.deepcopy(G)))
    first = sample_fake(G, positives, users, 1.0, False, torch.Generator().manual_seed(0), batch_users=7)
    assert len(pickle.dumps(copy.deepcopy(G))) == before  # no batch x items buffer rides along with G
    again = sample_fake(G, positives, users, 1.0, False, torch.Generator().manual_seed(0), batch_users=30)
    assert torch.equal(first, again)  # one buffer reused across batches draws as one batch does


def test_sample_fake_excludes_positives_when_asked():
    rng = np.random.default_rng(0)
    train = sp.csr_matrix((rng.random((6, 8)) < 0.4).astype(np.float32))
    positives, users = PositiveSet(train), torch.arange(6)
    G = peaked_generator(train)
    rows = torch.repeat_interleave(users, positives.counts)
    fake = sample_fake(G, positives, users, 1.0, False, torch.Generator().manual_seed(0))
    assert fake.shape == (train.nnz,)
    assert positives.contains(rows, fake).float().mean() > 0.9  # G proposes positives ...
    fake = sample_fake(G, positives, users, 1.0, True, torch.Generator().manual_seed(0), batch_users=4)
    assert fake.shape == (train.nnz,)
    assert not positives.contains(rows, fake).any()  # ... unless told not to


def test_sample_fake_refuses_to_exclude_positives_of_a_user_with_every_item():
    # user 0 has every item: with exclude_positives it has nothing to draw, and sample_fake says so
    train = sp.csr_matrix(np.array([[1, 1, 1, 1], [1, 0, 0, 0], [0, 1, 0, 1]], np.float32))
    positives = PositiveSet(train)
    G = peaked_generator(train)
    for users in (torch.arange(3), torch.tensor([1, 2, 0])):
        for batch_users in (1, 1024):  # refused up front, whichever batch holds that user
            with pytest.raises(ValueError, match="d_exclude_positives"):
                sample_fake(G, positives, users, 1.0, True, torch.Generator().manual_seed(0), batch_users=batch_users)
    # without exclusion that user is fine: its draws are its positives (all items)
    fake = sample_fake(G, positives, torch.arange(3), 1.0, False, torch.Generator().manual_seed(0))
    assert fake.shape == (train.nnz,)


def test_sample_fake_never_draws_a_positive_of_users_with_negatives():
    # users 1 and 2 have negatives: excluding positives, 3000 draws of a G peaked on their
    # positives never hit one (user 0, who has every item, is not asked for)
    train = sp.csr_matrix(np.array([[1, 1, 1, 1], [1, 0, 0, 0], [0, 1, 0, 1]], np.float32))
    positives, users = PositiveSet(train), torch.tensor([1, 2])
    G = peaked_generator(train)
    rows = torch.repeat_interleave(users, positives.counts[users])
    rng = torch.Generator().manual_seed(0)
    kept = torch.cat([sample_fake(G, positives, users, 1.0, False, rng) for _ in range(1000)])
    assert positives.contains(rows.repeat(1000), kept).float().mean() > 0.9  # control: G proposes positives
    for batch_users in (1, 2):
        drawn = torch.cat([sample_fake(G, positives, users, 1.0, True, rng, batch_users=batch_users)
                           for _ in range(1000)])
        assert drawn.shape == (3000,)
        assert not positives.contains(rows.repeat(1000), drawn).any()
        assert set(drawn[0::3].tolist()) == {1, 2, 3} and set(drawn[1::3].tolist()) | set(drawn[2::3].tolist()) == {0, 2}


def test_fit_irgan_refuses_d_exclude_positives_for_a_user_with_every_item():
    train = sp.csr_matrix(np.array([[1, 1, 1, 1, 1, 1], [1, 0, 0, 1, 0, 0], [0, 1, 0, 1, 0, 0]], np.float32))
    selection = sp.csr_matrix(np.array([[0] * 6, [0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]], np.float32))
    config = dataclasses.replace(TINY, d_exclude_positives=True, select_metric="P@3", epochs=1)
    with pytest.raises(ValueError, match="d_exclude_positives"):
        fit_irgan(train, selection, config, seed=0, device="cpu")
    fit_irgan(train, selection, dataclasses.replace(config, d_exclude_positives=False), seed=0, device="cpu")


def test_d_exclude_positives_in_the_loop(data):
    fit, validation, _, _ = data
    result = fit_irgan(fit, validation, dataclasses.replace(TINY, d_exclude_positives=True, epochs=1),
                       seed=0, device="cpu")
    assert len(result.history) == 3


# --- IRGANConfig -----------------------------------------------------------------------------

def test_config_defaults_are_the_papers():
    c = IRGANConfig()
    assert (c.dim, c.epochs, c.d_epochs, c.g_epochs, c.optimizer, c.d_lr, c.g_lr) == (5, 15, 100, 50, "sgd", 0.001, 0.001)
    assert (c.init, c.reward, c.d_negatives, c.select_metric) == ("dns", "code", "first", "P@5")
    assert c.pretrain == BPRConfig()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(reward="log"), dict(d_negatives="always"), dict(select_on="train"), dict(optimizer="rmsprop"),
        dict(dim=0), dict(epochs=0), dict(d_batch_size=0), dict(d_sample_every=0), dict(g_sample_factor=0),
        dict(g_batch_users=0), dict(eval_every=0), dict(d_epochs=-1), dict(g_epochs=-1),
        dict(g_mix=1.0), dict(g_mix=-0.1), dict(validation_fraction=0.0), dict(validation_fraction=1.0),
        dict(d_temperature=0.0), dict(g_temperature=-1.0), dict(d_lr=0.0), dict(g_lr=-0.001),
        dict(pretrain={"negatives": "bad"}),
    ],
)
def test_config_rejects_bad_choices(kwargs):
    with pytest.raises(ValueError):
        IRGANConfig(**kwargs)


@pytest.mark.parametrize("metric", ["P@0", "NDCG@x", "AUC", "P@10001", "mrr"])
def test_config_rejects_unknown_select_metric(metric):
    with pytest.raises(ValueError, match="select_metric must be one of"):
        IRGANConfig(select_metric=metric)


@pytest.mark.parametrize("metric", ["P@7", "NDCG@20", "HR@1", "MRR"])
def test_config_selects_on_any_cutoff(metric):
    assert IRGANConfig(select_metric=metric).select_metric == metric


def test_config_pretrain_dict_becomes_bprconfig():
    config = IRGANConfig(pretrain={"epochs": 3, "lr": 0.1})
    assert config.pretrain == BPRConfig(epochs=3, lr=0.1)
    assert IRGANConfig(**dataclasses.asdict(config)) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.dim = 7


# --- initial_generator -----------------------------------------------------------------------

def test_initial_generator_random_is_none(data):
    assert initial_generator(IRGANConfig(init="random"), data[0]) is None


@pytest.mark.parametrize("init, negatives", [("dns", "dns"), ("bpr", "uniform")])
def test_initial_generator_pretrains(data, init, negatives):
    # the pretraining's negatives follow --init and its dim follows --dim, whatever config.pretrain says
    pretrain = BPRConfig(epochs=1, dim=7, negatives="uniform" if init == "dns" else "dns")
    model = initial_generator(IRGANConfig(init=init, dim=3, pretrain=pretrain), data[0], seed=2)
    assert isinstance(model, MatrixFactorization) and (model.n_users, model.n_items, model.dim) == (60, 60, 3)
    expected = fit_bpr(data[0], BPRConfig(epochs=1, dim=3, negatives=negatives), seed=2)
    assert all(torch.equal(a, b) for a, b in zip(weights(model), weights(expected)))


def test_initial_generator_model_file_needs_ids(data, tmp_path):
    path = tmp_path / "g.npz"
    np.savez(path, user_emb=np.zeros((2, 2)), item_emb=np.zeros((3, 2)), item_bias=np.zeros(3))
    with pytest.raises(ValueError, match="user_ids and item_ids"):
        initial_generator(IRGANConfig(init=str(path)), data[0])
    with pytest.raises(FileNotFoundError):
        initial_generator(IRGANConfig(init=str(tmp_path / "missing.pkl")), data[0], np.arange(2), np.arange(3))


def authors_format_arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((4, 2), dtype=np.float32), rng.random((6, 2), dtype=np.float32), rng.random(6, dtype=np.float32)]


def test_initial_generator_reads_authors_pickle_format(tmp_path):
    arrays = authors_format_arrays()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(arrays))  # rows are raw id - 1, as in the authors' files
    users, items = np.array([2, 4]), np.array([5, 1, 3])
    model = initial_generator(IRGANConfig(init=str(path)), sp.csr_matrix((2, 3)), users, items)
    assert torch.equal(model.user_emb, torch.as_tensor(arrays[0][users - 1]))
    assert torch.equal(model.item_emb, torch.as_tensor(arrays[1][items - 1]))
    assert torch.equal(model.item_bias, torch.as_tensor(arrays[2][items - 1]))
    with pytest.raises(ValueError, match="no item rows"):
        initial_generator(IRGANConfig(init=str(path)), sp.csr_matrix((2, 3)), users, np.array([1, 7, 2]))


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_model_file_pickle_of_plain_arrays_loads_at_any_protocol(tmp_path, protocol):
    arrays = authors_format_arrays()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=protocol))
    model = initial_generator(IRGANConfig(init=str(path)), sp.csr_matrix((4, 6)), np.arange(1, 5), np.arange(1, 7))
    assert torch.equal(model.item_emb, torch.as_tensor(arrays[1]))


def test_initial_generator_refuses_malicious_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([Evil(marker)], protocol=2))
    with pytest.raises(ValueError, match="refusing to load|not a model file"):
        initial_generator(IRGANConfig(init=str(path)), sp.csr_matrix((2, 3)), np.arange(1, 3), np.arange(1, 4))
    assert not marker.exists()


def test_initial_generator_loads_the_authors_dns_model(shared_data):
    from irgan.data import load_dataset

    data = load_dataset("ml-100k", data_dir=shared_data, split="u1")
    path = shared_data / "irgan-ml100k" / "model_dns_ori.pkl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    model = initial_generator(IRGANConfig(init=str(path)), data.train.matrix, data.train.user_ids, data.train.item_ids)
    assert (model.n_users, model.n_items, model.dim) == (943, 1682, 5)
    metrics = evaluate(model, data.train.matrix, data.test.matrix)
    assert round(metrics["P@3"], 4) == 0.3845  # the figure the authors' files give (irgan-ml100k/README.md)
    assert round(metrics["P@5"], 4) == 0.3474


def test_in_a_terminal_each_outer_epochs_diagnostics_print_above_the_bar(data, capsys, monkeypatch, caplog):
    import irgan.progress
    monkeypatch.setattr(irgan.progress, "interactive", lambda: True)  # as in a terminal: the bar shows
    fit, validation, _, _ = data
    with caplog.at_level(logging.INFO, logger="irgan"):
        fit_irgan(fit, validation, TINY, seed=0, device="cpu", show_progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("outer epoch")]
    assert len(lines) == TINY.epochs
    for n, line in enumerate(lines, 1):
        assert line.startswith(f"outer epoch {n}/{TINY.epochs}, ")
        for part in ("D loss", "D acc real", "D acc fake", "G reward", "G entropy", "G coverage", "selection P@5"):
            assert part in line
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and r.getMessage().startswith("outer epoch")]
