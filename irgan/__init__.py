"""irgan: IRGAN (Wang et al., SIGIR 2017), the adversarial recommenders beside it (CFGAN, APR) and
strong baselines for implicit-feedback recommendation.

    from irgan import IRGAN, load_dataset, evaluate
    data = load_dataset("ml-100k")
    model = IRGAN(epochs=3).fit(data.train)
    evaluate(model.model_, data.train, data.test)

The names below are imported on first use, so that ``python -m irgan.train`` does not pay for
scikit-learn and pandas-heavy modules it does not need.
"""
from __future__ import annotations

import configparser
import importlib
import importlib.metadata
from pathlib import Path
from typing import Any

_HOMES = {
    "BPRConfig": "irgan.config", "IRGANConfig": "irgan.config",
    "Interactions": "irgan.data", "load_dataset": "irgan.data", "read_ratings": "irgan.data",
    "EASERecommender": "irgan.baselines", "IALSRecommender": "irgan.baselines",
    "ItemKNNRecommender": "irgan.baselines", "LightGCNRecommender": "irgan.baselines",
    "SLIMRecommender": "irgan.baselines", "PureSVDRecommender": "irgan.baselines",
    "RP3betaRecommender": "irgan.baselines",
    "CFGANRecommender": "irgan.adversarial.cfgan", "CFGANConfig": "irgan.adversarial.cfgan",
    "APRRecommender": "irgan.adversarial.apr", "APRConfig": "irgan.adversarial.apr",
    "IRGAN": "irgan.estimator", "BPRRecommender": "irgan.estimator", "PopularityRecommender": "irgan.estimator",
    "evaluate": "irgan.metrics",
    "Discriminator": "irgan.adversarial.irgan.players", "Generator": "irgan.adversarial.irgan.players",
    "MatrixFactorization": "irgan.models",
    "register_scorer": "irgan.models",
    "run_recipe": "irgan.adversarial.irgan.recipe", "fit_irgan": "irgan.adversarial.irgan.game",
    "ranking_scorer": "irgan.recommender",
}
__all__ = sorted(_HOMES)


def _version() -> str:
    """The installed distribution's version; in a source checkout never installed, setup.cfg's beside the package."""
    try:
        return importlib.metadata.version("irgan")
    except importlib.metadata.PackageNotFoundError:
        setup = configparser.ConfigParser(interpolation=None)
        try:
            setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
        except configparser.Error:
            return "0+unknown"
        return setup.get("metadata", "version", fallback="0+unknown")


__version__ = _version()


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'irgan' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
