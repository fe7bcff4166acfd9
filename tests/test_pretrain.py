"""Baselines (popularity, BPR, DNS-BPR) on planted structure, and the positive-set sampling they use
(``irgan.training.sampling``: positive sets, uniform and DNS negatives)."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from irgan.config import BPRConfig
from irgan.models import MatrixFactorization, Popularity
from irgan.metrics import evaluate
from irgan.training.bpr import fit_bpr
from irgan.training.sampling import PositiveSet, dns_negatives, positive_pairs
from helpers import planted

# A setting that learns the planted groups in a few epochs (the paper's SGD at 0.05 needs ~20).
FAST_BPR = dict(epochs=5, lr=0.05, l2=0.01, optimizer="adam", init_scale=0.1, batch_size=64)




@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def popularity_p5(data):
    train, test = data
    return evaluate(Popularity(train), train, test)["P@5"]


# --- Popularity ------------------------------------------------------------------------------

def test_popularity_scores_are_column_counts(rng):
    train = sp.random(9, 7, density=0.4, format="csr", random_state=np.random.RandomState(0))
    train.data[:] = 1
    pop = Popularity(train)
    scores = pop.score_users(torch.tensor([0, 4, 4]))
    expected = torch.as_tensor(train.toarray().sum(0), dtype=torch.float32)
    assert scores.shape == (3, 7)
    assert all(torch.equal(row, expected) for row in scores)
    assert torch.equal(pop(torch.tensor([1])), expected[None])


def test_popularity_ranks_by_count():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0]], np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]], np.float32))
    # counts: item 0: 1, item 1: 3, item 2: 1, item 3: 0; each user's train items are skipped and
    # ties go to the lower index. Top 1: user 0 -> item 2 (hit), user 1 -> item 0 (miss, test is 3),
    # user 2 -> item 0 (hit)
    _, per_user = evaluate(Popularity(train), train, test, ks=(1,), per_user=True)
    assert per_user["P@1"].tolist() == [1.0, 0.0, 1.0]


# --- BPR -------------------------------------------------------------------------------------

@pytest.mark.parametrize("negatives", ["uniform", "dns"])
def test_bpr_beats_popularity_on_planted_groups(data, popularity_p5, negatives):
    train, test = data
    model = fit_bpr(train, BPRConfig(negatives=negatives, **FAST_BPR), seed=0)
    assert (model.n_users, model.n_items, model.dim) == (60, 60, 5)
    p5 = evaluate(model, train, test)["P@5"]
    assert popularity_p5 < 0.3
    assert p5 > 0.8 and p5 > popularity_p5 + 0.5


def test_bpr_paper_sgd_learns_too(data, popularity_p5):
    train, test = data
    model = fit_bpr(train, BPRConfig(negatives="dns", epochs=6, lr=0.2, l2=0.01, init_scale=0.1, batch_size=16), seed=0)
    assert evaluate(model, train, test)["P@5"] > popularity_p5 + 0.4


def test_bpr_same_seed_same_parameters(data):
    train, _ = data
    config = BPRConfig(negatives="dns", epochs=2, batch_size=32)
    a, b = fit_bpr(train, config, seed=3), fit_bpr(train, config, seed=3)
    c = fit_bpr(train, config, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.user_emb, c.user_emb)


def test_bpr_on_epoch_callback_and_zero_epochs(data):
    train, _ = data
    seen = []
    fit_bpr(train, BPRConfig(epochs=3), on_epoch=lambda epoch, model: seen.append(epoch))
    assert seen == [0, 1, 2]
    untrained = fit_bpr(train, BPRConfig(epochs=0), seed=1)
    assert torch.equal(untrained.item_bias, torch.zeros(60))


def test_bpr_skips_users_who_liked_everything():
    train = sp.csr_matrix(np.array([[1, 1, 1, 1], [1, 0, 0, 1], [0, 1, 0, 0]], np.float32))
    model = fit_bpr(train, BPRConfig(epochs=3, negatives="dns"), seed=0)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bpr_refuses_empty_matrix():
    with pytest.raises(ValueError, match="no positives"):
        fit_bpr(sp.csr_matrix((3, 4), dtype=np.float32))


def test_dns_negative_is_the_best_scored_non_positive():
    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0]], np.float32))
    model = fit_bpr(train, BPRConfig(epochs=0))
    with torch.no_grad():
        model.item_bias.copy_(torch.tensor([9.0, 8.0, 7.0, 1.0, 3.0, 2.0]))
        model.user_emb.zero_()
    users = torch.tensor([0, 1] * 200)
    # with 60 candidates the best-scored non-positive is (all but surely) among them, and wins:
    # user 0 (positive 0) gets item 1, user 1 (positives 1, 2) gets item 0
    dns = dns_negatives(model, PositiveSet(train), users, 60, torch.Generator().manual_seed(0))
    assert torch.equal(dns, torch.where(users == 0, 1, 0))
    few = dns_negatives(model, PositiveSet(train), users, 2, torch.Generator().manual_seed(0))
    assert not PositiveSet(train).contains(users, few).any()
    uniform = dns_negatives(model, PositiveSet(train), users, 1, torch.Generator().manual_seed(0))  # 1 candidate: uniform
    assert not PositiveSet(train).contains(users, uniform).any()
    # best-of-2 picks the top item more often than a uniform draw does
    assert few[users == 1].eq(0).sum() > uniform[users == 1].eq(0).sum()


@pytest.mark.parametrize(
    "kwargs",
    [dict(negatives="random"), dict(negatives="DNS"), dict(dns_candidates=0), dict(dim=0), dict(batch_size=0)],
)
def test_bpr_config_validation(kwargs):
    with pytest.raises(ValueError):
        BPRConfig(**kwargs)


def test_bpr_bad_optimizer_or_lr_raise(data):
    train, _ = data
    with pytest.raises(ValueError):
        fit_bpr(train, BPRConfig(optimizer="rmsprop", epochs=1))
    with pytest.raises(ValueError):
        fit_bpr(train, BPRConfig(lr=0.0, epochs=1))


# --- PositiveSet -----------------------------------------------------------------------------

def random_csr(seed: int, n_users: int = 12, n_items: int = 15, density: float = 0.3) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    dense[3] = 0  # a user without positives
    return sp.csr_matrix(dense)


def test_positive_pairs_are_row_major():
    m = random_csr(0)
    users, items = positive_pairs(m)
    rows, cols = m.nonzero()
    assert users.tolist() == rows.tolist() and items.tolist() == cols.tolist()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), density=st.floats(0.0, 1.0), dense_bytes=st.sampled_from([0, 2**26]))
def test_positive_set_contains_and_mask_agree_with_dense(seed, density, dense_bytes):
    """Both membership paths: binary search in each user's items (large catalogs), dense matrix (small)."""
    m = random_csr(seed, density=density)
    dense = torch.as_tensor(m.toarray() > 0)
    with mock.patch("irgan.training.sampling.DENSE_BYTES", dense_bytes):
        ps = PositiveSet(m)
    assert (ps.dense is None) == (dense_bytes == 0)
    users, items = torch.meshgrid(torch.arange(12), torch.arange(15), indexing="ij")
    assert torch.equal(ps.contains(users.flatten(), items.flatten()).view(12, 15), dense)
    order = torch.tensor([5, 3, 0, 11, 5, 7])  # unsorted, repeated, an empty row
    assert torch.equal(ps.mask(order), dense[order])
    assert torch.equal(ps.counts, dense.sum(1))


