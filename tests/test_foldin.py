"""Fold-in (``recommend_new``, ``irgan.foldin``) and unknown users in ``recommend``.

Planted data (helpers.planted): 3 groups of 20 users, each group liking its own 20 items, half of
each user's block in train. Six users (two per group) are held out of one fit and folded in from
their train items; the model fitted with them is the reference. On these data a fold-in that ignores
the history (popularity) scores P@5 about 1/3 on the held-out items, the right one 1.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from helpers import planted
from irgan import (IRGAN, BPRConfig, BPRRecommender, EASERecommender, IALSRecommender, ItemKNNRecommender,
                   PopularityRecommender, PureSVDRecommender, RP3betaRecommender, SLIMRecommender)
from irgan.adversarial.cfgan.scorer import CFGANScorer
from irgan.data import DataError, Interactions
from irgan.foldin import WeightedLeastSquares, fold_in
from irgan.models import ItemItemScorer, LightGCNScorer, MLPScorer, Popularity

HELD = np.array([0, 1, 20, 21, 40, 41])
FAST_BPR = dict(negatives="uniform", epochs=8, lr=0.2, l2=0.01, init_scale=0.1, batch_size=16, device="cpu")
FACTORIES = {
    "ease": lambda: EASERecommender(l2=10.0, device="cpu"),
    "ials": lambda: IALSRecommender(factors=8, regularization=1.0, device="cpu"),
    "bpr": lambda: BPRRecommender(**FAST_BPR),
    "puresvd": lambda: PureSVDRecommender(factors=3, device="cpu"),
    "slim": lambda: SLIMRecommender(device="cpu"),
}
ITEM_ITEM = {
    "ease": FACTORIES["ease"], "slim": FACTORIES["slim"],
    "itemknn": lambda: ItemKNNRecommender(device="cpu"), "rp3beta": lambda: RP3betaRecommender(device="cpu"),
}


@pytest.fixture(scope="module")
def data() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    return planted(seed=0)


@pytest.fixture(scope="module")
def histories(data) -> dict[int, list[int]]:
    train, _ = data
    return {int(u): train[u].indices.tolist() for u in HELD}


@pytest.fixture(scope="module")
def fits(data) -> dict[str, tuple]:
    """name -> (fitted on every user, fitted without HELD): ids are matrix indices."""
    train, _ = data
    keep = np.setdiff1d(np.arange(train.shape[0]), HELD)
    full = Interactions(train, np.arange(train.shape[0]), np.arange(train.shape[1]))
    without = Interactions(train[keep], keep, np.arange(train.shape[1]))
    return {name: (make().fit(full), make().fit(without)) for name, make in FACTORIES.items()}


def precision_at_5(recs: pd.DataFrame, test: sp.csr_matrix) -> float:
    """Mean over the users of |top 5 ∩ their test items| / 5."""
    top = recs[recs["rank"] <= 5].groupby("user")["item"]
    return float(np.mean([len(set(items) & set(test[user].indices)) / 5 for user, items in top]))


@pytest.mark.parametrize("name", list(FACTORIES))
def test_a_folded_in_user_gets_what_training_with_them_gives(fits, data, histories, name):
    """P@5 on the held-out users' test items: folded in (model fitted without them) equals trained in, 1.0."""
    _, test = data
    trained, without = fits[name]
    trained_in = precision_at_5(trained.recommend(HELD, k=5), test)
    folded_in = precision_at_5(without.recommend_new(histories, k=5), test)
    assert trained_in == folded_in == 1.0


@pytest.mark.parametrize("name", list(ITEM_ITEM))
def test_item_item_fold_in_of_a_training_user_is_their_scoring(data, histories, name):
    """x_u W is the formula both ways: the same items and the same scores, bit for bit."""
    train, _ = data
    model = ITEM_ITEM[name]().fit(train)
    pd.testing.assert_frame_equal(model.recommend_new(histories, k=10), model.recommend(HELD, k=10))


def test_puresvd_fold_in_of_a_training_user_ranks_as_training(fits, histories):
    """V orthonormal: the ridge solution is x V up to its length, so each user's ranking is the trained one."""
    model = fits["puresvd"][0]
    new, old = model.recommend_new(histories, k=10), model.recommend(HELD, k=10)
    np.testing.assert_array_equal(new["item"], old["item"])
    ratio = (new["score"].to_numpy() / old["score"].to_numpy()).reshape(len(HELD), 10)  # one length per user
    np.testing.assert_allclose(ratio, ratio[:, :1].repeat(10, 1), rtol=1e-4)


