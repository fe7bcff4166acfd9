"""Matrix factorisation, the scorer of both players in the IRGAN paper (Wang et al., SIGIR 2017):
score(u, i) = p_u . q_i + b_i."""
from __future__ import annotations

import numpy as np
import torch
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
        self.n_users, self.n_items, self.dim, self.init_scale = n_users, n_items, dim, init_scale
        uniform = lambda *shape: (torch.rand(*shape, generator=generator) * 2 - 1) * init_scale  # noqa: E731
        self.user_emb = nn.Parameter(uniform(n_users, dim))
        self.item_emb = nn.Parameter(uniform(n_items, dim))
        self.item_bias = nn.Parameter(torch.zeros(n_items))

    def init_args(self) -> dict:
        """The constructor arguments that rebuild this scorer's shapes (saved in model files)."""
        return {"n_users": self.n_users, "n_items": self.n_items, "dim": self.dim, "init_scale": self.init_scale}

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

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Half the squared norm of each row a batch touches: (|p_u|²/2 per user, (|q_i|² + b_i²)/2 per item)."""
        return (self.user_emb.index_select(0, users).square().sum(1) / 2,
                (self.item_emb.index_select(0, items).square().sum(1) + self.item_bias.index_select(0, items).square()) / 2)
