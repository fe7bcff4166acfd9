"""Scorers, one module each, and their registry.

A scorer is any ``torch.nn.Module`` with ``score(users, items) -> (n,)`` and
``score_users(users) -> (len(users), n_items)``; optionally ``penalty(users, items)`` (the L2
of the rows a batch touches) and ``init_args()`` (the constructor arguments that rebuild it,
for model files). Built-in scorers are known by name; ``register_scorer`` adds your own, so that
model files holding it can be loaded.
"""
from __future__ import annotations

import importlib

from torch import nn

from irgan.models.itemitem import ItemItemScorer
from irgan.models.itemknn import ItemKNNScorer
from irgan.models.lightgcn import LightGCNScorer
from irgan.models.mf import MatrixFactorization
from irgan.models.mlp import MLPScorer
from irgan.models.popularity import Popularity

SCORERS: dict[str, type[nn.Module]] = {"mf": MatrixFactorization, "mlp": MLPScorer, "itemitem": ItemItemScorer,
                                       "popularity": Popularity, "itemknn": ItemKNNScorer, "lightgcn": LightGCNScorer}


def register_scorer(cls: type[nn.Module], name: str | None = None) -> type[nn.Module]:
    """Make a scorer class known to model files under ``name`` (default: the class name); usable
    as a decorator. Its ``init_args()`` (or, without one, ``(n_users, n_items)``) must rebuild it."""
    name = name or cls.__name__
    if SCORERS.get(name, cls) is not cls:
        raise ValueError(f"a different scorer is already registered as {name!r}")
    SCORERS[name] = cls
    return cls


def scorer_kind(scorer: nn.Module) -> str:
    """The registered name of ``scorer``'s class, or its class name (loadable once registered)."""
    for name, cls in SCORERS.items():
        if type(scorer) is cls:
            return name
    return type(scorer).__name__


_PLAYERS = ("Discriminator", "Generator", "Player")  # IRGAN's players, in irgan.adversarial.irgan.players


def __getattr__(name: str):
    """``irgan.models.Generator`` and the other players, which lived here before the adversarial
    family had a package of its own: imported on first use, as module attributes."""
    if name in _PLAYERS:
        module = importlib.import_module("irgan.adversarial.irgan.players")
        return getattr(module, name)
    raise AttributeError(f"module 'irgan.models' has no attribute {name!r}")


__all__ = ["ItemItemScorer", "ItemKNNScorer", "LightGCNScorer", "MLPScorer",
           "MatrixFactorization", "Popularity", "SCORERS", "register_scorer", "scorer_kind"]