def test_ials_folds_in_by_its_own_weighted_least_squares(fits, histories):
    """Scores equal a numpy solve of (YᵀY + reg I + alpha Σ y yᵀ) p = (1 + alpha) Σ y (confidence 1 + alpha)."""
    model = fits["ials"][1]
    y = model.model_.item_emb.detach().double().numpy()
    user, items = next(iter(histories.items()))
    a = y.T @ y + model.regularization * np.eye(y.shape[1]) + model.alpha * y[items].T @ y[items]
    expected = y @ np.linalg.solve(a, (1 + model.alpha) * y[items].sum(0))
    expected[items] = -np.inf
    recs = model.recommend_new({user: items}, k=10)
    np.testing.assert_array_equal(recs["item"], np.argsort(-expected, kind="stable")[:10])
    np.testing.assert_allclose(recs["score"], np.sort(expected)[::-1][:10], rtol=1e-4)


def test_mf_fold_in_is_ridge_rescaled_to_the_fitted_users_length(fits, histories):
    """p = (VᵀV + λI)⁻¹ Vᵀ x, λ = 0.1 · tr(VᵀV) / dim, at the mean length of the fitted users' vectors."""
    model = fits["bpr"][1].model_
    v, b = model.item_emb.detach().double().numpy(), model.item_bias.detach().double().numpy()
    gram = v.T @ v
    user, items = next(iter(histories.items()))
    p = np.linalg.solve(gram + 0.1 * np.trace(gram) / v.shape[1] * np.eye(v.shape[1]), v[items].sum(0))
    p *= np.linalg.norm(model.user_emb.detach().double().numpy(), axis=1).mean() / np.linalg.norm(p)
    x = torch.zeros(1, v.shape[0])
    x[0, items] = 1
    np.testing.assert_allclose(fold_in(model)(x)[0].numpy(), v @ p + b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_recommend_new_leaves_the_model_unchanged(fits, histories, name):
    model = fits[name][1]
    state = {k: v.clone() for k, v in model.model_.state_dict().items()}
    before = model.recommend([2, 3], k=5)
    model.recommend_new(histories, k=5)
    assert all(torch.equal(state[k], v) for k, v in model.model_.state_dict().items())
    pd.testing.assert_frame_equal(model.recommend([2, 3], k=5), before)


def test_irgan_folds_in_through_its_generator(data, histories):
    """IRGAN serves G, an MF player: fold-in goes through its scorer and leaves both players unchanged."""
    train, _ = data
    model = IRGAN(epochs=1, d_epochs=1, g_epochs=1, pretrain=BPRConfig(epochs=2), device="cpu").fit(train)
    state = {k: v.clone() for k, v in model.generator_.state_dict().items()}
    recs = model.recommend_new(histories, k=5)
    assert len(recs) == 5 * len(HELD)
    assert all(torch.equal(state[k], v) for k, v in model.generator_.state_dict().items())


def test_a_batch_scores_each_user_as_alone(fits, histories):
    model = fits["ials"][1]
    together = model.recommend_new(histories, k=5)
    alone = pd.concat([model.recommend_new({u: h}, k=5) for u, h in histories.items()], ignore_index=True)
    pd.testing.assert_frame_equal(together, alone, rtol=1e-5)


def test_dataframe_and_dict_histories_agree(fits, histories):
    """Columns user, item[, rating] as fit takes; ratings below min_rating are not history."""
    model = fits["bpr"][1]
    rows = [(u, i, 5.0) for u, items in histories.items() for i in items] + [(0, 45, 1.0)]  # 45: not a positive
    frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
    pd.testing.assert_frame_equal(model.recommend_new(frame, k=5), model.recommend_new(histories, k=5))
    from_ids = model.recommend_new(frame.drop(columns="rating").iloc[:-1], k=5)
    pd.testing.assert_frame_equal(from_ids, model.recommend_new(histories, k=5))
    as_sets = {user: set(items) for user, items in histories.items()}
    pd.testing.assert_frame_equal(model.recommend_new(as_sets, k=5), model.recommend_new(histories, k=5))


def test_history_items_are_excluded(fits, histories):
    recs = fits["ease"][1].recommend_new(histories, k=15)
    for user, items in histories.items():
        assert not set(recs.loc[recs["user"] == user, "item"]) & set(items)


def test_unknown_history_items_are_ignored_with_one_warning(fits, histories, caplog):
    model = fits["ease"][1]
    polluted = {u: items + ["new-item", 999] for u, items in histories.items()}
    with caplog.at_level(logging.WARNING, logger="irgan.serving"):
        recs = model.recommend_new(polluted, k=5)
    pd.testing.assert_frame_equal(recs, model.recommend_new(histories, k=5))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ignored 12 history entries naming 2 item id(s)" in warnings[0]


def test_a_history_of_unknown_items_only_gets_the_popular_items(fits, data):
    train, _ = data
    model = PopularityRecommender().fit(train)
    recs = fits["ease"][1].recommend_new({"x": ["nothing known"], "y": []}, k=3)
    expected = model.recommend([2], k=3, exclude_seen=False)["item"].tolist()
    assert recs.loc[recs["user"] == "x", "item"].tolist() == recs.loc[recs["user"] == "y", "item"].tolist() == expected


def test_popularity_fold_in_is_the_popular_items_not_in_the_history():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 1, 1]], dtype=np.float32))
    recs = PopularityRecommender().fit(train).recommend_new({"new": [0]}, k=3)
    assert recs["item"].tolist() == [1, 2, 3] and recs["score"].tolist() == [2.0, 2.0, 1.0]


