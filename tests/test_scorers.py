"""The two-tower MLP and item-item scorers: the scorer protocol, training by autograd, EASE."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers import planted

from irgan.metrics import evaluate
from irgan.models.itemitem import ItemItemScorer
from irgan.models.mlp import MLPScorer
from irgan.training.objectives import bpr_objective

N_USERS, N_ITEMS = 7, 9


def random_binary(n_users: int = N_USERS, n_items: int = N_ITEMS, density: float = 0.35, seed: int = 0) -> sp.csr_matrix:
    """A random binary csr matrix; every user has at least one item."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1
    return sp.csr_matrix(dense)


def make_mlp(n_users: int = N_USERS, n_items: int = N_ITEMS, seed: int = 0) -> MLPScorer:
    return MLPScorer(n_users, n_items, dim=8, hidden=16, generator=torch.Generator().manual_seed(seed))


def make_itemitem(n_users: int = N_USERS, n_items: int = N_ITEMS, seed: int = 0) -> ItemItemScorer:
    """An item-item scorer on random interactions with random B (diagonal non-zero too)."""
    scorer = ItemItemScorer(n_users, n_items, random_binary(n_users, n_items, seed=seed))
    with torch.no_grad():
        scorer.weight.copy_(torch.randn(n_items, n_items, generator=torch.Generator().manual_seed(seed)))
    return scorer


SCORERS = {"mlp": make_mlp, "itemitem": make_itemitem}


@pytest.fixture(params=sorted(SCORERS))
def kind(request) -> str:
    return request.param


def test_score_matches_score_users(kind):
    scorer = SCORERS[kind]()
    users = torch.tensor([0, 3, 3, 6, 1, 0])
    items = torch.tensor([2, 0, 8, 8, 4, 2])
    full = scorer.score_users(torch.arange(N_USERS))
    assert full.shape == (N_USERS, N_ITEMS) and full.dtype == torch.float32
    assert torch.equal(scorer(torch.arange(N_USERS)), full)
    pairs = scorer.score(users, items)
    assert pairs.shape == (6,)
    torch.testing.assert_close(pairs, full[users, items], rtol=1e-5, atol=1e-6)
    assert scorer.score_users(torch.tensor([4, 4])).shape == (2, N_ITEMS)


def test_init_args_round_trip(kind):
    scorer = SCORERS[kind]()
    rebuilt = type(scorer)(**scorer.init_args())
    users = torch.arange(N_USERS)
    assert not torch.equal(rebuilt.score_users(users), scorer.score_users(users))
    rebuilt.load_state_dict(scorer.state_dict())
    assert torch.equal(rebuilt.score_users(users), scorer.score_users(users))
    assert torch.equal(rebuilt.score(users, users), scorer.score(users, users))


def test_penalty_shapes_and_empty_indices(kind):
    scorer = SCORERS[kind]()
    empty = torch.zeros(0, dtype=torch.int64)
    user_part, item_part = scorer.penalty(torch.tensor([1, 1, 5]), torch.tensor([0, 2]))
    assert user_part.shape == (3,) and item_part.shape == (2,)
    user_part, item_part = scorer.penalty(empty, torch.tensor([3]))
    assert user_part.shape == (0,) and item_part.shape == (1,)
    user_part, item_part = scorer.penalty(torch.tensor([3]), empty)
    assert user_part.shape == (1,) and item_part.shape == (0,)


