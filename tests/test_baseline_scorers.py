"""The baselines' algebra against dense numpy references: item k-NN's similarity, LightGCN's
propagation and gradients, implicit ALS's solves and objective."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import irgan.training.als
import irgan.models.itemknn
from irgan.training.als import fit_ials, ials_objective
from irgan.models import ItemKNNScorer, LightGCNScorer

N_USERS, N_ITEMS = 9, 7


def random_binary(n_users: int = N_USERS, n_items: int = N_ITEMS, density: float = 0.4, seed: int = 0) -> sp.csr_matrix:
    """A random binary csr matrix with one empty user (row 0 is cleared) and every item used."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    dense[rng.integers(1, n_users, n_items), np.arange(n_items)] = 1
    dense[0] = 0
    return sp.csr_matrix(dense)


# --- item k-NN ----------------------------------------------------------------------------------


def knn_reference(x: np.ndarray, k: int, shrink: float) -> np.ndarray:
    """S (n_items, n_items): cosine with shrink, column j keeping its k largest off-diagonal entries."""
    norms = np.sqrt(x.sum(0))
    sims = (x.T @ x) / (np.outer(norms, norms) + shrink)
    np.fill_diagonal(sims, 0)
    kept = np.zeros_like(sims)
    for j in range(sims.shape[1]):
        top = np.argsort(-sims[:, j], kind="stable")[:k]
        kept[top, j] = sims[top, j]
    return kept


@pytest.mark.parametrize("k, shrink", [(2, 0.0), (3, 1.5), (100, 0.0)])
def test_itemknn_matches_the_dense_reference(k, shrink, monkeypatch):
    x = random_binary(seed=1)
    monkeypatch.setattr(irgan.models.itemknn, "BLOCK_ELEMENTS", 2 * N_ITEMS)  # blocks of 2 items
    scorer = ItemKNNScorer(N_USERS, N_ITEMS, x, k=k, shrink=shrink)
    ref = knn_reference(x.toarray().astype(np.float64), k, shrink)
    np.testing.assert_allclose(scorer.similarity().to_dense().T.numpy(), ref, rtol=1e-6, atol=1e-7)
    users = torch.arange(N_USERS)
    np.testing.assert_allclose(scorer.score_users(users).numpy(), x.toarray() @ ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scorer.score(torch.tensor([2, 2, 5]), torch.tensor([0, 6, 3])),
                               scorer.score_users(users)[[2, 2, 5], [0, 6, 3]])


def test_itemknn_state_dict_loads_into_a_fresh_scorer():
    scorer = ItemKNNScorer(N_USERS, N_ITEMS, random_binary(), k=3)
    fresh = ItemKNNScorer(**scorer.init_args())
    fresh.load_state_dict(scorer.state_dict())
    assert torch.equal(fresh.score_users(torch.arange(N_USERS)), scorer.score_users(torch.arange(N_USERS)))
    broken = {**scorer.state_dict(), "sim_indptr": scorer.sim_indptr + 1}
    with pytest.raises(RuntimeError, match="sim_indptr ends at"):
        ItemKNNScorer(N_USERS, N_ITEMS).load_state_dict(broken)


# --- LightGCN ----------------------------------------------------------------------------------


def dense_adjacency(x: np.ndarray) -> np.ndarray:
    n_users, n_items = x.shape
    a = np.zeros((n_users + n_items,) * 2)
    a[:n_users, n_users:], a[n_users:, :n_users] = x, x.T
    degree = a.sum(1)
    scale = np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1)), 0)
    return scale[:, None] * a * scale[None, :]


def make_lightgcn(layers: int = 2, seed: int = 0) -> tuple[LightGCNScorer, np.ndarray]:
    x = random_binary(seed=seed)
    return LightGCNScorer(N_USERS, N_ITEMS, 4, layers, x, generator=torch.Generator().manual_seed(seed)), x.toarray()


@pytest.mark.parametrize("layers", [0, 1, 3])
def test_lightgcn_propagation_equals_the_dense_reference(layers):
    scorer, x = make_lightgcn(layers)
    a = dense_adjacency(x.astype(np.float64))
    np.testing.assert_allclose(scorer.adjacency().to_dense().numpy(), a, rtol=1e-6, atol=1e-7)
    e0 = torch.cat([scorer.user_emb, scorer.item_emb]).detach().double().numpy()
    final = sum(np.linalg.matrix_power(a, k) @ e0 for k in range(layers + 1)) / (layers + 1)
    users, items = scorer.propagate()
    np.testing.assert_allclose(users.detach().numpy(), final[:N_USERS], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(items.detach().numpy(), final[N_USERS:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scorer.score_users(torch.arange(N_USERS)).detach().numpy(),
                               final[:N_USERS] @ final[N_USERS:].T, rtol=1e-5, atol=1e-6)


def test_lightgcn_gradients_equal_dense_autograd():
    scorer, x = make_lightgcn(layers=3)
    users, items = torch.tensor([1, 4, 4, 8]), torch.tensor([0, 6, 2, 2])
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0])
    (scorer.score(users, items) * weights).sum().backward()
    a = torch.as_tensor(dense_adjacency(x.astype(np.float64)))
    e0 = torch.cat([scorer.user_emb, scorer.item_emb]).detach().double().requires_grad_()
    layer, total = e0, e0
    for _ in range(3):
        layer = a @ layer
        total = total + layer
    total = total / 4
    ((total[users] * total[N_USERS + items]).sum(1) * weights.double()).sum().backward()
    np.testing.assert_allclose(scorer.user_emb.grad.numpy(), e0.grad[:N_USERS].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scorer.item_emb.grad.numpy(), e0.grad[N_USERS:].numpy(), rtol=1e-5, atol=1e-6)


