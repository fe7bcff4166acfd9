"""Strong baselines as estimators, with the API of ``BPRRecommender``: EASE, item k-NN, implicit ALS
and LightGCN, and the reproducibility studies' SLIM ElasticNet, PureSVD and RP3beta, fitted on raw
data and serving by raw ids.

Defaults are chosen for MovieLens-100K-size data: each is the best of a small grid on validation
sets carved from ml-100k u1.base (10% of each user's positives; seeds 0 and 1, LightGCN seed 0
only), and each class says how they compare with its paper's. Refitted on all of u1.base they
score P@5 0.417 (EASE), 0.372 (item k-NN), 0.422 (iALS) and 0.405 (LightGCN) on u1.test
(``python -m benchmarks.bench_baselines``)::

    model = EASERecommender().fit(ratings_df)
    model.recommend(["alice", "bob"], k=10)
    model.save("ease.pt"); EASERecommender.load("ease.pt")
"""
from __future__ import annotations

from numbers import Integral, Real
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from irgan.training.als import fit_ials
from irgan.config import BPRConfig
from irgan.data import Interactions
from irgan.device import resolve_device
from irgan.estimator import SELECTION_PARAMS, EpochSelection, _EpochSelected, _OneScorer, check_selection
from irgan.foldin import WeightedLeastSquares, fold_in
from irgan.metrics import evaluate
from irgan.models import ItemItemScorer, ItemKNNScorer, LightGCNScorer
from irgan.models.itemknn import FEATURE_WEIGHTINGS, SIMILARITIES
from irgan.training.bpr import fit_bpr
from irgan.training.rp3beta import fit_rp3beta
from irgan.training.slim import fit_slim
from irgan.training.svd import fit_puresvd

COMMON = {"seed": 0, "device": "auto", "show_progress": False, "min_rating": 4.0}


class EASERecommender(_OneScorer):
    """EASE (Steck, WWW 2019): item-item weights B in closed form, score(u, i) = x_u . B[:, i].

    Parameters: ``l2`` (300: the best of 100-1200 on validation; Steck used 500 on ML-20M, a
    larger data set), ``seed`` (unused: the fit is deterministic), ``device``, ``show_progress``,
    ``min_rating``. After fit: ``model_`` (``ItemItemScorer``: usable as G or D),
    ``validation_metrics_``. Costs O(n_items³) time and a few n_items² buffers.
    """

    _own_params = {"l2": 300.0, **COMMON}

    def _check(self, config: Any, own: dict[str, Any]) -> None:
        super()._check(config, own)
        _require_number(own, "l2", 0, strict=True)

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        scorer = ItemItemScorer(*train.shape, train.matrix).to(resolve_device(self.device))
        self._model = scorer.fit_ease(self.l2)
        self.validation_metrics_ = _validate(self._model, train, validation)


class ItemKNNRecommender(_OneScorer):
    """Item k-NN as Ferrari Dacrema et al.'s framework runs it (``ItemKNNCFRecommender``): score(u, j)
    = sum of sim(i, j) over u's items i among j's ``k`` nearest (see ``ItemKNNScorer.fit_similarity``).

    Parameters: ``k`` (50) and ``shrink`` (10, added to the similarity's denominator), the best
    cosine of k in 20-1000 and shrink in 0-200 on validation; ``similarity`` ("cosine", "asymmetric",
    "jaccard", "dice" or "tversky"), ``feature_weighting`` ("none", "BM25" or "TF-IDF"),
    ``normalize`` (True; False: cosine and asymmetric are the plain dot product), ``asymmetric_alpha``
    (0.5: the cosine), ``tversky_alpha`` and ``tversky_beta`` (1, 1: Jaccard), the framework's
    defaults; ``seed`` (unused), ``device``, ``show_progress``, ``min_rating``. After fit: ``model_``
    (``ItemKNNScorer``), ``validation_metrics_``.
    """

    _own_params = {"k": 50, "shrink": 10.0, "similarity": "cosine", "feature_weighting": "none", "normalize": True,
                   "asymmetric_alpha": 0.5, "tversky_alpha": 1.0, "tversky_beta": 1.0, **COMMON}

    def _check(self, config: Any, own: dict[str, Any]) -> None:
        super()._check(config, own)
        _require_int(own, "k", 1)
        for name in ("shrink", "asymmetric_alpha", "tversky_alpha", "tversky_beta"):
            _require_number(own, name, 0)
        _require(own["similarity"] in SIMILARITIES,
                 f"similarity must be one of {SIMILARITIES}, got {own['similarity']!r}")
        _require(own["feature_weighting"] in FEATURE_WEIGHTINGS,
                 f"feature_weighting must be one of {FEATURE_WEIGHTINGS}, got {own['feature_weighting']!r}")
        _require(isinstance(own["normalize"], bool), f"normalize must be True or False, got {own['normalize']!r}")

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        scorer = ItemKNNScorer(*train.shape)
        scorer.set_interactions(train.matrix)
        scorer.fit_similarity(self.k, self.shrink, self.similarity, self.feature_weighting, self.normalize,
                              self.asymmetric_alpha, self.tversky_alpha, self.tversky_beta)
        self._model = scorer.to(resolve_device(self.device))
        self.validation_metrics_ = _validate(self._model, train, validation)


