"""Hand-written losses against autograd, the row optimizer, and the REINFORCE estimator G trains with."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from helpers import DIM, N_ITEMS, N_USERS, make_model, repeated_batch, seeded
from irgan.config import IRGANConfig
from irgan.training.fast_mf import (bpr_loss, bpr_sgd_step, packed_items, packed_users, pair_products, pointwise_loss,
                          policy_gradient_loss)
from irgan.training.fast_mf import RowOptimizer
from irgan.models import Discriminator, Generator
from irgan.training.sampling import PositiveSet, sample_rows
from irgan.adversarial.irgan.game import g_epoch
from irgan.training.updates import FastGUpdate, g_update





def dense(model: torch.nn.Module, updates) -> dict[str, torch.Tensor]:
    """Scatter row-sparse updates into one dense gradient per parameter (repeated rows add up)."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for param, rows, grad in updates:
        name = names[id(param)]
        if rows is None:
            out[name] += grad
        else:
            out[name].index_add_(0, rows, grad)
    return out


def autograd(model: torch.nn.Module, loss_fn) -> tuple[float, dict[str, torch.Tensor]]:
    """Value and gradients of ``loss_fn(model)`` by autograd, on the model's own parameters."""
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        loss = loss_fn(model)
        loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def assert_close(got: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float, what: str = "") -> None:
    # (torch's own assert_close imports torch.distributed on first use: seconds)
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    assert torch.allclose(got, expected, atol=atol, rtol=rtol), (what, (got - expected).abs().max().item())


def assert_grads_close(got: dict, expected: dict, atol: float = 1e-5) -> None:
    assert got.keys() == expected.keys()
    for name in got:
        assert_close(got[name], expected[name], atol, 1e-4, name)



# --- losses vs autograd ----------------------------------------------------------------------

@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_bpr_loss_matches_autograd(l2):
    model = make_model()
    users, pos, neg = repeated_batch()

    def documented(m):
        x = m.score(users, pos) - m.score(users, neg)
        reg = (m.user_emb[users].square().sum() + m.item_emb[pos].square().sum() + m.item_bias[pos].square().sum()
               + m.item_emb[neg].square().sum() + m.item_bias[neg].square().sum())
        return -F.logsigmoid(x).sum() + l2 / 2 * reg

    value, updates = bpr_loss(model, users, pos, neg, l2)
    expected_value, expected_grads = autograd(model, documented)
    assert value == pytest.approx(expected_value, rel=1e-5)
    assert_grads_close(dense(model, updates), expected_grads)


@pytest.mark.parametrize("n", [8, 40])  # fewer pairs than model rows: per-pair gradients; more: summed per row
@pytest.mark.parametrize("l2", [0.0, 0.2])
def test_pointwise_loss_matches_autograd(l2, n):
    model = make_model()
    users, items, _ = repeated_batch(n, seed=1)
    labels = (torch.rand(len(users), generator=seeded(2)) < 0.5).float()

    def documented(m):
        s = torch.sigmoid(m.score(users, items))
        bce = -(labels * torch.log(s) + (1 - labels) * torch.log(1 - s)).sum()
        reg = m.user_emb[users].square().sum() + m.item_emb[items].square().sum() + m.item_bias[items].square().sum()
        return bce + l2 / 2 * reg

    value, updates = pointwise_loss(model, users, items, labels, l2)
    expected_value, expected_grads = autograd(model, documented)
    assert value == pytest.approx(expected_value, rel=1e-5)
    assert_grads_close(dense(model, updates), expected_grads)


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_policy_gradient_loss_matches_autograd(temperature):
    model = make_model()
    users = torch.tensor([3, 0, 4])  # distinct users, not sorted; user 1 and 2 untouched
    g = seeded(5)
    rows = torch.randint(3, (30,), generator=g)
    items = torch.randint(N_ITEMS, (30,), generator=g)  # many repeated (row, item) pairs
    weights = torch.randn(30, generator=g)  # rewards can be negative

    def documented(m):
        log_p = torch.log_softmax(m.score_users(users) / temperature, 1)
        return -(weights * log_p[rows, items]).sum()

    value, updates = policy_gradient_loss(model, users, rows, items, weights, temperature)
    expected_value, expected_grads = autograd(model, documented)
    assert value == pytest.approx(expected_value, rel=1e-5)
    assert_grads_close(dense(model, updates), expected_grads)
    assert torch.equal(dense(model, updates)["user_emb"][[1, 2]], torch.zeros(2, DIM))

    # the precomputed p path gives the same answer
    p = Generator(model).log_probs(users, temperature).exp().detach()
    value2, updates2 = policy_gradient_loss(model, users, rows, items, weights, temperature, p=p)
    assert value2 == pytest.approx(value, rel=1e-6)
    assert_grads_close(dense(model, updates2), dense(model, updates), atol=1e-6)


