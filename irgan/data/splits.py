"""Split positives into train / test (/ validation) Interactions that share one id map.

Every function takes a DataFrame of positives with columns ``user``, ``item`` (and
``timestamp`` where time matters). The id maps cover every user and item passed in
``user_ids`` / ``item_ids`` (default: those of ``df``), sorted by raw id, so all parts of a
split have the same shape. A (user, item) pair repeated in ``df`` counts once (its earliest
timestamp), so train and test never share a pair.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from irgan.data.interactions import Interactions
from irgan.errors import DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Split:
    """Train, test and optional validation Interactions over the same id maps, pairwise disjoint."""

    train: Interactions
    test: Interactions
    validation: Interactions | None = None

    def __post_init__(self) -> None:
        parts = [("train", self.train), ("test", self.test)]
        if self.validation is not None:
            parts.append(("validation", self.validation))
        for (a, x), (b, y) in itertools.combinations(parts, 2):
            if not x.same_maps(y):
                raise DataError(f"{a} and {b} do not share the same user/item id maps")
            shared = x.matrix.multiply(y.matrix).nnz
            if shared:
                raise DataError(f"{a} and {b} share {shared} (user, item) pairs: that would leak")

    def with_validation(self, fraction: float = 0.1, seed: int = 0) -> "Split":
        """A new Split whose validation set is carved per user from this train set."""
        if self.validation is not None:
            raise DataError("this split already has a validation set")
        train, validation = validation_split(self.train, fraction, seed)
        return Split(train, self.test, validation)

    def __repr__(self) -> str:
        return f"Split(train={self.train!r}, test={self.test!r}, validation={self.validation!r})"


def interactions_from_dataframe(
    df: pd.DataFrame, user_ids: np.ndarray | None = None, item_ids: np.ndarray | None = None
) -> Interactions:
    """Interactions of shape (n_users, n_items) holding every (user, item) row of ``df`` as a positive."""
    users, items = _maps(df, user_ids, item_ids)
    u, i, _, _ = _pairs(df, users, items)
    return Interactions(_csr(u, i, len(users), len(items)), users, items)


def random_holdout(
    df: pd.DataFrame,
    test_fraction: float = 0.2,
    seed: int = 0,
    *,
    user_ids: np.ndarray | None = None,
    item_ids: np.ndarray | None = None,
) -> Split:
    """Hold out about ``test_fraction`` of each user's positives at random (seeded).

    A user with n positives gets floor(test_fraction * n + U), U ~ Uniform(0, 1), test
    positives (so the expected share is exact even for small n), and every user with at
    least two positives keeps at least one in train.
    """
    _check_fraction(test_fraction, "test_fraction")
    users, items = _maps(df, user_ids, item_ids)
    u, i, _, _ = _pairs(df, users, items)
    test = _holdout(u, len(users), test_fraction, np.random.default_rng(seed))
    return _split(u, i, test, users, items, "random_holdout")


def leave_one_out(
    df: pd.DataFrame, *, user_ids: np.ndarray | None = None, item_ids: np.ndarray | None = None
) -> Split:
    """Move each user's latest positive (by ``timestamp``) to test.

    Ties in time go to the row that comes later in ``df``. Users with a single positive
    keep it in train.
    """
    users, items = _maps(df, user_ids, item_ids)
    u, i, _, when = _pairs(df, users, items, need_time=True)
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])  # pairs come grouped by user
    latest = np.repeat(np.maximum.reduceat(when, starts), np.diff(np.r_[starts, len(u)]))
    test = (when == latest) & (np.bincount(u, minlength=len(users))[u] >= 2)
    return _split(u, i, test, users, items, "leave_one_out")


def temporal_split(
    df: pd.DataFrame,
    test_fraction: float = 0.2,
    *,
    user_ids: np.ndarray | None = None,
    item_ids: np.ndarray | None = None,
) -> Split:
    """Cut at one global time: about the latest ``test_fraction`` of positives (ties kept together) go to test."""
    _check_fraction(test_fraction, "test_fraction")
    users, items = _maps(df, user_ids, item_ids)
    u, i, ts, _ = _pairs(df, users, items, need_time=True)
    n_test = max(1, int(round(test_fraction * len(ts))))
    cut = np.sort(ts)[len(ts) - n_test]
    test = ts >= cut
    if test.all():
        raise DataError(f"temporal_split: every positive is at or after the cut time {cut}; train would be empty")
    logger.info("temporal split: positives at or after timestamp %s go to test", cut)
    return _split(u, i, test, users, items, "temporal_split")


def validation_split(
    train: Interactions, fraction: float = 0.1, seed: int = 0
) -> tuple[Interactions, Interactions]:
    """Carve a validation set per user from ``train`` (as random_holdout does); both keep its maps."""
    _check_fraction(fraction, "fraction")
    m = train.matrix
    u = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    held = _holdout(u, m.shape[0], fraction, np.random.default_rng(seed))
    if not held.any():
        raise DataError(
            f"validation_split: fraction={fraction} of {m.nnz} train positives over "
            f"{np.count_nonzero(np.diff(m.indptr))} users leaves no validation positives (a user needs 2 or more "
            "positives to lend one); raise the fraction, use more data, or select on test"
        )
    keep = _csr(u[~held], m.indices[~held], *m.shape)
    return train.with_matrix(keep), train.with_matrix(_csr(u[held], m.indices[held], *m.shape))


def _maps(df: pd.DataFrame, user_ids: np.ndarray | None, item_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique raw ids of df (or the given ones, checked to cover df)."""
    missing = [col for col in ("user", "item") if col not in df.columns]
    if missing:
        raise DataError(f"ratings need columns 'user' and 'item'; missing {missing} in {list(df.columns)}")
    maps = []
    for col, given in (("user", user_ids), ("item", item_ids)):
        if given is None:
            missing = df[col].isna().to_numpy()
            if missing.any():
                raise DataError(f"{col} id at row {int(missing.argmax())} is NaN or None: drop or fill such rows first "
                                "(irgan.data.from_dataframe finds them all)")
            try:
                ids = sorted_unique(df[col])
            except TypeError as err:  # unhashable ids, or numbers mixed with strings
                raise DataError(f"{col} ids cannot be sorted ({err}): ids must be all numbers or all strings") from None
        else:
            ids = np.asarray(given)
            if len(pd.unique(ids)) != len(ids):
                raise DataError(f"{col}_ids holds duplicates")
        maps.append(ids)
    return maps[0], maps[1]