def test_lightgcn_caches_without_grad_until_the_parameters_change():
    scorer, _ = make_lightgcn()
    with torch.no_grad():
        first = scorer.propagate()
        assert scorer.propagate()[0] is first[0]
    assert scorer.propagate()[0] is not first[0] and scorer.propagate()[0].requires_grad  # with grad: afresh
    optimizer = torch.optim.SGD(scorer.parameters(), lr=0.1)
    scorer.score(torch.tensor([1]), torch.tensor([2])).sum().backward()
    optimizer.step()
    with torch.no_grad():
        stepped = scorer.propagate()
    assert not torch.equal(stepped[0], first[0])
    other, _ = make_lightgcn(seed=0)
    other.load_state_dict(make_lightgcn(seed=1)[0].state_dict())
    with torch.no_grad():
        torch.testing.assert_close(other.propagate()[1], make_lightgcn(seed=1)[0].propagate()[1])


def test_lightgcn_copies_and_state_dict_round_trip():
    scorer, _ = make_lightgcn()
    with torch.no_grad():
        expected = scorer.score_users(torch.arange(N_USERS))
    twin = copy.deepcopy(scorer)  # after the caches are filled: they are not copied
    fresh = LightGCNScorer(**scorer.init_args())
    fresh.load_state_dict(scorer.state_dict())
    with torch.no_grad():
        for other in (twin, fresh):
            assert torch.equal(other.score_users(torch.arange(N_USERS)), expected)


def test_lightgcn_penalty_is_on_layer_zero():
    scorer, _ = make_lightgcn()
    user_part, item_part = scorer.penalty(torch.tensor([2, 2]), torch.tensor([5]))
    torch.testing.assert_close(user_part, scorer.user_emb[[2, 2]].square().sum(1) / 2)
    torch.testing.assert_close(item_part, scorer.item_emb[[5]].square().sum(1) / 2)


# --- implicit ALS --------------------------------------------------------------------------------


def objectives(x: sp.csr_matrix, cg_steps: int | None, reg: float = 0.5, alpha: float = 3.0) -> list[float]:
    values = []
    fit_ials(x, factors=4, regularization=reg, alpha=alpha, iterations=6, cg_steps=cg_steps, device="cpu",
             on_iteration=lambda it, m: values.append(ials_objective(x, m.user_emb.detach(), m.item_emb.detach(),
                                                                     reg, alpha)))
    return values


@pytest.mark.parametrize("cg_steps", [None, 1, 3])
def test_ials_objective_decreases_every_iteration(cg_steps):
    values = objectives(random_binary(30, 20, 0.2), cg_steps)
    assert len(values) == 6 and all(b < a for a, b in zip(values, values[1:]))


def test_ials_objective_equals_the_dense_formula():
    x = random_binary() * 2  # r = 2: confidence 1 + 2 alpha
    rng = np.random.default_rng(0)
    user, item = rng.normal(size=(N_USERS, 3)), rng.normal(size=(N_ITEMS, 3))
    s, dense = user @ item.T, x.toarray()
    c, p = 1 + 3.0 * dense, (dense > 0).astype(float)
    expected = (c * (p - s) ** 2).sum() + 0.5 * ((user ** 2).sum() + (item ** 2).sum())
    got = ials_objective(x, torch.as_tensor(user), torch.as_tensor(item), 0.5, 3.0)
    assert got == pytest.approx(expected, rel=1e-10)


def test_ials_exact_half_step_equals_the_dense_solve(monkeypatch):
    """The last half-step solved the items given the users: the normal equations, row by row."""
    x = random_binary(30, 20, 0.2, seed=3)
    monkeypatch.setattr(irgan.training.als, "CHUNK_ELEMENTS", 5 * 16)  # chunks of about 5 entries
    model = fit_ials(x, factors=4, regularization=0.5, alpha=3.0, iterations=2, cg_steps=None, device="cpu")
    u, dense = model.user_emb.detach().double().numpy(), x.toarray()
    c = 1 + 3.0 * dense
    expected = np.stack([np.linalg.solve(u.T @ (c[:, i, None] * u) + 0.5 * np.eye(4), u.T @ (c[:, i] * dense[:, i]))
                         for i in range(20)])
    np.testing.assert_allclose(model.item_emb.detach().numpy(), expected, rtol=1e-4, atol=1e-5)
    assert model.item_bias.abs().sum() == 0


def test_ials_is_seeded_and_rejects_bad_input():
    x = random_binary()
    a, b = (fit_ials(x, factors=3, iterations=2, seed=7, device="cpu") for _ in range(2))
    assert torch.equal(a.user_emb, b.user_emb)
    with pytest.raises(ValueError, match="regularization must be positive"):
        fit_ials(x, regularization=0)
    with pytest.raises(ValueError, match="non-negative values"):
        fit_ials(-x)
    with pytest.raises(ValueError, match="cg_steps must be >= 1"):
        fit_ials(x, cg_steps=0)
