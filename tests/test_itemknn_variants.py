"""Item k-NN's variants (irgan.models.itemknn, ItemKNNRecommender, the itemknn candidate): each
similarity and feature weighting against Ferrari Dacrema et al.'s formulas, computed pair by pair
on a 4 x 5 matrix, and against entries worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import scipy.sparse as sp
import torch

from irgan.baselines import ItemKNNRecommender
from irgan.compare import _check_tuning
from irgan.models import ItemKNNScorer
from irgan.protocol import CANDIDATES

# users x items. Counts per item: 3, 3, 2, 2, 1; co-occurrences o01 = 2, o02 = o03 = o04 = 1,
# o12 = 1, o13 = 2, o14 = 1, o23 = 1, o24 = o34 = 0.
X = np.array([[1, 1, 0, 0, 1],
              [1, 0, 1, 0, 0],
              [0, 1, 1, 1, 0],
              [1, 1, 0, 1, 0]], dtype=np.float64)
N_USERS, N_ITEMS = X.shape
SETS = ("jaccard", "dice", "tversky")


def weigh(x: np.ndarray, weighting: str) -> np.ndarray:
    """The framework's BM25 / TF-IDF of the items' user vectors (K1 1.2, B 0.75), from the formulas, dense."""
    idf = np.log(x.shape[1] / (1 + x.sum(1)))[:, None]  # per user
    if weighting == "TF-IDF":
        return np.sqrt(x) * idf
    if weighting == "BM25":
        length = 0.25 + 0.75 * x.sum(0) / x.sum(0).mean()
        return x * 2.2 / (1.2 * length[None, :] + x) * idf
    return x


def reference(x: np.ndarray, k: int, shrink: float, similarity: str = "cosine", feature_weighting: str = "none",
              normalize: bool = True, asymmetric_alpha: float = 0.5, tversky_alpha: float = 1.0,
              tversky_beta: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """S (n_items, n_items), pair by pair, each column keeping its k largest (ties: the lower
    index), and the framework's scores (n_users, n_items): the weighted profiles times S."""
    weighted = weigh(x, feature_weighting)
    v = x if similarity in SETS else weighted
    sims = np.zeros((x.shape[1],) * 2)
    for j in range(x.shape[1]):  # target
        for i in range(x.shape[1]):  # neighbour
            o, ni, nj = v[:, i] @ v[:, j], v[:, i] @ v[:, i], v[:, j] @ v[:, j]
            if i == j or o == 0:
                continue
            if similarity in ("cosine", "asymmetric") and not normalize:
                sims[i, j] = o / shrink if shrink else o
            elif similarity == "cosine":
                sims[i, j] = o / (math.sqrt(ni) * math.sqrt(nj) + shrink)
            elif similarity == "asymmetric":
                sims[i, j] = o / (nj ** asymmetric_alpha * ni ** (1 - asymmetric_alpha) + shrink)
            elif similarity == "jaccard":
                sims[i, j] = o / (ni + nj - o + shrink)
            elif similarity == "dice":
                sims[i, j] = o / (ni + nj + shrink)
            else:
                sims[i, j] = o / (o + tversky_alpha * (nj - o) + tversky_beta * (ni - o) + shrink)
    kept = np.zeros_like(sims)
    for j in range(x.shape[1]):
        top = np.argsort(-sims[:, j], kind="stable")[:k]
        kept[top, j] = sims[top, j]
    return kept, weighted @ kept


def fitted(k: int = 4, shrink: float = 0.0, **options) -> ItemKNNScorer:
    scorer = ItemKNNScorer(N_USERS, N_ITEMS)
    scorer.set_interactions(sp.csr_matrix(X))
    return scorer.fit_similarity(k, shrink, **options)


def s_of(scorer: ItemKNNScorer) -> np.ndarray:
    return scorer.similarity().to_dense().T.numpy().astype(np.float64)