def _pairs(
    df: pd.DataFrame, users: np.ndarray, items: np.ndarray, need_time: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Distinct (user index, item index) pairs sorted by user then item, each from its earliest row.

    Also returns that row's timestamp (None unless ``need_time``) and ``when``: an int64
    ranking rows by (timestamp, row position), unique per row, so ties in time are broken
    by the order of ``df``.
    """
    if df.empty:
        raise DataError("no positives to split (empty ratings)")
    u = _codes(df["user"], users, "user")
    i = _codes(df["item"], items, "item")
    n = len(df)
    when = np.arange(n, dtype=np.int64)
    ts = None
    if need_time:
        if "timestamp" not in df.columns:
            raise DataError("this split needs a 'timestamp' column; the ratings have none")
        ts = df["timestamp"].to_numpy()
        when += pd.Index(sorted_unique(ts)).get_indexer(ts).astype(np.int64) * n  # rank of each time
    key = u * len(items) + i
    order = np.argsort(key)  # plain quicksort: composite keys beat np.lexsort many times over
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    when = np.minimum.reduceat(when[order], starts)  # the earliest row of each pair
    row = when % n
    return u[row], i[row], None if ts is None else ts[row], when


def sorted_unique(values: pd.Series | np.ndarray) -> np.ndarray:
    """Distinct values in ascending order (hashing first: much faster than np.unique on big arrays)."""
    return np.sort(pd.unique(np.asarray(values)))


def _codes(values: pd.Series, ids: np.ndarray, kind: str) -> np.ndarray:
    try:
        codes = pd.Index(ids).get_indexer(values.to_numpy())
    except TypeError as err:  # unhashable ids
        raise DataError(f"{kind} ids cannot be looked up ({err}): ids must be numbers or strings") from None
    if (codes < 0).any():
        unknown = values.to_numpy()[codes < 0][:5].tolist()
        raise DataError(f"{kind} ids {unknown} are not in the given {kind}_ids")
    return codes.astype(np.int64, copy=False)


def _holdout(u: np.ndarray, n_users: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask over rows grouped by user ``u`` (ascending) picking each user's held-out rows."""
    counts = np.bincount(u, minlength=n_users)
    n_out = np.floor(fraction * counts + rng.random(n_users)).astype(np.int64)
    n_out = np.minimum(n_out, np.maximum(counts - 1, 0))  # keep one in train
    order = np.argsort(u + rng.random(len(u)))  # u is sorted: this shuffles within each user
    rank = np.empty(len(u), dtype=np.int64)
    rank[order] = np.arange(len(u)) - (np.cumsum(counts) - counts)[u]
    return rank < n_out[u]


def _split(u: np.ndarray, i: np.ndarray, test: np.ndarray, users: np.ndarray, items: np.ndarray, what: str) -> Split:
    if not test.any():
        raise DataError(f"{what}: no test positives (every user has too few positives for this split)")
    shape = (len(users), len(items))
    train_m, test_m = _csr(u[~test], i[~test], *shape), _csr(u[test], i[test], *shape)
    logger.info("%s: %d train, %d test positives (%d test users)", what, train_m.nnz, test_m.nnz,
                np.count_nonzero(np.diff(test_m.indptr)))
    return Split(Interactions(train_m, users, items), Interactions(test_m, users, items))


def _csr(u: np.ndarray, i: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(n_users, n_items))


def _check_fraction(value: float, name: str) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
