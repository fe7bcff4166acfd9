"""synthetic(): exact sizes, determinism, power-law popularity, planted tastes, bad sizes."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from irgan.data import Interactions, synthetic, validation_split


def pairs(inter: Interactions) -> set[tuple[int, int]]:
    coo = inter.matrix.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist()))


@pytest.mark.parametrize(
    "n_users, n_items, n_interactions",
    [
        (2000, 1000, 20_000),  # sparse: drawn pairs minus repeats
        (300, 200, 30_000),  # half full: sampled cell by cell
        (40, 30, 1200),  # every cell
        (500, 50, 500),  # one positive per user
        (1, 1, 1),
    ],
)
def test_exact_count_distinct_pairs_every_user(n_users, n_items, n_interactions):
    inter = synthetic(n_users, n_items, n_interactions, seed=3)
    assert inter.shape == (n_users, n_items) and inter.nnz == n_interactions
    assert len(pairs(inter)) == n_interactions  # no pair twice
    assert (np.diff(inter.matrix.indptr) >= 1).all()
    assert inter.user_ids.tolist() == list(range(n_users)) and inter.item_ids.tolist() == list(range(n_items))


def test_deterministic_given_the_seed():
    a, b, c = (synthetic(1000, 400, 10_000, seed=seed) for seed in (7, 7, 8))
    assert pairs(a) == pairs(b)
    assert len(pairs(a) & pairs(c)) < 0.5 * a.nnz


def test_uniform_fallback_and_chunks_keep_the_count(monkeypatch):
    module = sys.modules["irgan.data.synthetic"]  # irgan.data.synthetic is the function
    monkeypatch.setattr(module, "_MODEL_ROUNDS", 1)
    monkeypatch.setattr(module, "_CHUNK", 997)
    inter = synthetic(800, 300, 12_000, seed=1)
    assert inter.nnz == len(pairs(inter)) == 12_000 and (np.diff(inter.matrix.indptr) >= 1).all()


def top_share(inter: Interactions, fraction: float = 0.1) -> float:
    counts = np.sort(np.asarray(inter.matrix.sum(axis=0)).ravel())[::-1]
    return counts[: int(fraction * len(counts))].sum() / counts.sum()


def test_power_law_popularity():
    assert top_share(synthetic(2000, 1000, 20_000)) > 0.35  # uniform popularity would give about 0.1
    assert top_share(synthetic(2000, 1000, 20_000, exponent=0.0)) < 0.2
    assert top_share(synthetic(2000, 1000, 20_000, exponent=1.5)) > top_share(synthetic(2000, 1000, 20_000))


def precision_at_10(scores: np.ndarray, train: Interactions, test: Interactions) -> float:
    scores = np.where(train.matrix.toarray() > 0, -np.inf, scores)
    top = np.argsort(-scores, axis=1)[:, :10]
    hits = np.take_along_axis(test.matrix.toarray(), top, axis=1).sum(axis=1)
    return hits[test.matrix.getnnz(axis=1) > 0].mean() / 10


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_tastes_beat_popularity(seed):
    train, test = validation_split(synthetic(1000, 500, 20_000, seed=seed), 0.2, seed=seed)
    x = train.matrix
    popularity = np.broadcast_to(np.asarray(x.sum(axis=0)), x.shape)
    co_occurrence = (x @ (x.T @ x)).toarray()  # items liked by users who liked the same items
    assert precision_at_10(co_occurrence, train, test) > 1.4 * precision_at_10(popularity, train, test)


def test_no_taste_no_structure():
    train, test = validation_split(synthetic(1000, 500, 20_000, taste=0.0), 0.2)
    x = train.matrix
    popularity = np.broadcast_to(np.asarray(x.sum(axis=0)), x.shape)
    co_occurrence = (x @ (x.T @ x)).toarray()
    assert precision_at_10(co_occurrence, train, test) < 1.15 * precision_at_10(popularity, train, test)


@pytest.mark.parametrize(
    "args, kwargs, words",
    [
        ((10, 10, 101), {}, "exceeds n_users x n_items = 100"),
        ((10, 10, 9), {}, "less than n_users=10"),
        ((0, 10, 5), {}, "n_users must be a whole number >= 1"),
        ((10, -1, 5), {}, "n_items must be"),
        ((10, 10, 20.5), {}, "n_interactions must be"),
        ((True, 10, 5), {}, "n_users must be"),
        ((10, 10, 20), {"taste": 1.5}, "taste must be in"),
        ((10, 10, 20), {"exponent": -1.0}, "exponent must be"),
        ((10, 10, 20), {"exponent": float("nan")}, "exponent must be"),
        ((10, 10, 20), {"n_clusters": 0}, "n_clusters must be"),
    ],
)
def test_bad_sizes_raise(args, kwargs, words):
    with pytest.raises(ValueError, match=words):
        synthetic(*args, **kwargs)


def test_integral_float_sizes_and_extreme_parameters():
    assert synthetic(100, 50.0, 1e3).nnz == 1000
    for kwargs in ({"taste": 1.0}, {"taste": 0.0}, {"n_clusters": 1000}, {"exponent": 3.0}):
        inter = synthetic(200, 100, 1500, **kwargs)
        assert inter.nnz == 1500 and (np.diff(inter.matrix.indptr) >= 1).all()
