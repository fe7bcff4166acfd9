"""SLIM ElasticNet, PureSVD and RP3beta (irgan.training, irgan.baselines): each fit against a hand
computation or an independent reference, the held-out checkerboard item, raw ids and grid search.
The contract every baseline passes (save/load, clone, validation) runs in test_baselines.py."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from joblib import parallel_config
from sklearn.linear_model import ElasticNet
from sklearn.model_selection import GridSearchCV, KFold

from irgan.baselines import PureSVDRecommender, RP3betaRecommender, SLIMRecommender
from irgan.data import Interactions, load_dataset
from irgan.metrics import evaluate
from irgan.models import ItemKNNScorer, MatrixFactorization
from irgan.protocol import CANDIDATES, refit_and_test, tune
from irgan.training.rp3beta import fit_rp3beta
from irgan.training.slim import fit_slim
from irgan.training.svd import item_factors

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
