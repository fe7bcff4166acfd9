"""APR, adversarial personalized ranking (He, He, Du and Chua, SIGIR 2018), on matrix factorisation.

BPR-MF is pretrained, then every mini-batch of (user, positive, negative) triples is fitted on
BPR's loss plus ``adv_reg`` times BPR's loss at embeddings moved by the perturbation that raises
that loss most: Δ = ``eps`` · g / |g| for each user and item row, g the gradient of the batch's
BPR loss with respect to that row (summed over its occurrences in the batch). Δ is recomputed
every batch and held constant: no gradient flows through it. Defaults follow the authors'
``AMF.py`` and ``train.sh`` (64 dimensions, Adagrad at 0.05, batches of 512, ε 0.5, λ 1, no L2,
no item bias, up to 1,000 epochs of BPR then 1,000 of APR). Where the authors kept the epoch that
scored best on test, and started APR from the last BPR epoch, ``fit_apr`` given a validation set
chooses both phases' epochs on it and starts APR from the best BPR epoch::

    model = APRRecommender().fit(ratings_df, validation=held_out_df)
    model.best_pretrain_epoch_, model.best_epoch_      # what a refit on all data should run
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from irgan.checkpoint import ModelFile
from irgan.config import SELECT_METRICS, _check_fields, _check_optional_counts, _f, _not_negative, _positive
from irgan.data import Interactions
from irgan.device import resolve_device
from irgan.estimator import _OneScorer
from irgan.metrics import KeepBest, eval_ks, evaluate
from irgan.models.mf import MatrixFactorization
from irgan.progress import bar, logging_to_stderr
from irgan.training.sampling import PositiveSet, positive_pairs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class APRConfig:
    """Every choice of APR's training; the defaults are the authors' (``AMF.py`` and ``train.sh``)."""

    dim: int = _f(64, "embedding size")
    init_std: float = _f(0.01, "embeddings start normal(0, init_std), truncated at two standard deviations")
    item_bias: bool = _f(False, "learn an item bias beside the embeddings (the authors' MF has none: it stays 0)")
    lr: float = _f(0.05, "Adagrad's learning rate, in both phases")
    adagrad_init: float = _f(0.1, "Adagrad's initial accumulator: TensorFlow's default, which the authors ran (torch's is 0)")
    batch_size: int = _f(512, "triples per update, losses summed; each epoch's last partial batch is dropped, as the authors do")
    l2: float = _f(0.0, "L2 times the mean square of the batch's user, positive and negative embeddings (the authors' reg, which their code adds twice in the APR phase)")
    eps: float = _f(0.5, "ε: the norm of each embedding row's adversarial perturbation")
    adv_reg: float = _f(1.0, "λ: weight of the BPR loss at the perturbed embeddings (the authors' reg_adv)")
    pretrain_epochs: int = _f(1000, "epochs of plain BPR before the adversary joins (the authors' adv_epoch)")
    epochs: int = _f(1000, "epochs of APR after the pretraining (a new Adagrad, as the authors restart it)")
    select_metric: str = _f("P@5", "validation metric that picks each phase's epoch")
    eval_every: int = _f(10, "epochs between validation checks")
    patience: int | None = _f(10, "validation checks without a gain before a phase stops (None: never)")

    def __post_init__(self) -> None:
        _check_optional_counts(self, ("patience",))
        _check_fields(self, at_least_one=("dim", "batch_size", "eval_every"), counts=("pretrain_epochs", "epochs"))
        if self.select_metric not in SELECT_METRICS:
            raise ValueError(f"select_metric must be one of {SELECT_METRICS}, got {self.select_metric!r}")
        _positive(self, ("lr",))
        _not_negative(self, ("init_std", "adagrad_init", "l2", "eps", "adv_reg"))


@dataclass
class APRFit:
    """What ``fit_apr`` returns: the APR model, the BPR model it started from, each phase's epoch
    count (chosen on validation when there was one), one history row per validation check
    ({"phase": "bpr" | "apr", "epoch", metrics...}) and the kept model's validation metrics."""

    model: MatrixFactorization
    start: MatrixFactorization
    pretrain_epochs: int
    epochs: int
    history: list[dict]
    validation_metrics: dict[str, float] | None


