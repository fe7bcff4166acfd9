"""Most-popular baseline: every user gets the items with the most training positives."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


class Popularity(nn.Module):
    """score(u, i) = number of training positives of item i (the same ranking for every user)."""

    def __init__(self, train: sp.csr_matrix) -> None:
        super().__init__()
        counts = np.asarray(sp.csr_matrix(train).sum(0)).ravel()
        self.register_buffer("counts", torch.as_tensor(counts, dtype=torch.float32))

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) scores: the item counts repeated for each user (a copy, safe to write)."""
        return self.counts.repeat(len(users), 1)

    forward = score_users
