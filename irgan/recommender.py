"""The contract every irgan estimator shares, in the style of implicit and scikit-learn: fit on
raw data, recommend and score by raw ids, save and load one model file.

Estimators subclass scikit-learn's ``BaseEstimator``: ``get_params`` / ``set_params`` reach into
nested configs (``set_params(pretrain__epochs=3)``), so ``clone`` and ``GridSearchCV`` work; the
search scores with ``score(X)``, NDCG@10 on held-out interactions, or ``ranking_scorer(metric)``.
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from torch import nn

from irgan.checkpoint import ModelFile, ModelFileError, load_model, save_model
from irgan.data import DataError, Interactions, from_dataframe, interactions_from_dataframe
from irgan.data.splits import sorted_unique
from irgan.device import resolve_device
from irgan.metrics import evaluate
from irgan.models import SCORERS
from irgan.models.build import class_path, refuse_unnamed
from irgan.serving import Serving

log = logging.getLogger(__name__)

Data = Interactions | sp.spmatrix | pd.DataFrame


class Recommender(Serving, BaseEstimator):
    """The shared contract: parameters, fitting on raw data, recommending and saving by raw ids.

    Subclasses set ``_config_cls`` (a frozen dataclass whose fields are parameters, or None) and
    ``_own_params`` (the estimator's other parameters and their defaults), and implement
    ``_fit``, ``model_``, and ``_scorers`` / ``_fitted_state`` / ``_restore`` for save and load.
    """

    _config_cls: ClassVar[type | None] = None
    _own_params: ClassVar[dict[str, Any]] = {"min_rating": 4.0}
    _scorer_params: ClassVar[dict[str, str]] = {}  # parameters that may name a scorer 'module:Class', by role

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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = _signature(cls)  # every parameter by name, for help() and IDEs


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

    # --- scikit-learn's score ---------------------------------------------------------------

    def score(self, X: Data, y: Any = None, metric: str = "NDCG@10") -> float:
        """scikit-learn's score: ``metric`` (e.g. "NDCG@10", "P@5", "MRR") of the full ranking on
        held-out interactions ``X`` (same kinds as ``fit``; users and items unknown to the model are
        dropped), each user's ranking excluding what fit saw. Cut-offs longer than the catalog shrink to it."""
        self._check_fitted()
        held_out = self._held_out(X)
        name, _, k = metric.partition("@")
        k = min(int(k), len(self.item_ids_)) if k else 1
        return evaluate(self.model_, self.user_items_, held_out, ks=(k,))[f"{name}@{k}" if name != "MRR" else "MRR"]

    def _held_out(self, X: Data) -> sp.csr_matrix:
        """``X``'s positives over the fitted id maps, less pairs fit saw; ValueError when none remain."""
        nothing = ValueError("no held-out interaction of a known user and item that fit did not see: nothing to score")
        fitted = Interactions(self.user_items_, self.user_ids_, self.item_ids_)
        if isinstance(X, Interactions) and not X.same_maps(fitted):
            X = X.to_dataframe()
        if sp.issparse(X) or isinstance(X, Interactions):
            matrix = self._align(X, fitted).matrix
        else:
            if len(X) == 0:
                raise nothing
            df = from_dataframe(X)
            if "rating" in df.columns and self.min_rating is not None:
                df = df[df["rating"].to_numpy() >= self.min_rating]
            known = (self._user_lookup.get_indexer(df["user"]) >= 0) & (self._item_lookup.get_indexer(df["item"]) >= 0)
            if not known.any():
                raise nothing
            matrix = interactions_from_dataframe(df[known], self.user_ids_, self.item_ids_).matrix
        matrix = sp.csr_matrix(matrix - matrix.multiply(self.user_items_.astype(bool)))
        matrix.eliminate_zeros()
        if matrix.nnz == 0:
            raise nothing
        return matrix

    # --- saving -----------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the fitted estimator to one model file, atomically (``irgan.checkpoint``)."""
        self._check_fitted()
        params = {name: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
                  for name, v in self.get_params(deep=False).items()}
        params = {k: v if v is None or isinstance(v, (str, int, float, bool, dict)) else None for k, v in params.items()}
        save_model(path, type(self).__name__, self._scorers(), self.user_ids_, self.item_ids_, self.user_items_,
                   params, self._fitted_state())
        log.info("saved %s to %s", type(self).__name__, path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "auto",
             scorers: tuple[type[nn.Module], ...] = ()) -> "Recommender":
        """Read a model file (``save``'s, or the CLI's ``model.pt``) onto ``device``; ``scorers``:
        classes of your own scorers it holds. Any other file, or a hand-edited one that does not
        rebuild a working estimator, raises ModelFileError (a ValueError) in one line."""
        saved = load_model(path, scorers)
        target = _estimators().get(saved.estimator)
        if target is None:
            raise ModelFileError(f"{path} holds a {saved.estimator!r}, an estimator irgan does not know: import "
                                 "the module that defines it before loading")
        if not issubclass(target, cls):
            raise ModelFileError(f"{path} holds a {saved.estimator}, not a {cls.__name__}: load it with {saved.estimator}.load")
        named = [class_path(c) for c in (*scorers, *SCORERS.values())]
        for name, role in target._scorer_params.items():
            try:
                refuse_unnamed(saved.params.get(name), str(path), role, named,
                               f"import the class and load with {cls.__name__}.load(path, scorers=[TheClass]) or "
                               "register it with irgan.register_scorer")
            except ValueError as err:
                raise ModelFileError(str(err)) from None
        device = resolve_device(device)
        try:
            est = target(**_saved_params(target, saved.params))
            est.user_items_, est.user_ids_, est.item_ids_ = saved.user_items, saved.user_ids, saved.item_ids
            est._index_ids()
            est._restore(saved, device)
            est.model_  # the serving scorer resolves (side="best" reads the kept players' metrics)
        except Exception as err:  # whatever a hand-edited parameter or fitted value makes the rebuild raise
            raise ModelFileError(f"{path} is a damaged irgan model file: {_reason(err)}") from None
        return est

    def _scorers(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def _fitted_state(self) -> dict:
        raise NotImplementedError

    def _restore(self, saved: ModelFile, device: torch.device) -> None:
        raise NotImplementedError


def ranking_scorer(metric: str = "NDCG@10"):
    """A scikit-learn scorer ``f(estimator, X, y=None) -> float``: ``metric`` on held-out
    interactions X (e.g. ``GridSearchCV(BPRRecommender(), grid, scoring=ranking_scorer("P@5"))``)."""
    def scorer(estimator: Recommender, X: Data, y: Any = None) -> float:
        return estimator.score(X, metric=metric)
    return scorer


def _estimators() -> dict[str, type[Recommender]]:
    """Every Recommender subclass by name, the built-ins and any defined elsewhere."""
    found, stack = {}, [Recommender]
    while stack:
        for sub in stack.pop().__subclasses__():
            found[sub.__name__] = sub
            stack.append(sub)
    return found


def _signature(cls: type[Recommender]) -> inspect.Signature:
    """Keyword-only signature listing every parameter and its default, for help() and IDEs."""
    defaults = {}
    if cls._config_cls is not None:
        default_config = cls._config_cls()
        defaults = {name: getattr(default_config, name) for name in cls._config_names()}
    defaults.update(cls._own_params)
    return inspect.Signature([inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value)
                              for name, value in defaults.items()])


def _saved_params(target: type[Recommender], params: dict) -> dict[str, Any]:
    """The parameters of ``target`` among a model file's ``params``; ValueError for an own parameter
    whose type is not its default's (a str where the default is None). None stays: save writes it
    for values it cannot store. The config's fields are checked by the config."""
    kept = {k: v for k, v in params.items() if k in target._param_names()}
    for name, value in kept.items():
        default = target._own_params.get(name)
        if name not in target._own_params or value is None:
            continue
        kind = str if default is None else float if isinstance(default, float) else type(default)
        if not isinstance(value, int if kind is float else kind) and not isinstance(value, kind) \
                or (isinstance(value, bool) and kind is not bool):
            raise ValueError(f"its parameter {name} is {value!r}, of type {type(value).__name__}, not {kind.__name__}")
    return kept


def _reason(err: Exception) -> str:
    """One line saying what a rebuild from a damaged file raised."""
    if isinstance(err, KeyError):
        return f"it lacks {err.args[0]!r}" if err.args else "a key is missing"
    lines = str(err).splitlines()
    text = lines[0][:200] if lines else ""
    return text if isinstance(err, ValueError) else f"{type(err).__name__}: {text}"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays
        return a is b
