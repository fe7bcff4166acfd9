"""A two-tower scorer: each side's embedding goes through its own small MLP before the dot
product, the deep variant of matrix factorisation (the neural scorers of NCF / NeuMF, He et al.,
WWW 2017, kept in two-tower form so that the whole catalog is scored with one matrix product)."""
from __future__ import annotations

import math

import torch
from torch import nn


def _uniform(tensor: torch.Tensor, bound: float, generator: torch.Generator | None) -> None:
    """Fill ``tensor`` in place from uniform(-bound, bound), drawn with ``generator``."""
    with torch.no_grad():
        tensor.uniform_(-bound, bound, generator=generator)


def _linear(fan_in: int, fan_out: int, generator: torch.Generator | None) -> nn.Linear:
    """nn.Linear(fan_in, fan_out) with torch's default init, uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for weight and bias, drawn with ``generator`` (building it never touches the global RNG)."""
    layer = nn.utils.skip_init(nn.Linear, fan_in, fan_out)
    _uniform(layer.weight, 1 / math.sqrt(fan_in), generator)
    _uniform(layer.bias, 1 / math.sqrt(fan_in), generator)
    return layer


def _tower(dim: int, hidden: int, generator: torch.Generator | None) -> nn.Sequential:
    """Linear(dim, hidden) -> ReLU -> Linear(hidden, dim)."""
    return nn.Sequential(_linear(dim, hidden, generator), nn.ReLU(), _linear(hidden, dim, generator))


class MLPScorer(nn.Module):
    """score(u, i) = tower_u(p_u) . tower_i(q_i) + b_i, with user embeddings (n_users, dim) and
    item embeddings (n_items, dim) starting uniform(-init_scale, init_scale), item biases
    (n_items,) at 0, and per side a tower Linear(dim, hidden) -> ReLU -> Linear(hidden, dim).

    Every initial weight is drawn from ``generator`` (the global RNG when None), in a fixed
    order, so equally seeded generators build identical scorers.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int = 32,
        hidden: int = 64,
        init_scale: float = 0.05,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if min(n_users, n_items, dim, hidden) < 1:
            raise ValueError(
                f"n_users, n_items, dim and hidden must be positive, got {n_users}, {n_items}, {dim}, {hidden}")
        self.n_users, self.n_items, self.dim, self.hidden, self.init_scale = n_users, n_items, dim, hidden, init_scale
        uniform = lambda *shape: (torch.rand(*shape, generator=generator) * 2 - 1) * init_scale  # noqa: E731
        self.user_emb = nn.Parameter(uniform(n_users, dim))
        self.item_emb = nn.Parameter(uniform(n_items, dim))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.user_tower = _tower(dim, hidden, generator)
        self.item_tower = _tower(dim, hidden, generator)

    def init_args(self) -> dict:
        """The constructor arguments that rebuild this scorer's shapes (saved in model files)."""
        return {"n_users": self.n_users, "n_items": self.n_items, "dim": self.dim, "hidden": self.hidden,
                "init_scale": self.init_scale}

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs: two LongTensors of shape (n,) give a float tensor (n,)."""
        u = self.user_tower(self.user_emb.index_select(0, users))
        i = self.item_tower(self.item_emb.index_select(0, items))
        return (u * i).sum(-1) + self.item_bias.index_select(0, items)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of a batch of users against the whole catalog: (len(users), n_items). The item
        tower runs once over the catalog (n_items, dim); no (batch, n_items, dim) tensor is built."""
        u = self.user_tower(self.user_emb.index_select(0, users))
        return torch.addmm(self.item_bias, u, self.item_tower(self.item_emb).T)

    forward = score_users

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Half the squared norm of the embedding rows a batch touches: (|p_u|²/2 per user,
        (|q_i|² + b_i²)/2 per item); the towers are shared by every row and get no L2 here."""
        return (self.user_emb.index_select(0, users).square().sum(1) / 2,
                (self.item_emb.index_select(0, items).square().sum(1) + self.item_bias.index_select(0, items).square()) / 2)