def test_unknown_users_in_recommend(fits):
    model = fits["ease"][1]
    counts = np.asarray(model.user_items_.sum(0)).ravel()
    popular = np.argsort(-counts, kind="stable")[:4]
    with pytest.raises(KeyError, match=r"unknown user id\(s\) \[0, 'nobody'\]"):
        model.recommend([2, 0, "nobody"], k=4)
    served = model.recommend([2, "nobody", 3], k=4, unknown="popular")
    assert served["user"].tolist() == [2] * 4 + ["nobody"] * 4 + [3] * 4
    assert served.loc[served["user"] == "nobody", "item"].tolist() == popular.tolist()
    assert served.loc[served["user"] == "nobody", "score"].tolist() == counts[popular].tolist()
    known = model.recommend([2, 3], k=4)
    pd.testing.assert_frame_equal(served[served["user"] != "nobody"].reset_index(drop=True), known,
                                  check_dtype=False)  # the user column holds ints and a str: object
    pd.testing.assert_frame_equal(model.recommend([2, "nobody", 3], k=4, unknown="skip"), known)
    assert model.recommend(["nobody"], k=4, unknown="skip").empty


def test_bad_input_is_one_line(fits, histories):
    model = fits["ease"][1]
    with pytest.raises(ValueError, match=r"unknown must be one of \('error', 'popular', 'skip'\), got 'ignore'"):
        model.recommend([2], unknown="ignore")
    with pytest.raises(TypeError, match="histories must be a dict"):
        model.recommend_new([[1, 2]], k=5)
    with pytest.raises(TypeError, match="found an unhashable value"):
        model.recommend_new({"a": [{2: 3}]}, k=5)
    with pytest.raises(TypeError, match=r"histories\['a'\] must be a list of item ids"):
        model.recommend_new({"a": [[1], [2, 3]]}, k=5)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        model.recommend_new(histories, k=0)
    with pytest.raises(DataError, match="no column"):
        model.recommend_new(pd.DataFrame({"user": [1], "thing": [2]}))


