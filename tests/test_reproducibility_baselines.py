"""SLIM ElasticNet, PureSVD and RP3beta (irgan.training, irgan.baselines): each fit against a hand
computation or an independent reference, the held-out checkerboard item, raw ids and grid search.
The contract every baseline passes (save/load, clone, validation) runs in test_baselines.py."""
from __future__ import annotations

import logging
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from joblib import Parallel, parallel_config
from sklearn.linear_model import ElasticNet
from sklearn.model_selection import GridSearchCV, KFold

from irgan.baselines import PureSVDRecommender, RP3betaRecommender, SLIMRecommender
from irgan.data import Interactions, load_dataset
from irgan.metrics import evaluate
from irgan.models import ItemKNNScorer, MatrixFactorization
from irgan.protocol import CANDIDATES, refit_and_test, tune
from irgan.training.rp3beta import fit_rp3beta
from irgan.training.slim import fit_slim
from irgan.training.svd import fit_puresvd, item_factors

# Converged solves (the ElasticNet objective is strictly convex for l1_ratio < 1: one optimum).
SLIM_EXACT = dict(alpha=0.01, l1_ratio=0.1, max_iter=10_000, tol=1e-12)
FACTORIES = {
    "slim": lambda: SLIMRecommender(alpha=0.01, l1_ratio=0.1, device="cpu"),
    "puresvd": lambda: PureSVDRecommender(factors=2, device="cpu"),
    "rp3beta": lambda: RP3betaRecommender(device="cpu"),
}


def dense_weights(scorer: ItemKNNScorer) -> np.ndarray:
    """W (n_items, n_items) as the scorer serves it: score(u, j) = x_u . W[:, j]."""
    return scorer.similarity().to_dense().T.numpy()


def all_scores(scorer) -> np.ndarray:
    with torch.no_grad():
        return scorer.score_users(torch.arange(scorer.n_users)).numpy()


# --- RP3beta on a 3 x 3 toy, by hand ------------------------------------------------------------

# users 0: {0, 1}, 1: {1, 2}, 2: {0, 1, 2}; item popularity (2, 3, 2).
TOY = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1]], np.float32))
# alpha = 1: P_iu P_ui = [[5/12, 5/12, 1/6], [5/18, 4/9, 5/18], [1/6, 5/12, 5/12]]; beta = 1 divides
# column j by pop_j, the diagonal is dropped:
W_ALPHA1_BETA1 = np.array([[0, 5 / 36, 1 / 12], [5 / 36, 0, 5 / 36], [1 / 12, 5 / 36, 0]])
# alpha = 2 squares each transition probability before the product; beta = 0: no penalty.
W_ALPHA2_BETA0 = np.array([[0, 13 / 144, 1 / 36], [13 / 324, 0, 13 / 324], [1 / 36, 13 / 144, 0]])


@pytest.mark.parametrize("alpha, beta, normalize, expected", [
    (1.0, 1.0, False, W_ALPHA1_BETA1),
    (1.0, 1.0, True, W_ALPHA1_BETA1 / W_ALPHA1_BETA1.sum(1, keepdims=True)),  # rows (5/8, 3/8), (1/2, 1/2)
    (2.0, 0.0, False, W_ALPHA2_BETA0),
])
def test_rp3beta_weights_by_hand(alpha, beta, normalize, expected):
    model = RP3betaRecommender(alpha=alpha, beta=beta, k=10, normalize_similarity=normalize, device="cpu").fit(TOY)
    assert type(model.model_) is ItemKNNScorer
    np.testing.assert_allclose(dense_weights(model.model_), expected, rtol=1e-6)
    np.testing.assert_allclose(all_scores(model.model_), TOY.toarray() @ expected, rtol=1e-6)


def test_rp3beta_keeps_k_per_row_then_k_per_column():
    """k = 1: row 0 keeps (0, 1), row 1 its tie (1, 0) by the lower column, row 2 keeps (2, 1);
    column 1 then keeps row 0 (a tie, the lower row). Pruning columns alone would keep (1, 2) too."""
    expected = np.zeros((3, 3))
    expected[0, 1] = expected[1, 0] = 5 / 36
    np.testing.assert_allclose(fit_rp3beta(TOY, 1.0, 1.0, k=1, normalize_similarity=False).toarray(), expected,
                               rtol=1e-6)
    normalized = fit_rp3beta(TOY, 1.0, 1.0, k=1, normalize_similarity=True).toarray()
    np.testing.assert_allclose(normalized, (expected > 0).astype(float), rtol=1e-6)


