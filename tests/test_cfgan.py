"""CFGAN (irgan.adversarial.cfgan): its losses and samples by hand, its networks and scorer against
dense references, its training on planted blocks, and the estimator contract every model passes."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
import test_estimator as shared  # the shared contract, run here on a fitted CFGANRecommender

import irgan.adversarial.cfgan.scorer as scorer_module
from irgan.adversarial.cfgan import CFGANConfig, CFGANRecommender, CFGANScorer, train_cfgan
from irgan.adversarial.cfgan.game import (_adam, d_step, discriminator_loss, epoch_masks, g_step, generator_loss,
                                          reconstruction_loss, sample_unobserved)
from irgan.adversarial.cfgan.nets import DiscriminatorNet, GeneratorNet, SparseLinear
from irgan.metrics import evaluate
from irgan.recommender import Recommender, ranking_scorer

# Small and quick: each epoch one pass of D and one of G; learning rates raised to learn in 30 epochs.
TINY = dict(epochs=30, g_hidden=32, d_hidden=8, g_batch_size=16, d_batch_size=16, g_steps=1, d_steps=1,
            g_lr=1e-2, d_lr=1e-2, device="cpu")
CONTRACT = (shared.test_exclude_seen_and_short_lists, shared.test_methods_before_fit_raise_not_fitted,
            shared.test_recommend_returns_k_unseen_items_per_user_by_rank,
            shared.test_recommend_scalar_user_equals_list_of_one,
            shared.test_recommend_unknown_user_raises_keyerror_naming_it,
            shared.test_save_load_round_trip_is_identical, shared.test_score_pairs_agrees_with_recommend)


@pytest.fixture(scope="module")
def data() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """test_estimator's planted blocks: 60 users x 40 items in 4 groups, 6 of each user's 10 in train."""
    return shared.planted()


@pytest.fixture(scope="module", params=["item", "user"])
def fitted(request, data) -> CFGANRecommender:
    return CFGANRecommender(mode=request.param, **TINY).fit(data[0])


# --- the losses and samples, by hand ------------------------------------------------------------

class SumD(torch.nn.Module):
    """A stand-in D whose logit is sum(vector) - sum(condition), so each logit is known by hand."""

    def forward(self, condition: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        return vector.sum(1) - condition.sum(1)


CONDITION = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
OUTPUT = torch.tensor([[0.5, -1.0, 2.0], [1.0, 1.0, -1.0]])  # G's output for each condition
PM_MASK = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])  # observed entries plus the PM sample
ZR_MASK = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_generator_loss_by_hand():
    # G ⊙ mask = [0.5, -1, 0] and [0, 1, -1]: logits 0.5 - 1 + 0 - 1 = -1.5 and 0 - 2 = -2.
    # ZR: the squares on the sample, 2² = 4 and 1² = 1, summed per vector, averaged over the batch.
    adversarial = (softplus(1.5) + softplus(2.0)) / 2  # -log σ(logit), the non-saturating loss
    loss = generator_loss(SumD(), CONDITION, OUTPUT, PM_MASK, ZR_MASK, zr_coefficient=0.1)
    assert loss.item() == pytest.approx(adversarial + 0.1 * (4 + 1) / 2, rel=1e-6)
    assert generator_loss(SumD(), CONDITION, OUTPUT, PM_MASK, None, 0.1).item() == pytest.approx(adversarial, rel=1e-6)
    # ZR only: D sees G's output on the observed entries alone: [0.5, 0, 0] and [0, 1, -1]
    zr_only = (softplus(0.5) + softplus(2.0)) / 2 + 0.1 * 2.5
    assert generator_loss(SumD(), CONDITION, OUTPUT, CONDITION, ZR_MASK, 0.1).item() == pytest.approx(zr_only, rel=1e-6)


def test_reconstruction_loss_by_hand():
    # G ⊙ mask - c = [-0.5, -1, 0] and [0, 0, -2]: squares summed 1.25 and 4, mean 2.625; ZR as above
    loss = reconstruction_loss(CONDITION, OUTPUT, PM_MASK, ZR_MASK, zr_coefficient=0.1)
    assert loss.item() == pytest.approx(2.625 + 0.1 * 2.5, rel=1e-6)
    assert reconstruction_loss(CONDITION, OUTPUT, PM_MASK, None, 0.1).item() == pytest.approx(2.625, rel=1e-6)


def test_without_the_adversary_d_never_moves_and_g_fits_the_real_vectors():
    g, d = GeneratorNet(3, 4), DiscriminatorNet(3, 2)
    config = CFGANConfig(adversary=False, zr_coefficient=0.0)
    before_d = [p.clone() for p in d.parameters()]
    optimizer = _adam(g, 0.05, 0.0)
    first = g_step(g, d, optimizer, CONDITION, CONDITION, None, config)
    for _ in range(200):
        last = g_step(g, d, optimizer, CONDITION, CONDITION, None, config)
    assert all(torch.equal(a, b) for a, b in zip(before_d, d.parameters()))
    assert last < 0.05 * first  # the observed entries rebuilt: no D in the loss


def test_training_without_the_adversary_trains_g_alone(data):
    config = CFGANConfig(**{k: v for k, v in TINY.items() if k != "device"} | {"epochs": 3, "adversary": False})
    fit = train_cfgan(data[0], config, seed=0, device="cpu")
    start = train_cfgan(data[0], CFGANConfig(**{**config.__dict__, "epochs": 0}), seed=0, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(start.discriminator.parameters(), fit.discriminator.parameters()))
    assert not torch.equal(start.scorer.net.first.weight, fit.scorer.net.first.weight)
    assert all(math.isnan(row["d_loss"]) for row in fit.losses) and all(row["g_loss"] > 0 for row in fit.losses)


def test_discriminator_loss_by_hand():
    # real: D(c, c) = 0 for both rows; fake: logits -1.5 and -2 as above
    fake = OUTPUT * PM_MASK
    expected = math.log(2) + (softplus(-1.5) + softplus(-2.0)) / 2
    assert discriminator_loss(SumD(), CONDITION, CONDITION, fake).item() == pytest.approx(expected, rel=1e-6)


def test_sample_unobserved_draws_the_authors_count_among_unobserved_entries():
    observed = torch.rand(50, 37, generator=torch.Generator().manual_seed(1)) < torch.linspace(0, 0.9, 50)[:, None]
    for ratio in (0.0, 0.3, 0.7, 1.0):
        mask = sample_unobserved(observed, ratio, torch.Generator().manual_seed(2))
        expected = np.floor((~observed).sum(1).numpy() * ratio + 1e-9)  # int(n * ratio), not a Bernoulli count
        np.testing.assert_array_equal(mask.sum(1).numpy(), expected)
        assert not (mask.bool() & observed).any() and set(mask.unique().tolist()) <= {0.0, 1.0}
    first, again = (sample_unobserved(observed, 0.7, torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(first, again)
    assert not torch.equal(first, sample_unobserved(observed, 0.7, torch.Generator().manual_seed(4)))


def test_sample_unobserved_is_uniform_over_the_unobserved_entries():
    """4,000 rows alike (entries 0 and 5 observed, 8 unobserved, 3 drawn): each unobserved entry in 3/8 of them."""
    observed = torch.zeros(4000, 10, dtype=torch.bool)
    observed[:, [0, 5]] = True
    frequency = sample_unobserved(observed, 0.4, torch.Generator().manual_seed(0)).mean(0).numpy()
    assert frequency[[0, 5]].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(np.delete(frequency, [0, 5]), 3 / 8, atol=0.03)


@pytest.mark.parametrize("scheme", ["ZP", "ZR", "PM"])
def test_epoch_masks_follow_the_scheme(scheme):
    condition = (torch.rand(30, 20, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    unobserved = (condition == 0).sum(1).numpy()
    mask, zr = epoch_masks(condition, CFGANConfig(scheme=scheme, zr_ratio=0.5, pm_ratio=0.25),
                           torch.Generator().manual_seed(0))
    assert (mask >= condition).all()  # D always sees G's output on the observed entries
    pm_drawn = (mask - condition).sum(1).numpy()
    np.testing.assert_array_equal(pm_drawn, np.floor(unobserved * 0.25) if scheme != "ZR" else 0)
    if scheme == "PM":
        assert zr is None
    else:
        np.testing.assert_array_equal(zr.sum(1).numpy(), np.floor(unobserved * 0.5))
        assert not (zr.bool() & (condition > 0)).any()


def test_l2_is_the_authors_half_sum_of_squares():
    """Adam's coupled weight decay l2 moves G exactly as Adam on loss + l2 x ½‖θ‖² (TensorFlow's l2_loss)."""
    g, twin = GeneratorNet(3, 4, generator=torch.Generator().manual_seed(0)), GeneratorNet(3, 4)
    twin.load_state_dict(g.state_dict())
    g_step(g, SumD(), _adam(g, lr=0.01, l2=0.5), CONDITION, PM_MASK, ZR_MASK, CFGANConfig(zr_coefficient=0.1))
    optimizer = torch.optim.Adam(twin.parameters(), lr=0.01)
    loss = generator_loss(SumD(), CONDITION, twin(CONDITION), PM_MASK, ZR_MASK, 0.1)
    (loss + 0.5 * sum(p.square().sum() for p in twin.parameters()) / 2).backward()
    optimizer.step()
    for mine, reference in zip(g.parameters(), twin.parameters()):
        torch.testing.assert_close(mine, reference)


def test_each_step_moves_only_its_own_network():
    g, d = GeneratorNet(3, 4), DiscriminatorNet(3, 2)
    before_g, before_d = ([p.clone() for p in net.parameters()] for net in (g, d))
    g_step(g, d, _adam(g, 0.01, 0.0), CONDITION, PM_MASK, ZR_MASK, CFGANConfig())
    assert all(torch.equal(a, b) for a, b in zip(before_d, d.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before_g, g.parameters()))
    with torch.no_grad():
        fake = g(CONDITION) * PM_MASK
    moved_g = [p.clone() for p in g.parameters()]
    d_step(d, _adam(d, 0.01, 0.0), CONDITION, fake)
    assert all(torch.equal(a, b) for a, b in zip(moved_g, g.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before_d, d.parameters()))


# --- networks and scorer against dense references ------------------------------------------------

def test_sparse_linear_is_a_dense_layer():
    layer = SparseLinear(6, 4, bound=0.5, generator=torch.Generator().manual_seed(0))
    x = torch.tensor([[0, 1, 0, 0, 1, 0], [0] * 6, [2, 0, 0, 0, 0, 3]], dtype=torch.float32)  # an empty row too
    out = layer(x)
    torch.testing.assert_close(out, x @ layer.weight + layer.bias)
    out.square().sum().backward()
    reference = layer.weight.detach().clone().requires_grad_()
    (x @ reference + layer.bias.detach()).square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, reference.grad)


def test_discriminator_reads_the_concatenation():
    d = DiscriminatorNet(3, 5, generator=torch.Generator().manual_seed(0))
    first = torch.nn.Linear(6, 5)
    with torch.no_grad():
        first.weight.copy_(torch.cat([d.condition_layer.weight, d.vector_weight]).T)
        first.bias.copy_(d.condition_layer.bias)
    vector = torch.tensor([[0.3, -0.2, 0.9], [0.0, 1.0, 1.0]])
    expected = d.rest(first(torch.cat([CONDITION, vector], 1))).squeeze(1)
    torch.testing.assert_close(d(CONDITION, vector), expected)


@pytest.mark.parametrize("mode", ["item", "user"])
def test_scorer_rebuilds_the_right_vectors(mode, data, monkeypatch):
    train = data[0]
    scorer = CFGANScorer(*train.shape, mode=mode, hidden=8, interactions=train,
                         generator=torch.Generator().manual_seed(0))
    dense = torch.as_tensor(train.toarray())
    users = torch.tensor([0, 17, 59, 3])
    with torch.no_grad():
        # item-based: user u's score for item i is G(X[:, i])[u]; user-based: G(X[u])[i]
        expected = scorer.net(dense.T).T[users] if mode == "item" else scorer.net(dense[users])
        monkeypatch.setattr(scorer_module, "BATCH_ELEMENTS", 7 * train.shape[0])  # items in batches of 7
        torch.testing.assert_close(scorer.score_users(users), expected)
        items = torch.tensor([5, 39, 0, 5])
        torch.testing.assert_close(scorer.score(users, items), expected[torch.arange(4), items])
    torch.testing.assert_close(scorer.conditions(), dense.T if mode == "item" else dense)


# --- training ----------------------------------------------------------------------------------

def test_training_is_deterministic_under_a_seed(data):
    config = CFGANConfig(**{k: v for k, v in TINY.items() if k != "device"} | {"epochs": 3})
    one, two, other = (train_cfgan(data[0], config, seed=s, device="cpu") for s in (5, 5, 6))
    for a, b in zip(one.scorer.state_dict().values(), two.scorer.state_dict().values()):
        assert torch.equal(a, b)
    assert one.losses == two.losses and one.losses != other.losses
    assert not torch.equal(one.scorer.net.first.weight, other.scorer.net.first.weight)


def test_training_beats_random_on_planted_blocks(fitted, data):
    train, test = data
    untrained = CFGANRecommender(mode=fitted.config.mode, **{**TINY, "epochs": 0}).fit(train)
    p5 = evaluate(fitted.model_, train, test)["P@5"]
    assert p5 > 0.5 > evaluate(untrained.model_, train, test)["P@5"]  # random ranking: 4 of 34 unseen items, 0.12
    assert fitted.best_epoch_ == TINY["epochs"] and fitted.history_ == [] and len(fitted.losses_) == TINY["epochs"]


def test_validation_keeps_the_best_epoch_and_stops_early(data):
    train, test = data
    seen = []
    model = CFGANRecommender(**{**TINY, "epochs": 400, "eval_every": 2, "patience": 3, "select_metric": "P@5",
                                "on_epoch": lambda epoch, scorer: seen.append(epoch)}).fit(train, validation=test)
    epochs = [row["epoch"] for row in model.history_]
    assert epochs == list(range(2, 2 * len(epochs) + 1, 2)) and seen == list(range(epochs[-1]))
    assert epochs[-1] < 400 and epochs[-1] == model.best_epoch_ + 6  # three checks without a gain
    best = max(model.history_, key=lambda row: row["P@5"])
    assert model.best_epoch_ == best["epoch"] and model.validation_metrics_["P@5"] == best["P@5"]
    assert evaluate(model.model_, train, test)["P@5"] == pytest.approx(best["P@5"])


# --- the estimator contract ----------------------------------------------------------------------

@pytest.mark.parametrize("check", CONTRACT, ids=[c.__name__ for c in CONTRACT])
def test_the_shared_contract(check, fitted, data, tmp_path):
    arguments = {"fitted": fitted, "data": data, "tmp_path": tmp_path}
    check(**{name: arguments[name] for name in check.__code__.co_varnames[:check.__code__.co_argcount]})


def test_similar_items_needs_embeddings_cfgan_has_none(fitted):
    with pytest.raises(NotImplementedError, match="no user_emb / item_emb"):
        fitted.similar_items(0)


def test_clone_refits_the_same(fitted, data):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "user_items_")
    copy.fit(data[0])
    pd.testing.assert_frame_equal(copy.recommend([3, 40], k=5), fitted.recommend([3, 40], k=5))


def test_raw_ids_survive_fit_save_and_load(data, tmp_path):
    coo = data[0].tocoo()
    frame = pd.DataFrame({"user": [f"u{u}" for u in coo.row], "item": [f"movie {i}" for i in coo.col],
                          "rating": 1.0})
    model = CFGANRecommender(**TINY, min_rating=None).fit(frame)
    recs = model.recommend(["u3", "u40"], k=3)
    assert recs["user"].tolist() == ["u3"] * 3 + ["u40"] * 3 and recs["item"].str.startswith("movie ").all()
    model.save(tmp_path / "cfgan.pt")
    loaded = Recommender.load(tmp_path / "cfgan.pt", device="cpu")
    assert isinstance(loaded, CFGANRecommender) and loaded.config == model.config
    pd.testing.assert_frame_equal(loaded.recommend(["u3", "u40"], k=3), recs)
    assert loaded.losses_ == model.losses_ and loaded.best_epoch_ == model.best_epoch_


def test_grid_search_over_a_config_field(data):
    coo = sp.vstack(data).tocoo()
    rows = pd.DataFrame({"user": coo.row, "item": coo.col})
    search = GridSearchCV(CFGANRecommender(**{**TINY, "epochs": 10}), {"g_hidden": [4, 16]},
                          scoring=ranking_scorer("P@5"), cv=KFold(2, shuffle=True, random_state=0)).fit(rows)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,) and np.isfinite(scores).all() and (scores > 0).all()
    best = search.best_estimator_
    assert best.config.g_hidden == search.best_params_["g_hidden"] and best.model_.hidden == best.config.g_hidden
    assert best.config.epochs == 10 and best.user_items_.nnz == len(rows)


@pytest.mark.parametrize("params, message", [
    ({"mode": "both"}, "mode must be one of"),
    ({"scheme": "ZZ"}, "scheme must be one of"),
    ({"zr_ratio": 1.5}, r"zr_ratio must be in \[0, 1\]"),
    ({"g_lr": 0.0}, "g_lr must be positive"),
    ({"d_l2": -1.0}, "d_l2 must be >= 0"),
    ({"g_hidden": 0}, "g_hidden must be >= 1"),
    ({"activation": "relu"}, "activation must be one of"),
    ({"select_metric": "P@0"}, "select_metric must be one of"),
    ({"patience": 0}, "patience must be an integer >= 1 or None"),
    ({"on_epoch": 3}, "on_epoch must be a callable"),
])
def test_bad_parameters_raise_one_line(params, message):
    with pytest.raises(ValueError, match=message):
        CFGANRecommender(**params)


def test_defaults_are_the_authors_ml100k_settings():
    config = CFGANConfig()
    assert (config.mode, config.scheme, config.g_hidden, config.d_hidden, config.g_layers, config.d_layers) == \
        ("item", "ZP", 400, 125, 1, 1)
    assert (config.g_l2, config.d_l2, config.g_lr, config.d_lr) == (1e-3, 0.0, 1e-4, 1e-4)
    assert (config.g_batch_size, config.d_batch_size, config.g_steps, config.d_steps) == (32, 64, 4, 2)
    assert (config.zr_ratio, config.pm_ratio, config.zr_coefficient, config.epochs) == (0.7, 0.7, 0.03, 250)