VARIANTS = [
    {"similarity": "cosine"},
    {"similarity": "cosine", "normalize": False},
    {"similarity": "asymmetric", "asymmetric_alpha": 0.2},
    {"similarity": "asymmetric", "asymmetric_alpha": 1.7},
    {"similarity": "jaccard"},
    {"similarity": "dice"},
    {"similarity": "tversky", "tversky_alpha": 0.3, "tversky_beta": 1.6},
    {"similarity": "cosine", "feature_weighting": "TF-IDF"},
    {"similarity": "cosine", "feature_weighting": "BM25"},
    {"similarity": "asymmetric", "asymmetric_alpha": 0.8, "feature_weighting": "BM25"},
    {"similarity": "jaccard", "feature_weighting": "BM25"},
]


@pytest.mark.parametrize("k, shrink", [(4, 0.0), (2, 1.5)])
@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_each_variant_ranks_as_the_framework_formulas(options, k, shrink):
    scorer = fitted(k, shrink, **options)
    sims, framework_scores = reference(X, k, shrink, **options)
    ours = scorer.score_users(torch.arange(N_USERS)).numpy()
    np.testing.assert_array_equal(s_of(scorer) != 0, sims != 0)  # the same neighbours kept
    if options.get("feature_weighting", "none") == "none":
        np.testing.assert_allclose(s_of(scorer), sims, rtol=1e-6)
        np.testing.assert_allclose(ours, framework_scores, rtol=1e-5, atol=1e-7)
    else:  # the framework's scores are each user's idf times ours: the same ranking
        idf = np.log(N_ITEMS / (1 + X.sum(1)))
        np.testing.assert_allclose(ours * idf[:, None], framework_scores, rtol=1e-5, atol=1e-7)


def test_entries_worked_out_by_hand():
    """Target item 2 (2 users), neighbour item 0 (3 users), one user in common."""
    def s20(**options) -> float:
        return s_of(fitted(**options))[0, 2]

    assert s20(similarity="cosine") == pytest.approx(1 / math.sqrt(6))
    assert s20(similarity="cosine", shrink=2.0) == pytest.approx(1 / (math.sqrt(6) + 2))
    assert s20(similarity="cosine", normalize=False, shrink=4.0) == pytest.approx(0.25)
    assert s20(similarity="asymmetric", asymmetric_alpha=0.25) == pytest.approx(1 / (2 ** 0.25 * 3 ** 0.75))
    assert s20(similarity="jaccard") == pytest.approx(1 / 4)
    assert s20(similarity="dice") == pytest.approx(1 / 5)
    assert s20(similarity="tversky", tversky_alpha=0.5, tversky_beta=2.0) == pytest.approx(1 / 5.5)  # 1 + 0.5*1 + 2*2
    # BM25 on item 0's profile entry, user 1 (2 items: idf log 5/3); item 0's length 3 / mean 2.2
    length0 = 0.25 + 0.75 * 3 / 2.2
    assert weigh(X, "BM25")[1, 0] == pytest.approx(2.2 / (1.2 * length0 + 1) * math.log(5 / 3))


def test_special_cases_coincide():
    np.testing.assert_allclose(s_of(fitted(shrink=1.0, similarity="asymmetric", asymmetric_alpha=0.5)),
                               s_of(fitted(shrink=1.0)), rtol=1e-6)
    np.testing.assert_array_equal(s_of(fitted(similarity="tversky")), s_of(fitted(similarity="jaccard")))
    np.testing.assert_array_equal(s_of(fitted(similarity="jaccard", feature_weighting="TF-IDF")),
                                  s_of(fitted(similarity="jaccard")))  # set similarities read binary X


def test_the_defaults_are_todays_cosine_bit_for_bit():
    """Today's arithmetic: counts / max(sqrt(n_i) sqrt(n_j) + shrink, tiny) in float64, then float32."""
    norms = np.sqrt(X.sum(0))
    sims = (X.T @ X) / (np.outer(norms, norms) + 10.0)
    np.fill_diagonal(sims, 0)
    model = ItemKNNRecommender(device="cpu").fit(sp.csr_matrix(X))
    np.testing.assert_array_equal(s_of(model.model_), sims.astype(np.float32))
    old_path = ItemKNNScorer(N_USERS, N_ITEMS, sp.csr_matrix(X), k=50, shrink=10.0)
    assert torch.equal(old_path.sim_values, model.model_.sim_values)