def rp3beta_dense(x: np.ndarray, alpha: float, beta: float, k: int, normalize: bool) -> np.ndarray:
    """The reference: the module docstring's formula on dense arrays, one row and column at a time."""
    def rows_normalized(m):
        sums = m.sum(1, keepdims=True)
        return np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)

    def top_k_rows(m):
        out = np.zeros_like(m)
        for i, row in enumerate(m):
            keep = [j for j in np.argsort(-row, kind="stable")[:k] if row[j] > 0]
            out[i, keep] = row[keep]
        return out

    binary = (x > 0).astype(np.float64)
    popularity = binary.sum(0)
    penalty = np.array([p ** -beta if p > 0 else 0.0 for p in popularity])
    def power(m):  # of the stored entries: a zero stays zero, also for alpha = 0
        return np.where(m > 0, m, 1.0) ** alpha * (m > 0)

    w = power(rows_normalized(binary.T)) @ power(rows_normalized(x)) * penalty
    np.fill_diagonal(w, 0)
    w = top_k_rows(w)
    if normalize:
        w = rows_normalized(w)
    return top_k_rows(w.T).T


@pytest.fixture(scope="module")
def weighted() -> np.ndarray:
    """Ratings 1-5 (generic walk probabilities: no ties); item 0 has one positive, item 1 none."""
    rng = np.random.default_rng(2)
    x = (rng.random((30, 25)) < 0.3) * rng.integers(1, 6, (30, 25))
    x[:, :2] = 0
    x[4] = 0
    x[4, [0, 5]] = 3, 1
    return x


@pytest.mark.parametrize("alpha, beta, k, normalize", [(1.0, 0.6, 100, True), (0.5, 0.3, 4, True),
                                                       (1.3, 1.0, 3, False), (0.0, 0.0, 6, False)])