def test_bpr_sgd_step_is_bpr_loss_then_sgd():
    model, packed = make_model(), make_model()
    users, pos, neg = repeated_batch()
    RowOptimizer("sgd", list(model.parameters()), 0.05).step(bpr_loss(model, users, pos, neg, 0.1)[1])
    users_ext, items_ext = packed_users(packed), packed_items(packed)
    bpr_sgd_step(users_ext, items_ext, users, pos, neg, 0.05, 0.1)
    assert_close(users_ext[:, :-1], model.user_emb.detach(), 1e-6, 1e-5, "user_emb")
    assert torch.equal(users_ext[:, -1], torch.ones(N_USERS))
    assert_close(items_ext[:, :-1], model.item_emb.detach(), 1e-6, 1e-5, "item_emb")
    assert_close(items_ext[:, -1], model.item_bias.detach(), 1e-6, 1e-5, "item_bias")
    assert not torch.equal(items_ext[:, -1], packed.item_bias.detach())  # it moved


def test_pair_products_sum_repeated_unsorted_pairs():
    g = seeded(9)
    rows, cols, values = torch.randint(4, (50,), generator=g), torch.randint(6, (50,), generator=g), torch.randn(50, generator=g)
    left, right = torch.randn(4, 3, generator=g), torch.randn(6, 3, generator=g)
    W = torch.zeros(4, 6).index_put_((rows, cols), values, accumulate=True)
    by_row, by_col = pair_products(rows, cols, values, (4, 6), left, right)
    assert torch.allclose(by_row, W @ right, atol=1e-5) and torch.allclose(by_col, W.T @ left, atol=1e-5)


def test_losses_do_not_touch_parameters_or_build_graphs():
    model = make_model()
    before = [p.detach().clone() for p in model.parameters()]
    users, pos, neg = repeated_batch()
    for _, updates in (bpr_loss(model, users, pos, neg, 0.1),
                       pointwise_loss(model, users, pos, torch.ones(len(users)), 0.1),
                       policy_gradient_loss(model, torch.tensor([0, 1]), torch.tensor([0, 1]), pos[:2], torch.ones(2))):
        assert all(not grad.requires_grad for _, _, grad in updates)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# --- RowOptimizer ----------------------------------------------------------------------------

def test_row_optimizer_sgd_is_the_manual_update():
    model = make_model()
    users, pos, neg = repeated_batch()
    _, updates = bpr_loss(model, users, pos, neg, 0.1)
    grads = dense(model, updates)
    expected = {n: p.detach() - 0.05 * grads[n] for n, p in model.named_parameters()}
    RowOptimizer("sgd", list(model.parameters()), 0.05).step(updates)
    for name, p in model.named_parameters():
        assert_close(p.detach(), expected[name], 1e-6, 1e-5, name)


def test_row_optimizer_dense_rows_none():
    model = make_model()
    _, updates = policy_gradient_loss(model, torch.tensor([0]), torch.tensor([0, 0]), torch.tensor([2, 5]),
                                      torch.tensor([1.0, 0.5]))
    assert any(rows is None for _, rows, _ in updates)
    grads = dense(model, updates)
    expected = {n: p.detach() - 0.1 * grads[n] for n, p in model.named_parameters()}
    RowOptimizer("sgd", list(model.parameters()), 0.1).step(updates)
    for name, p in model.named_parameters():
        assert_close(p.detach(), expected[name], 1e-6, 1e-5, name)