def bpr_triples(train: sp.csr_matrix, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(user, train positive, non-positive item) triples drawn uniformly from ``train``."""
    rng = np.random.default_rng(seed)
    rows, cols = train.nonzero()
    pick = rng.integers(0, len(rows), n)
    users, pos, neg = rows[pick], cols[pick], rng.integers(0, train.shape[1], n)
    keep = np.asarray(train[users, neg]).ravel() == 0
    return tuple(torch.as_tensor(a[keep], dtype=torch.int64) for a in (users, pos, neg))


def test_bpr_training_ranks_the_held_out_block(kind):
    train, test = planted()
    n_users, n_items = train.shape
    if kind == "mlp":
        scorer = MLPScorer(n_users, n_items, dim=16, hidden=32, generator=torch.Generator().manual_seed(0))
    else:
        scorer = ItemItemScorer(n_users, n_items, train)
    users, pos, neg = bpr_triples(train, 2000, seed=0)
    optimizer = torch.optim.Adam(scorer.parameters(), lr=0.01)
    losses = []
    for step in range(50):
        optimizer.zero_grad()
        loss = bpr_objective(scorer, users, pos, neg, l2=1e-3)
        loss.backward()
        if step == 0:
            for name, p in scorer.named_parameters():
                assert p.grad is not None, name
                # the item tower's output bias adds tower_u(p_u) . c to every item of a user,
                # which a pairwise loss cancels: its BPR gradient is zero by design
                assert name == "item_tower.2.bias" or p.grad.abs().sum() > 0, name
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]  # measured at most 0.13 over 8 seeds
    random_p5 = evaluate(torch.rand(n_users, n_items, generator=torch.Generator().manual_seed(0)), train, test, ks=(5,))["P@5"]
    trained_p5 = evaluate(scorer, train, test, ks=(5,))["P@5"]
    assert random_p5 < 0.35  # 10 of the 50 unseen items are relevant: 0.2 expected
    assert trained_p5 > 0.8  # measured 0.94 to 1.0 over 8 seeds


# MLP


def test_mlp_seeded_generators_build_identical_scorers():
    a, b, c = make_mlp(seed=3), make_mlp(seed=3), make_mlp(seed=4)
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), name
        if name != "item_bias":  # biases start at 0 whatever the seed
            assert not torch.equal(pa, pc), name


def test_mlp_leaves_the_global_rng_alone():
    before = torch.get_rng_state()
    make_mlp()
    assert torch.equal(torch.get_rng_state(), before)


def test_mlp_initial_ranges():
    scorer = MLPScorer(50, 60, dim=10, hidden=20, init_scale=0.1, generator=torch.Generator().manual_seed(0))
    assert scorer.user_emb.abs().max() <= 0.1 and scorer.item_emb.abs().max() <= 0.1
    assert scorer.user_emb.abs().max() > 0.09
    assert torch.equal(scorer.item_bias, torch.zeros(60))
    first, last = scorer.user_tower[0], scorer.user_tower[2]
    assert first.weight.shape == (20, 10) and last.weight.shape == (10, 20)
    assert first.weight.abs().max() <= 10 ** -0.5 and last.bias.abs().max() <= 20 ** -0.5


def test_mlp_penalty_by_hand():
    scorer = make_mlp()
    with torch.no_grad():
        scorer.item_bias.copy_(torch.arange(N_ITEMS, dtype=torch.float32) / 10)
    users, items = torch.tensor([0, 2, 0]), torch.tensor([1, 1, 3, 8])
    user_part, item_part = scorer.penalty(users, items)
    p, q, b = (t.detach().numpy() for t in (scorer.user_emb, scorer.item_emb, scorer.item_bias))
    expected_users = [0.5 * sum(x * x for x in p[u]) for u in (0, 2, 0)]
    expected_items = [0.5 * (sum(x * x for x in q[i]) + b[i] ** 2) for i in (1, 1, 3, 8)]
    np.testing.assert_allclose(user_part.detach().numpy(), expected_users, rtol=1e-5)
    np.testing.assert_allclose(item_part.detach().numpy(), expected_items, rtol=1e-5)


@pytest.mark.parametrize("sizes", [(0, 5, 4, 4), (5, 0, 4, 4), (5, 5, 0, 4), (5, 5, 4, -1)])
def test_mlp_rejects_non_positive_sizes(sizes):
    n_users, n_items, dim, hidden = sizes
    with pytest.raises(ValueError, match="must be positive"):
        MLPScorer(n_users, n_items, dim=dim, hidden=hidden)


# Item-item


def ease_reference(x: np.ndarray, l2: float) -> np.ndarray:
    gram = x.T @ x + l2 * np.eye(x.shape[1])
    p = np.linalg.inv(gram)
    b = np.eye(x.shape[1]) - p / np.diag(p)
    np.fill_diagonal(b, 0)
    return b


def test_itemitem_scores_are_rows_of_x_times_b():
    scorer = make_itemitem()
    x = random_binary().toarray()
    b = scorer.weight.detach().numpy().copy()
    np.fill_diagonal(b, 0)
    np.testing.assert_allclose(scorer.score_users(torch.arange(N_USERS)).detach().numpy(), x @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scorer.score_users(torch.tensor([5, 2, 5])).detach().numpy(), x[[5, 2, 5]] @ b,
                               rtol=1e-5, atol=1e-5)


def test_ease_matches_numpy_reference():
    x = random_binary(12, 10, seed=1)
    for l2 in (0.5, 300.0):
        scorer = ItemItemScorer.ease(x, l2=l2)
        assert scorer.weight.dtype == torch.float32
        np.testing.assert_allclose(scorer.weight.detach().numpy(), ease_reference(x.toarray().astype(np.float64), l2),
                                   atol=1e-5)
        assert torch.equal(scorer.weight.diagonal(), torch.zeros(10))
    refit = ItemItemScorer(12, 10, x).fit_ease(0.5)
    np.testing.assert_allclose(refit.weight.detach().numpy(), ease_reference(x.toarray().astype(np.float64), 0.5),
                               atol=1e-5)


@pytest.mark.parametrize("l2", [0.0, -1.0, float("nan")])
def test_ease_rejects_non_positive_l2(l2):
    with pytest.raises(ValueError, match="l2 > 0"):
        ItemItemScorer.ease(random_binary(), l2=l2)


def test_diagonal_never_scores():
    scorer = make_itemitem()
    users, items = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 4, 0, 7])
    before_all, before_pairs = scorer.score_users(torch.arange(N_USERS)), scorer.score(users, items)
    with torch.no_grad():
        scorer.weight.diagonal().fill_(1e6)
    assert torch.equal(scorer.score_users(torch.arange(N_USERS)), before_all)
    assert torch.equal(scorer.score(users, items), before_pairs)


def test_ease_ranks_the_held_out_block():
    train, test = planted()
    p5 = evaluate(ItemItemScorer.ease(train), train, test, ks=(5,))["P@5"]
    assert p5 > 0.9  # measured 1.0; a random scorer gets about 0.2


def test_state_dict_loads_into_a_scorer_without_interactions():
    scorer = make_itemitem()
    fresh = ItemItemScorer(N_USERS, N_ITEMS)
    assert fresh.indices.numel() == 0
    assert torch.equal(fresh.score_users(torch.arange(N_USERS)), torch.zeros(N_USERS, N_ITEMS))
    fresh.load_state_dict(scorer.state_dict())
    assert torch.equal(fresh.indptr, scorer.indptr) and torch.equal(fresh.indices, scorer.indices)
    assert torch.equal(fresh.score_users(torch.arange(N_USERS)), scorer.score_users(torch.arange(N_USERS)))


def test_state_dict_with_inconsistent_buffers_fails_to_load():
    state = make_itemitem().state_dict()
    state["indices"] = state["indices"][:-1]
    with pytest.raises(RuntimeError, match="indptr ends at"):
        ItemItemScorer(N_USERS, N_ITEMS).load_state_dict(state)


def test_set_interactions_validates():
    scorer = ItemItemScorer(N_USERS, N_ITEMS)
    with pytest.raises(ValueError, match="shape"):
        scorer.set_interactions(random_binary(N_USERS + 1, N_ITEMS))
    with pytest.raises(ValueError, match="shape"):
        ItemItemScorer(N_USERS, N_ITEMS, random_binary(N_USERS, N_ITEMS - 1))
    counts = random_binary()
    counts.data[0] = 2
    with pytest.raises(ValueError, match="binary"):
        scorer.set_interactions(counts)
    with_zero = random_binary()
    with_zero.data[0] = 0  # a stored zero is no interaction
    scorer.set_interactions(with_zero)
    assert scorer.indices.numel() == with_zero.nnz - 1
    assert scorer.indptr.shape == (N_USERS + 1,) and scorer.indptr[-1] == scorer.indices.numel()


def test_itemitem_penalty_excludes_the_diagonal():
    scorer = make_itemitem()
    users, items = torch.tensor([0, 6]), torch.tensor([3, 3, 0, 8])
    user_part, item_part = scorer.penalty(users, items)
    assert torch.equal(user_part, torch.zeros(2))
    b = scorer.weight.detach().numpy().astype(np.float64)
    expected = [0.5 * (np.sum(b[:, i] ** 2) - b[i, i] ** 2) for i in (3, 3, 0, 8)]
    np.testing.assert_allclose(item_part.detach().numpy(), expected, rtol=1e-5)


def test_itemitem_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="must be positive"):
        ItemItemScorer(0, 5)
