"""scikit-learn conventions of the estimators (irgan.recommender): parameters, clone, grid
search with ranking scores, ``score`` on held-out interactions; and scorers of your own."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from torch import nn

import irgan
from irgan.checkpoint import ModelFileError
from irgan.config import BPRConfig, IRGANConfig
from irgan.data import Interactions
from irgan.estimator import IRGAN, BPRRecommender, PopularityRecommender
from irgan.metrics import evaluate
from irgan.models import SCORERS, Popularity
from helpers import planted

N_GROUPS, USERS_PER_GROUP, ITEMS_PER_GROUP = 3, 10, 10
N_USERS, N_ITEMS = N_GROUPS * USERS_PER_GROUP, N_GROUPS * ITEMS_PER_GROUP
ITEM_OFFSET = 100  # raw item ids 100..129: not matrix indices, but sorted as they are
TINY_IRGAN = dict(epochs=1, d_epochs=1, g_epochs=1, init="random", device="cpu")


def as_frame(matrix: sp.csr_matrix) -> pd.DataFrame:
    """(user, item) rows of a matrix's positives: raw user = row, raw item = ITEM_OFFSET + column."""
    coo = matrix.tocoo()
    return pd.DataFrame({"user": coo.row.astype(np.int64), "item": coo.col.astype(np.int64) + ITEM_OFFSET})


@pytest.fixture(scope="module")
def data() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    train, test = planted(0, N_GROUPS, USERS_PER_GROUP, ITEMS_PER_GROUP)
    assert (np.asarray(train.sum(0)).ravel() > 0).all()  # every item in train: the frames keep the matrices' order
    return train, test


@pytest.fixture(scope="module")
def frames(data) -> tuple[pd.DataFrame, pd.DataFrame]:
    return as_frame(data[0]), as_frame(data[1])


ESTIMATORS = {
    "irgan": lambda: IRGAN(epochs=2, d_lr=0.01, pretrain=BPRConfig(epochs=3, lr=0.1), side="best", seed=3,
                           min_rating=None),
    "bpr": lambda: BPRRecommender(epochs=2, dim=4, negatives="uniform", seed=1, device="cpu"),
    "popularity": lambda: PopularityRecommender(min_rating=3.0),
}


# --- the public names -------------------------------------------------------------------------

def test_top_level_imports():
    from irgan import IRGAN as A, BPRRecommender as B, PopularityRecommender as C, IRGANConfig as D, \
        load_dataset, evaluate as E  # noqa: F401
    assert (A, B, C, D, E) == (IRGAN, BPRRecommender, PopularityRecommender, IRGANConfig, evaluate)
    assert callable(load_dataset) and irgan.ranking_scorer is not None
    assert {"IRGAN", "BPRRecommender", "PopularityRecommender", "IRGANConfig", "load_dataset", "evaluate"} \
        <= set(irgan.__all__)


# --- parameters -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_clone_gives_equal_params(name):
    model = ESTIMATORS[name]()
    copy = clone(model)
    assert type(copy) is type(model) and copy is not model
    assert copy.get_params(deep=True) == model.get_params(deep=True)
    assert copy.get_params(deep=False) == model.get_params(deep=False)
    assert not hasattr(copy, "user_items_")  # a clone is unfitted


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_get_params_round_trips_through_the_constructor(name):
    model = ESTIMATORS[name]()
    params = model.get_params(deep=False)
    assert type(model)(**params).get_params() == model.get_params()
    assert model.set_params(**params) is model  # a no-op, returning self
    assert model.get_params(deep=False) == params


def test_nested_pretrain_params():
    model = ESTIMATORS["irgan"]()
    deep = model.get_params(deep=True)
    assert deep["pretrain"] == BPRConfig(epochs=3, lr=0.1)
    assert deep["pretrain__epochs"] == 3 and deep["pretrain__lr"] == 0.1
    assert {f"pretrain__{f.name}" for f in dataclasses.fields(BPRConfig)} <= set(deep)
    assert "pretrain__epochs" not in model.get_params(deep=False)

    model.set_params(pretrain__epochs=7)
    assert model.config.pretrain == BPRConfig(epochs=7, lr=0.1)  # the other fields stay
    assert model.get_params()["pretrain__epochs"] == 7
    # a nested value applies on top of a new value given in the same call
    model.set_params(pretrain=BPRConfig(dim=2), pretrain__epochs=4, g_epochs=9)
    assert model.config.pretrain == BPRConfig(dim=2, epochs=4) and model.config.g_epochs == 9
    assert clone(model).get_params() == model.get_params()

    before = model.get_params()
    with pytest.raises(ValueError, match="invalid parameter"):
        model.set_params(pretrain__nope=1)
    with pytest.raises(ValueError, match="dns_candidates"):
        model.set_params(pretrain__dns_candidates=0)  # BPRConfig's own check
    assert model.get_params() == before  # all or nothing


