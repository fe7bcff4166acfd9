"""The autograd objectives (``irgan.training.objectives``) against the hand-derived MF fast path
(``irgan.training.fast_mf``), step for step and over whole epochs of the game, and the policy-gradient
estimators G can train with."""
from __future__ import annotations

import math

import pytest
import torch
from helpers import DIM, N_ITEMS, make_model, planted, repeated_batch, seeded
from torch import nn

from irgan import kernels
from irgan.config import IRGANConfig
from irgan.training.fast_mf import bpr_loss, pointwise_loss, policy_gradient_loss
from irgan.models import Discriminator, Generator, MatrixFactorization
from irgan.training.objectives import (bpr_objective, exact_policy_gradient_objective, l2_term, pointwise_objective,
                              policy_gradient_objective, sample_weights)
from irgan.training.sampling import PositiveSet, positive_pairs, sample_fake, sample_rows
from irgan.adversarial.irgan.game import d_epoch, fit_irgan, g_epoch
from irgan.training.updates import DUpdate, FastDUpdate, FastGUpdate, GUpdate, d_update, g_update





def dense(model: nn.Module, updates) -> dict[str, torch.Tensor]:
    """The fast path's row-sparse updates scattered into one dense gradient per parameter."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for param, rows, grad in updates:
        if rows is None:
            out[names[id(param)]] += grad
        else:
            out[names[id(param)]].index_add_(0, rows, grad)
    return out


def autograd(model: nn.Module, loss_fn) -> tuple[float, dict[str, torch.Tensor]]:
    """Value and gradients of ``loss_fn(model)`` by autograd."""
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model)
    loss.backward()
    grads = {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def assert_grads_close(got: dict, expected: dict, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    assert got.keys() == expected.keys()
    for name in got:
        assert got[name].shape == expected[name].shape, name
        assert torch.allclose(got[name], expected[name], atol=atol, rtol=rtol), (name, (got[name] - expected[name]).abs().max())
    assert max(g.abs().max() for g in expected.values()) > 0.1  # not trivially zero



# --- one step: autograd objective vs hand-derived gradient -----------------------------------

@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_bpr_objective_matches_fast_bpr_loss(l2):
    model = make_model()
    users, pos, neg = repeated_batch(40)
    value, updates = bpr_loss(model, users, pos, neg, l2)
    expected_value, expected = autograd(model, lambda m: bpr_objective(m, users, pos, neg, l2))
    assert value == pytest.approx(expected_value, rel=1e-5)
    assert_grads_close(dense(model, updates), expected)


# n = 12 pairs: fewer than the model's 13 rows, the fast path's per-pair gradients; 2000: summed per row.
# lr * l2 * (occurrences of a row) reaches 0.75 (n = 12) and 1.25 (n = 2000): the SGD shrink matters.
@pytest.mark.parametrize("n, lr, l2", [(12, None, 0.5), (12, 0.5, 0.5), (2000, None, 0.5), (2000, 0.01, 0.5)])
def test_pointwise_objective_matches_fast_pointwise_loss(n, lr, l2):
    model = make_model(1)
    users, items, _ = repeated_batch(n, seed=2)
    labels = (torch.rand(n, generator=seeded(3)) < 0.5).float()
    value, updates = pointwise_loss(model, users, items, labels, l2, lr)
    _, expected = autograd(model, lambda m: pointwise_objective(m, users, items, labels, l2, lr))
    assert_grads_close(dense(model, updates), expected, atol=1e-4 if n > 100 else 1e-5)
    plain_value, plain = autograd(model, lambda m: pointwise_objective(m, users, items, labels, l2, None))
    assert value == pytest.approx(plain_value, rel=1e-5)  # the fast path reports the loss itself, shrink or not
    if lr is not None:  # the shrink changed the gradient: the comparison above is not the plain one again
        assert (plain["item_emb"] - expected["item_emb"]).abs().max() > 0.05 * plain["item_emb"].abs().max()


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_policy_gradient_objective_matches_fast_policy_gradient_loss(temperature):
    model = make_model(2)
    users = torch.tensor([3, 0, 4])  # distinct, unsorted; users 1 and 2 untouched
    g = seeded(5)
    rows, items = torch.randint(3, (30,), generator=g), torch.randint(N_ITEMS, (30,), generator=g)
    weights = torch.randn(30, generator=g)  # rewards can be negative

    def objective(m):
        log_p = torch.log_softmax(m.score_users(users) / temperature, 1)
        return policy_gradient_objective(log_p, rows, items, weights)

    value, updates = policy_gradient_loss(model, users, rows, items, weights, temperature)
    expected_value, expected = autograd(model, objective)
    assert value == pytest.approx(expected_value, rel=1e-5)
    assert_grads_close(dense(model, updates), expected)
    assert torch.equal(expected["user_emb"][[1, 2]], torch.zeros(2, DIM))


# --- whole epochs of the game: both paths give the same parameters ---------------------------

def play(config: IRGANConfig, fast_path: bool, lr_scale: float = 1.0) -> tuple[dict, dict, torch.Tensor]:
    """config.d_epochs D-epochs then config.g_epochs G-epochs from seeded MF players, every step on
    the fast path or by autograd; the parameters before and after, and the samples D saw."""
    train, _ = planted()
    n_users, n_items = train.shape
    G = Generator(MatrixFactorization(n_users, n_items, config.dim, config.init_scale, generator=seeded(0)))
    D = Discriminator(MatrixFactorization(n_users, n_items, config.dim, config.init_scale, generator=seeded(1)))
    snapshot = lambda: {f"{role}.{n}": p.detach().clone() for role, player in (("G", G), ("D", D))  # noqa: E731
                        for n, p in player.named_parameters()}
    before = snapshot()
    positives, active = PositiveSet(train), torch.arange(n_users)
    users, real = positive_pairs(train)
    d_step = d_update(D.scorer, config.optimizer, config.d_lr * lr_scale, fast_path)
    g_step = g_update(G.scorer, config.optimizer, config.g_lr * lr_scale, fast_path)
    assert isinstance(d_step, FastDUpdate) == fast_path and isinstance(g_step, FastGUpdate) == fast_path
    rng = seeded(5)  # fresh for each run: the same draws while the players agree
    fake = sample_fake(G, positives, active, config.d_temperature, config.d_exclude_positives, rng)
    for _ in range(config.d_epochs):
        d_epoch(d_step, users, real, fake, config, rng)
    for _ in range(config.g_epochs):
        g_epoch(G, D, g_step, positives, active, config, rng)
    return before, snapshot(), fake


# Largest |fast - autograd| / max|parameter| measured over the cases below: 2.1e-6 (G's item
# embeddings, Adam, minibatch D), float32 rounding; the others 2.6e-7 to 8.5e-7. Steps 1% larger
# move some parameter by 5e-3 of its scale or more (checked in each case), as does, under SGD, one
# player's gradient of one parameter 1% off; the tolerance sits ~10x above the first figure and
# 250x below the second. (Adam is blind to a gradient rescaled by a constant, not to one 1% off in direction.)
REL_TOL = 2e-5
GAME = dict(init="random", dim=5, init_scale=0.1, d_epochs=3, g_epochs=3, d_l2=0.2, g_l2=0.1, g_batch_users=16)
RATES = {"sgd": dict(d_lr=0.05, g_lr=1.0), "adam": dict(d_lr=0.02, g_lr=0.02)}


@pytest.mark.parametrize("optimizer, d_batch_size, extra", [
    ("sgd", 65536, {}),  # full-batch D: one step on all 1,200 pairs, rows repeated ~20 times (the SGD shrink)
    ("sgd", 50, {}),  # minibatch D, 100 pairs a step: the fast path's per-pair gradients
    ("adam", 65536, {}),
    ("adam", 50, {}),
    ("sgd", 50, dict(g_estimator="snis", g_temperature=0.5, reward="paper", g_lr=0.3)),
])
def test_fast_path_and_autograd_give_the_same_parameters_after_epochs_of_each_player(optimizer, d_batch_size, extra):
    config = IRGANConfig(optimizer=optimizer, d_batch_size=d_batch_size, **{**RATES[optimizer], **GAME, **extra})
    before, fast, fast_fake = play(config, fast_path=True)
    _, slow, slow_fake = play(config, fast_path=False)
    _, off, _ = play(config, fast_path=True, lr_scale=1.01)  # what a 1% larger step does
    with kernels.use(False):  # the fast path's torch reference for the compiled kernels
        _, reference, reference_fake = play(config, fast_path=True)
    assert torch.equal(fast_fake, slow_fake) and torch.equal(fast_fake, reference_fake)
    for name, value in fast.items():
        tol = REL_TOL * value.abs().max().item()
        assert torch.isfinite(value).all(), name
        assert (value - before[name]).abs().max() > 100 * tol, name  # it moved, far beyond the tolerance
        assert (value - slow[name]).abs().max() <= tol, (name, (value - slow[name]).abs().max().item(), tol)
        assert (value - reference[name]).abs().max() <= tol, name
        assert (value - off[name]).abs().max() > 10 * tol, name  # the comparison would catch a 1% error


def test_update_kinds_follow_fast_path_and_scorer():
    mf = make_model()
    assert type(d_update(mf, "sgd", 0.1, True)) is FastDUpdate and type(d_update(mf, "sgd", 0.1, False)) is DUpdate
    assert type(g_update(mf, "adam", 0.1, True)) is FastGUpdate and type(g_update(mf, "adam", 0.1, False)) is GUpdate
    assert type(d_update(TinyScorer(), "sgd", 0.1, True)) is DUpdate  # not MF: autograd whatever the flag


# --- policy-gradient weights and the exact expectation ---------------------------------------

def test_reinforce_weights_are_reward_times_ratio_over_count():
    g = seeded(7)
    rows = torch.tensor([2, 0, 0, 2, 1, 2, 0])  # unsorted, uneven counts
    counts = torch.bincount(rows, minlength=3)
    reward, p, q = torch.randn(7, generator=g), torch.rand(7, generator=g) + 0.1, torch.rand(7, generator=g) + 0.1
    weights = sample_weights("reinforce", reward, p, q, rows, counts)
    expected = torch.tensor([reward[k] * p[k] / q[k] / counts[rows[k]] for k in range(7)])
    assert torch.allclose(weights, expected, rtol=1e-6)


def test_snis_weights_are_normalised_per_row():
    g = seeded(8)
    rows = torch.tensor([2, 0, 0, 2, 1, 2, 0, 3])
    counts = torch.bincount(rows, minlength=5)  # row 4 has no samples
    reward, p, q = torch.randn(8, generator=g), torch.rand(8, generator=g) + 0.1, torch.rand(8, generator=g) + 0.1
    ratio = p / q
    weights = sample_weights("snis", reward, p, q, rows, counts)
    assert torch.allclose(weights[rows == 1], reward[rows == 1])  # a row of one sample gets its reward
    for r in range(4):
        mine = rows == r
        assert weights[mine].sum() == pytest.approx(((reward * ratio)[mine].sum() / ratio[mine].sum()).item(), rel=1e-5)
        assert torch.allclose(weights[mine], reward[mine] * ratio[mine] / ratio[mine].sum())
    constant = sample_weights("snis", torch.full((8,), 0.7), p, q, rows, counts)  # constant reward r: rows sum to r
    sums = torch.zeros(5).index_add_(0, rows, constant)
    assert torch.allclose(sums, torch.tensor([0.7, 0.7, 0.7, 0.7, 0.0]))
    # unlike REINFORCE's, whose rows sum to r times the mean ratio
    plain = torch.zeros(5).index_add_(0, rows, sample_weights("reinforce", torch.full((8,), 0.7), p, q, rows, counts))
    assert not torch.allclose(plain, sums, atol=1e-3)


@pytest.mark.parametrize("estimator", ["exact", "REINFORCE", ""])
def test_sample_weights_rejects_other_estimators(estimator):
    one = torch.ones(1)
    with pytest.raises(ValueError, match="estimator"):
        sample_weights(estimator, one, one, one, torch.zeros(1, dtype=torch.long), torch.ones(1, dtype=torch.long))


def exact_setup():
    g = seeded(11)
    logits = torch.randn(3, 6, generator=g) * 1.5
    reward = torch.rand(3, 6, generator=g) * 2 - 1
    p = torch.softmax(logits, 1)
    return logits, reward, p, p * (reward - (p * reward).sum(1, keepdim=True))  # d E_p[r] / d logits


def test_exact_policy_gradient_is_the_gradient_of_the_expected_reward():
    logits, reward, p, ascent = exact_setup()
    z = logits.clone().requires_grad_()
    loss = exact_policy_gradient_objective(torch.log_softmax(z, 1), reward)
    loss.backward()
    assert loss.item() == pytest.approx(-(p * reward * torch.log(p)).sum().item(), rel=1e-5)
    assert torch.allclose(z.grad, -ascent, atol=1e-6)  # a loss: minus the ascent direction
    assert ascent.abs().max() > 0.1
    # the same as autograd through the expectation itself
    z2 = logits.clone().requires_grad_()
    (-(torch.softmax(z2, 1) * reward).sum()).backward()
    assert torch.allclose(z.grad, z2.grad, atol=1e-6)


def test_reinforce_gradients_average_to_the_exact_one():
    """Draws from q = p (mix 0) weighted by sample_weights('reinforce'): the mean gradient converges."""
    logits, reward, p, ascent = exact_setup()
    n = 50_000
    counts = torch.full((3,), n)
    items = sample_rows(p, counts, seeded(12))
    rows = torch.repeat_interleave(torch.arange(3), counts)
    p_drawn = p[rows, items]
    weights = sample_weights("reinforce", reward[rows, items], p_drawn, p_drawn, rows, counts)
    z = logits.clone().requires_grad_()
    policy_gradient_objective(torch.log_softmax(z, 1), rows, items, weights).backward()
    # one draw of item i ascends along r_i (e_i - p): its variance per logit, over draws from p
    per_draw = reward[:, :, None] * (torch.eye(6)[None] - p[:, None, :])  # (row, item drawn, logit)
    variance = (p[:, :, None] * per_draw ** 2).sum(1) - ascent ** 2
    err = (-z.grad - ascent).abs()
    assert (err <= 5 * (variance / n).sqrt() + 1e-6).all(), (err, (variance / n).sqrt())
    assert ((variance / n).sqrt().max() * 5) < 0.2 * ascent.abs().max()  # the test would see a wrong mean


# --- L2 on a scorer without penalty ----------------------------------------------------------

class TinyScorer(nn.Module):
    """A scorer with no ``penalty``: every parameter counts in the L2, buffers do not."""

    def __init__(self) -> None:
        super().__init__()
        g = seeded(13)
        self.users = nn.Parameter(torch.randn(4, 2, generator=g))
        self.items = nn.Parameter(torch.randn(6, 2, generator=g))
        self.scale = nn.Parameter(torch.tensor(1.7))
        self.register_buffer("offset", torch.full((6,), 3.0))

    def score(self, users, items):
        return self.scale * (self.users[users] * self.items[items]).sum(-1) + self.offset[items]

    def score_users(self, users):
        return self.scale * self.users[users] @ self.items.T + self.offset


def test_l2_term_without_penalty_is_half_l2_times_all_squared_parameters():
    scorer = TinyScorer()
    users, items = torch.tensor([0, 0]), torch.tensor([1])  # the rows touched do not matter
    squares = scorer.users.square().sum() + scorer.items.square().sum() + scorer.scale.square()
    term = l2_term(scorer, 0.3, users, items)
    assert term.item() == pytest.approx((0.3 / 2 * squares).item(), rel=1e-6)
    assert l2_term(scorer, 0.3, users, items, lr=0.1).item() == pytest.approx(term.item())  # no per-row shrink
    term.backward()
    assert torch.allclose(scorer.items.grad, 0.3 * scorer.items.detach())  # untouched rows too
    assert l2_term(scorer, 0.0, users, items).item() == 0.0


# --- the game end to end with the other estimators --------------------------------------------

@pytest.mark.parametrize("estimator", ["snis", "exact"])
def test_fit_irgan_with_snis_and_exact_estimators(estimator):
    train, test = planted(users_per_group=6, items_per_group=10)
    config = IRGANConfig(init="random", g_estimator=estimator, epochs=2, d_epochs=2, g_epochs=2, dim=4,
                         optimizer="adam", d_lr=0.05, g_lr=0.05, init_scale=0.1, select_on="test")
    result = fit_irgan(train, test, config, seed=0, device="cpu")
    assert all(torch.isfinite(p).all() for player in (result.generator, result.discriminator) for p in player.parameters())
    assert len(result.history) == config.epochs * config.g_epochs
    for row in result.history:
        assert ("g_coverage" in row) == (estimator != "exact")
        assert math.isfinite(row["g_reward"]) and math.isfinite(row["d_loss"]) and 0 < row["g_entropy_share"] <= 1 + 1e-6
    entropies = [row["g_entropy"] for row in result.history]
    assert max(entropies) - min(entropies) > 1e-4  # G's softmax changed from G-epoch to G-epoch: it trained