def test_rp3beta_matches_the_dense_formula(weighted, alpha, beta, k, normalize):
    """Integer ratings as they come (a count matrix), an item with one positive (its weight 1/1^beta
    kept), an item with none (no division by zero: no warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = fit_rp3beta(sp.csr_matrix(weighted), alpha, beta, k, normalize)
    assert got.dtype == np.float32
    expected = rp3beta_dense(weighted.astype(np.float64), alpha, beta, k, normalize)
    np.testing.assert_allclose(got.toarray(), expected, rtol=1e-5, atol=1e-7)
    assert got[:, 1].nnz == got[1].nnz == 0
    assert got[:, 0].nnz > 0 or k < weighted.shape[1]  # kept when every weight is: its penalty is 1/1^beta


def test_rp3beta_blocks_of_rows_give_the_weights_of_one_block(weighted, monkeypatch):
    whole = fit_rp3beta(sp.csr_matrix(weighted), 0.8, 0.4, k=5)
    monkeypatch.setattr("irgan.training.rp3beta.BLOCK_ELEMENTS", 2 * weighted.shape[1])  # blocks of 2 rows
    assert (fit_rp3beta(sp.csr_matrix(weighted), 0.8, 0.4, k=5) != whole).nnz == 0


def test_rp3beta_defaults_are_the_frameworks():
    """alpha 1.0, beta 0.6, k 100, normalised: 120 items, rows of ~119 walk weights, so k matters."""
    x = sp.csr_matrix((np.random.default_rng(3).random((40, 120)) < 0.5).astype(np.float32))
    assert (fit_rp3beta(x) != fit_rp3beta(x, 1.0, 0.6, 100, True)).nnz == 0
    for other in ((0.9, 0.6, 100, True), (1.0, 0.7, 100, True), (1.0, 0.6, 101, True), (1.0, 0.6, 100, False)):
        assert abs(fit_rp3beta(x, *other) - fit_rp3beta(x)).max() > 0


@pytest.mark.parametrize("alpha, beta, k", [(-0.1, 0.6, 10), (1.0, -1.0, 10), (1.0, 0.6, 0), (float("nan"), 0.6, 10)])
def test_rp3beta_rejects_bad_parameters_in_one_line(alpha, beta, k):
    with pytest.raises(ValueError, match=rf"RP3beta needs alpha >= 0, beta >= 0 and k >= 1, got {alpha}, {beta}, {k}"):
        fit_rp3beta(TOY, alpha, beta, k)


def test_rp3beta_alpha_0_weighs_co_occurrence_counts():
    """alpha = 0, beta = 0: every transition weighs 1, W[i, j] counts the users who liked both."""
    expected = np.array([[0, 2, 1], [2, 0, 2], [1, 2, 0]])
    np.testing.assert_array_equal(fit_rp3beta(TOY, 0.0, 0.0, 10, normalize_similarity=False).toarray(), expected)


# --- PureSVD -------------------------------------------------------------------------------------

def test_puresvd_reproduces_a_rank_two_matrix():
    a, b = np.array([1, 1, 0, 0, 0]), np.array([0, 0, 1, 1, 1])
    x = np.array([a, b, a + b, a, b, a + b], np.float32)
    model = PureSVDRecommender(factors=2, device="cpu").fit(sp.csr_matrix(x))
    assert type(model.model_) is MatrixFactorization
    assert not model.model_.item_bias.detach().any()
    np.testing.assert_allclose(all_scores(model.model_), x, atol=1e-5)
    one = PureSVDRecommender(factors=1, device="cpu").fit(sp.csr_matrix(x))
    assert np.abs(all_scores(one.model_) - x).max() > 0.1  # one factor cannot hold two patterns


def test_puresvd_scores_are_the_projection_onto_the_top_singular_vectors(rng):
    x = (rng.random((30, 12)) < 0.3).astype(np.float64)
    _, _, vt = np.linalg.svd(x)
    v = vt[:4].T
    model = PureSVDRecommender(factors=4, device="cpu").fit(sp.csr_matrix(x))
    np.testing.assert_allclose(all_scores(model.model_), x @ v @ v.T, atol=1e-5)
    np.testing.assert_allclose(model.model_.user_emb.detach().numpy() @ model.model_.item_emb.detach().numpy().T,
                               x @ v @ v.T, atol=1e-5)
    assert item_factors(sp.csr_matrix(x), 50).shape == (12, 12)  # more factors than the rank bound: all of them


def test_puresvd_factors_are_float64_whatever_the_input(rng):
    """A float32 matrix is factored in double precision: V is numpy's to 1e-10, not to float32's 1e-7."""
    x = (rng.random((30, 12)) < 0.3).astype(np.float32)
    v = item_factors(sp.csr_matrix(x), 4)
    assert v.dtype == np.float64
    _, _, vt = np.linalg.svd(x.astype(np.float64))
    np.testing.assert_allclose(v @ v.T, vt[:4].T @ vt[:4], atol=1e-10)


def test_puresvd_seed_picks_the_factors_of_a_degenerate_spectrum():
    """X = I: every direction has singular value 1, so the randomized SVD's seed alone picks V.
    The seed reaches it, the default is seed 0 (the estimator's), and the default factors are 50."""
    x = sp.eye(12, format="csr")
    v0, v1 = item_factors(x, 3, seed=0), item_factors(x, 3, seed=1)
    assert np.abs(v0 @ v0.T - v1 @ v1.T).max() > 0.1
    np.testing.assert_array_equal(item_factors(x, 3), v0)
    np.testing.assert_array_equal(fit_puresvd(x, 3).item_emb.detach().numpy(), v0.astype(np.float32))
    np.testing.assert_array_equal(fit_puresvd(x, 3, seed=1).item_emb.detach().numpy(), v1.astype(np.float32))
    assert item_factors(sp.eye(60, format="csr")).shape == (60, 50)
    assert fit_puresvd(sp.eye(60, format="csr")).dim == 50


def test_puresvd_reports_only_the_factors_it_cannot_keep(caplog):
    with caplog.at_level(logging.INFO, logger="irgan.training.svd"):
        item_factors(sp.eye(12, format="csr"), 12)
        assert not caplog.records
        item_factors(sp.eye(12, format="csr"), 20)
    assert len(caplog.records) == 1 and "20 factors asked, 12 kept" in caplog.records[0].getMessage()
    with pytest.raises(ValueError, match="factors must be >= 1, got 0"):
        item_factors(sp.eye(12, format="csr"), 0)


# --- SLIM ----------------------------------------------------------------------------------------

def sklearn_slim(x: np.ndarray, alpha: float, l1_ratio: float, max_iter: int, tol: float,
                 exclude_diagonal: bool = True) -> np.ndarray:
    """The reference: one scikit-learn ElasticNet per item on dense X, its column zeroed."""
    weights = np.zeros((x.shape[1], x.shape[1]))
    for j in range(x.shape[1]):
        features = x.copy()
        if exclude_diagonal:
            features[:, j] = 0
        model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, positive=True, fit_intercept=False, max_iter=max_iter,
                           tol=tol).fit(features, x[:, j])
        weights[:, j] = model.coef_
    return weights


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    return (np.random.default_rng(1).random((25, 8)) < 0.4).astype(np.float64)


