"""Building a player's scorer from what a user gives: a built-in name, an instance, or a factory."""
from __future__ import annotations

import copy
import importlib
from typing import Callable, Iterable, Union

import scipy.sparse as sp
import torch
from torch import nn

from irgan.config import SCORERS as BUILT_IN
from irgan.config import IRGANConfig
from irgan.models.itemitem import ItemItemScorer
from irgan.models.lightgcn import LightGCNScorer
from irgan.models.mf import MatrixFactorization
from irgan.models.mlp import MLPScorer

ScorerSpec = Union[str, nn.Module, Callable[[int, int], nn.Module], None]



def check_scorer(scorer: nn.Module) -> nn.Module:
    """``scorer`` itself, once it is an nn.Module with ``score`` and ``score_users``; TypeError otherwise."""
    if not isinstance(scorer, nn.Module):
        raise TypeError(f"a scorer must be a torch.nn.Module, got {type(scorer).__name__}")
    for method in ("score", "score_users"):
        if not callable(getattr(scorer, method, None)):
            raise TypeError(f"a scorer needs a {method}() method; {type(scorer).__name__} has none")
    return scorer


def class_path(cls: type) -> str:
    """``module:Class``, the spelling of ``cls`` in ``--g-scorer`` and in stored configs."""
    return f"{cls.__module__}:{cls.__qualname__}"


def refuse_unnamed(spec: object, source: str, role: str, named: Iterable[str], how: str) -> None:
    """ValueError unless a scorer name read from a file (``source``) is built-in or among ``named``,
    the names the user gave in this process: irgan imports a module only when the user names it."""
    if isinstance(spec, str) and spec not in BUILT_IN and spec not in set(named):
        raise ValueError(f"{source} names {role}'s scorer {spec!r}, and irgan imports a module only when you name "
                         f"it yourself: {how}")


def import_scorer(path: str) -> Callable[[int, int], nn.Module]:
    """The class (or factory) ``module:name`` names, e.g. ``my_models:TwoLayer``; ValueError in one line."""
    module, _, name = path.partition(":")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import scorer {path!r}: {err}") from None
    if not callable(found):
        raise ValueError(f"scorer {path!r} is not a class or a callable (n_users, n_items) -> scorer")
    return found


def build_scorer(spec: ScorerSpec, train: sp.csr_matrix, config: IRGANConfig = IRGANConfig(),
                 generator: torch.Generator | None = None) -> nn.Module:
    """A scorer for ``train`` (csr (n_users, n_items)): a built-in name ('mf', 'mlp', 'itemitem', 'lightgcn')
    sized by ``config`` and initialised from ``generator``; ``'module:Class'``, imported and built
    as ``Class(n_users, n_items)``; an instance (a copy, so that G and D never share one); or a
    callable ``(n_users, n_items) -> scorer``."""
    n_users, n_items = train.shape
    if isinstance(spec, str):
        if spec == "mf":
            return MatrixFactorization(n_users, n_items, config.dim, config.init_scale, generator=generator)
        if spec == "mlp":
            return MLPScorer(n_users, n_items, config.dim, config.hidden, config.init_scale, generator=generator)
        if spec == "itemitem":
            scorer = ItemItemScorer(n_users, n_items, train)
            if config.itemitem_init == "ease":
                scorer.fit_ease(config.ease_l2)
            return scorer
        if spec == "lightgcn":
            return LightGCNScorer(n_users, n_items, config.dim, 3, train, generator=generator)
        if ":" not in spec:
            raise ValueError(f"unknown scorer {spec!r}: use 'mf', 'mlp', 'itemitem', 'lightgcn', 'module:Class', "
                             "an nn.Module or a callable")
        spec = import_scorer(spec)
    if isinstance(spec, nn.Module):
        scorer = copy.deepcopy(spec)
    elif callable(spec):
        scorer = _built(spec, n_users, n_items)
    else:
        scorer = spec
    try:
        check_scorer(scorer)
    except TypeError as err:
        raise ValueError(f"{_name(spec)} is not a scorer: {err}") from None
    sizes = (getattr(scorer, "n_users", n_users), getattr(scorer, "n_items", n_items))
    if sizes != (n_users, n_items):
        raise ValueError(f"the scorer is sized for {sizes[0]} users x {sizes[1]} items, the data has {n_users} x {n_items}")
    return scorer


def _built(factory: Callable[[int, int], nn.Module], n_users: int, n_items: int) -> nn.Module:
    """``factory(n_users, n_items)``, remembering those arguments so that a model file can rebuild a
    scorer that defines neither ``init_args()`` nor ``n_users``/``n_items``; ValueError in one line."""
    try:
        scorer = factory(n_users, n_items)
    except TypeError as err:
        raise ValueError(f"{_name(factory)} cannot be built as {_name(factory)}(n_users, n_items): {err}") from None
    if isinstance(scorer, nn.Module) and not hasattr(scorer, "init_args") and not hasattr(scorer, "n_users"):
        scorer.irgan_size = (n_users, n_items)
    return scorer


def _name(spec: object) -> str:
    return getattr(spec, "__qualname__", None) or type(spec).__name__
