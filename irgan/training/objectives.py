"""Training objectives by autograd, for any scorer: BPR, D's pointwise loss, G's policy gradient.

Each returns a scalar loss tensor to ``backward()`` and step with a ``torch.optim`` optimizer.
Losses are sums over samples (the learning rate is per sample, as in the IRGAN authors' SGD).
L2 uses the scorer's ``penalty(users, items)`` (half squared norms of the rows a batch touches,
once per occurrence) where it has one, else half the squared norm of all its parameters.
``irgan.training.fast_mf`` computes the same objectives with hand-derived gradients for MF.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irgan.distributed import Shard


def l2_per_occurrence(l2: float, lr: float | None, n: torch.Tensor) -> torch.Tensor:
    """The L2 coefficient per occurrence of a row held n times in one batch: l2, or with ``lr``
    (plain SGD) the share of n successive SGD shrinks, (1 - (1 - lr l2)^n) / (lr n).

    Summed linearly, n occurrences pull a row by lr l2 n, which overshoots (and diverges once
    lr l2 n > 2) on the few popular items G proposes thousands of times in D's full-data step;
    the shrink is what n SGD steps of batch 1 would do, and equals l2 while lr l2 n is small.
    """
    if lr is None or l2 == 0:
        return torch.full_like(n, l2)
    shrink = 1 - (1 - lr * l2) ** n
    return torch.where(n > 0, shrink / (lr * n.clamp(min=1)), torch.full_like(n, l2))


def l2_term(scorer: nn.Module, l2: float, users: torch.Tensor, items: torch.Tensor, lr: float | None = None,
            shard: Shard = Shard()) -> torch.Tensor:
    """l2 times the scorer's penalty on the rows of ``users`` and ``items`` (1-d index tensors),
    each row's coefficient set by how often the batch holds it (``l2_per_occurrence``; under
    torch.distributed counted over every process). A scorer without ``penalty``: l2/2 |θ|²."""
    if l2 == 0:
        return torch.zeros((), device=users.device)
    if not hasattr(scorer, "penalty"):
        return l2 * sum(p.square().sum() for p in scorer.parameters()) / 2
    user_part, item_part = scorer.penalty(users, items)
    total = torch.zeros((), dtype=user_part.dtype, device=user_part.device)
    for index, part in ((users, user_part), (items, item_part)):
        size = int(index.max()) + 1 if index.numel() else 0
        if shard.active:  # every process joins the sum, with counts of one length
            size = shard.max(size)
        elif size == 0:
            continue
        counts = torch.bincount(index, minlength=size).to(part.dtype)
        coef = l2_per_occurrence(l2, lr, shard.sum(counts) if shard.active else counts).index_select(0, index)
        # the value is the plain l2 penalty; the gradient carries the per-occurrence coefficients
        total = total + (coef * part + (l2 * part - coef * part).detach()).sum()
    return total


def bpr_objective(scorer: nn.Module, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, l2: float) -> torch.Tensor:
    """sum -log sigmoid(s(u, i) - s(u, j)) + l2 penalty of the rows the triples touch."""
    x = scorer.score(users, pos) - scorer.score(users, neg)
    return -F.logsigmoid(x).sum() + l2_term(scorer, l2, users, torch.cat([pos, neg]))


def pointwise_objective(scorer: nn.Module, users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor,
                        l2: float, lr: float | None = None, shard: Shard = Shard()) -> torch.Tensor:
    """IRGAN's discriminator loss: sum BCE(sigmoid(s(u, i)), label) + l2 penalty (see ``l2_term``)."""
    logits = scorer.score(users, items)
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") + l2_term(scorer, l2, users, items, lr, shard)


def policy_gradient_objective(log_p: torch.Tensor, rows: torch.Tensor, items: torch.Tensor,
                              weights: torch.Tensor) -> torch.Tensor:
    """REINFORCE surrogate -sum_k weights[k] log p(items[k] | row rows[k]) over sampled items;
    ``log_p`` (B, n_items) carries the gradient, ``weights`` (N,) none (reward times importance
    weight, see ``sample_weights``)."""
    return -(weights.detach() * log_p.view(-1).index_select(0, rows * log_p.shape[1] + items)).sum()


def exact_policy_gradient_objective(log_p: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    """The expectation REINFORCE estimates, over the whole catalog: -sum_u sum_i p(i|u) r(u, i)
    log p(i|u) with p and r (B, n_items) held fixed; its gradient is that of E_p[r], with no
    sampling variance, at the cost of D scoring every item."""
    return -(log_p.detach().exp() * reward.detach() * log_p).sum()


def sample_weights(estimator: str, reward: torch.Tensor, p: torch.Tensor, q: torch.Tensor, rows: torch.Tensor,
                   counts: torch.Tensor) -> torch.Tensor:
    """Per-sample weights (N,) of G's policy gradient from D's rewards and each draw's probability
    under G (p) and under the proposal it was drawn from (q), all (N,); ``counts`` (B,) samples per row.

    'reinforce': reward x ratio / count of the row's samples, the paper's importance-sampled
    estimate of each user's mean; 'snis': reward x ratio / the row's sum of ratios, weights
    self-normalised per user as in SD-GAR (Wang et al., NeurIPS 2020): biased, lower variance.
    """
    if estimator == "reinforce":
        return reward * p / q / counts.index_select(0, rows)
    if estimator == "snis":
        ratio = p / q
        total = torch.zeros(len(counts), dtype=ratio.dtype, device=ratio.device).index_add_(0, rows, ratio)
        return reward * ratio / total.index_select(0, rows)
    raise ValueError(f"sample weights for estimator {estimator!r}: use 'reinforce' or 'snis'")