class IALSRecommender(_OneScorer):
    """Implicit ALS (Hu, Koren and Volinsky, ICDM 2008), confidence 1 + ``alpha`` on positives,
    solved in torch by conjugate gradient (``irgan.training.als``; why not the ``implicit`` library: there).

    Parameters: ``factors`` (16), ``regularization`` (30), ``alpha`` (4): the best of factors
    16-64, regularization 1-50 and alpha 0.5-10 on validation; ``iterations`` (15), ``cg_steps``
    (3, implicit's default; None: exact solves), ``seed``, ``device``, ``show_progress``,
    ``min_rating``. After fit: ``model_`` (``MatrixFactorization``, biases 0: usable as G or D,
    and for ``similar_items``), ``validation_metrics_``.
    """

    _own_params = {"factors": 16, "regularization": 30.0, "alpha": 4.0, "iterations": 15, "cg_steps": 3, **COMMON}

    def _check(self, config: Any, own: dict[str, Any]) -> None:
        super()._check(config, own)
        for name in ("factors", "iterations"):
            _require_int(own, name, 1)
        _require_int(own, "cg_steps", 1, optional=True)
        _require_number(own, "regularization", 0, strict=True)
        _require_number(own, "alpha", 0)

    def _fold_in(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """A new user's vector solves iALS's own weighted least squares (confidence 1 + alpha, its
        regularization) with the item factors fixed."""
        return fold_in(self.model_, WeightedLeastSquares(self.regularization, self.alpha))

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        self._model = fit_ials(train.matrix, self.factors, self.regularization, self.alpha, self.iterations,
                               self.cg_steps, seed=self.seed, device=self.device, show_progress=self.show_progress)
        self.validation_metrics_ = _validate(self._model, train, validation)


class LightGCNRecommender(_EpochSelected):
    """LightGCN (He et al., SIGIR 2020) trained by BPR with uniform negatives and Adam.

    Parameters: ``dim`` (64), ``layers`` (3) and ``batch_size`` (2048) as in the paper; ``lr``
    (0.01) and ``l2`` (1e-3, the L2 of the layer-0 rows a batch touches, per occurrence, on the
    summed loss: the paper's decay) ten times the paper's, for ml-100k in minutes: validation P@5
    0.097 after 30 epochs (0.111 after 100) against 0.062 with the paper's 1e-3 / 1e-4, and more
    L2 (1e-2) did worse; ``epochs`` (150: the validation figure plateaus from 100). With ``validation``,
    ``select_metric`` is measured every ``eval_every`` epochs, the best epoch's model is kept
    (``best_epoch_``: how many epochs it had, what a refit on all data should run) and training
    stops after ``patience`` evaluations without a gain (None: never). ``on_epoch(epoch, scorer)``,
    if given, runs after every epoch (a model file does not keep it). Also ``seed``, ``device``,
    ``show_progress``, ``min_rating``. After fit: ``model_``
    (``LightGCNScorer``: usable as G or D), ``validation_metrics_``, ``best_epoch_``, ``history_``
    (one dict per evaluation: epoch and validation metrics).
    """

    _own_params = {"dim": 64, "layers": 3, "lr": 0.01, "l2": 1e-3, "epochs": 150, "batch_size": 2048,
                   **SELECTION_PARAMS, "on_epoch": None, **COMMON}

    def _check(self, config: Any, own: dict[str, Any]) -> None:
        super()._check(config, own)
        for name in ("dim", "epochs", "batch_size"):
            _require_int(own, name, 1)
        _require_int(own, "layers", 0)
        check_selection(own)
        _require(own["on_epoch"] is None or callable(own["on_epoch"]), "on_epoch must be a callable or None")
        _require_number(own, "lr", 0, strict=True)
        _require_number(own, "l2", 0)

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        config = BPRConfig(negatives="uniform", dim=self.dim, epochs=self.epochs, lr=self.lr, l2=self.l2,
                           optimizer="adam", batch_size=self.batch_size)
        scorer = LightGCNScorer(*train.shape, self.dim, self.layers, train.matrix,
                                generator=torch.Generator().manual_seed(self.seed))
        selection = EpochSelection(train, validation, self.select_metric, self.eval_every, self.patience)

        def on_epoch(epoch: int, model: nn.Module) -> bool:
            if self.on_epoch is not None:
                self.on_epoch(epoch, model)
            return selection(epoch, model)

        last = fit_bpr(train.matrix, config, seed=self.seed, device=self.device, show_progress=self.show_progress,
                       on_epoch=on_epoch, scorer=scorer)
        self._keep(selection, last, self.epochs)

    def _embedding_model(self) -> SimpleNamespace:
        """The propagated embeddings (what scores), for ``similar_items`` and the embedding properties."""
        with torch.no_grad():
            users, items = self.model_.propagate()
        return SimpleNamespace(user_emb=users, item_emb=items)


class SLIMRecommender(_OneScorer):
    """SLIM ElasticNet (Ning and Karypis, ICDM 2011) as the reproducibility studies run it: one
    non-negative ElasticNet regression per item on the other items (``irgan.training.slim``),
    score(u, j) = x_u . W[:, j].

    Parameters: ``alpha`` (1e-3), ``l1_ratio`` (0.1) and ``k`` (200, weights kept per item),
    ``max_iter`` (100) and ``tol`` (1e-4) as in Ferrari Dacrema et al.'s framework; ``n_jobs`` (1:
    processes fitting item blocks; on this project's shared 2-core machine 2 never paid), ``seed``
    (the coordinate order), ``device``, ``show_progress``, ``min_rating``. After fit: ``model_``
    (``ItemKNNScorer`` holding W sparse), ``validation_metrics_``.
    """

    _own_params = {"alpha": 1e-3, "l1_ratio": 0.1, "k": 200, "max_iter": 100, "tol": 1e-4, "n_jobs": 1, **COMMON}

    def _check(self, config: Any, own: dict[str, Any]) -> None:
        super()._check(config, own)
        _require_number(own, "alpha", 0, strict=True)
        _require_number(own, "l1_ratio", 0)
        _require(own["l1_ratio"] <= 1, f"l1_ratio must be a number in [0, 1], got {own['l1_ratio']!r}")
        _require_number(own, "tol", 0, strict=True)
        for name in ("k", "max_iter", "n_jobs"):
            _require_int(own, name, 1)

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        weights = fit_slim(train.matrix, self.alpha, self.l1_ratio, self.k, self.max_iter, self.tol, seed=self.seed,
                           n_jobs=self.n_jobs, show_progress=self.show_progress)
        self._model = _item_weights_scorer(train, weights).to(resolve_device(self.device))
        self.validation_metrics_ = _validate(self._model, train, validation)


class PureSVDRecommender(_OneScorer):
    """PureSVD (Cremonesi, Koren and Turrin, RecSys 2010): score(u, i) = x_u V V^T[:, i], V the top
    ``factors`` right singular vectors of the training matrix (``irgan.training.svd``).

    Parameters: ``factors`` (15: the best NDCG@10 of 5-200 on validation; more than the rank
    bound min(n_users, n_items) keeps that many), ``seed`` (the randomized SVD's), ``device``,
    ``show_progress`` (unused: one call), ``min_rating``. After fit: ``model_``
    (``MatrixFactorization`` with user rows X V, item rows V, biases 0: usable as G or D, and for
    ``similar_items``), ``validation_metrics_``.
    """

    _own_params = {"factors": 15, **COMMON}

    def _check(self, config: Any, own: dict[str, Any]) -> None:
        super()._check(config, own)
        _require_int(own, "factors", 1)

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        self._model = fit_puresvd(train.matrix, self.factors, seed=self.seed).to(resolve_device(self.device))
        self.validation_metrics_ = _validate(self._model, train, validation)


class RP3betaRecommender(_OneScorer):
    """RP3beta (Paudel et al., ACM TiiS 2017): item-item weights of a 3-step random walk, transition
    probabilities raised to ``alpha``, arrivals divided by popularity^``beta`` (``irgan.training.rp3beta``);
    score(u, j) = x_u . W[:, j].

    Parameters: ``alpha`` (0.5), ``beta`` (0.3), ``k`` (100, weights kept per row, then per
    column) and ``normalize_similarity`` (True): the best NDCG@10 of alpha 0.5-1.25, beta 0.1-0.7,
    k 50-500 and both normalisations on validation (the framework's own defaults, 1.0 / 0.6 / 100 /
    True, do worse there), ``seed`` (unused: the fit is deterministic),
    ``device``, ``show_progress``, ``min_rating``. After fit: ``model_`` (``ItemKNNScorer`` holding
    W sparse), ``validation_metrics_``.
    """

    _own_params = {"alpha": 0.5, "beta": 0.3, "k": 100, "normalize_similarity": True, **COMMON}

    def _check(self, config: Any, own: dict[str, Any]) -> None:
        super()._check(config, own)
        _require_number(own, "alpha", 0)
        _require_number(own, "beta", 0)
        _require_int(own, "k", 1)
        _require(isinstance(own["normalize_similarity"], bool),
                 f"normalize_similarity must be True or False, got {own['normalize_similarity']!r}")

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        weights = fit_rp3beta(train.matrix, self.alpha, self.beta, self.k, bool(self.normalize_similarity))
        self._model = _item_weights_scorer(train, weights).to(resolve_device(self.device))
        self.validation_metrics_ = _validate(self._model, train, validation)


def _item_weights_scorer(train: Interactions, weights: sp.csr_matrix) -> ItemKNNScorer:
    """An ``ItemKNNScorer`` holding ``train``'s X and serving the item-item weights ``weights`` (csr
    (n_items, n_items), W[i, j]: source i to target j): scores X W, with W^T in its sparse buffers."""
    scorer = ItemKNNScorer(*train.shape)
    scorer.set_interactions(train.matrix)
    columns = sp.csr_matrix(weights.T, dtype=np.float32)
    columns.eliminate_zeros()
    columns.sort_indices()
    scorer.sim_indptr = torch.as_tensor(columns.indptr.astype(np.int64))
    scorer.sim_indices = torch.as_tensor(columns.indices.astype(np.int64))
    scorer.sim_values = torch.as_tensor(columns.data)
    return scorer


def _validate(model: nn.Module, train: Interactions, validation: Interactions | None) -> dict[str, float] | None:
    return None if validation is None else evaluate(model, train, validation)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _require_number(own: dict[str, Any], name: str, low: float, strict: bool = False) -> None:
    """ValueError unless ``own[name]`` is a real number > ``low`` (``strict``) or >= ``low``."""
    value = own[name]
    ok = isinstance(value, Real) and not isinstance(value, bool) and (value > low if strict else value >= low)
    _require(ok, f"{name} must be a number {'>' if strict else '>='} {low}, got {value!r}")


def _require_int(own: dict[str, Any], name: str, low: int, optional: bool = False) -> None:
    """ValueError unless ``own[name]`` is an integer >= ``low`` (or None when ``optional``)."""
    value = own[name]
    ok = (optional and value is None) or (isinstance(value, Integral) and not isinstance(value, bool) and value >= low)
    _require(ok, f"{name} must be an integer >= {low}{' or None' if optional else ''}, got {value!r}")


__all__ = ["EASERecommender", "IALSRecommender", "ItemKNNRecommender", "LightGCNRecommender", "PureSVDRecommender",
           "RP3betaRecommender", "SLIMRecommender"]