def adversarial_perturbation(model: MatrixFactorization, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                             eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """APR's Δ for a batch of triples (three LongTensors (B,)): the perturbations of p_u, q_pos and
    q_neg, each (B, dim), eps times the unit gradient of the batch's BPR loss at each row."""
    p, q_pos, q_neg = _rows(model, users, pos, neg)
    return _perturbation(_bpr(model, p, q_pos, q_neg, pos, neg), users, pos, neg, p, q_pos, q_neg, eps)


def apr_objective(model: MatrixFactorization, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                  eps: float, adv_reg: float, l2: float = 0.0) -> torch.Tensor:
    """APR's loss on a batch: sum softplus(-x) + adv_reg sum softplus(-x_adv) + l2 mean(p² + q_pos² + q_neg²),
    x = s(u, pos) - s(u, neg) and x_adv the same at the perturbed embeddings. With ``eps`` or
    ``adv_reg`` 0 it is BPR's loss, computed alone."""
    p, q_pos, q_neg = _rows(model, users, pos, neg)
    bpr = _bpr(model, p, q_pos, q_neg, pos, neg)
    loss = bpr
    if eps > 0 and adv_reg > 0:
        d_user, d_pos, d_neg = _perturbation(bpr, users, pos, neg, p, q_pos, q_neg, eps)
        loss = loss + adv_reg * _bpr(model, p + d_user, q_pos + d_pos, q_neg + d_neg, pos, neg)
    if l2 > 0:  # the authors' form: a mean over the batch and the dimensions, added to a summed loss
        loss = loss + l2 * (p.square() + q_pos.square() + q_neg.square()).mean()
    return loss


def _rows(model: MatrixFactorization, users, pos, neg) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (model.user_emb.index_select(0, users), model.item_emb.index_select(0, pos),
            model.item_emb.index_select(0, neg))


def _bpr(model: MatrixFactorization, p, q_pos, q_neg, pos, neg) -> torch.Tensor:
    """sum softplus(s(u, neg) - s(u, pos)) = sum -log sigmoid(x) over the batch, from its embedding rows."""
    x = (p * (q_pos - q_neg)).sum(1) + model.item_bias.index_select(0, pos) - model.item_bias.index_select(0, neg)
    return F.softplus(-x).sum()


def _perturbation(bpr, users, pos, neg, p, q_pos, q_neg, eps) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Δ for each gathered row: the gradients of ``bpr`` summed per table row (what the gradient with
    respect to the table holds), normalised per row, scaled by ``eps``; constants for autograd."""
    g_user, g_pos, g_neg = torch.autograd.grad(bpr, (p, q_pos, q_neg), retain_graph=True)
    d_items = row_perturbation(torch.cat([g_pos, g_neg]), eps, torch.cat([pos, neg]))
    return row_perturbation(g_user, eps, users), *d_items.split(len(pos))


def row_perturbation(grad: torch.Tensor, eps: float, index: torch.Tensor | None = None) -> torch.Tensor:
    """``eps`` times the unit vector of each row of ``grad`` (n, dim); with ``index`` (n,), the rows
    of equal index are summed first and each gets its sum's. A zero row stays zero (as TensorFlow's
    l2_normalize, which the authors used, leaves it)."""
    if index is None:
        return eps * F.normalize(grad, dim=1)
    rows, inverse = torch.unique(index, return_inverse=True)
    total = torch.zeros(len(rows), grad.shape[1], dtype=grad.dtype, device=grad.device).index_add_(0, inverse, grad)
    return (eps * F.normalize(total, dim=1)).index_select(0, inverse)


def fit_apr(train: sp.csr_matrix, config: APRConfig = APRConfig(), validation: sp.csr_matrix | None = None,
            seed: int = 0, device: torch.device | str = "auto", show_progress: bool = False) -> APRFit:
    """Pretrain BPR-MF on the positives of ``train`` (csr (n_users, n_items)), then train it by APR.

    Without ``validation`` each phase runs its configured epochs. With it (csr, same shape), each
    phase checks ``select_metric`` every ``eval_every`` epochs and at its start, stops after
    ``patience`` checks without a gain and keeps its best model: APR starts from the best BPR
    epoch, and its own best may be epoch 0 (the start itself).
    """
    train = sp.csr_matrix(train)
    if train.nnz == 0:
        raise ValueError("cannot train APR on a matrix with no positives")
    if validation is not None and validation.shape != train.shape:
        raise ValueError(f"validation has shape {validation.shape}, train has shape {train.shape}")
    device = resolve_device(device)
    generator = torch.Generator(device).manual_seed(seed)
    positives = PositiveSet(train, device)
    users, items = positive_pairs(train, device)
    keep = positives.counts[users] < train.shape[1]  # users who liked everything have no negative
    triples = _Triples(users[keep], items[keep], positives, config.batch_size)
    history: list[dict] = []
    ks = eval_ks(train.shape[1], config.select_metric)  # the cut-offs checked, the selection's among them
    phase = dict(config=config, triples=triples, train=train, validation=validation, ks=ks, history=history,
                 generator=generator, show_progress=show_progress)

    start, pretrain_epochs = _phase(_initial_model(*train.shape, config, seed).to(device), "bpr",
                                    config.pretrain_epochs, **phase)
    model, epochs = _phase(copy.deepcopy(start), "apr", config.epochs, **phase)
    metrics = None if validation is None else evaluate(model, train, validation, ks)
    return APRFit(model, start, pretrain_epochs, epochs, history, metrics)


class _Triples:
    """An epoch's (user, positive, negative) batches: every positive pair once, in a new order, each
    with a uniform negative the user has no positive for; the last partial batch is dropped."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor, positives: PositiveSet, batch_size: int) -> None:
        self.users, self.items, self.positives, self.batch_size = users, items, positives, batch_size

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        negatives = self.positives.uniform_negatives(self.users, generator)
        order = torch.randperm(len(self.users), generator=generator, device=self.users.device)
        if len(order) >= self.batch_size:
            order = order[: len(order) // self.batch_size * self.batch_size]
        for batch in order.split(self.batch_size):
            yield self.users[batch], self.items[batch], negatives[batch]


def _phase(model: MatrixFactorization, name: str, epochs: int, config: APRConfig, triples: _Triples,
           train: sp.csr_matrix, validation: sp.csr_matrix | None, ks: tuple[int, ...], history: list[dict],
           generator: torch.Generator, show_progress: bool) -> tuple[MatrixFactorization, int]:
    """Train ``model`` for up to ``epochs`` (BPR for 'bpr', APR for 'apr') with a new Adagrad; the
    model to keep and its epoch count (the best on validation, or the last)."""
    eps, adv_reg = (config.eps, config.adv_reg) if name == "apr" else (0.0, 0.0)
    optimizer = torch.optim.Adagrad(  # the bias stays as it is unless it is learned
        [{"params": [model.user_emb, model.item_emb]},
         {"params": [model.item_bias], "lr": config.lr if config.item_bias else 0.0}],
        lr=config.lr, initial_accumulator_value=config.adagrad_init)
    best = None if validation is None else KeepBest(config.select_metric)

    def check(epoch: int) -> bool:
        """Record the validation figures at ``epoch``; True when patience has run out."""
        metrics = evaluate(model, train, validation, ks)
        history.append({"phase": name, "epoch": epoch, **metrics})
        best.offer(model, metrics, epoch=epoch)
        stale = (epoch - best.info["epoch"]) // config.eval_every
        return config.patience is not None and stale >= config.patience

    if best is not None:
        check(0)
    start = time.perf_counter()
    for epoch in bar(show_progress, iterable=range(1, epochs + 1), desc=name.upper()):
        for users, pos, neg in triples.epoch(generator):
            optimizer.zero_grad(set_to_none=True)
            apr_objective(model, users, pos, neg, eps, adv_reg, config.l2).backward()
            optimizer.step()
        log.debug("%s: epoch %d/%d, %.1f s", name, epoch, epochs, time.perf_counter() - start)
        if best is not None and (epoch % config.eval_every == 0 or epoch == epochs) and check(epoch):
            break
    if best is None:
        return model, epochs
    log.info("%s: best %s %.4f at epoch %d, %.1f s", name, config.select_metric, best.score, best.info["epoch"],
             time.perf_counter() - start)
    return best.model, best.info["epoch"]


def _initial_model(n_users: int, n_items: int, config: APRConfig, seed: int) -> MatrixFactorization:
    """MF with the authors' start: embeddings truncated-normal(0, init_std) within 2 std, biases 0."""
    generator = torch.Generator().manual_seed(seed)
    model = MatrixFactorization(n_users, n_items, config.dim, config.init_std, generator=generator)
    with torch.no_grad():
        for table in (model.user_emb, model.item_emb):
            nn.init.trunc_normal_(table, std=config.init_std, a=-2 * config.init_std, b=2 * config.init_std,
                                  generator=generator)
    return model


class APRRecommender(_OneScorer):
    """APR-MF (He et al., SIGIR 2018) as an estimator: BPR-MF pretrained, then adversarially trained.

    Parameters: every field of ``APRConfig``, plus ``seed``, ``device``, ``show_progress``,
    ``verbose``, ``min_rating``. With ``validation``, each phase's epochs are chosen on it:
    ``best_pretrain_epoch_`` and ``best_epoch_`` are what a refit on all data should run as
    ``pretrain_epochs`` and ``epochs``. After fit: ``model_`` (``MatrixFactorization``: usable as
    IRGAN's G or D), ``start_`` (the BPR-MF model APR started from), ``history_`` (one row per
    validation check: phase "bpr" or "apr", epoch, metrics), ``validation_metrics_``.
    """

    _config_cls = APRConfig
    _own_params = {"seed": 0, "device": "auto", "show_progress": False, "verbose": False, "min_rating": 4.0}

    def _fit(self, train: Interactions, validation: Interactions | None) -> None:
        with logging_to_stderr(self.verbose):
            fit = fit_apr(train.matrix, self.config, None if validation is None else validation.matrix,
                          seed=self.seed, device=self.device, show_progress=self.show_progress)
        self._model, self.start_ = fit.model, fit.start
        self.best_pretrain_epoch_, self.best_epoch_, self.history_ = fit.pretrain_epochs, fit.epochs, fit.history
        self.validation_metrics_ = fit.validation_metrics

    def _scorers(self) -> dict[str, nn.Module]:
        return {"model": self._model, "start": self.start_}

    def _fitted_state(self) -> dict[str, Any]:
        return {**super()._fitted_state(), "best_pretrain_epoch": self.best_pretrain_epoch_,
                "best_epoch": self.best_epoch_, "history": self.history_}

    def _restore(self, saved: ModelFile, device: torch.device) -> None:
        super()._restore(saved, device)
        self.start_ = saved.scorers["start"].to(device)
        self.best_pretrain_epoch_ = saved.fitted.get("best_pretrain_epoch")
        self.best_epoch_ = saved.fitted.get("best_epoch")
        self.history_ = saved.fitted.get("history", [])


__all__ = ["APRConfig", "APRFit", "APRRecommender", "adversarial_perturbation", "apr_objective", "fit_apr",
           "row_perturbation"]