def test_set_params_on_a_flat_estimator():
    model = BPRRecommender(epochs=2)
    assert model.set_params(lr=0.3, seed=5) is model
    assert model.config.lr == 0.3 and model.seed == 5 and model.get_params()["lr"] == 0.3
    with pytest.raises(ValueError, match="invalid parameter.*pretrain__epochs"):
        model.set_params(pretrain__epochs=3)  # BPR has no nested config
    with pytest.raises(ValueError, match="invalid parameter"):
        PopularityRecommender().set_params(lr=0.1)


# --- grid search ------------------------------------------------------------------------------

def grid(scoring=None) -> GridSearchCV:
    return GridSearchCV(BPRRecommender(epochs=2, dim=4, device="cpu"), {"lr": [0.01, 0.05]}, scoring=scoring,
                        cv=KFold(3, shuffle=True, random_state=0))


@pytest.fixture(scope="module")
def positives(frames) -> pd.DataFrame:
    """Every planted positive as (user, item) rows: the search splits them into folds."""
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def searches(positives) -> dict[str, GridSearchCV]:
    return {"ranking_scorer": grid(irgan.ranking_scorer("NDCG@10")).fit(positives),
            "default": grid().fit(positives)}


@pytest.mark.parametrize("scoring", ["ranking_scorer", "default"])
def test_grid_search_on_a_dataframe(searches, positives, scoring):
    search = searches[scoring]
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,) and np.isfinite(scores).all() and (scores > 0).all() and (scores <= 1).all()
    assert [p["lr"] for p in search.cv_results_["params"]] == [0.01, 0.05]
    best = search.best_estimator_
    assert isinstance(best, BPRRecommender) and best.config.lr == search.best_params_["lr"]
    assert best.config.epochs == 2 and best.config.dim == 4  # the grid changed lr only
    assert best.user_items_.nnz == len(positives)  # refit on all the rows
    recs = best.recommend([0, 17], k=5)
    assert recs["user"].tolist() == [0] * 5 + [17] * 5
    assert set(recs["item"]) <= set(range(ITEM_OFFSET, ITEM_OFFSET + N_ITEMS))


def test_default_scoring_is_ndcg_at_10(searches):
    """The estimator's own score is NDCG@10: the same fits score the same under both searches."""
    for key in ("mean_test_score", "split0_test_score", "split1_test_score", "split2_test_score"):
        np.testing.assert_allclose(searches["default"].cv_results_[key], searches["ranking_scorer"].cv_results_[key],
                                   rtol=1e-12)


def test_grid_search_fold_score_is_the_score_of_that_fold(searches, positives):
    """split0's score is NDCG@10 of a model fitted on the first fold's train rows, on its test rows."""
    train_rows, test_rows = next(KFold(3, shuffle=True, random_state=0).split(positives))
    model = BPRRecommender(epochs=2, dim=4, device="cpu", lr=0.05).fit(positives.iloc[train_rows])
    expected = model.score(positives.iloc[test_rows])
    assert searches["default"].cv_results_["split0_test_score"][1] == pytest.approx(expected, rel=1e-12)
    p5 = irgan.ranking_scorer("P@5")(model, positives.iloc[test_rows])
    assert p5 == pytest.approx(model.score(positives.iloc[test_rows], metric="P@5")) and p5 != expected


# --- score(X) ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def popularity(frames) -> PopularityRecommender:
    return PopularityRecommender().fit(frames[0])


def test_popularity_score_is_ndcg_of_evaluate(popularity, frames, data):
    train, test = data
    assert popularity.user_items_.shape == train.shape
    expected = evaluate(Popularity(train), train, test, ks=(10,))["NDCG@10"]  # by hand, on the planted matrices
    assert popularity.score(frames[1]) == pytest.approx(expected, rel=1e-12)
    assert popularity.score(frames[1], metric="P@5") == pytest.approx(evaluate(Popularity(train), train, test)["P@5"])
    # the same held-out pairs as Interactions and as a sparse matrix, on the fitted id maps
    held_out = Interactions(test, np.arange(N_USERS), np.arange(ITEM_OFFSET, ITEM_OFFSET + N_ITEMS))
    assert popularity.score(held_out) == pytest.approx(expected, rel=1e-12)
    assert popularity.score(test) == pytest.approx(expected, rel=1e-12)


