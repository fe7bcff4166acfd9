"""Scoring models: the matrix-factorisation scorer shared by IRGAN's generator and discriminator.

IRGAN (Wang et al., "IRGAN: A Minimax Game for Unifying Generative and Discriminative
Information Retrieval Models", SIGIR 2017) uses the same scorer on both sides of its game for
item recommendation: score(u, i) = p_u . q_i + b_i.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class MatrixFactorization(nn.Module):
    """score(u, i) = p_u . q_i + b_i, with user embeddings (n_users, dim), item embeddings
    (n_items, dim) and item biases (n_items,); embeddings start uniform(-init_scale, init_scale)
    and biases at 0, as in the IRGAN authors' code."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int = 5,
        init_scale: float = 0.05,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if min(n_users, n_items, dim) < 1:
            raise ValueError(f"n_users, n_items and dim must be positive, got {n_users}, {n_items}, {dim}")
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        uniform = lambda *shape: (torch.rand(*shape, generator=generator) * 2 - 1) * init_scale  # noqa: E731
        self.user_emb = nn.Parameter(uniform(n_users, dim))
        self.item_emb = nn.Parameter(uniform(n_items, dim))
        self.item_bias = nn.Parameter(torch.zeros(n_items))

    @classmethod
    def from_arrays(cls, user_emb, item_emb, item_bias) -> "MatrixFactorization":
        """A model holding the given parameters (numpy arrays or tensors), e.g. a pretrained file."""
        user_emb, item_emb, item_bias = (torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (user_emb, item_emb, item_bias))
        if user_emb.ndim != 2 or item_emb.ndim != 2 or user_emb.shape[1] != item_emb.shape[1]:
            raise ValueError(f"embedding shapes do not fit: users {tuple(user_emb.shape)}, items {tuple(item_emb.shape)}")
        if item_bias.shape != (item_emb.shape[0],):
            raise ValueError(f"item_bias has shape {tuple(item_bias.shape)}, expected ({item_emb.shape[0]},)")
        model = cls(user_emb.shape[0], item_emb.shape[0], user_emb.shape[1], generator=torch.Generator())
        with torch.no_grad():
            model.user_emb.copy_(user_emb)
            model.item_emb.copy_(item_emb)
            model.item_bias.copy_(item_bias)
        return model

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs: two LongTensors of shape (n,) give a float tensor (n,)."""
        return (self.user_emb.index_select(0, users.flatten()).view(*users.shape, -1)
                * self.item_emb.index_select(0, items.flatten()).view(*items.shape, -1)).sum(-1) \
            + self.item_bias.index_select(0, items.flatten()).view(items.shape)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of a batch of users against the whole catalog: (len(users), n_items)."""
        return torch.addmm(self.item_bias, self.user_emb.index_select(0, users), self.item_emb.T)

    forward = score_users

    def l2(self, users: torch.Tensor, *item_sets: torch.Tensor) -> torch.Tensor:
        """Half the squared norm of the rows that a batch touches, once per occurrence."""
        total = self.user_emb[users].square().sum()
        for items in item_sets:
            total = total + self.item_emb[items].square().sum() + self.item_bias[items].square().sum()
        return total / 2

    def copy_from(self, other: "MatrixFactorization") -> "MatrixFactorization":
        """Load another scorer's parameters (same sizes) into this one, e.g. a pretrained model."""
        if (other.n_users, other.n_items, other.dim) != (self.n_users, self.n_items, self.dim):
            raise ValueError(
                f"cannot initialise a {self.n_users}x{self.n_items} dim-{self.dim} model from a "
                f"{other.n_users}x{other.n_items} dim-{other.dim} one"
            )
        self.load_state_dict(other.state_dict())
        return self


class Discriminator(MatrixFactorization):
    """IRGAN's discriminator D: sigmoid(score(u, i)) is the probability that i is a real item of u."""

    def reward(self, users: torch.Tensor, items: torch.Tensor, kind: str = "code") -> torch.Tensor:
        """The generator's reward for proposing ``items`` to ``users``.

        ``"code"``: 2 (sigmoid(f) - 1/2), the authors' released code; ``"paper"``: log(1 + exp(f)),
        the reward written in the paper.
        """
        logits = self.score(users, items)
        if kind == "code":
            return 2 * (torch.sigmoid(logits) - 0.5)
        if kind == "paper":
            return F.softplus(logits)
        raise ValueError(f"unknown reward {kind!r}: use 'code' or 'paper'")


class Generator(MatrixFactorization):
    """IRGAN's generator G: a softmax over the catalog, p(i | u) ∝ exp(score(u, i) / temperature)."""

    def log_probs(self, users: torch.Tensor, temperature: float = 1.0, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """log p(i | u) for a batch of users: (len(users), n_items). ``exclude`` is a boolean mask
        of the same shape whose True entries get probability 0 (e.g. the users' positives)."""
        logits = self.score_users(users)
        if temperature != 1:
            logits = logits / temperature
        if exclude is not None:
            logits = logits.masked_fill(exclude, float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    @torch.no_grad()
    def sample(
        self,
        users: torch.Tensor,
        counts: torch.Tensor,
        temperature: float = 1.0,
        exclude: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``counts[k]`` items (with replacement) for each ``users[k]`` from p(. | u).

        Returns a LongTensor of shape (counts.sum(),), the items of users[0] first.
        """
        return sample_rows(self.log_probs(users, temperature, exclude).exp(), counts, generator)


def sample_rows(
    weights: torch.Tensor, counts: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw counts[r] column indices, with replacement, from each row's distribution
    proportional to ``weights[r]`` (non-negative, not necessarily normalised).

    Inverse-CDF sampling vectorized over all draws at once: every draw binary-searches its
    row's cumulative sums in lockstep, log2(n_cols) gathers in all (``torch.searchsorted``
    costs several times more per query on CPU). Returns a LongTensor (counts.sum(),), row 0's
    draws first.
    """
    n_rows, n_cols = weights.shape
    counts = counts.to(weights.device)
    rows = torch.repeat_interleave(torch.arange(n_rows, device=weights.device), counts)
    if rows.numel() == 0:
        return rows
    cdf = weights.cumsum(1)
    total = cdf[:, -1]
    if not bool(torch.isfinite(total).all()) or bool((total[counts > 0] <= 0).any()):
        raise ValueError("every row with draws needs finite, non-negative weights with a positive sum")
    # u in [0, total): the first column whose cumulative sum exceeds u has positive weight
    below = torch.nextafter(total, torch.zeros_like(total))
    u = torch.minimum(torch.rand(rows.shape, dtype=cdf.dtype, device=cdf.device, generator=generator)
                      * total.index_select(0, rows), below.index_select(0, rows))
    flat, first = cdf.view(-1), rows * n_cols
    pos, size = first.clone(), n_cols
    while size > 1:  # invariant: the answer lies in [pos, pos + size]
        half = size // 2
        pos += flat.index_select(0, pos + half).le(u) * half
        size -= half
    pos += flat.index_select(0, pos).le(u)
    return pos - first