def test_slim_weights_are_sklearn_elasticnet_per_column(small):
    expected = sklearn_slim(small, **SLIM_EXACT)
    weights = fit_slim(sp.csr_matrix(small), k=100, **SLIM_EXACT).toarray()
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    assert (np.diag(weights) == 0).all() and (weights >= 0).all() and (weights > 0).sum() > 8
    assert (np.diag(sklearn_slim(small, **SLIM_EXACT, exclude_diagonal=False)) > 0.1).all()  # each item explains itself


def test_slim_keeps_the_k_largest_weights_per_column(small):
    full = sklearn_slim(small, **SLIM_EXACT)
    kept = fit_slim(sp.csr_matrix(small), k=2, **SLIM_EXACT).toarray()
    for j in range(small.shape[1]):
        top = np.sort(np.argsort(-full[:, j], kind="stable")[:2])
        assert np.flatnonzero(kept[:, j]).tolist() == top[full[top, j] > 0].tolist()
        np.testing.assert_allclose(kept[top, j], full[top, j], atol=1e-6)


def test_slim_weights_do_not_depend_on_the_item_blocks(small):
    """Stopped after 5 sweeps, W depends on the seeded coordinate order: each regression draws it
    afresh from ``seed``, so two workers (threads here: no process start-up) give one worker's W."""
    x = sp.csr_matrix(small)
    one = fit_slim(x, alpha=0.01, l1_ratio=0.1, max_iter=5, seed=3)
    with parallel_config(backend="threading"):
        two = fit_slim(x, alpha=0.01, l1_ratio=0.1, max_iter=5, seed=3, n_jobs=2)
    assert (one != two).nnz == 0
    assert abs(one - fit_slim(x, alpha=0.01, l1_ratio=0.1, max_iter=5, seed=4)).max() > 0.01


def test_slim_defaults_are_the_frameworks_in_one_process(monkeypatch, capsys):
    """alpha 1e-3, l1_ratio 0.1, k 100, max_iter 100, tol 1e-4, seed 0, in this process, no bar
    (k is the one default these data cannot tell: no column holds 100 positive weights)."""
    x = sp.csr_matrix((np.random.default_rng(4).random((30, 110)) < 0.3).astype(np.float64))
    monkeypatch.setattr("irgan.progress.interactive", lambda: True)  # a bar, if asked for, would show
    monkeypatch.setattr("irgan.training.slim.Parallel", None)  # no worker processes unless asked for
    default = fit_slim(x)
    assert capsys.readouterr().err == ""
    explicit = dict(alpha=1e-3, l1_ratio=0.1, k=100, max_iter=100, tol=1e-4, seed=0)
    assert (default != fit_slim(x, **explicit)).nnz == 0
    for name, other in (("alpha", 2e-3), ("l1_ratio", 0.2), ("max_iter", 101), ("tol", 1e-3), ("seed", 1)):
        assert (fit_slim(x, **{**explicit, name: other}) != default).nnz > 0, name
    assert default.dtype == np.float32
    fit_slim(x[:, :5], show_progress=True)
    assert re.search(r"\rSLIM: 100%\|.*\| 5/5 ", capsys.readouterr().err)  # one bar over the items


