"""Fold-in: scores for users a fitted model never saw, from their histories alone, the model unchanged.

``fold_in(model)`` prepares, once, a function from histories (rows of 0/1 over the model's items)
to scores over the catalog, so that a batch of new users costs one product or one batched solve:

- item-item models (EASE's ``ItemItemScorer``, ``ItemKNNScorer``, which SLIM and RP3beta serve
  through) score a history as they score a training user, x W;
- matrix factorisation (BPR, IRGAN's players, PureSVD, APR) solves the new user's vector by ridge
  least squares with the item factors fixed; iALS by its own weighted least squares;
- LightGCN propagates the history once through the fitted item embeddings;
- CFGAN user-based runs its generator on the history; popularity ignores it.

The model's parameters and buffers are read, never written.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from irgan.models import ItemItemScorer, ItemKNNScorer, LightGCNScorer, MatrixFactorization, Popularity

#: λ of the matrix-factorisation fold-in as a fraction of the mean eigenvalue of VᵀV (tr(VᵀV) / dim),
#: so that it does not depend on the scale the item factors were trained to.
RIDGE = 0.1
#: History entries x factors² gathered at a time by the weighted (iALS) fold-in.
CHUNK_ELEMENTS = 2**24

Scores = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class WeightedLeastSquares:
    """iALS's objective for one user with the item factors Y fixed (Hu, Koren and Volinsky, ICDM
    2008): sum over items of c_i (x_i - p . y_i)² + ``regularization`` |p|², c_i = 1 + ``alpha`` on
    the history and 1 elsewhere."""

    regularization: float
    alpha: float


def fold_in(model: nn.Module, weighted: WeightedLeastSquares | None = None) -> Scores:
    """``scores(histories)`` for users ``model`` never saw: histories float32 (batch, n_items) of 0/1
    on the model's device -> scores float32 (batch, n_items). ``weighted``: fold a matrix
    factorisation in under iALS's objective instead of ridge. NotImplementedError, in one line, for
    a scorer whose new users have no closed form."""
    scorer = getattr(model, "scorer", model)  # IRGAN's players score through their scorer
    if isinstance(scorer, MatrixFactorization):
        return _ridge(scorer) if weighted is None else _weighted(scorer, weighted)
    if isinstance(scorer, ItemItemScorer):
        weight = scorer.weight.detach().clone()
        weight.diagonal().zero_()  # as in scoring: an item never scores itself
        return lambda histories: histories @ weight
    if isinstance(scorer, ItemKNNScorer):
        similarity = scorer.similarity()
        return lambda histories: torch.sparse.mm(similarity, histories.T).T
    if isinstance(scorer, Popularity):
        return lambda histories: scorer.counts.repeat(len(histories), 1)
    if isinstance(scorer, LightGCNScorer):
        return _lightgcn(scorer)
    if callable(getattr(scorer, "fold_in", None)):  # a scorer that knows its own (CFGAN's)
        return scorer.fold_in()
    raise NotImplementedError(f"fold-in is not defined for a {type(scorer).__name__}: it has no closed form for a new "
                              "user's scores; refit with the new users' histories")


def _ridge(mf: MatrixFactorization) -> Scores:
    """New users' vectors by ridge with the item factors V fixed, p = (VᵀV + λI)⁻¹ Vᵀ x, λ = ``RIDGE``
    · tr(VᵀV) / dim; then each p is rescaled to the mean length of the fitted users' vectors, since
    a fit to 0/1 targets is not in the scale of the scores that the item biases are in (ml-100k u1,
    BPR folding in its 456 training users with test items from their u1.base items: P@5 0.330 as
    trained-in; not rescaled 0.247, all rescaled by one factor 0.310). Without biases only the
    direction ranks, and PureSVD's (V orthonormal) is its x V exactly."""
    items = mf.item_emb.detach()
    factors = items.double()
    gram = factors.T @ factors
    ridge = max(RIDGE * float(gram.trace()) / mf.dim, torch.finfo(torch.float64).tiny)
    eye = torch.eye(mf.dim, dtype=torch.float64, device=gram.device)
    project = torch.linalg.solve(gram + ridge * eye, factors.T).T.to(items.dtype)  # (n_items, dim): x -> p
    length = mf.user_emb.detach().norm(dim=1).mean()
    bias = mf.item_bias.detach()

    def scores(histories: torch.Tensor) -> torch.Tensor:
        users = histories @ project
        users = users * (length / users.norm(dim=1, keepdim=True).clamp_min(torch.finfo(users.dtype).tiny))
        return torch.addmm(bias, users, items.T)

    return scores


def _weighted(mf: MatrixFactorization, objective: WeightedLeastSquares) -> Scores:
    """New users' vectors by iALS's normal equations, (YᵀY + reg I + alpha Σ_history y yᵀ) p =
    (1 + alpha) Σ_history y, one batched solve per batch of users."""
    items = mf.item_emb.detach()
    dim = items.shape[1]
    base = items.T @ items + objective.regularization * torch.eye(dim, dtype=items.dtype, device=items.device)
    bias = mf.item_bias.detach()

    def scores(histories: torch.Tensor) -> torch.Tensor:
        systems = base.expand(len(histories), dim, dim).clone()
        users, entries = histories.nonzero(as_tuple=True)
        step = max(1, CHUNK_ELEMENTS // (dim * dim))
        for rows, cols in zip(users.split(step), entries.split(step)):
            y = items.index_select(0, cols)
            systems.index_add_(0, rows, objective.alpha * y[:, :, None] * y[:, None, :])
        targets = (1 + objective.alpha) * (histories @ items)
        vectors = torch.linalg.solve(systems, targets)
        return torch.addmm(bias, vectors, items.T)

    return scores


def _lightgcn(gcn: LightGCNScorer) -> Scores:
    """A new user joins the fitted graph with its history's edges, the other nodes left as they
    are: its layer k >= 1 is Σ_history e_i^(k-1) / sqrt(|history| d_i) (d_i the item's degree in
    training), its layer 0, a trained parameter it does not have, is 0; e_u is their mean over
    the layers, scored against the fitted items' layer-averaged embeddings."""
    if gcn.layers == 0:
        raise NotImplementedError("LightGCN with layers=0 scores with its users' trained layer-0 vectors only, which a "
                                  "new user does not have: fold-in needs layers >= 1")
    with torch.no_grad():
        adjacency, layer = gcn.adjacency(), torch.cat([gcn.user_emb, gcn.item_emb])
        sources = torch.zeros_like(gcn.item_emb)
        for _ in range(gcn.layers):
            sources += layer[gcn.n_users:]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                layer = adjacency @ layer
        _, item_final = gcn.propagate()
        degree = torch.bincount(gcn.indices, minlength=gcn.n_items).clamp(min=1).to(sources.dtype)
        sources = sources / degree.sqrt()[:, None] / (gcn.layers + 1)

    def scores(histories: torch.Tensor) -> torch.Tensor:
        users = (histories @ sources) / histories.sum(1, keepdim=True).clamp(min=1).sqrt()
        return users @ item_final.T

    return scores
