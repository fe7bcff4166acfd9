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


DENSE_BYTES = 2**26  # catalogs up to this many (user, item) cells get a dense membership matrix


class PositiveSet:
    """Membership test for (user, item) pairs against a CSR matrix, vectorized via sorted keys."""

    def __init__(self, matrix: sp.csr_matrix, device: torch.device | str = "cpu") -> None:
        users, items = positive_pairs(matrix, device)
        self.n_items = matrix.shape[1]
        self.keys = torch.sort(users * self.n_items + items).values
        self.items = self.keys % self.n_items  # each user's positives, ascending, users in order
        self.counts = torch.as_tensor(np.diff(sp.csr_matrix(matrix).indptr), device=device)
        self.starts = self.counts.cumsum(0) - self.counts  # offset of each user's first key
        self.dense = None  # a (n_users, n_items) membership matrix, where one fits in DENSE_BYTES
        if matrix.shape[0] * matrix.shape[1] <= DENSE_BYTES:
            self.dense = torch.zeros(matrix.shape, dtype=torch.bool, device=device)
            self.dense.view(-1).index_fill_(0, self.keys, True)

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Boolean tensor: is (users[k], items[k]) a positive?

        A binary search of each item among its own user's sorted positives, all queries in
        lockstep: log2 of the longest user's count in gathers (``torch.searchsorted`` over all
        keys costs many times more per query on CPU).
        """
        if self.dense is not None:
            return self.dense.view(-1).index_select(0, users * self.n_items + items)
        if self.keys.numel() == 0:
            return torch.zeros_like(users, dtype=torch.bool)
        base = self.starts.index_select(0, users)
        size = self.counts.index_select(0, users)
        last = self.items.numel() - 1  # users without positives start one past the end
        for _ in range(int(self.counts.max()).bit_length()):  # invariant: the last item <= x is in [base, base + size)
            half = size >> 1  # integer floor division is several times slower on CPU
            base += self.items.index_select(0, (base + half).clamp_(max=last)).le(items) * half
            size -= half
        return (size > 0) & (self.items.index_select(0, base.clamp_(max=last)) == items)

    def mask(self, users: torch.Tensor) -> torch.Tensor:
        """Dense boolean mask (len(users), n_items) of the users' positives."""
        if self.dense is not None:
            return self.dense.index_select(0, users)
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