def test_slim_counts_the_regressions_stopped_at_max_iter(small, caplog):
    with caplog.at_level(logging.INFO, logger="irgan.training.slim"):
        fit_slim(sp.csr_matrix(small), **SLIM_EXACT)
        assert not caplog.records  # all converged: nothing to say
        fit_slim(sp.csr_matrix(small), max_iter=1)  # 8 items in 4 blocks: every block's count is summed
    assert [r.getMessage() for r in caplog.records] == ["SLIM: 8 of 8 regressions stopped at max_iter=1 before tol=0.0001"]


def test_slim_hands_n_jobs_to_joblib(small, monkeypatch):
    asked = []

    class Recorded(Parallel):
        def __init__(self, **kwargs):
            asked.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr("irgan.training.slim.Parallel", Recorded)
    with parallel_config(backend="threading"):
        fit_slim(sp.csr_matrix(small), max_iter=5, n_jobs=3)
    assert [kwargs["n_jobs"] for kwargs in asked] == [3]


def test_slim_items_nobody_liked_get_no_weights_and_stop_nothing(small):
    """The first item (in the first block, before others) and the last (W stays n_items square)."""
    x = np.hstack([np.zeros((len(small), 1)), small, np.zeros((len(small), 1))])
    weights = fit_slim(sp.csr_matrix(x), k=100, **SLIM_EXACT)
    assert weights.shape == (10, 10)
    np.testing.assert_allclose(weights.toarray(), sklearn_slim(x, **SLIM_EXACT), atol=1e-6)
    assert weights[[0, 9]].nnz == weights[:, [0, 9]].nnz == 0 and weights[:, 1:9].nnz > 8


def test_slim_fits_integer_and_float32_matrices_as_float64(small):
    expected = fit_slim(sp.csr_matrix(small), max_iter=20)
    for dtype in (np.int64, np.float32):
        assert (fit_slim(sp.csr_matrix(small.astype(dtype)), max_iter=20) != expected).nnz == 0


@pytest.mark.parametrize("params", [dict(alpha=0.0), dict(alpha=-1.0), dict(l1_ratio=-0.1), dict(l1_ratio=1.5),
                                    dict(l1_ratio=float("nan"))])
def test_slim_rejects_bad_penalties_in_one_line(small, params):
    with pytest.raises(ValueError, match=r"SLIM needs alpha > 0 and 0 <= l1_ratio <= 1, got alpha=\S+, l1_ratio=\S+$"):
        fit_slim(sp.csr_matrix(small), **params)


@pytest.mark.parametrize("params", [dict(k=0), dict(max_iter=0), dict(n_jobs=0), dict(tol=0.0), dict(tol=-1e-4)])
def test_slim_rejects_bad_counts_in_one_line(small, params):
    with pytest.raises(ValueError, match=r"k, max_iter and n_jobs must be >= 1 and tol > 0, got \S+, \S+, \S+, \S+$"):
        fit_slim(sp.csr_matrix(small), **params)


@pytest.mark.parametrize("l1_ratio", [0.0, 1.0])
def test_slim_takes_the_pure_ridge_and_pure_lasso_ends(small, l1_ratio):
    weights = fit_slim(sp.csr_matrix(small), alpha=0.01, l1_ratio=l1_ratio, max_iter=50)
    assert weights.nnz > 0 and (weights.data > 0).all() and not weights.diagonal().any()


# --- every one of the three ---------------------------------------------------------------------

def checkerboard(n: int = 20) -> sp.csr_matrix:
    """User u likes the items of u's parity, except item u itself: the held-out item u must rank first."""
    board = (np.add.outer(np.arange(n), np.arange(n)) % 2 == 0).astype(np.float32)
    return sp.csr_matrix(board - np.eye(n, dtype=np.float32))


@pytest.fixture(params=sorted(FACTORIES))
def kind(request) -> str:
    return request.param