def test_score_drops_unknown_users_items_and_seen_pairs(popularity, frames):
    expected = popularity.score(frames[1])
    extra = pd.DataFrame({"user": [999, 999, 0, 5], "item": [ITEM_OFFSET, 777, 777, ITEM_OFFSET + 1]})
    seen = frames[0].iloc[:20]  # pairs fit saw: not held out
    mixed = pd.concat([frames[1], extra, seen], ignore_index=True)
    assert popularity.score(mixed) == pytest.approx(expected, rel=1e-12)


def test_score_refuses_nothing_to_score(popularity, frames):
    with pytest.raises(ValueError, match="nothing to score"):
        popularity.score(frames[0])  # every pair was seen in fit
    strangers = pd.DataFrame({"user": [999, 998, 0], "item": [ITEM_OFFSET, 777, 777]})
    for nothing_left in (strangers, frames[1].iloc[:0]):
        with pytest.raises(ValueError) as err:
            popularity.score(nothing_left)
        assert len(str(err.value).splitlines()) == 1


def test_score_drops_unknown_ids_of_interactions_too(popularity, data):
    _, test = data
    users = np.r_[np.arange(N_USERS - 1), 999]  # the last row is a user the model never saw
    held_out = Interactions(test, users, np.arange(ITEM_OFFSET, ITEM_OFFSET + N_ITEMS))
    expected = popularity.score(Interactions(test[:-1], users[:-1], held_out.item_ids))
    assert popularity.score(held_out) == pytest.approx(expected, rel=1e-12)


# --- a scorer of your own ---------------------------------------------------------------------

class TinyScorer(nn.Module):
    """score(u, i) = <p_u, q_i>: the smallest scorer a player accepts (no penalty, no bias)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 3) -> None:
        super().__init__()
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        generator = torch.Generator().manual_seed(11)
        self.user_emb = nn.Parameter(torch.randn(n_users, dim, generator=generator) * 0.1)
        self.item_emb = nn.Parameter(torch.randn(n_items, dim, generator=generator) * 0.1)

    def init_args(self) -> dict:
        return {"n_users": self.n_users, "n_items": self.n_items, "dim": self.dim}

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_emb[users] * self.item_emb[items]).sum(-1)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_emb[users] @ self.item_emb.T


@pytest.fixture(scope="module")
def custom(frames) -> IRGAN:
    start = TinyScorer(N_USERS, N_ITEMS)
    model = IRGAN(generator=start, **TINY_IRGAN).fit(frames[0])
    assert model.generator is start and type(model.generator_.scorer) is TinyScorer
    assert model.generator_.scorer is not start  # the game played on a copy
    return model


def test_custom_scorer_is_trained(custom):
    before = TinyScorer(N_USERS, N_ITEMS)
    assert custom.history_ and custom.best_["generator"]
    moved = not torch.equal(custom.generator_.scorer.user_emb, before.user_emb)
    kept_start = custom.best_["generator"]["epoch"] < 0
    assert moved or kept_start  # G stepped, unless selection kept its start


def test_custom_scorer_saves_and_loads_with_scorers(custom, tmp_path):
    assert "TinyScorer" not in SCORERS  # not registered: load must be told the class
    path = tmp_path / "custom.pt"
    custom.save(path)
    loaded = IRGAN.load(path, device="cpu", scorers=[TinyScorer])
    assert type(loaded.generator_.scorer) is TinyScorer
    assert type(loaded.discriminator_.scorer) is type(custom.discriminator_.scorer)
    for name, tensor in custom.generator_.scorer.state_dict().items():
        assert torch.equal(loaded.generator_.scorer.state_dict()[name], tensor)
    users = list(range(N_USERS))
    pd.testing.assert_frame_equal(loaded.recommend(users, k=5), custom.recommend(users, k=5))
    np.testing.assert_allclose(loaded.score_pairs(3, [100, 105]), custom.score_pairs(3, [100, 105]))
    assert loaded.history_ == custom.history_
    # a loaded estimator refits with the scorer it was saved with, not the default g_scorer
    assert loaded.get_params()["generator"] is TinyScorer
    assert loaded.get_params()["discriminator"] is None  # D was a built-in, named by d_scorer


def test_custom_scorer_without_scorers_is_a_one_line_error(custom, tmp_path):
    path = tmp_path / "custom.pt"
    custom.save(path)
    with pytest.raises(ValueError, match="register_scorer") as err:
        IRGAN.load(path, device="cpu")
    assert isinstance(err.value, ModelFileError)
    assert "TinyScorer" in str(err.value) and len(str(err.value).splitlines()) == 1
