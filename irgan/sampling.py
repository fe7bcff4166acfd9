"""Vectorized helpers over the positives of a CSR matrix: pair lists, membership, negatives."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def positive_pairs(matrix: sp.csr_matrix, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The (user, item) index pairs of a CSR matrix, row-major, as two LongTensors (nnz,)."""
    matrix = sp.csr_matrix(matrix)
    users = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return (torch.as_tensor(users, dtype=torch.long, device=device),
            torch.as_tensor(matrix.indices, dtype=torch.long, device=device))


class PositiveSet:
    """Membership test for (user, item) pairs against a CSR matrix, vectorized via sorted keys."""

    def __init__(self, matrix: sp.csr_matrix, device: torch.device | str = "cpu") -> None:
        users, items = positive_pairs(matrix, device)
        self.n_items = matrix.shape[1]
        self.keys = torch.sort(users * self.n_items + items).values
        self.items = self.keys % self.n_items  # each user's positives, ascending, users in order
        self.counts = torch.as_tensor(np.diff(sp.csr_matrix(matrix).indptr), device=device)
        self.starts = self.counts.cumsum(0) - self.counts  # offset of each user's first key

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Boolean tensor: is (users[k], items[k]) a positive?"""
        if self.keys.numel() == 0:
            return torch.zeros_like(users, dtype=torch.bool)
        query = users * self.n_items + items
        pos = torch.searchsorted(self.keys, query).clamp_(max=self.keys.numel() - 1)
        return self.keys[pos] == query

    def mask(self, users: torch.Tensor) -> torch.Tensor:
        """Dense boolean mask (len(users), n_items) of the users' positives."""
        out = torch.zeros(len(users), self.n_items, dtype=torch.bool, device=users.device)
        starts = self.starts.index_select(0, users)
        lengths = self.counts.index_select(0, users)
        rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)
        # the k-th positive of a row sits k places after its row's first key
        shift = torch.repeat_interleave(starts - (lengths.cumsum(0) - lengths), lengths)
        keys = torch.arange(rows.numel(), device=users.device) + shift
        out.view(-1).index_fill_(0, rows * self.n_items + self.items.index_select(0, keys), True)
        return out

    def uniform_negatives(self, users: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One item per user drawn uniformly from the items that user has not interacted with.

        Rejection sampling, redrawing only the rejected entries; users who have every item
        positive must be filtered out first (ValueError otherwise).
        """
        if (self.counts[users] >= self.n_items).any():
            raise ValueError("a user has interacted with every item: no negative item exists")
        items = torch.randint(self.n_items, users.shape, generator=generator, device=users.device)
        bad = self.contains(users, items)
        while bad.any():
            items[bad] = torch.randint(self.n_items, (int(bad.sum()),), generator=generator, device=users.device)
            bad = self.contains(users, items)
        return items

    def random_positives(self, users: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One item per entry of ``users``, drawn uniformly from that user's positives."""
        counts = self.counts.index_select(0, users)
        if (counts == 0).any():
            raise ValueError("a user has no positives to draw from")
        offset = (torch.rand(users.shape, generator=generator, device=users.device) * counts).long()
        offset = torch.minimum(offset, counts - 1)
        return self.items.index_select(0, self.starts.index_select(0, users) + offset)