def test_lightgcn_fold_in_is_its_propagation_without_a_layer_0_vector(data):
    """A training user whose layer-0 vector is zeroed scores exactly as their history folded in."""
    train, _ = data
    gcn = LightGCNScorer(*train.shape, dim=4, layers=2, interactions=train, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gcn.user_emb[HELD] = 0
        expected = gcn.score_users(torch.as_tensor(HELD))
    histories = torch.as_tensor(train[HELD].toarray())
    torch.testing.assert_close(fold_in(gcn)(histories), expected)
    with pytest.raises(NotImplementedError, match="layers >= 1"):
        fold_in(LightGCNScorer(*train.shape, dim=4, layers=0, interactions=train))


def test_item_item_fold_in_masks_the_diagonal_as_scoring_does(data):
    """A trained B may hold a diagonal (IRGAN's item-item players); scoring ignores it, so must fold-in."""
    train, _ = data
    scorer = ItemItemScorer(*train.shape, train)
    with torch.no_grad():
        scorer.weight.normal_(generator=torch.Generator().manual_seed(0))
        expected = scorer.score_users(torch.as_tensor(HELD))
    torch.testing.assert_close(fold_in(scorer)(torch.as_tensor(train[HELD].toarray())), expected)


def test_cfgan_folds_in_user_based_and_refuses_item_based(data):
    train, _ = data
    user_based = CFGANScorer(*train.shape, mode="user", hidden=8, interactions=train,
                             generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(fold_in(user_based)(torch.as_tensor(train[HELD].toarray())),
                                   user_based.score_users(torch.as_tensor(HELD)))
    with pytest.raises(NotImplementedError, match="needs a refit"):
        fold_in(CFGANScorer(*train.shape, mode="item", hidden=8, interactions=train))
    with pytest.raises(NotImplementedError, match="MLPScorer"):
        fold_in(MLPScorer(*train.shape))


def test_bench_foldin_tiny_runs():
    from benchmarks import bench_foldin
    rows = bench_foldin.main(["--tiny", "--users", "10", "--repeats", "2", "--models", "ease,ials,bpr"])
    assert [row["model"] for row in rows] == ["ease", "ials", "bpr"]
    assert all(row["model unchanged"] and 0 <= row["P@5 folded-in"] <= 1 for row in rows)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("weighted", [None, WeightedLeastSquares(regularization=1.0, alpha=5.0)])
def test_mf_fold_in_runs_on_the_models_device(data, weighted):
    """The solves' identity matrices are built where the factors live: a CUDA model folds in on CUDA."""
    from helpers import make_model
    model = make_model(n_items=data[0].shape[1])
    histories = torch.as_tensor(data[0][HELD].toarray())
    expected = fold_in(model, weighted)(histories)
    got = fold_in(model.to("cuda"), weighted)(histories.to("cuda"))
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-4)


def test_fold_in_scores_one_row_per_user(data):
    """(batch, n_items) for every batch size, popularity's too: each row the item counts."""
    train, _ = data
    scorer = Popularity(train)
    for users in ([0], HELD):
        scores = fold_in(scorer)(torch.as_tensor(train[users].toarray()))
        assert scores.shape == (len(users), train.shape[1])
        assert (scores == scorer.counts).all()


def test_mf_fold_in_rescales_each_user_alone(fits, histories):
    """Each folded-in vector is brought to the fitted users' mean length by its own norm, not the batch's."""
    model = fits["bpr"][1].model_
    rows = torch.zeros(len(HELD), model.n_items)
    for row, items in enumerate(histories.values()):
        rows[row, items[: 2 + 3 * row]] = 1  # histories of different sizes: different norms
    together = fold_in(model)(rows)
    alone = torch.cat([fold_in(model)(rows[i : i + 1]) for i in range(len(HELD))])
    torch.testing.assert_close(together, alone)


def test_lightgcn_fold_in_with_a_one_item_user_a_one_user_item_and_an_item_nobody_liked(data):
    """The degrees as training has them: 1 stays 1 (for the user and the item), and an item without
    edges at the end of the catalog still gets its (zero) column."""
    train = data[0].tolil()
    train[:, 5] = 0
    train[HELD[0], 5] = 1  # item 5: one user
    train[HELD[1], :] = 0
    train[HELD[1], 7] = 1  # user HELD[1]: one item
    train[:, train.shape[1] - 1] = 0  # the last item: nobody
    train = train.tocsr()
    gcn = LightGCNScorer(*train.shape, dim=4, layers=2, interactions=train, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gcn.user_emb[HELD] = 0
        expected = gcn.score_users(torch.as_tensor(HELD))
    torch.testing.assert_close(fold_in(gcn)(torch.as_tensor(train[HELD].toarray())), expected)


def test_fold_in_refusals_say_why_in_full(data):
    train, _ = data
    with pytest.raises(NotImplementedError, match=r"^fold-in is not defined for a MLPScorer: it has no closed form for "
                                                  r"a new user's scores; refit with the new users' histories$"):
        fold_in(MLPScorer(*train.shape))
    with pytest.raises(NotImplementedError, match=r"^LightGCN with layers=0 scores with its users' trained layer-0 "
                                                  r"vectors only, which a new user does not have: fold-in needs "
                                                  r"layers >= 1$"):
        fold_in(LightGCNScorer(*train.shape, dim=4, layers=0, interactions=train))
