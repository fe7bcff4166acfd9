"""Synthetic implicit feedback with power-law item popularity and planted user tastes.

For scale tests and benchmarks without downloads. The model, all of it seeded:

* popularity: the item of popularity rank r (1-based; ranks are a random permutation of the
  items) has weight ``r ** -exponent``, a Zipf law;
* tastes: items are dealt by rank into ``n_clusters`` clusters (so each holds popular and rare
  items) and each user joins one cluster at random; a user picks item i with probability
  ``taste * pop_i [i in its cluster] / Z_cluster + (1 - taste) * pop_i / Z``, so a model that
  learns the clusters beats popularity;
* activity: users have log-normal weights (sigma 1), capped so that no user expects more than
  half the catalog.

Each user first gets one item; then (user, item) pairs are drawn from activity x taste, repeats
of chosen pairs dropped, until exactly ``n_interactions`` distinct pairs: sampling without
replacement. If popular pairs run out, after 8 rounds the rest are drawn uniformly. Grids more
than 5% full are instead sampled cell by cell (Efraimidis-Spirakis keys, about 12 bytes of
memory per cell), which reaches any density up to a full matrix.

Measured once each on a 2-core AMD EPYC VM that was also running other benchmarks (wall time;
peak resident memory of the whole process, imports included): ml-20m size,
``synthetic(138_000, 27_000, 10_000_000)``, 16 s and 0.43 GiB; Netflix size,
``synthetic(480_189, 17_770, 56_000_000)``, 122 s and 2.1 GiB.
"""
from __future__ import annotations

import logging
import math
from numbers import Real

import numpy as np
import scipy.sparse as sp

from irgan.data.interactions import Interactions

logger = logging.getLogger(__name__)

_DENSE_SHARE = 0.05  # grids more than this full are sampled cell by cell: redrawing would crawl
_MODEL_ROUNDS = 8  # rounds of model draws; later rounds draw uniform pairs so that sampling ends
_CHUNK = 1 << 22  # pairs drawn per numpy call, to bound the temporary arrays


def synthetic(
    n_users: int,
    n_items: int,
    n_interactions: int,
    seed: int = 0,
    *,
    exponent: float = 1.0,
    n_clusters: int = 10,
    taste: float = 0.8,
) -> Interactions:
    """Interactions of shape (n_users, n_items) with exactly ``n_interactions`` distinct positives.

    Every user has at least one positive; raw ids are ``arange(n_users)`` / ``arange(n_items)``;
    the same arguments give the same matrix. ``exponent`` (>= 0) is the Zipf exponent of item
    popularity, ``n_clusters`` the number of taste clusters (at most ``n_items`` are used) and
    ``taste`` (in [0, 1]) the share of a user's picks drawn from its own cluster. Raises
    ValueError for sizes that cannot be met (fewer pairs than users, more than n_users x n_items).
    """
    n_users, n_items = _whole(n_users, "n_users"), _whole(n_items, "n_items")
    n_interactions = _whole(n_interactions, "n_interactions")
    if n_interactions < n_users:
        raise ValueError(f"n_interactions={n_interactions} is less than n_users={n_users}: every user needs a positive")
    if n_interactions > n_users * n_items:
        raise ValueError(
            f"n_interactions={n_interactions} exceeds n_users x n_items = {n_users * n_items} distinct pairs"
        )
    if not (isinstance(exponent, Real) and math.isfinite(exponent) and exponent >= 0):
        raise ValueError(f"exponent must be a finite number >= 0, got {exponent!r}")
    if not (isinstance(taste, Real) and 0.0 <= taste <= 1.0):
        raise ValueError(f"taste must be in [0, 1], got {taste!r}")
    n_clusters = min(_whole(n_clusters, "n_clusters"), n_items)

    rng = np.random.default_rng(seed)
    world = _World(rng, n_users, n_items, n_interactions, float(exponent), n_clusters, float(taste))
    if n_interactions > _DENSE_SHARE * n_users * n_items:
        keys = _dense_sample(world, rng, n_interactions)
    else:
        keys = _sparse_sample(world, rng, n_interactions)
    users = keys // n_items
    indices = (keys - users * n_items).astype(np.int32 if n_items <= np.iinfo(np.int32).max else np.int64)
    del keys
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    del users
    matrix = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(n_users, n_items))
    matrix.has_sorted_indices = True  # keys were sorted, so each row's columns are ascending and distinct
    return Interactions(matrix, np.arange(n_users, dtype=np.int64), np.arange(n_items, dtype=np.int64))