def test_positive_set_of_empty_matrix():
    ps = PositiveSet(sp.csr_matrix((3, 4), dtype=np.float32))
    assert not ps.contains(torch.tensor([0, 2]), torch.tensor([1, 3])).any()
    assert not ps.mask(torch.tensor([0, 1, 2])).any()
    assert ps.uniform_negatives(torch.tensor([0, 1]), torch.Generator().manual_seed(0)).shape == (2,)


def test_uniform_negatives_never_hit_a_positive():
    dense = random_csr(1, density=0.7).toarray()
    dense[:, 14] = 0  # every user keeps a negative
    m = sp.csr_matrix(dense)
    ps = PositiveSet(m)
    dense = torch.as_tensor(m.toarray() > 0)
    users = torch.arange(12).repeat(300)
    negatives = ps.uniform_negatives(users, torch.Generator().manual_seed(0))
    assert not dense[users, negatives].any()
    # every negative of a user is reachable
    for u in (0, 5):
        allowed = (~dense[u]).nonzero().squeeze(1)
        assert set(negatives[users == u].tolist()) == set(allowed.tolist())


def test_uniform_negatives_single_choice():
    dense = np.ones((2, 6), np.float32)
    dense[0, 4] = 0
    dense[1, :] = 0
    ps = PositiveSet(sp.csr_matrix(dense))
    negatives = ps.uniform_negatives(torch.tensor([0] * 50 + [1] * 50), torch.Generator().manual_seed(0))
    assert (negatives[:50] == 4).all()


