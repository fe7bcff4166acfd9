"""The estimators: IRGAN, BPR and popularity, fitted on raw data and serving by raw ids.

Thin layers over the library: ``IRGAN`` runs the one recipe (``irgan.adversarial.irgan.recipe.run_recipe``),
``BPRRecommender`` calls ``fit_bpr``, ``PopularityRecommender`` counts. All share the contract
of ``irgan.recommender.Recommender``, so swapping a model is one line::

    model = IRGAN(epochs=5, pretrain=BPRConfig(epochs=20)).fit(ratings_df)
    model.recommend(["alice", "bob"], k=10)           # DataFrame: user, item, score, rank
    model.save("model.pt"); IRGAN.load("model.pt")
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from irgan.checkpoint import ModelFile
from irgan.config import SCORERS as SCORERS_BY_NAME
from irgan.config import SELECT_METRICS, BPRConfig, IRGANConfig, check_count
from irgan.data import Interactions
from irgan.metrics import KeepBest, eval_ks, evaluate
from irgan.adversarial.irgan.players import Discriminator, Generator
from irgan.models import Popularity, scorer_kind
from irgan.adversarial.irgan.recipe import run_recipe, save_irgan_model
from irgan.training.bpr import fit_bpr
from irgan.progress import logging_to_stderr
from irgan.recommender import NotFittedError, Recommender, ranking_scorer

SIDES = ("generator", "discriminator", "best")


class IRGAN(Recommender):
    """IRGAN for item recommendation (Wang et al., SIGIR 2017) as an estimator.

    Parameters: every field of ``IRGANConfig`` (``pretrain=BPRConfig(...)`` included), plus
    ``generator`` / ``discriminator`` (a scorer: a built-in name, an instance or a callable
    ``(n_users, n_items) -> scorer``; None takes ``g_scorer`` / ``d_scorer``), ``seed``,
    ``device`` ("auto", "cpu", "cuda"), ``show_progress`` (bars in a terminal or notebook), ``verbose``
    (one log line per epoch on stderr), ``min_rating`` (for DataFrames with a
    rating column) and ``side``: which player serves recommendations, "generator",
    "discriminator", or "best" (the higher validation ``select_metric``). Selection is always on
    validation: passed to ``fit``, else carved from the data with ``validation_fraction``. After
    fit: ``generator_``, ``discriminator_``, ``history_``, ``best_`` ({"generator": ...,
    "discriminator": ...}: epoch and validation metrics of each kept player), ``user_ids_``,
    ``item_ids_``, ``user_items_`` (csr (n_users, n_items)).
    """

    _config_cls = IRGANConfig
    _own_params = {"generator": None, "discriminator": None, "seed": 0, "device": "auto", "show_progress": False,
                   "verbose": False, "side": "generator", "min_rating": 4.0}
    _scorer_params = {"g_scorer": "G", "d_scorer": "D", "generator": "G", "discriminator": "D"}

    def _check(self, config: IRGANConfig, own: dict[str, Any]) -> None:
        super()._check(config, own)
        if config.select_on != "validation":
            raise ValueError("select_on='test' is not available in the estimator: it has no test set; "
                             "pass validation=... to fit, or leave select_on='validation'")
        if own["side"] not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {own['side']!r}")

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        with logging_to_stderr(self.verbose):
            result = run_recipe(train, None, self.config, validation=validation, seed=self.seed, device=self.device,
                                show_progress=self.show_progress, generator=self.generator,
                                discriminator=self.discriminator)
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
        try:
            g, d = (float(self.best_[p]["metrics"][metric]) for p in ("generator", "discriminator"))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"side='best' needs both players' validation {metric}, which this model does not hold "
                             "(a version-1 or edited model file): use side='generator' or 'discriminator'") from None
        return "discriminator" if d > g else "generator"

    @property
    def model_(self) -> Generator | Discriminator:
        """The serving player (``chosen_side_``): a Generator or Discriminator."""
        self._check_fitted()
        return self.generator_ if self.chosen_side_ == "generator" else self.discriminator_

    def _scorers(self) -> dict[str, nn.Module]:
        return {"generator": self.generator_.scorer, "discriminator": self.discriminator_.scorer}

    def _fitted_state(self) -> dict:
        return {"history": self.history_, "best": self.best_}

    def _restore(self, saved: ModelFile, device: torch.device) -> None:
        for role in ("generator", "discriminator"):  # a scorer of one's own refits as its class, not as g_scorer
            if getattr(self, role) is None and scorer_kind(saved.scorers[role]) not in SCORERS_BY_NAME:
                setattr(self, role, type(saved.scorers[role]))
        self.generator_ = Generator(saved.scorers["generator"]).to(device)
        self.discriminator_ = Discriminator(saved.scorers["discriminator"]).to(device)
        self.history_ = saved.fitted.get("history", [])
        self.best_ = saved.fitted.get("best") or {
            "generator": saved.fitted.get("best_generator", {}), "discriminator": saved.fitted.get("best_discriminator", {})}
        if not isinstance(self.history_, list) or not all(isinstance(r, dict) for r in self.history_):
            raise ValueError("its fitted history is not a list of rows")


class _OneScorer(Recommender):
    """An estimator serving one fitted scorer (``model_``), with validation metrics when fit got validation."""

    @property
    def model_(self) -> nn.Module:
        self._check_fitted()
        return self._model

    def _scorers(self) -> dict[str, nn.Module]:
        return {"model": self._model}

    def _fitted_state(self) -> dict:
        return {"validation_metrics": self.validation_metrics_}

    def _restore(self, saved: ModelFile, device: torch.device) -> None:
        self._model = saved.scorers["model"].to(device)
        self.validation_metrics_ = saved.fitted.get("validation_metrics")


SELECTION_PARAMS = {"select_metric": "P@5", "eval_every": 5, "patience": 10}  # epoch selection on validation


def check_selection(own: dict[str, Any]) -> None:
    """ValueError in one line unless ``own``'s SELECTION_PARAMS are valid."""
    if own["select_metric"] not in SELECT_METRICS:
        raise ValueError(f"select_metric must be one of {SELECT_METRICS}, got {own['select_metric']!r}")
    check_count("eval_every", own["eval_every"])
    check_count("patience", own["patience"], optional=True)