def test_an_item_without_positives_gives_no_nan():
    """Asymmetric cosine with alpha > 1 raises an empty item's count 0 to a negative power."""
    x = np.hstack([X, np.zeros((N_USERS, 1))])
    scorer = ItemKNNScorer(N_USERS, N_ITEMS + 1)
    scorer.set_interactions(sp.csr_matrix(x))
    for alpha in (0.0, 1.0, 1.7, 2.0):
        scorer.fit_similarity(4, 0.0, "asymmetric", asymmetric_alpha=alpha)
        assert torch.isfinite(scorer.sim_values).all() and scorer.sim_values.numel() > 0


@pytest.mark.parametrize("options, message", [
    ({"similarity": "pearson"}, "similarity must be one of"),
    ({"feature_weighting": "bm25"}, "feature_weighting must be one of"),
    ({"normalize": "yes"}, "normalize must be True or False"),
    ({"asymmetric_alpha": -0.5}, "asymmetric_alpha must be a number >= 0"),
    ({"tversky_beta": float("nan")}, "tversky_beta must be a number >= 0"),
    ({"shrink": -1}, "shrink must be a number >= 0"),
])
def test_bad_values_raise_one_line(options, message):
    with pytest.raises(ValueError, match=message) as err:
        ItemKNNRecommender(**options)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("options", [{"similarity": "pearson"}, {"feature_weighting": "bm25"}, {"tversky_alpha": -1.0},
                                     {"k": 0}])
def test_the_scorer_refuses_bad_values_in_one_line(options):
    with pytest.raises(ValueError, match="item k-NN needs") as err:
        fitted(**{"k": 4, **options})
    assert "\n" not in str(err.value)


def test_save_and_load_keep_a_variant(tmp_path):
    params = {"similarity": "tversky", "tversky_alpha": 0.3, "tversky_beta": 1.6, "k": 3, "shrink": 0.5}
    model = ItemKNNRecommender(**params, feature_weighting="BM25", device="cpu").fit(sp.csr_matrix(X))
    model.save(tmp_path / "knn.pt")
    loaded = ItemKNNRecommender.load(tmp_path / "knn.pt", device="cpu")
    assert loaded.get_params() == model.get_params()
    users = torch.arange(N_USERS)
    assert torch.equal(loaded.model_.score_users(users), model.model_.score_users(users))
    assert not torch.equal(model.model_.score_users(users), ItemKNNRecommender(k=3, shrink=0.5, device="cpu").fit(
        sp.csr_matrix(X)).model_.score_users(users))  # the variant is not the cosine


@pytest.mark.parametrize("similarity, extra", [
    ("cosine", {"normalize", "feature_weighting"}), ("asymmetric", {"asymmetric_alpha", "feature_weighting"}),
    ("jaccard", set()), ("dice", set()), ("tversky", {"tversky_alpha", "tversky_beta"})])
def test_the_search_space_draws_each_variants_parameters(similarity, extra):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"similarity": similarity})
    params = CANDIDATES["itemknn"].space(study.ask())
    assert set(params) == {"similarity", "k", "shrink"} | extra and params["similarity"] == similarity
    ItemKNNRecommender(**params)  # every drawn value is valid
    assert CANDIDATES["itemknn"].first_trial == {"similarity": "cosine", "k": 50, "shrink": 10.0, "normalize": True,
                                                 "feature_weighting": "none"}


@pytest.mark.parametrize("similarity", ["jaccard", "dice", "tversky"])
def test_a_kept_tuning_record_of_any_variant_passes_the_resume_check(similarity):
    record = {"params": {"similarity": similarity, "k": 40, "shrink": 5.0}, "validation": 0.3, "trials": [],
              "seconds": 1.0}
    _check_tuning(record, CANDIDATES["itemknn"])
