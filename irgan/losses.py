"""The three losses irgan trains with, each returning its value and its row-sparse gradients.

Gradients are written out by hand (and checked against autograd in tests/test_losses.py):
on tiny embeddings, autograd's bookkeeping costs several times the arithmetic itself.
Every loss is a sum over samples, so the learning rate is per sample, as in SGD with batch 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from irgan.models import MatrixFactorization
from irgan.optim import Update


@torch.no_grad()
def bpr_loss(model: MatrixFactorization, users, pos, neg, l2: float) -> tuple[float, list[Update]]:
    """sum -log sigmoid(s(u,i) - s(u,j)) + l2/2 (|p_u|² + |q_i|² + b_i² + |q_j|² + b_j²)."""
    p, qi, qj = _rows(model.user_emb, users), _rows(model.item_emb, pos), _rows(model.item_emb, neg)
    bi, bj = _rows(model.item_bias, pos), _rows(model.item_bias, neg)
    x = (p * (qi - qj)).sum(1) + bi - bj
    loss = -F.logsigmoid(x).sum() + l2 * _half_square(p, qi, qj, bi, bj)
    g = -torch.sigmoid(-x)[:, None]
    return loss.item(), [
        (model.user_emb, users, g * (qi - qj) + l2 * p),
        (model.item_emb, pos, g * p + l2 * qi),
        (model.item_emb, neg, -g * p + l2 * qj),
        (model.item_bias, pos, g[:, 0] + l2 * bi),
        (model.item_bias, neg, -g[:, 0] + l2 * bj),
    ]


@torch.no_grad()
def pointwise_loss(model: MatrixFactorization, users, items, labels, l2: float) -> tuple[float, list[Update]]:
    """sum BCE(sigmoid(s(u,i)), label) + l2/2 (|p_u|² + |q_i|² + b_i²): IRGAN's discriminator loss."""
    p, q, b = _rows(model.user_emb, users), _rows(model.item_emb, items), _rows(model.item_bias, items)
    x = (p * q).sum(1) + b
    loss = F.binary_cross_entropy_with_logits(x, labels, reduction="sum") + l2 * _half_square(p, q, b)
    g = torch.sigmoid(x) - labels
    return loss.item(), [
        (model.user_emb, users, g[:, None] * q + l2 * p),
        (model.item_emb, items, g[:, None] * p + l2 * q),
        (model.item_bias, items, g + l2 * b),
    ]


@torch.no_grad()
def policy_gradient_loss(
    model: MatrixFactorization, users, rows, items, weights, temperature: float = 1.0,
    log_p: torch.Tensor | None = None, p: torch.Tensor | None = None,
) -> tuple[float, list[Update]]:
    """REINFORCE surrogate -sum_k weights[k] log p(items[k] | users[rows[k]]), p = softmax(s / T).

    ``users`` (B,) is a batch of distinct users, ``rows``/``items``/``weights`` (N,) one entry per
    sample. d/d logits of the user's row is (sum of its weights) p - (weights scattered on items).
    ``log_p`` and ``p`` (B, n_items) may be passed when the caller has already computed them.
    """
    p_u = _rows(model.user_emb, users)
    if log_p is None:
        log_p = torch.log_softmax(model.score_users(users) / temperature, 1)
    loss = -(weights * log_p[rows, items]).sum()
    grad = (log_p.exp() if p is None else p).mul(torch.zeros(len(users), device=users.device).index_add_(0, rows, weights)[:, None])
    grad.index_put_((rows, items), -weights, accumulate=True)
    if temperature != 1:
        grad /= temperature
    # (V^T G^T)^T rather than G V: MKL is several times faster with the long dimension last.
    return loss.item(), [
        (model.user_emb, users, (model.item_emb.T @ grad.T).T),
        (model.item_emb, None, (p_u.T @ grad).T),
        (model.item_bias, None, grad.sum(0)),
    ]


def _rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    # index_select is several times faster than advanced indexing on CPU.
    return table.index_select(0, index)


def _half_square(*tensors: torch.Tensor) -> torch.Tensor:
    return sum(t.square().sum() for t in tensors) / 2
