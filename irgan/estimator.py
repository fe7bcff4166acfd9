"""Estimators in the style of implicit and scikit-learn: fit on raw data, recommend by raw ids.

A thin layer over the functions of irgan: ``IRGAN`` pretrains G with ``initial_generator`` and
plays the game with ``fit_irgan``; ``BPRRecommender`` calls ``fit_bpr``; ``PopularityRecommender``
wraps ``irgan.baselines.Popularity``. All three share one contract, so swapping a model is one
line::

    model = IRGAN(epochs=5, pretrain=BPRConfig(epochs=20)).fit(ratings_df)
    model.recommend(["alice", "bob"], k=10)           # DataFrame: user, item, score, rank
    model.save("model.pt"); IRGAN.load("model.pt")

Parameters are every field of the model's config dataclass (``IRGANConfig``, ``BPRConfig``)
as keywords, plus a few of the estimator's own (``seed``, ``device``, ``min_rating``...);
``get_params`` / ``set_params`` follow scikit-learn (``set_params(pretrain__epochs=3)`` reaches
into a nested config), so ``sklearn.base.clone`` works.
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from sklearn.exceptions import NotFittedError
from torch import nn

from irgan.baselines.bpr import BPRConfig, fit_bpr
from irgan.baselines.popularity import Popularity
from irgan.checkpoint import atomic_write
from irgan.config import IRGANConfig
from irgan.data import DataError, Interactions, from_dataframe, interactions_from_dataframe, validation_split
from irgan.data.splits import sorted_unique
from irgan.device import resolve_device
from irgan.metrics import BATCH_ELEMENTS, ordered_top_k, evaluate
from irgan.models import Discriminator, Generator, MatrixFactorization
from irgan.trainer import fit_irgan, initial_generator

log = logging.getLogger(__name__)

FORMAT = "irgan-estimator-v1"
SIDES = ("generator", "discriminator", "best")
Data = Interactions | sp.spmatrix | pd.DataFrame


class Recommender:
    """The shared contract: parameters, fitting on raw data, recommending and saving by raw ids.

    Subclasses set ``_config_cls`` (a frozen dataclass whose fields are parameters, or None) and
    ``_own_params`` (the estimator's other parameters and their defaults), and implement
    ``_fit``, ``model_`` and the ``_fitted_state`` / ``_restore`` pair used by save and load.
    """

    _config_cls: ClassVar[type | None] = None
    _own_params: ClassVar[dict[str, Any]] = {"min_rating": 4.0}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected parameter(s) {unknown}; "
                            f"valid ones: {', '.join(self._param_names())}")
        config = self._config_cls(**{k: params[k] for k in self._config_names() if k in params}) \
            if self._config_cls is not None else None
        own = {**self._own_params, **{k: v for k, v in params.items() if k in self._own_params}}
        self._check(config, own)
        self.config = config
        for name, value in own.items():
            setattr(self, name, value)

    # --- parameters (scikit-learn protocol) -----------------------------------------------

    @classmethod
    def _config_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls._config_cls)] if cls._config_cls is not None else []

    @classmethod
    def _param_names(cls) -> list[str]:
        return cls._config_names() + list(cls._own_params)

    def _check(self, config: Any, own: dict[str, Any]) -> None:
        """Raise ValueError for parameter values this estimator refuses (the config checks its own)."""
        if own["min_rating"] is not None and not isinstance(own["min_rating"], (int, float)):
            raise ValueError(f"min_rating must be a number or None, got {own['min_rating']!r}")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Every constructor parameter by name; ``deep`` adds ``pretrain__<field>`` for nested configs."""
        params = {name: getattr(self.config, name) for name in self._config_names()}
        params.update({name: getattr(self, name) for name in self._own_params})
        if deep:
            for name, value in list(params.items()):
                if dataclasses.is_dataclass(value) and not isinstance(value, type):
                    params.update({f"{name}__{f.name}": getattr(value, f.name) for f in dataclasses.fields(value)})
        return params

    def set_params(self, **params: Any) -> "Recommender":
        """Change parameters (``name=value`` or ``pretrain__field=value``); all or nothing. Returns self."""
        valid = self.get_params(deep=True)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(f"invalid parameter(s) {unknown} for {type(self).__name__}; "
                             f"valid ones: {', '.join(self._param_names())}")
        top = {k: v for k, v in params.items() if "__" not in k}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            if "__" in key:
                outer, inner = key.split("__", 1)
                nested.setdefault(outer, {})[inner] = value
        for outer, inner in nested.items():  # applied on top of a new value given in the same call
            base = top.get(outer, getattr(self.config, outer))
            if isinstance(base, dict):
                base = type(getattr(self.config, outer))(**base)
            top[outer] = dataclasses.replace(base, **inner)
        config_updates = {k: v for k, v in top.items() if k in self._config_names()}
        config = dataclasses.replace(self.config, **config_updates) if config_updates else self.config
        own = {**{k: getattr(self, k) for k in self._own_params},
               **{k: v for k, v in top.items() if k in self._own_params}}
        self._check(config, own)
        self.config = config
        for name, value in own.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = type(self)().get_params(deep=False)
        changed = [f"{k}={v!r}" for k, v in self.get_params(deep=False).items() if not _same(v, defaults[k])]
        return f"{type(self).__name__}({', '.join(changed)})"

    # --- fitting ----------------------------------------------------------------------------

    def fit(self, data: Data, validation: Data | None = None) -> "Recommender":
        """Fit on ``data``: Interactions, a sparse (n_users, n_items) matrix (ids 0..n-1; any stored
        non-zero is a positive) or a DataFrame with columns user, item[, rating] (rating >=
        ``min_rating`` is a positive). ``validation`` (same kinds, same ids) selects models where
        the estimator selects. Returns self."""
        train = self._as_interactions(data)
        selection = None if validation is None else self._align(validation, train)
        start = time.perf_counter()
        log.info("fitting %s on %r", type(self).__name__, train)
        self._fit(train, selection)
        self.user_ids_, self.item_ids_ = train.user_ids, train.item_ids
        self.user_items_ = train.matrix  # what exclude_seen removes: every positive given to fit
        self._index_ids()
        log.info("fitted %s in %.1f s", type(self).__name__, time.perf_counter() - start)
        return self

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        raise NotImplementedError

    def _as_interactions(self, data: Data) -> Interactions:
        """The positives of ``data`` as Interactions; a DataFrame keeps every user and item it names."""
        if isinstance(data, Interactions):
            return data
        if sp.issparse(data):
            matrix = sp.csr_matrix(data, dtype=np.float32, copy=True)
            matrix.eliminate_zeros()  # Interactions would count stored zeros as positives
            return Interactions(matrix, np.arange(matrix.shape[0]), np.arange(matrix.shape[1]))
        if isinstance(data, pd.DataFrame):
            df = from_dataframe(data)
            users, items = sorted_unique(df["user"]), sorted_unique(df["item"])
            if "rating" in df.columns and self.min_rating is not None:
                df = df[df["rating"].to_numpy() >= self.min_rating]
                if df.empty:
                    raise DataError(f"no rating is >= min_rating={self.min_rating}: nothing to fit "
                                    "(lower min_rating, or pass min_rating=None to use every row)")
            return interactions_from_dataframe(df, users, items)
        raise TypeError("data must be Interactions, a scipy sparse matrix or a pandas DataFrame, "
                        f"got {type(data).__name__}")

    def _align(self, validation: Data, train: Interactions) -> Interactions:
        """``validation`` as Interactions over ``train``'s id maps (a sparse matrix must have its shape)."""
        if sp.issparse(validation):
            if validation.shape != train.shape:
                raise ValueError(f"validation has shape {validation.shape}, train has shape {train.shape}")
            matrix = sp.csr_matrix(validation, dtype=np.float32, copy=True)
            matrix.eliminate_zeros()
            return train.with_matrix(matrix)
        if isinstance(validation, Interactions):
            if validation.same_maps(train):
                return validation
            df = validation.to_dataframe()
        elif isinstance(validation, pd.DataFrame):
            df = from_dataframe(validation)
            if "rating" in df.columns and self.min_rating is not None:
                df = df[df["rating"].to_numpy() >= self.min_rating]
        else:
            raise TypeError(f"validation must be Interactions, a scipy sparse matrix or a pandas DataFrame, "
                            f"got {type(validation).__name__}")
        return interactions_from_dataframe(df, train.user_ids, train.item_ids)

    def _index_ids(self) -> None:
        self._user_lookup, self._item_lookup = pd.Index(self.user_ids_), pd.Index(self.item_ids_)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "user_items_")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet: call fit(data) "
                                 f"or {type(self).__name__}.load(path) first")

    @property
    def model_(self) -> nn.Module:
        """The fitted scorer that serves recommendations (an nn.Module with ``score_users``)."""
        raise NotImplementedError

    # --- serving ----------------------------------------------------------------------------

    def recommend(self, users: Any, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top ``k`` items for a raw user id or a list of them: DataFrame (user, item, score, rank),
        k rows per user (fewer when fewer unseen items remain), best first, rank 1-based.
        ``exclude_seen`` drops the items the user had in fit's data. Ties go to the lower item index."""
        self._check_fitted()
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        rows = self._lookup(self._user_lookup, users, "user")
        model, n_items = self.model_, len(self.item_ids_)
        device = _device_of(model)
        k = min(int(k), n_items)
        batch = max(1, BATCH_ELEMENTS // n_items)
        parts_items, parts_scores = [], []
        with torch.no_grad():
            for start in range(0, len(rows), batch):
                index = rows[start:start + batch]
                scores = model.score_users(torch.as_tensor(index, device=device)).float()
                if exclude_seen:  # out of place: scores may share memory with the model (Popularity)
                    seen = self.user_items_[index].tocoo()
                    scores = scores.index_put((torch.as_tensor(seen.row, dtype=torch.long, device=device),
                                               torch.as_tensor(seen.col, dtype=torch.long, device=device)),
                                              torch.tensor(-torch.inf, device=device))
                top = ordered_top_k(scores, k)
                parts_items.append(top.cpu().numpy())
                parts_scores.append(scores.gather(1, top).cpu().numpy())
        items = np.concatenate(parts_items) if parts_items else np.empty((0, k), np.int64)
        scores = np.concatenate(parts_scores).astype(np.float64) if parts_scores else np.empty((0, k))
        keep = np.isfinite(scores).ravel()  # -inf: a seen item, used only when too few unseen remain
        return pd.DataFrame({
            "user": np.repeat(self.user_ids_[rows], k)[keep],
            "item": self.item_ids_[items.ravel()[keep]],
            "score": scores.ravel()[keep],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), len(rows))[keep],
        })

    def score(self, users: Any, items: Any) -> np.ndarray:
        """Scores of (user, item) pairs by raw ids: arrays of equal length (or a scalar broadcast) -> float64 (n,)."""
        self._check_fitted()
        users, items = np.broadcast_arrays(_as_array(users), _as_array(items))
        u = self._lookup(self._user_lookup, users.ravel(), "user")
        i = self._lookup(self._item_lookup, items.ravel(), "item")
        model = self.model_
        device = _device_of(model)
        with torch.no_grad():
            out = self._pair_scores(model, torch.as_tensor(u, device=device), torch.as_tensor(i, device=device))
        return out.double().cpu().numpy().reshape(users.shape)

    def _pair_scores(self, model: nn.Module, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return model.score(users, items)

    def similar_items(self, items: Any, k: int = 10) -> pd.DataFrame:
        """The ``k`` items whose embeddings have the highest cosine similarity to each given raw item id
        (itself excluded): DataFrame (item, similar_item, score, rank), best first."""
        self._check_fitted()
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        rows = self._lookup(self._item_lookup, items, "item")
        emb = F.normalize(self._item_emb().detach().float(), dim=1)
        k = min(int(k), len(self.item_ids_) - 1)
        if k == 0 or len(rows) == 0:
            return pd.DataFrame({"item": self.item_ids_[:0], "similar_item": self.item_ids_[:0],
                                 "score": np.empty(0), "rank": np.empty(0, np.int64)})
        batch = max(1, BATCH_ELEMENTS // len(self.item_ids_))
        parts_items, parts_scores = [], []
        with torch.no_grad():
            for start in range(0, len(rows), batch):
                index = torch.as_tensor(rows[start:start + batch], device=emb.device)
                sims = emb.index_select(0, index) @ emb.T
                sims[torch.arange(len(index), device=emb.device), index] = -torch.inf
                top = ordered_top_k(sims, k)
                parts_items.append(top.cpu().numpy())
                parts_scores.append(sims.gather(1, top).cpu().numpy())
        return pd.DataFrame({
            "item": np.repeat(self.item_ids_[rows], k),
            "similar_item": self.item_ids_[np.concatenate(parts_items).ravel()],
            "score": np.concatenate(parts_scores).astype(np.float64).ravel(),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), len(rows)),
        })

    @property
    def user_embeddings(self) -> np.ndarray:
        """User embeddings of the serving model: float32 (n_users, dim), row order of ``user_ids_``."""
        self._check_fitted()
        return self._embedding_model().user_emb.detach().cpu().numpy().copy()

    @property
    def item_embeddings(self) -> np.ndarray:
        """Item embeddings of the serving model: float32 (n_items, dim), row order of ``item_ids_``."""
        self._check_fitted()
        return self._item_emb().detach().cpu().numpy().copy()

    def _item_emb(self) -> torch.Tensor:
        return self._embedding_model().item_emb

    def _embedding_model(self) -> MatrixFactorization:
        return self.model_

    @staticmethod
    def _lookup(index: pd.Index, raw: Any, kind: str) -> np.ndarray:
        """Matrix indices (int64 (n,)) of raw ids, a scalar or a sequence; KeyError names unknown ids."""
        raw = _as_array(raw).ravel()
        found = index.get_indexer(raw) if len(raw) else np.empty(0, np.int64)
        if (found < 0).any():
            unknown = raw[found < 0][:5].tolist()
            raise KeyError(f"unknown {kind} id(s) {unknown}: not in the data the model was fitted on")
        return found.astype(np.int64)

    # --- saving -----------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the fitted estimator to one file, atomically; ``torch.load(weights_only=True)`` reads it."""
        self._check_fitted()
        params = _plain({name: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
                         for name, v in self.get_params(deep=False).items()})
        m = self.user_items_
        state = {
            "format": FORMAT,
            "estimator": type(self).__name__,
            "params": params,
            "user_ids": _ids_state(self.user_ids_, "user"),
            "item_ids": _ids_state(self.item_ids_, "item"),
            "user_items": {"shape": list(m.shape), "indptr": torch.from_numpy(m.indptr.astype(np.int64)),
                           "indices": torch.from_numpy(m.indices.astype(np.int64))},
            "fitted": _plain(self._fitted_state()),
        }
        atomic_write(Path(path), lambda f: torch.save(state, f))
        log.info("saved %s to %s", type(self).__name__, path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto") -> "Recommender":
        """Read a file written by ``save`` (by this class, or by any estimator when called on
        ``Recommender``) onto ``device``; any other file raises ValueError."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for foreign files
            raise ValueError(f"{path} is not a saved irgan estimator: {(str(err).splitlines() or [type(err).__name__])[0]}") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{path} is not a saved irgan estimator (expected format {FORMAT!r})")
        name = state["estimator"]
        target = ESTIMATORS.get(name)
        if target is None or not issubclass(target, cls):
            raise ValueError(f"{path} holds a {name}, not a {cls.__name__}: load it with {name}.load")
        est = target(**state["params"])
        shape = tuple(state["user_items"]["shape"])
        indices = state["user_items"]["indices"].numpy()
        est.user_items_ = sp.csr_matrix((np.ones(len(indices), np.float32), indices,
                                         state["user_items"]["indptr"].numpy()), shape=shape)
        est.user_ids_, est.item_ids_ = _ids_from_state(state["user_ids"]), _ids_from_state(state["item_ids"])
        est._index_ids()
        est._restore(state["fitted"], resolve_device(device))
        return est

    def _fitted_state(self) -> dict:
        raise NotImplementedError

    def _restore(self, fitted: dict, device: torch.device) -> None:
        raise NotImplementedError


class IRGAN(Recommender):
    """IRGAN for item recommendation (Wang et al., SIGIR 2017) as an estimator.

    Parameters: every field of ``IRGANConfig`` (``pretrain=BPRConfig(...)`` included), plus
    ``seed``, ``device`` ("auto", "cpu", "cuda"), ``show_progress``, ``min_rating`` (for
    DataFrames with a rating column) and ``side``: which player serves recommendations,
    "generator", "discriminator", or "best" (the higher validation ``select_metric``).
    Selection is always on validation: passed to ``fit``, else carved from the data with
    ``validation_fraction``. After fit: ``generator_``, ``discriminator_``, ``history_``,
    ``best_`` ({"generator": ..., "discriminator": ...}: epoch and validation metrics of each
    kept player), ``user_ids_``, ``item_ids_``, ``user_items_`` (csr (n_users, n_items)).
    """

    _config_cls = IRGANConfig
    _own_params = {"seed": 0, "device": "auto", "show_progress": False, "side": "generator", "min_rating": 4.0}

    def _check(self, config: IRGANConfig, own: dict[str, Any]) -> None:
        super()._check(config, own)
        if config.select_on != "validation":
            raise ValueError("select_on='test' is not available in the estimator: it has no test set; "
                             "pass validation=... to fit, or leave select_on='validation'")
        if own["side"] not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {own['side']!r}")

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        if validation is None:
            fit_train, validation = validation_split(train, self.config.validation_fraction, self.seed)
        else:
            fit_train = train
        device = resolve_device(self.device)
        init = initial_generator(self.config, fit_train.matrix, train.user_ids, train.item_ids, self.seed, device,
                                 self.show_progress)
        result = fit_irgan(fit_train.matrix, validation.matrix, self.config, init=init, seed=self.seed,
                           device=device, show_progress=self.show_progress)
        self.generator_, self.discriminator_ = result.generator, result.discriminator
        self.history_ = result.history
        self.best_ = {"generator": result.best_generator, "discriminator": result.best_discriminator}

    @property
    def chosen_side_(self) -> str:
        """The player that serves, 'generator' or 'discriminator': ``side`` resolved ('best': ties go to G)."""
        self._check_fitted()
        if self.side != "best":
            return self.side
        metric = self.config.select_metric
        g, d = (self.best_[p]["metrics"][metric] for p in ("generator", "discriminator"))
        return "discriminator" if d > g else "generator"

    @property
    def model_(self) -> MatrixFactorization:
        """The serving player (``chosen_side_``): a Generator or Discriminator."""
        self._check_fitted()
        return self.generator_ if self.chosen_side_ == "generator" else self.discriminator_

    def _fitted_state(self) -> dict:
        return {"generator": self.generator_.state_dict(), "discriminator": self.discriminator_.state_dict(),
                "history": self.history_, "best": self.best_}

    def _restore(self, fitted: dict, device: torch.device) -> None:
        n_users, n_items = self.user_items_.shape
        self.generator_ = _mf(Generator, fitted["generator"], n_users, n_items).to(device)
        self.discriminator_ = _mf(Discriminator, fitted["discriminator"], n_users, n_items).to(device)
        self.history_, self.best_ = fitted["history"], fitted["best"]


class BPRRecommender(Recommender):
    """BPR matrix factorisation (Rendle et al., UAI 2009), with uniform or DNS negatives, as an estimator.

    Parameters: every field of ``BPRConfig`` (defaults are BPRConfig's, i.e. DNS negatives, the
    IRGAN authors' pretraining; ``negatives="uniform"`` is plain BPR), plus ``seed``,
    ``device``, ``show_progress``, ``min_rating``. After fit: ``model_`` (MatrixFactorization),
    ``validation_metrics_`` (when fit got ``validation``; None otherwise).
    """

    _config_cls = BPRConfig
    _own_params = {"seed": 0, "device": "auto", "show_progress": False, "min_rating": 4.0}

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        device = resolve_device(self.device)
        self._model = fit_bpr(train.matrix, self.config, seed=self.seed, device=device,
                              show_progress=self.show_progress)
        self.validation_metrics_ = None if validation is None else evaluate(self._model, train, validation)

    @property
    def model_(self) -> MatrixFactorization:
        self._check_fitted()
        return self._model

    def _fitted_state(self) -> dict:
        return {"model": self._model.state_dict(), "validation_metrics": self.validation_metrics_}

    def _restore(self, fitted: dict, device: torch.device) -> None:
        self._model = _mf(MatrixFactorization, fitted["model"], *self.user_items_.shape).to(device)
        self.validation_metrics_ = fitted["validation_metrics"]


class PopularityRecommender(Recommender):
    """Most-popular baseline as an estimator: every user gets the items with the most positives.

    Parameters: ``min_rating``. It has no embeddings: ``similar_items`` and the embedding
    properties raise NotImplementedError. After fit: ``model_`` (``irgan.baselines.Popularity``),
    ``validation_metrics_``.
    """

    _config_cls = None
    _own_params = {"min_rating": 4.0}

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        self._model = Popularity(train.matrix)
        self.validation_metrics_ = None if validation is None else evaluate(self._model, train, validation)

    @property
    def model_(self) -> Popularity:
        self._check_fitted()
        return self._model

    def _pair_scores(self, model: nn.Module, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return model.counts[items]

    def _embedding_model(self) -> MatrixFactorization:
        raise NotImplementedError("PopularityRecommender has no embeddings: it scores items by their count of "
                                  "positives, so it has no similar_items or user/item embeddings")

    def _fitted_state(self) -> dict:
        return {"model": self._model.state_dict(), "validation_metrics": self.validation_metrics_}

    def _restore(self, fitted: dict, device: torch.device) -> None:
        self._model = Popularity(self.user_items_)
        self._model.load_state_dict(fitted["model"])
        self._model.to(device)
        self.validation_metrics_ = fitted["validation_metrics"]


ESTIMATORS: dict[str, type[Recommender]] = {cls.__name__: cls for cls in (IRGAN, BPRRecommender, PopularityRecommender)}


def _signature(cls: type[Recommender]) -> inspect.Signature:
    """Keyword-only signature listing every parameter and its default, for help() and IDEs."""
    defaults = {}
    if cls._config_cls is not None:
        default_config = cls._config_cls()
        defaults = {name: getattr(default_config, name) for name in cls._config_names()}
    defaults.update(cls._own_params)
    return inspect.Signature([inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value)
                              for name, value in defaults.items()])


for _cls in ESTIMATORS.values():
    _cls.__signature__ = _signature(_cls)


def _mf(cls: type[MatrixFactorization], state: dict, n_users: int, n_items: int) -> MatrixFactorization:
    """A ``cls`` holding ``state`` (a MatrixFactorization state_dict), without touching global RNG."""
    dim = state["user_emb"].shape[1]
    model = cls(n_users, n_items, dim, generator=torch.Generator().manual_seed(0))
    model.load_state_dict(state)
    return model


def _device_of(model: nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()))
    return tensor.device


def _as_array(values: Any) -> np.ndarray:
    """Raw ids as a 1-d or 0-d numpy array (a string is one id, not a sequence of characters)."""
    if isinstance(values, (str, bytes)) or np.ndim(values) == 0:
        return np.asarray([values], dtype=object if isinstance(values, (str, bytes)) else None).reshape(())
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy()
    return np.asarray(list(values) if not isinstance(values, np.ndarray) else values)


def _ids_state(ids: np.ndarray, kind: str) -> dict:
    """Raw ids as a plain list plus their numpy dtype (object for strings), for weights_only files."""
    values = [v.item() if isinstance(v, np.generic) else v for v in ids.tolist()]
    bad = next((v for v in values if not isinstance(v, (str, int, float, bool))), None)
    if bad is not None:
        raise ValueError(f"cannot save {kind} id {bad!r} of type {type(bad).__name__}: ids must be str, int or float")
    dtype = str(ids.dtype) if ids.dtype.kind in "biuf" else "object"
    return {"values": values, "dtype": dtype}


def _ids_from_state(state: dict) -> np.ndarray:
    return np.array(state["values"], dtype=state["dtype"])


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and tensors detached on CPU, for weights_only files."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return value


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays
        return a is b


__all__ = ["IRGAN", "BPRRecommender", "PopularityRecommender", "Recommender", "NotFittedError"]