def test_row_optimizer_adam_matches_torch_adam():
    model, reference = make_model(), make_model()
    opt = RowOptimizer("adam", list(model.parameters()), 0.01)
    ref_opt = torch.optim.Adam(reference.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    for step in range(3):
        users, pos, neg = repeated_batch(seed=step)
        _, updates = bpr_loss(model, users, pos, neg, 0.1)
        opt.step(updates)
        _, grads = autograd(reference, lambda m: -F.logsigmoid(m.score(users, pos) - m.score(users, neg)).sum()
                            + 0.05 * (m.user_emb[users].square().sum() + m.item_emb[pos].square().sum()
                                      + m.item_bias[pos].square().sum() + m.item_emb[neg].square().sum()
                                      + m.item_bias[neg].square().sum()))
        for name, p in reference.named_parameters():
            p.grad = grads[name]
        ref_opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    for a, b in zip(model.parameters(), reference.parameters()):
        assert_close(a.detach(), b.detach(), 1e-5, 1e-4)
    assert opt.state_dict()["state"]  # moments are kept


def test_row_optimizer_sgd_state_dict_is_empty():
    opt = RowOptimizer("sgd", list(make_model().parameters()), 0.1)
    assert opt.state_dict() == {}
    opt.load_state_dict({})


@pytest.mark.parametrize("name, lr", [("rmsprop", 0.1), ("SGD", 0.1), ("sgd", 0.0), ("adam", -0.1), ("sgd", math.nan)])
def test_row_optimizer_rejects_bad_name_or_lr(name, lr):
    with pytest.raises(ValueError):
        RowOptimizer(name, list(make_model().parameters()), lr)


# --- REINFORCE: the importance-weighted policy gradient is unbiased -------------------------

POSITIVES = np.array([[0, 1, 0, 1, 0, 0],  # user 0 likes items 1 and 3
                      [1, 0, 1, 0, 0, 1]], dtype=np.float32)  # user 1 likes 0, 2, 5
MIX, TEMPERATURE = 0.2, 0.7


def reinforce_setup():
    G = make_model(seed=7, n_users=2, n_items=6)  # G's MF scorer
    users = torch.arange(2)
    rewards = torch.tensor([[0.9, -0.4, 0.1, 0.7, -0.8, 0.3],
                            [-0.2, 0.5, 0.8, -0.6, 0.2, 0.4]])
    with torch.no_grad():
        p = Generator(G).log_probs(users, TEMPERATURE).exp()
    mask = torch.as_tensor(POSITIVES)
    q = (1 - MIX) * p + MIX * mask / mask.sum(1, keepdim=True)  # the trainer's proposal
    return G, users, rewards, p, q


def exact_policy_gradient(G, users, rewards) -> dict[str, torch.Tensor]:
    """d/dθ sum_u E_{i ~ p(.|u)}[r_ui] by autograd: the gradient REINFORCE estimates."""
    _, grads = autograd(G, lambda m: (Generator(m).log_probs(users, TEMPERATURE).exp() * rewards).sum())
    return grads


def per_sample_ascent(G, users, rewards, p, q) -> dict[tuple[int, int], dict[str, torch.Tensor]]:
    """The ascent direction one proposal draw (u, i) gives: -grad of the surrogate with weight r p / q."""
    out = {}
    for u in range(2):
        for i in range(6):
            w = rewards[u, i] * p[u, i] / q[u, i]
            _, updates = policy_gradient_loss(G, users, torch.tensor([u]), torch.tensor([i]), w.view(1), TEMPERATURE)
            out[u, i] = {n: -g for n, g in dense(G, updates).items()}
    return out


def test_importance_weighted_policy_gradient_is_exact_in_expectation():
    G, users, rewards, p, q = reinforce_setup()
    assert torch.allclose(q.sum(1), torch.ones(2)) and (q > 0).all()
    samples = per_sample_ascent(G, users, rewards, p, q)
    expected = {n: sum(q[u, i] * g[n] for (u, i), g in samples.items()) for n in samples[0, 0]}
    exact = exact_policy_gradient(G, users, rewards)
    assert_grads_close(expected, exact, atol=1e-6)
    assert max(g.abs().max() for g in exact.values()) > 0.05  # not trivially zero


def test_importance_weighted_policy_gradient_monte_carlo():
    """irgan's own path (sample_rows from q, weights r p / q / count) approaches the exact gradient."""
    G, users, rewards, p, q = reinforce_setup()
    n = 100_000
    counts = torch.tensor([n, n])
    items = sample_rows(q, counts, seeded(11))
    rows = torch.repeat_interleave(users, counts)
    weights = rewards[rows, items] * p[rows, items] / q[rows, items] / counts[rows]
    _, updates = policy_gradient_loss(G, users, rows, items, weights, TEMPERATURE)
    estimate = {name: -g for name, g in dense(G, updates).items()}

    exact = exact_policy_gradient(G, users, rewards)
    samples = per_sample_ascent(G, users, rewards, p, q)
    for name in exact:
        var = sum(  # variance of the per-user mean of n draws, summed over users
            (sum(q[u, i] * samples[u, i][name] ** 2 for i in range(6))
             - sum(q[u, i] * samples[u, i][name] for i in range(6)) ** 2) / n
            for u in range(2))
        err = (estimate[name] - exact[name]).abs()
        assert (err <= 5 * var.sqrt() + 1e-5).all(), (name, err, var.sqrt())


def test_g_epoch_steps_along_the_exact_policy_gradient():
    """One SGD g_epoch with D's rewards moves G by lr x (an unbiased estimate of) grad E_p[reward]."""
    scorer, users, _, p, q = reinforce_setup()
    G, D = Generator(scorer), Discriminator(make_model(seed=8, n_users=2, n_items=6))
    with torch.no_grad():
        rewards = D.reward(users[:, None].expand(-1, 6), torch.arange(6).expand(2, -1), "code")
    factor, lr = 20_000, 1e-3
    config = IRGANConfig(optimizer="sgd", g_lr=lr, g_l2=0.0, g_temperature=TEMPERATURE, g_mix=MIX,
                         g_sample_factor=factor, reward="code")
    before = {n: t.detach().clone() for n, t in scorer.named_parameters()}
    positives = PositiveSet(sp.csr_matrix(POSITIVES))
    step = g_update(G.scorer, "sgd", lr, fast_path=True)
    assert isinstance(step, FastGUpdate)
    stats = g_epoch(G, D, step, positives, users, config, seeded(3))
    assert set(stats) == {"g_reward", "g_entropy", "g_entropy_share", "g_coverage"}
    log_p = torch.log_softmax(before["user_emb"][users] @ before["item_emb"].T / TEMPERATURE
                              + before["item_bias"] / TEMPERATURE, 1)
    assert stats["g_entropy"] == pytest.approx(-(log_p.exp() * log_p).sum(1).mean().item(), rel=1e-5)
    assert stats["g_entropy_share"] == pytest.approx(stats["g_entropy"] / np.log(6))
    assert stats["g_coverage"] == 1.0
    step = {n: (t.detach() - before[n]) / lr for n, t in scorer.named_parameters()}

    exact = exact_policy_gradient(make_model(seed=7, n_users=2, n_items=6), users, rewards)
    samples = per_sample_ascent(make_model(seed=7, n_users=2, n_items=6), users, rewards, p, q)
    counts = factor * POSITIVES.sum(1)
    for name in exact:
        var = sum((sum(q[u, i] * samples[u, i][name] ** 2 for i in range(6))
                   - sum(q[u, i] * samples[u, i][name] for i in range(6)) ** 2) / counts[u] for u in range(2))
        err = (step[name] - exact[name]).abs()
        # 5 sigma of Monte-Carlo error, plus float32 rounding of a step of size lr
        assert (err <= 5 * var.sqrt() + 2e-3).all(), (name, err, var.sqrt())


def test_pointwise_l2_on_a_row_held_thousands_of_times_shrinks_as_sequential_sgd():
    """One item in 20,000 pairs with lr l2 n = 4: a linear L2 sum overshoots past zero (the
    divergence D's full-data step met); the sequential form shrinks by (1 - lr l2)^n."""
    model = make_model()
    n, lr, l2 = 20_000, 1e-3, 0.2
    users, items = torch.arange(n) % N_USERS, torch.full((n,), 2)
    labels = torch.sigmoid(model.score(users, items)).detach()  # zero data gradient: only L2 acts
    before = model.item_emb.detach()[2].clone()
    for lr_arg, check in ((None, lambda after: (after / before < -1).all()),
                          (lr, lambda after: torch.allclose(after, before * (1 - lr * l2) ** n, rtol=1e-3))):
        copy = make_model()
        _, updates = pointwise_loss(copy, users, items, labels, l2, lr_arg)
        RowOptimizer("sgd", list(copy.parameters()), lr).step(updates)
        assert check(copy.item_emb.detach()[2]), lr_arg
