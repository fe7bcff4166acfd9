"""Most-popular baseline: every user gets the items with the most training positives."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


class Popularity(nn.Module):
    """score(u, i) = number of training positives of item i (the same ranking for every user).
    Built from a csr (n_users, n_items) of positives, or empty with ``n_items`` to load a state into."""

    def __init__(self, train: sp.spmatrix | None = None, n_items: int | None = None) -> None:
        super().__init__()
        if train is not None:
            counts = np.asarray(sp.csr_matrix(train).sum(0)).ravel()
        elif n_items is not None:
            counts = np.zeros(n_items)
        else:
            raise ValueError("Popularity needs the training positives or n_items")
        self.register_buffer("counts", torch.as_tensor(counts, dtype=torch.float32))
        self.n_items = len(counts)

    def init_args(self) -> dict:
        return {"n_items": self.n_items}

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(n,) scores of (user, item) pairs: the items' counts."""
        return self.counts.index_select(0, items)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) scores: the item counts repeated for each user (a copy, safe to write)."""
        return self.counts.repeat(len(users), 1)

    forward = score_users
