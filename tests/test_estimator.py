"""The estimator API (irgan.estimator): one contract for IRGAN and the baselines, on planted data."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import irgan.adversarial.irgan.recipe
from irgan.checkpoint import FORMAT, ModelFileError, save_model
from irgan.config import PRESETS, BPRConfig, IRGANConfig
from irgan.data import DataError, Interactions
from irgan.estimator import IRGAN, BPRRecommender, PopularityRecommender, Recommender
from irgan.metrics import evaluate
from irgan.models import MatrixFactorization
from helpers import planted as planted_blocks

N_GROUPS, USERS_PER_GROUP, ITEMS_PER_GROUP, N_TRAIN = 4, 15, 10, 6
N_USERS, N_ITEMS = N_GROUPS * USERS_PER_GROUP, N_GROUPS * ITEMS_PER_GROUP

# Tiny configs: one short round of the game; SGD for BPR (Adam's first use imports torch._dynamo, ~10 s).
TINY_IRGAN = dict(epochs=1, d_epochs=2, g_epochs=2, pretrain=BPRConfig(epochs=3), device="cpu")
FAST_BPR = dict(negatives="uniform", epochs=8, lr=0.2, l2=0.01, init_scale=0.1, batch_size=16, device="cpu")


def planted(seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """60 users x 40 items in 4 groups; each user likes its group's 10 items: 6 in train, 4 in test."""
    return planted_blocks(seed, N_USERS // USERS_PER_GROUP, USERS_PER_GROUP, ITEMS_PER_GROUP, N_TRAIN)


def user_name(u: int) -> str:
    return f"u{u:02d}"


def item_name(i: int) -> str:
    return f"i{i:02d}"


@pytest.fixture(scope="module")
def data() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    return planted()


@pytest.fixture(scope="module")
def frame(data) -> pd.DataFrame:
    """The train positives with string ids and rating 5, plus rating-2 rows (not positives) on
    other groups' items, and a user whose only rating is low."""
    train, _ = data
    coo = train.tocoo()
    rows = [(user_name(u), item_name(i), 5.0) for u, i in zip(coo.row, coo.col)]
    rows += [(user_name(u), item_name((u // USERS_PER_GROUP + 1) % N_GROUPS * ITEMS_PER_GROUP), 2.0)
             for u in range(0, N_USERS, 7)]
    rows.append(("lonely", item_name(0), 1.0))
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


@pytest.fixture(scope="module")
def irgan_df(frame) -> IRGAN:
    return IRGAN(**TINY_IRGAN).fit(frame)


FACTORIES = {
    "popularity": lambda: PopularityRecommender(),
    "bpr": lambda: BPRRecommender(**FAST_BPR),
    "irgan": lambda: IRGAN(**TINY_IRGAN),
}


@pytest.fixture(scope="module")
def fits(data):
    """Each estimator fitted once on the planted CSR train matrix (ids 0..n-1), selecting on test."""
    train, test = data
    cache: dict[str, Recommender] = {}

    def get(name: str) -> Recommender:
        if name not in cache:
            cache[name] = FACTORIES[name]().fit(train, validation=test)
        return cache[name]

    return get


@pytest.fixture(params=list(FACTORIES))
def fitted(request, fits) -> Recommender:
    return fits(request.param)


def seen_items(train: sp.csr_matrix, user: int) -> set[int]:
    return set(train[user].indices.tolist())


# --- the shared contract --------------------------------------------------------------------

def test_recommend_returns_k_unseen_items_per_user_by_rank(fitted, data):
    train, _ = data
    users = [5, 0, 59]
    recs = fitted.recommend(users, k=5)
    assert list(recs.columns) == ["user", "item", "score", "rank"]
    assert recs["user"].tolist() == np.repeat(users, 5).tolist()  # in the order asked
    for user, group in recs.groupby("user", sort=False):
        assert group["rank"].tolist() == [1, 2, 3, 4, 5]
        assert (np.diff(group["score"].to_numpy()) <= 0).all()
        assert group["item"].is_unique
        assert not set(group["item"]) & seen_items(train, user)
        assert set(group["item"]) <= set(range(N_ITEMS))


def test_recommend_scalar_user_equals_list_of_one(fitted):
    one = fitted.recommend(7, k=4)
    pd.testing.assert_frame_equal(one, fitted.recommend([7], k=4))
    assert one["user"].tolist() == [7] * 4
    assert fitted.recommend(np.array([7, 7]), k=4)["user"].tolist() == [7] * 8


def test_recommend_unknown_user_raises_keyerror_naming_it(fitted):
    with pytest.raises(KeyError, match="unknown user id.*999"):
        fitted.recommend([0, 999])
    with pytest.raises(KeyError, match="unknown item id.*-3"):
        fitted.score_pairs([0], [-3])


def test_exclude_seen_and_short_lists(fitted, data):
    train, _ = data
    unseen = fitted.recommend(0, k=N_ITEMS)
    assert len(unseen) == N_ITEMS - N_TRAIN  # fewer than k unseen items: fewer rows, never -inf
    assert np.isfinite(unseen["score"]).all()
    everything = fitted.recommend(0, k=N_ITEMS, exclude_seen=False)
    assert sorted(everything["item"]) == list(range(N_ITEMS))
    assert seen_items(train, 0) <= set(everything["item"])


def test_score_pairs_agrees_with_recommend(fitted):
    recs = fitted.recommend([1, 2, 3], k=6)
    scores = fitted.score_pairs(recs["user"].to_numpy(), recs["item"].to_numpy())
    assert scores.shape == (18,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, recs["score"].to_numpy(), rtol=1e-5, atol=1e-6)
    assert fitted.score_pairs(1, [0, 1, 2]).shape == (3,)  # a scalar user broadcasts


def test_save_load_round_trip_is_identical(fitted, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left behind
    state = torch.load(path, weights_only=True)  # plain data: no code runs on load
    assert state["format"] == FORMAT and state["estimator"] == type(fitted).__name__
    loaded = type(fitted).load(path, device="cpu")
    also = Recommender.load(path, device="cpu")
    assert type(loaded) is type(also) is type(fitted)
    assert loaded.get_params() == fitted.get_params()
    users = list(range(N_USERS))
    pd.testing.assert_frame_equal(loaded.recommend(users, k=10), fitted.recommend(users, k=10))
    pd.testing.assert_frame_equal(also.recommend(users, k=10), fitted.recommend(users, k=10))
    assert (loaded.user_items_ != fitted.user_items_).nnz == 0


def test_methods_before_fit_raise_not_fitted(fitted, tmp_path):
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params()
    for call in (lambda: fresh.recommend(0), lambda: fresh.score_pairs([0], [0]), lambda: fresh.similar_items(0),
                 lambda: fresh.score(sp.csr_matrix(fitted.user_items_.shape)),
                 lambda: fresh.save(tmp_path / "x.pt"), lambda: fresh.item_embeddings, lambda: fresh.model_):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()


def test_similar_items_and_embeddings(fitted):
    if isinstance(fitted, PopularityRecommender):
        with pytest.raises(NotImplementedError, match="no user_emb / item_emb embeddings"):
            fitted.similar_items(0)
        with pytest.raises(NotImplementedError):
            fitted.user_embeddings
        return
    assert fitted.user_embeddings.shape == (N_USERS, 5)
    assert fitted.item_embeddings.shape == (N_ITEMS, 5)
    sims = fitted.similar_items([3, 17], k=4)
    assert list(sims.columns) == ["item", "similar_item", "score", "rank"]
    assert sims["item"].tolist() == [3] * 4 + [17] * 4
    assert not (sims["item"] == sims["similar_item"]).any()
    assert sims["rank"].tolist() == [1, 2, 3, 4] * 2
    assert (sims["score"] <= 1 + 1e-6).all()
    for _, group in sims.groupby("item"):
        assert (np.diff(group["score"].to_numpy()) <= 0).all()
    emb = fitted.item_embeddings
    a, b = emb[3], emb[sims["similar_item"].iloc[0]]
    cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert sims["score"].iloc[0] == pytest.approx(cos, abs=1e-5)
    assert len(fitted.similar_items(3, k=1000)) == N_ITEMS - 1


# --- data formats ---------------------------------------------------------------------------

def test_fit_on_dataframe_with_string_ids(irgan_df, frame):
    known = set(frame["user"])
    assert set(irgan_df.user_ids_) == known and "lonely" in known  # every user kept, positives or not
    positives = frame[frame["rating"] >= 4.0]
    assert irgan_df.user_items_.nnz == len(positives)  # rating < min_rating: not a positive
    recs = irgan_df.recommend(["u03", "u40"], k=5)
    assert recs["user"].tolist() == ["u03"] * 5 + ["u40"] * 5
    assert set(recs["item"]) <= set(frame["item"])
    for user, group in recs.groupby("user"):
        assert not set(group["item"]) & set(positives.loc[positives["user"] == user, "item"])
    assert len(irgan_df.recommend("lonely", k=3)) == 3
    with pytest.raises(KeyError, match="nobody"):
        irgan_df.recommend("nobody")


def test_dataframe_string_ids_survive_save_load(irgan_df, tmp_path):
    irgan_df.save(tmp_path / "m.pt")
    loaded = IRGAN.load(tmp_path / "m.pt", device="cpu")
    users = ["u00", "lonely", "u59"]
    pd.testing.assert_frame_equal(loaded.recommend(users, k=7), irgan_df.recommend(users, k=7))
    pd.testing.assert_frame_equal(loaded.similar_items(["i05"], k=3), irgan_df.similar_items(["i05"], k=3))
    assert loaded.history_ == irgan_df.history_ and loaded.best_ == irgan_df.best_


def test_min_rating_none_keeps_every_row(frame):
    model = PopularityRecommender(min_rating=None).fit(frame)
    assert model.user_items_.nnz == len(frame.drop_duplicates(["user", "item"]))
    with pytest.raises(DataError, match="min_rating=9"):
        PopularityRecommender(min_rating=9).fit(frame)


def test_fit_on_interactions_keeps_its_raw_ids(data):
    train, _ = data
    users = np.arange(100, 100 + N_USERS)
    items = np.array([f"item-{i}" for i in range(N_ITEMS)], dtype=object)
    model = PopularityRecommender().fit(Interactions(train, users, items))
    recs = model.recommend(100, k=3)
    assert recs["user"].tolist() == [100] * 3
    assert set(recs["item"]) <= set(items)
    assert model.score_pairs(100, "item-0").shape == ()


def test_stored_zeros_in_a_sparse_matrix_are_not_positives():
    matrix = sp.csr_matrix((np.array([1.0, 0.0, 1.0], np.float32), ([0, 0, 1], [0, 1, 2])), shape=(2, 3))
    assert matrix.nnz == 3  # the zero is stored
    model = PopularityRecommender().fit(matrix)
    assert model.user_items_.nnz == 2
    assert 1 in model.recommend(0, k=3)["item"].tolist()


def test_recommend_one_user_leaves_popularity_counts_alone(data):
    # Popularity.score_users returns counts.expand(1, -1) for one user: a view of the model's
    # buffer that is "contiguous", so masking seen items in place once wrote -inf into the model.
    train, _ = data
    model = PopularityRecommender().fit(train)
    counts = model.model_.counts.clone()
    first = model.recommend(0, k=N_ITEMS)
    assert torch.equal(model.model_.counts, counts)
    pd.testing.assert_frame_equal(model.recommend(0, k=N_ITEMS), first)
    assert len(model.recommend(1, k=N_ITEMS)) == N_ITEMS - N_TRAIN


def test_fit_refuses_other_types():
    with pytest.raises(TypeError, match="DataFrame"):
        PopularityRecommender().fit(np.ones((3, 3)))


# --- IRGAN specifics ------------------------------------------------------------------------

def test_irgan_selects_on_the_validation_given(data, fits):
    train, test = data
    model = fits("irgan")
    kept = model.best_["generator"]["metrics"]["P@5"]
    assert evaluate(model.generator_, train, test)["P@5"] == pytest.approx(kept)
    assert len(model.history_) == TINY_IRGAN["g_epochs"]
    with pytest.raises(DataError, match="not in the given user_ids"):
        IRGAN(**TINY_IRGAN).fit(train, validation=pd.DataFrame({"user": [999], "item": [0]}))


def test_side_picks_the_player_that_serves(irgan_df, tmp_path):
    irgan_df.save(tmp_path / "m.pt")
    model = IRGAN.load(tmp_path / "m.pt", device="cpu")  # a copy whose side we can change
    metric = model.config.select_metric
    g = model.best_["generator"]["metrics"][metric]
    d = model.best_["discriminator"]["metrics"][metric]
    model.set_params(side="best")
    assert model.chosen_side_ == ("discriminator" if d > g else "generator")

    model.set_params(side="discriminator")
    assert model.model_ is model.discriminator_
    row = model.user_items_.shape[0] - 1
    with torch.no_grad():
        scores = model.discriminator_.score_users(torch.tensor([row])).numpy()[0]
    scores[model.user_items_[row].indices] = -np.inf
    expected = np.argsort(-scores, kind="stable")[:5]
    recs = model.recommend(model.user_ids_[row], k=5)
    assert recs["item"].tolist() == model.item_ids_[expected].tolist()
    model.set_params(side="generator")
    assert model.model_ is model.generator_


def test_params_round_trip_and_nested_pretrain():
    model = IRGAN(epochs=2, d_lr=0.01, pretrain=BPRConfig(epochs=3), side="best", seed=4)
    params = model.get_params(deep=False)
    assert set(params) == {f.name for f in dataclasses.fields(IRGANConfig)} | {
        "generator", "discriminator", "seed", "device", "show_progress", "verbose", "side", "min_rating"}
    assert IRGAN(**params).get_params() == model.get_params()
    assert model.get_params()["pretrain__epochs"] == 3
    model.set_params(**model.get_params(deep=True))  # a no-op
    assert model.get_params(deep=False) == params
    model.set_params(pretrain__epochs=7, g_epochs=1)
    assert model.config.pretrain == BPRConfig(epochs=7) and model.config.g_epochs == 1
    assert model.get_params()["pretrain__epochs"] == 7
    assert clone(model).get_params() == model.get_params()
    assert repr(model).startswith("IRGAN(") and "d_lr=0.01" in repr(model)


def test_bad_params_raise_and_leave_the_estimator_unchanged():
    model = IRGAN(epochs=2)
    before = model.get_params()
    with pytest.raises(ValueError, match="invalid parameter.*nope"):
        model.set_params(nope=1)
    with pytest.raises(ValueError, match="learning rates and ease_l2 must be positive"):
        model.set_params(epochs=3, d_lr=-1.0)  # the config's own check
    with pytest.raises(ValueError, match="side"):
        model.set_params(epochs=3, side="both")
    assert model.get_params() == before
    with pytest.raises(TypeError, match="nope"):
        IRGAN(nope=1)
    with pytest.raises(ValueError, match="dim must be >= 1"):
        IRGAN(dim=0)
    with pytest.raises(ValueError, match="no test set.*validation"):
        IRGAN(select_on="test")
    with pytest.raises(ValueError, match="negatives"):
        BPRRecommender(negatives="hard")


# --- baselines ------------------------------------------------------------------------------

def test_bpr_beats_popularity_on_planted_groups(data, fits):
    train, test = data
    popularity, bpr = fits("popularity"), fits("bpr")
    pop_p5, bpr_p5 = (evaluate(m.model_, train, test)["P@5"] for m in (popularity, bpr))
    assert popularity.validation_metrics_["P@5"] == pytest.approx(pop_p5)
    assert bpr.validation_metrics_["P@5"] == pytest.approx(bpr_p5)
    assert pop_p5 < 0.2 and bpr_p5 > 0.5
    # and the similar items of a trained BPR mostly come from the item's own group
    sims = bpr.similar_items(list(range(N_ITEMS)), k=3)
    same_group = (sims["item"] // ITEMS_PER_GROUP) == (sims["similar_item"] // ITEMS_PER_GROUP)
    assert same_group.mean() > 0.6


def test_load_refuses_foreign_files(tmp_path, data):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(256))
    with pytest.raises(ModelFileError, match="not a loadable irgan model file"):
        IRGAN.load(junk)
    other = tmp_path / "dict.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ValueError, match="not an irgan model file"):
        Recommender.load(other)
    init = tmp_path / "init.pt"  # the CLI's init.pt: a BPRRecommender model file, not an IRGAN
    save_model(init, "BPRRecommender", {"model": MatrixFactorization(2, 3)}, [0, 1], [0, 1, 2],
               sp.csr_matrix((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="holds a BPRRecommender"):
        IRGAN.load(init)
    assert type(Recommender.load(init, device="cpu")) is BPRRecommender
    popularity = tmp_path / "pop.pt"
    PopularityRecommender().fit(data[0]).save(popularity)
    with pytest.raises(ValueError, match="holds a PopularityRecommender"):
        IRGAN.load(popularity)
    with pytest.raises(FileNotFoundError):
        IRGAN.load(tmp_path / "missing.pt")


NEW_IN_V2 = {"g_scorer", "d_scorer", "hidden", "itemitem_init", "ease_l2", "g_estimator", "fast_path",
             "pretrain_select"}  # IRGANConfig fields a version-1 file cannot hold


def test_load_converts_a_version_1_cli_checkpoint(tmp_path):
    """A model.pt of the CLI before irgan-model-v2 ("irgan-checkpoint-v1") loads as an IRGAN."""
    g, d = MatrixFactorization(3, 4, dim=2), MatrixFactorization(3, 4, dim=2)
    config = IRGANConfig(epochs=2, d_lr=0.01)
    state = {"format": "irgan-checkpoint-v1",
             "generator": {k: v.detach() for k, v in g.state_dict().items()},
             "discriminator": {k: v.detach() for k, v in d.state_dict().items()},
             "config": {k: v for k, v in dataclasses.asdict(config).items() if k not in NEW_IN_V2},
             "user_ids": ["a", "b", "c"], "item_ids": [10, 20, 30, 40],
             "extra": {"seed": 0, "dataset": "ratings.csv"}}
    path = tmp_path / "old.pt"
    torch.save(state, path)
    model = IRGAN.load(path, device="cpu")
    assert model.config == config
    assert model.user_ids_.tolist() == ["a", "b", "c"] and model.item_ids_.tolist() == [10, 20, 30, 40]
    with torch.no_grad():
        expected = g.score_users(torch.tensor([1]))[0].numpy()
    recs = model.recommend("b", k=4)
    assert recs["item"].tolist() == [[10, 20, 30, 40][i] for i in np.argsort(-expected, kind="stable")]
    np.testing.assert_allclose(model.score_pairs("b", [10, 20, 30, 40]), expected, rtol=1e-6)
    torch.testing.assert_close(model.discriminator_.scorer.item_emb, d.item_emb)


def test_a_preset_with_refit_fits_through_the_estimator(data, monkeypatch):
    trained_on = []
    real = irgan.adversarial.irgan.recipe.fit_irgan

    def spy(train, *args, **kwargs):
        trained_on.append(train.nnz)
        return real(train, *args, **kwargs)
    monkeypatch.setattr(irgan.adversarial.irgan.recipe, "fit_irgan", spy)
    model = IRGAN(**{**PRESETS["strong"], **TINY_IRGAN, "pretrain": {"epochs": 3}, "dim": 4}).fit(data[0])
    assert model.config.refit and model.config.g_lr == PRESETS["strong"]["g_lr"]
    assert trained_on[0] < trained_on[1] == data[0].nnz  # played on train less validation, then refit on all of it
    assert evaluate(model.generator_.scorer, data[0], data[1])["P@5"] > 0


def test_bpr_keeps_the_best_epoch_on_validation_and_stops_early(data):
    """As LightGCN: evaluated every eval_every epochs, the best kept, stopped after `patience` checks without a gain."""
    train, test = data
    model = BPRRecommender(**{**FAST_BPR, "epochs": 300, "eval_every": 2, "patience": 3}).fit(train, validation=test)
    epochs = [row["epoch"] for row in model.history_]
    assert epochs == list(range(2, 2 * len(epochs) + 1, 2))
    assert epochs[-1] < 300 and epochs[-1] == model.best_epoch_ + 6  # three evaluations without a gain
    best = max(model.history_, key=lambda row: row["P@5"])  # the first of equals, as KeepBest keeps
    assert model.best_epoch_ == best["epoch"] and model.validation_metrics_ == {
        k: v for k, v in best.items() if k != "epoch"}
    assert evaluate(model.model_, train, test)["P@5"] == pytest.approx(best["P@5"])
    again = BPRRecommender(**{**FAST_BPR, "epochs": model.best_epoch_}).fit(train)  # the refit the choice stands for
    torch.testing.assert_close(again.model_.state_dict(), model.model_.state_dict())


def test_bpr_without_validation_or_patience_runs_every_epoch(data, tmp_path):
    train, test = data
    plain = BPRRecommender(**FAST_BPR).fit(train)
    assert plain.best_epoch_ == FAST_BPR["epochs"] and plain.history_ == [] and plain.validation_metrics_ is None
    patient = BPRRecommender(**{**FAST_BPR, "patience": None, "eval_every": 3}).fit(train, validation=test)
    assert [row["epoch"] for row in patient.history_] == [3, 6]  # 8 epochs: evaluated at 3 and 6, none stopped
    plain.save(tmp_path / "bpr.pt")
    loaded = BPRRecommender.load(tmp_path / "bpr.pt")
    assert loaded.best_epoch_ == plain.best_epoch_ and loaded.history_ == []
    patient.save(tmp_path / "patient.pt")
    assert BPRRecommender.load(tmp_path / "patient.pt").history_ == patient.history_


@pytest.mark.parametrize("params, message", [
    ({"patience": 0}, "patience must be an integer >= 1 or None, got 0"),
    ({"eval_every": True}, "eval_every must be an integer >= 1, got True"),
    ({"select_metric": "P@0"}, "select_metric must be one of"),
])
def test_bpr_refuses_bad_selection_parameters_in_one_line(data, params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        BPRRecommender(**{**FAST_BPR, **params}).fit(data[0])
