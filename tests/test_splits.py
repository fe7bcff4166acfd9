"""Splits: no leaked pairs, shared maps, seeded determinism, and what each split holds out."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from irgan.data import (
    DataError,
    Interactions,
    Split,
    interactions_from_dataframe,
    leave_one_out,
    random_holdout,
    temporal_split,
    validation_split,
)


@pytest.fixture
def ratings(rng) -> pd.DataFrame:
    """600 positives of 40 users x 60 items, some pairs repeated, distinct-ish timestamps."""
    n = 600
    return pd.DataFrame(
        {
            "user": rng.integers(0, 40, n) * 3 + 7,  # sparse raw ids
            "item": rng.integers(0, 60, n),
            "timestamp": rng.integers(0, 10_000, n),
        }
    )


def pairs(inter: Interactions) -> set[tuple]:
    return set(map(tuple, inter.to_dataframe().to_numpy().tolist()))


def check_split(split: Split, df: pd.DataFrame) -> None:
    """Shared maps sorted by raw id, disjoint parts whose union is every distinct positive."""
    parts = [p for p in (split.train, split.test, split.validation) if p is not None]
    for part in parts:
        assert part.same_maps(split.train) and part.shape == split.train.shape
    assert np.array_equal(split.train.user_ids, np.unique(df["user"]))
    assert np.array_equal(split.train.item_ids, np.unique(df["item"]))
    seen = [pairs(p) for p in parts]
    assert sum(map(len, seen)) == len(set().union(*seen))  # pairwise disjoint
    assert set().union(*seen) == set(map(tuple, df[["user", "item"]].to_numpy().tolist()))


def test_random_holdout(ratings):
    split = random_holdout(ratings, test_fraction=0.25, seed=1)
    check_split(split, ratings)
    distinct = len(ratings[["user", "item"]].drop_duplicates())
    assert split.test.nnz == pytest.approx(0.25 * distinct, rel=0.2)
    train_n, test_n = split.train.matrix.getnnz(axis=1), split.test.matrix.getnnz(axis=1)
    assert np.all(train_n[train_n + test_n >= 2] >= 1)  # every user with >= 2 keeps one in train


def test_random_holdout_is_seeded(ratings):
    a, b = random_holdout(ratings, seed=5), random_holdout(ratings, seed=5)
    assert (a.test.matrix != b.test.matrix).nnz == 0
    assert (a.test.matrix != random_holdout(ratings, seed=6).test.matrix).nnz > 0
    shuffled = ratings.sample(frac=1.0, random_state=0)
    assert (a.test.matrix != random_holdout(shuffled, seed=5).test.matrix).nnz == 0  # row order is irrelevant


def test_leave_one_out_picks_latest(ratings):
    split = leave_one_out(ratings)
    check_split(split, ratings)
    first_seen = ratings.groupby(["user", "item"], as_index=False)["timestamp"].min()
    latest = first_seen.groupby("user")["timestamp"].max()
    test = split.test.to_dataframe().merge(first_seen, on=["user", "item"])
    assert test["user"].is_unique and len(test) == (first_seen.groupby("user").size() >= 2).sum()
    assert np.array_equal(test["timestamp"].to_numpy(), latest.loc[test["user"]].to_numpy())


def test_leave_one_out_ties_and_single_positives():
    df = pd.DataFrame({"user": [1, 1, 1, 2], "item": ["a", "c", "b", "a"], "timestamp": [5, 9, 9, 1]})
    split = leave_one_out(df)
    assert pairs(split.test) == {(1, "b")}  # tie at t=9: the later row wins; user 2 keeps its only one
    assert pairs(split.train) == {(1, "a"), (1, "c"), (2, "a")}


def test_temporal_split_cuts_globally(ratings):
    split = temporal_split(ratings, test_fraction=0.3)
    check_split(split, ratings)
    first_seen = ratings.groupby(["user", "item"])["timestamp"].min()
    train_t = first_seen.loc[list(pairs(split.train))]
    test_t = first_seen.loc[list(pairs(split.test))]
    assert train_t.max() < test_t.min()
    assert split.test.nnz == pytest.approx(0.3 * len(first_seen), abs=3)


def test_time_splits_need_timestamps():
    df = pd.DataFrame({"user": [1, 1], "item": [1, 2]})
    for split in (leave_one_out, temporal_split):
        with pytest.raises(DataError, match="timestamp"):
            split(df)
    with pytest.raises(DataError, match="train would be empty"):
        temporal_split(df.assign(timestamp=3))


def test_repeated_pairs_do_not_leak():
    df = pd.DataFrame({"user": [1] * 6, "item": [1, 2, 3, 1, 2, 3], "timestamp": [1, 2, 3, 4, 5, 6]})
    for split in (random_holdout(df, 0.5), leave_one_out(df), temporal_split(df, 0.5)):
        assert split.train.nnz + split.test.nnz == 3
        assert not pairs(split.train) & pairs(split.test)


def test_no_test_users_is_an_error():
    df = pd.DataFrame({"user": [1, 2, 3], "item": [1, 1, 2], "timestamp": [1, 2, 3]})
    with pytest.raises(DataError, match="no test positives"):
        random_holdout(df, 0.9)
    with pytest.raises(DataError, match="no test positives"):
        leave_one_out(df)


def test_given_maps_cover_unseen_users_and_items(ratings):
    users = np.arange(0, 200)
    split = random_holdout(ratings, user_ids=users, item_ids=np.arange(100))
    assert split.test.shape == (200, 100) and np.array_equal(split.train.user_ids, users)
    with pytest.raises(DataError, match=r"user ids \["):
        random_holdout(ratings, user_ids=np.arange(5))


def test_string_ids():
    df = pd.DataFrame({"user": list("aabbbccc"), "item": ["x", "y", "x", "y", "z", "x", "y", "z"]})
    split = random_holdout(df, 0.4, seed=0)
    check_split(split, df)
    assert split.train.user_ids.tolist() == ["a", "b", "c"]
    assert split.train.user_index(["c"]).tolist() == [2]


def test_validation_split(ratings):
    train = random_holdout(ratings, seed=0).train
    fit, valid = validation_split(train, fraction=0.2, seed=3)
    assert fit.same_maps(train) and valid.same_maps(train)
    assert fit.matrix.multiply(valid.matrix).nnz == 0
    assert (fit.matrix + valid.matrix != train.matrix).nnz == 0
    again, _ = validation_split(train, fraction=0.2, seed=3)
    assert (again.matrix != fit.matrix).nnz == 0
    with pytest.raises(ValueError, match="fraction"):
        validation_split(train, fraction=1.0)


def test_split_with_validation_and_leak_guard(ratings):
    split = random_holdout(ratings, seed=0).with_validation(0.2, seed=1)
    check_split(split, ratings)
    with pytest.raises(DataError, match="already"):
        split.with_validation(0.1)
    with pytest.raises(DataError, match="share .* pairs"):
        Split(split.train, split.train)
    other = Interactions(sp.csr_matrix(split.test.shape), split.test.user_ids[::-1], split.test.item_ids)
    with pytest.raises(DataError, match="id maps"):
        Split(split.train, other)


def test_interactions_from_dataframe_uses_given_maps():
    df = pd.DataFrame({"user": [2, 2], "item": [5, 6]})
    inter = interactions_from_dataframe(df, np.array([1, 2, 3]), np.array([4, 5, 6]))
    assert inter.matrix.toarray().tolist() == [[0, 0, 0], [0, 1, 1], [0, 0, 0]]


frames = st.integers(1, 60).flatmap(
    lambda n: st.builds(
        lambda users, items, ts: pd.DataFrame({"user": users, "item": items, "timestamp": ts}),
        st.lists(st.integers(0, 8), min_size=n, max_size=n),
        st.lists(st.integers(0, 12), min_size=n, max_size=n),
        st.lists(st.integers(0, 5), min_size=n, max_size=n),
    )
)


@settings(max_examples=30, deadline=None, database=None)
@given(df=frames, fraction=st.floats(0.05, 0.95), seed=st.integers(0, 2**16))
def test_property_random_holdout_never_leaks(df, fraction, seed):
    counts = df.drop_duplicates(["user", "item"]).groupby("user").size().to_numpy()
    try:
        split = random_holdout(df, fraction, seed)
    except DataError as err:
        # legal only when no user was sure of a test positive: a user with n >= 2 positives holds out
        # floor(fraction * n + U), U uniform in [0, 1): at least 1 whenever fraction * n >= 1
        assert "no test positives" in str(err)
        assert np.all((counts == 1) | (fraction * counts < 1)), (counts, fraction)
        return
    check_split(split, df)
    train_n, test_n = split.train.matrix.getnnz(axis=1), split.test.matrix.getnnz(axis=1)
    assert np.all(train_n[train_n + test_n >= 1] >= 1)
    n = train_n + test_n
    drawn = np.floor(fraction * n)  # floor(fraction * n + U) is this or one more, then at most n - 1
    assert np.all((test_n >= np.minimum(drawn, n - 1)) & (test_n <= np.minimum(drawn + 1, np.maximum(n - 1, 0))))


@settings(max_examples=30, deadline=None, database=None)
@given(df=frames, seed=st.integers(0, 2**16))
def test_property_time_splits_and_validation_never_leak(df, seed):
    for make in (leave_one_out, temporal_split):
        try:
            split = make(df)
        except DataError:
            continue
        check_split(split, df)
        try:
            check_split(split.with_validation(0.5, seed), df)
        except DataError:  # too few train positives to carve from
            pass