class _World:
    """The sampled model (popularity, clusters, activity) and vectorized draws from it."""

    def __init__(self, rng: np.random.Generator, n_users: int, n_items: int, n_pairs: int,
                 exponent: float, n_clusters: int, taste: float) -> None:
        self.n_users, self.n_items, self.n_clusters, self.taste = n_users, n_items, n_clusters, taste
        rank = rng.permutation(n_items)  # rank[i]: item i's popularity rank, 0 = most popular
        self.popularity = (rank + 1.0) ** -exponent
        self.item_cluster = rank % n_clusters
        self.user_cluster = rng.integers(n_clusters, size=n_users)
        self.cluster_mass = np.bincount(self.item_cluster, self.popularity, minlength=n_clusters)
        activity = _capped(rng.lognormal(0.0, 1.0, size=n_users), n_pairs, n_items / 2)
        self.activity = activity / activity.sum()
        # Item draws go by group: group c < n_clusters picks within cluster c, group n_clusters
        # from the whole catalog. group_items lists each group's items back to back, group_p
        # their probabilities within the group.
        by_cluster = np.argsort(self.item_cluster, kind="stable")
        sizes = np.r_[np.bincount(self.item_cluster, minlength=n_clusters), n_items]
        self.group_items = np.r_[by_cluster, np.arange(n_items)]
        self.group_end = np.cumsum(sizes)
        self.group_start = self.group_end - sizes
        group_of = np.repeat(np.arange(n_clusters + 1), sizes)
        self.group_p = self.popularity[self.group_items] / np.r_[self.cluster_mass, self.popularity.sum()][group_of]

    def preference(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items) float64 P(item | user) x the user's activity share."""
        cluster = self.user_cluster[users]
        same = self.item_cluster[None, :] == cluster[:, None]
        own = self.taste * self.popularity * same / self.cluster_mass[cluster][:, None]
        return (own + (1 - self.taste) * self.popularity / self.popularity.sum()) * self.activity[users, None]

    def items_for(self, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
        """One item per entry of ``users``, each drawn independently from P(item | that user).

        Draws are grouped (own cluster, or whole catalog); a group's items are drawn as
        multinomial counts, then shuffled onto its entries. The loop runs over the groups.
        """
        group = np.where(rng.random(len(users)) < self.taste, self.user_cluster[users], self.n_clusters)
        small = np.int16 if self.n_clusters < np.iinfo(np.int16).max else np.int64
        order = np.argsort(group.astype(small), kind="stable")  # numpy radix-sorts 16-bit ints: many times faster
        counts = np.bincount(group, minlength=self.n_clusters + 1)
        bounds = np.r_[0, np.cumsum(counts)]
        items = np.empty(len(users), dtype=np.int64)
        for g in np.flatnonzero(counts):
            lo, hi = self.group_start[g], self.group_end[g]
            picks = np.repeat(self.group_items[lo:hi], rng.multinomial(counts[g], self.group_p[lo:hi]))
            items[order[bounds[g]:bounds[g + 1]]] = rng.permutation(picks)
        return items

    def pairs(self, rng: np.random.Generator, count: int, uniform: bool) -> np.ndarray:
        """``count`` independent (user, item) draws as keys ``user * n_items + item`` (int64).

        From activity x taste, or uniform over the grid when ``uniform``.
        """
        keys = np.empty(count, dtype=np.int64)
        for lo in range(0, count, _CHUNK):  # fixed-size chunks of draws, each fully vectorized
            size = min(_CHUNK, count - lo)
            if uniform:
                users, items = rng.integers(self.n_users, size=size), rng.integers(self.n_items, size=size)
            else:
                users = np.repeat(np.arange(self.n_users), rng.multinomial(size, self.activity))
                items = self.items_for(rng, users)
            keys[lo:lo + size] = users * self.n_items + items
        return keys


def _dense_sample(world: _World, rng: np.random.Generator, n_pairs: int) -> np.ndarray:
    """Sorted keys of ``n_pairs`` cells, each user's best included: weighted sampling without replacement.

    A cell of weight w gets the key w / E, E ~ Exp(1); the largest keys are a sample without
    replacement (Efraimidis and Spirakis, 2006), the same law as drawing and dropping repeats.
    """
    n_users, n_items = world.n_users, world.n_items
    score = np.empty((n_users, n_items), dtype=np.float32)
    step = max(1, _CHUNK // n_items)
    for lo in range(0, n_users, step):  # blocks of rows, to bound the float64 temporaries
        rows = np.arange(lo, min(lo + step, n_users))
        weight = world.preference(rows)
        score[rows] = weight / rng.standard_exponential(size=weight.shape)
    score[np.arange(n_users), score.argmax(axis=1)] = np.inf  # every user keeps its best cell
    flat = score.reshape(-1)
    if n_pairs == flat.size:
        return np.arange(flat.size, dtype=np.int64)
    return np.sort(np.argpartition(flat, flat.size - n_pairs)[flat.size - n_pairs:]).astype(np.int64)


def _sparse_sample(world: _World, rng: np.random.Generator, n_pairs: int) -> np.ndarray:
    """Sorted keys of ``n_pairs`` distinct pairs: one per user, then independent draws minus repeats.

    When a round yields more new pairs than still needed, a random subset of them is kept.
    """
    users = np.arange(world.n_users, dtype=np.int64)
    chosen = users * world.n_items + world.items_for(rng, users)  # sorted: one per user, by user
    acceptance = 1.0  # share of the last round's draws that were new pairs
    rounds = 0
    while len(chosen) < n_pairs:
        need = n_pairs - len(chosen)
        count = min(3 * need, int(need / max(acceptance, 0.05) * 1.1) + 1024)
        uniform = rounds >= _MODEL_ROUNDS
        drawn = np.sort(world.pairs(rng, count, uniform))
        new = _missing(chosen, drawn[np.r_[True, drawn[1:] != drawn[:-1]]])
        acceptance = len(new) / count
        if len(new) > need:
            new = new[np.sort(rng.choice(len(new), size=need, replace=False))]
        chosen = np.sort(np.concatenate([chosen, new]))
        rounds += 1
        logger.debug("synthetic: round %d drew %d pairs, %.1f%% new; %d of %d chosen%s", rounds, count,
                     100 * acceptance, len(chosen), n_pairs, " (uniform)" if uniform else "")
    return chosen


def _missing(chosen: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """The keys of ``fresh`` not in ``chosen`` (both sorted and distinct), sorted.

    Merges by sorting instead of binary searches, which are many times slower on big arrays.
    """
    merged = np.sort(np.concatenate([chosen, fresh]))
    taken = merged[1:][merged[1:] == merged[:-1]]  # keys of fresh already chosen
    merged = np.sort(np.concatenate([fresh, taken]))
    once = np.ones(len(merged), dtype=bool)
    repeat = merged[1:] == merged[:-1]
    once[1:] &= ~repeat
    once[:-1] &= ~repeat
    return merged[once]


def _capped(weights: np.ndarray, n_pairs: int, cap: float) -> np.ndarray:
    """``weights`` clipped so that no user expects more than ``cap`` of the ``n_pairs`` pairs."""
    for _ in range(50):  # a fixed point of clip-and-renormalize; a few passes reach it
        limit = cap * weights.sum() / n_pairs
        if weights.max() <= limit * (1 + 1e-9):
            break
        weights = np.minimum(weights, limit)
    return weights


def _whole(value, name: str) -> int:
    """``value`` as an int >= 1 (integral floats such as 1e7 accepted); ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if not (math.isfinite(value) and value == int(value) and value >= 1):
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)
