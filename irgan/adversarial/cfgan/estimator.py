"""``CFGANRecommender``: CFGAN as an estimator, fitted on raw data and serving by raw ids::

    model = CFGANRecommender(min_rating=None).fit(ratings_df, validation=held_out_df)
    model.best_epoch_                      # what a refit on all data should run as ``epochs``
    model.recommend(["alice", "bob"], k=10)
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from irgan.adversarial.cfgan.config import CFGANConfig
from irgan.adversarial.cfgan.game import train_cfgan
from irgan.adversarial.cfgan.scorer import CFGANScorer
from irgan.checkpoint import ModelFile
from irgan.data import Interactions
from irgan.estimator import _OneScorer
from irgan.metrics import KeepBest, eval_ks, evaluate
from irgan.progress import logging_to_stderr


class CFGANRecommender(_OneScorer):
    """CFGAN (Chae et al., "CFGAN: A Generic Collaborative Filtering Framework based on Generative
    Adversarial Networks", CIKM 2018) as an estimator; G's rebuilt purchase vectors are the scores.

    Parameters: every field of ``CFGANConfig`` (defaults: the authors' ML100K settings, iCFGAN
    with ZP), plus ``on_epoch`` (``f(epoch, scorer)`` after every outer epoch, 0-based; a model
    file does not keep it), ``seed``, ``device``, ``show_progress``, ``verbose``, ``min_rating``.
    Without ``validation`` the last epoch serves (the authors' protocol). With it, ``select_metric``
    is checked every ``eval_every`` epochs and at the last, the best epoch's G is kept and training
    stops after ``patience`` checks without a gain. After fit: ``model_`` (``CFGANScorer``),
    ``best_epoch_`` (the epochs the served G had), ``history_`` (one row per check: epoch and
    validation metrics), ``losses_`` (mean D and G batch losses per epoch, L2 aside),
    ``validation_metrics_``. G has no embeddings: ``similar_items`` raises NotImplementedError.
    """

    _config_cls = CFGANConfig
    _own_params = {"on_epoch": None, "seed": 0, "device": "auto", "show_progress": False, "verbose": False,
                   "min_rating": 4.0}

    def _check(self, config: CFGANConfig, own: dict[str, Any]) -> None:
        super()._check(config, own)
        if own["on_epoch"] is not None and not callable(own["on_epoch"]):
            raise ValueError(f"on_epoch must be a callable or None, got {own['on_epoch']!r}")

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        config = self.config
        best, history = KeepBest(config.select_metric), []

        def on_epoch(epoch: int, scorer: CFGANScorer) -> bool:
            if self.on_epoch is not None:
                self.on_epoch(epoch, scorer)
            done = epoch + 1
            if validation is None or (done % config.eval_every and done != config.epochs):
                return False
            metrics = evaluate(scorer, train, validation, eval_ks(train.n_items, config.select_metric))
            history.append({"epoch": done, **metrics})
            best.offer(scorer, metrics, epoch=done)
            stale = (done - best.info["epoch"]) // config.eval_every
            return config.patience is not None and stale >= config.patience

        with logging_to_stderr(self.verbose):
            fit = train_cfgan(train.matrix, config, seed=self.seed, device=self.device,
                              show_progress=self.show_progress, on_epoch=on_epoch)
        self.history_, self.losses_ = history, fit.losses
        if best.model is None:
            self._model, self.best_epoch_, self.validation_metrics_ = fit.scorer, fit.epochs, None
        else:
            self._model, self.best_epoch_ = best.model, best.info["epoch"]
            self.validation_metrics_ = best.info["metrics"]

    def _scorers(self) -> dict[str, nn.Module]:
        return {"model": self._model}

    def _fitted_state(self) -> dict:
        return {**super()._fitted_state(), "best_epoch": self.best_epoch_, "history": self.history_,
                "losses": self.losses_}

    def _restore(self, saved: ModelFile, device: torch.device) -> None:
        super()._restore(saved, device)
        if not isinstance(self._model, CFGANScorer):
            raise ValueError(f"its model is a {type(self._model).__name__}, not a CFGANScorer")
        self.best_epoch_ = saved.fitted.get("best_epoch")
        self.history_, self.losses_ = saved.fitted.get("history", []), saved.fitted.get("losses", [])


__all__ = ["CFGANRecommender"]