def test_the_held_out_checkerboard_item_ranks_first(kind):
    board = checkerboard()
    model = FACTORIES[kind]().fit(board)
    top = model.recommend(np.arange(20), k=1)
    assert top["item"].tolist() == list(range(20))


def frame_of(matrix: sp.csr_matrix) -> pd.DataFrame:
    coo = matrix.tocoo()
    return pd.DataFrame({"user": [f"user-{u}" for u in coo.row], "item": [f"film-{i:02d}" for i in coo.col],
                         "rating": 5.0})


def test_raw_ids_survive_save_and_load(kind, tmp_path):
    board = checkerboard()
    model = FACTORIES[kind]().fit(frame_of(board))
    top = model.recommend(["user-3", "user-12"], k=1)
    assert top["item"].tolist() == ["film-03", "film-12"]
    model.save(tmp_path / "model.pt")
    loaded = type(model).load(tmp_path / "model.pt", device="cpu")
    pd.testing.assert_frame_equal(loaded.recommend(["user-3", "user-12"], k=5), model.recommend(["user-3", "user-12"], k=5))
    assert loaded.get_params() == model.get_params()


GRIDS = {"slim": {"alpha": [0.01, 0.5]}, "puresvd": {"factors": [1, 2]}, "rp3beta": {"beta": [0.0, 0.8]}}


def test_grid_search_scores_each_fold_and_refits(kind):
    positives = frame_of(checkerboard())
    search = GridSearchCV(FACTORIES[kind](), GRIDS[kind], cv=KFold(3, shuffle=True, random_state=0)).fit(positives)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,) and np.isfinite(scores).all() and (scores > 0).all()
    train_rows, test_rows = next(KFold(3, shuffle=True, random_state=0).split(positives))
    name, value = next(iter(GRIDS[kind].items()))
    one = FACTORIES[kind]().set_params(**{name: value[0]}).fit(positives.iloc[train_rows])
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(one.score(positives.iloc[test_rows]))
    assert search.best_estimator_.user_items_.nnz == len(positives)


@pytest.mark.parametrize("make, message", [
    (lambda: SLIMRecommender(alpha=0), "alpha must be a number > 0"),
    (lambda: SLIMRecommender(l1_ratio=1.5), r"l1_ratio must be a number in \[0, 1\], got 1.5"),
    (lambda: SLIMRecommender(k=0), "k must be an integer >= 1"),
    (lambda: SLIMRecommender(n_jobs=0), "n_jobs must be an integer >= 1"),
    (lambda: PureSVDRecommender(factors=0), "factors must be an integer >= 1"),
    (lambda: RP3betaRecommender(beta=-1), "beta must be a number >= 0"),
    (lambda: RP3betaRecommender(normalize_similarity="yes"), "normalize_similarity must be True or False"),
])
def test_bad_parameters_raise_one_line(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_comparison_tunes_and_refits_each(kind):
    """``irgan compare --models slim,puresvd,rp3beta``: the defaults tried first, then the search space."""
    board = checkerboard()
    data = Interactions(board, np.arange(20), np.arange(20))
    tuned = tune(CANDIDATES[kind], data, trials=2, validation_fraction=0.2, seed=0)
    assert [t["params"] for t in tuned.trials][0] == CANDIDATES[kind].first_trial
    assert set(tuned.params) == set(CANDIDATES[kind].defaults)
    params = {"factors": 2} if kind == "puresvd" else CANDIDATES[kind].defaults  # 20 factors would rebuild X
    tested = refit_and_test(CANDIDATES[kind], params, data, data.with_matrix(sp.eye(20, format="csr")), seed=0)
    assert tested.test["MRR"] == 1.0  # the held-out checkerboard item ranks first


# --- real data ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def u1(shared_data):
    return load_dataset("ml-100k", data_dir=shared_data, split="u1")


@pytest.mark.parametrize("make, floor", [(PureSVDRecommender, 0.0), (RP3betaRecommender, 0.0)])
def test_defaults_on_ml100k_u1(u1, make, floor):
    """Refit on all of u1.base, tested on u1.test (measured: see the classes' docstrings)."""
    model = make(device="cpu").fit(u1.train)
    assert evaluate(model.model_, u1.train, u1.test, ks=(5,))["P@5"] >= floor