def test_uniform_negatives_user_with_every_item_positive_raises():
    dense = np.ones((2, 5), np.float32)
    dense[1, 0] = 0
    ps = PositiveSet(sp.csr_matrix(dense))
    assert ps.uniform_negatives(torch.tensor([1]), torch.Generator().manual_seed(0)).item() == 0
    with pytest.raises(ValueError, match="every item"):
        ps.uniform_negatives(torch.tensor([1, 0]))


def test_uniform_negatives_seeded():
    ps = PositiveSet(random_csr(2))
    users = torch.arange(12).repeat(5)
    a = ps.uniform_negatives(users, torch.Generator().manual_seed(9))
    b = ps.uniform_negatives(users, torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


def test_uniform_negatives_redraw_as_a_whole_mask_redraw_would():
    """Only the rejected entries are checked again, but the draws are those of redrawing every
    entry a mask of all entries marks, round by round, from the same generator."""
    dense = random_csr(2, density=0.6).toarray()
    dense[:, 3] = 0
    m = sp.csr_matrix(dense)
    ps = PositiveSet(m)
    users = torch.arange(m.shape[0]).repeat(500)
    g = torch.Generator().manual_seed(5)
    expected = torch.randint(m.shape[1], users.shape, generator=g)
    bad = ps.contains(users, expected)
    rounds = 0
    while bad.any():
        expected[bad] = torch.randint(m.shape[1], (int(bad.sum()),), generator=g)
        bad, rounds = ps.contains(users, expected), rounds + 1
    assert rounds > 2
    assert torch.equal(ps.uniform_negatives(users, torch.Generator().manual_seed(5)), expected)


@pytest.mark.parametrize("dim", [5, 16])
def test_dns_on_the_kernel_picks_what_the_torch_path_picks(dim):
    from irgan import kernels

    train = random_csr(3, density=0.1)
    model = MatrixFactorization(train.shape[0], train.shape[1], dim)
    with torch.no_grad():
        model.item_bias.copy_(torch.randn(train.shape[1], generator=torch.Generator().manual_seed(1)))
        model.item_bias[:4] = 2.0  # ties: the first of equals wins on both paths
        model.item_emb[:4] = 0.0
    users = torch.arange(train.shape[0]).repeat(400)
    fast = dns_negatives(model, PositiveSet(train), users, 5, torch.Generator().manual_seed(0))
    with kernels.use(False):
        slow = dns_negatives(model, PositiveSet(train), users, 5, torch.Generator().manual_seed(0))
    assert torch.equal(fast, slow)
    drawn = torch.tensor([[1, 2, 3], [2, 3, 1]])
    with torch.no_grad():
        model.item_bias[3] = float("nan")
    assert kernels.best_of(model.user_emb, model.item_emb, model.item_bias, torch.tensor([0, 1]), drawn).tolist() == [3, 3]
    assert torch.equal(drawn.gather(1, model.score(torch.tensor([[0], [1]]).expand(-1, 3), drawn).argmax(1, keepdim=True)).squeeze(1),
                       torch.tensor([3, 3]))