class EpochSelection:
    """``fit_bpr``'s ``on_epoch`` for an estimator fit with validation: ``select_metric`` measured every
    ``eval_every`` epochs, the best epoch's model kept, training stopped after ``patience``
    evaluations without a gain (None: never). Without validation it does nothing."""

    def __init__(self, train: Interactions, validation: Interactions | None, select_metric: str, eval_every: int,
                 patience: int | None) -> None:
        self.train, self.validation, self.eval_every, self.patience = train, validation, eval_every, patience
        self.ks = eval_ks(train.n_items, select_metric)
        self.best, self.history = KeepBest(select_metric), []

    def __call__(self, epoch: int, model: nn.Module) -> bool:
        """After ``epoch`` (from 0): True when training should stop."""
        if self.validation is None or (epoch + 1) % self.eval_every:
            return False
        metrics = evaluate(model, self.train, self.validation, self.ks)
        self.history.append({"epoch": epoch + 1, **metrics})
        self.best.offer(model, metrics, epoch=epoch + 1)
        stale = (epoch + 1 - self.best.info["epoch"]) // self.eval_every
        return self.patience is not None and stale >= self.patience

    def chosen(self, last: nn.Module, epochs: int) -> tuple[nn.Module, int, dict[str, float] | None]:
        """(model, its epochs, its validation metrics): the best evaluated, else ``last`` after ``epochs``."""
        if self.best.model is None:  # no validation, or fewer epochs than eval_every
            return last, epochs, None if self.validation is None else evaluate(last, self.train, self.validation)
        return self.best.model, self.best.info["epoch"], self.best.info["metrics"]


class _EpochSelected(_OneScorer):
    """An estimator whose epochs are chosen on validation by ``EpochSelection``: it keeps
    ``best_epoch_`` and ``history_`` beside the model, in its model file too."""

    def _keep(self, selection: EpochSelection, last: nn.Module, epochs: int) -> None:
        self._model, self.best_epoch_, self.validation_metrics_ = selection.chosen(last, epochs)
        self.history_ = selection.history

    def _fitted_state(self) -> dict:
        return {**super()._fitted_state(), "best_epoch": self.best_epoch_, "history": self.history_}

    def _restore(self, saved: ModelFile, device: torch.device) -> None:
        super()._restore(saved, device)
        self.best_epoch_, self.history_ = saved.fitted.get("best_epoch"), saved.fitted.get("history", [])


class BPRRecommender(_EpochSelected):
    """BPR matrix factorisation (Rendle et al., UAI 2009), with uniform or DNS negatives, as an estimator.

    Parameters: every field of ``BPRConfig`` (defaults are BPRConfig's, i.e. DNS negatives, the
    IRGAN authors' pretraining; ``negatives="uniform"`` is plain BPR), plus ``seed``,
    ``device``, ``show_progress``, ``verbose``, ``min_rating``. With ``validation``, as LightGCN:
    ``select_metric`` (P@5) every ``eval_every`` (5) epochs, the best epoch's model kept, training
    stopped after ``patience`` (10) evaluations without a gain (None: never). After fit:
    ``model_`` (MatrixFactorization), ``validation_metrics_`` (None without validation),
    ``best_epoch_`` (the epochs of the kept model: what a refit on all data should run),
    ``history_`` (one dict per evaluation: epoch and validation metrics).
    """

    _config_cls = BPRConfig
    _own_params = {**SELECTION_PARAMS, "seed": 0, "device": "auto", "show_progress": False, "verbose": False,
                   "min_rating": 4.0}

    def _check(self, config: Any, own: dict[str, Any]) -> None:
        super()._check(config, own)
        check_selection(own)

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        selection = EpochSelection(train, validation, self.select_metric, self.eval_every, self.patience)
        with logging_to_stderr(self.verbose):
            last = fit_bpr(train.matrix, self.config, seed=self.seed, device=self.device,
                           show_progress=self.show_progress, on_epoch=selection)
        self._keep(selection, last, self.config.epochs)


class PopularityRecommender(_OneScorer):
    """Most-popular baseline as an estimator: every user gets the items with the most positives.

    Parameters: ``min_rating``. It has no embeddings: ``similar_items`` and the embedding
    properties raise NotImplementedError. After fit: ``model_`` (``irgan.models.Popularity``),
    ``validation_metrics_``.
    """

    _config_cls = None
    _own_params = {"min_rating": 4.0}

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        self._model = Popularity(train.matrix)
        self.validation_metrics_ = None if validation is None else evaluate(self._model, train, validation)


__all__ = ["IRGAN", "BPRRecommender", "PopularityRecommender", "Recommender", "NotFittedError", "ranking_scorer",
           "save_irgan_model"]
