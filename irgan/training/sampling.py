"""Every sampler irgan draws with, vectorized over all draws: positive pairs and membership,
uniform and DNS negatives, draws from a softmax (G's proposals to D), and the importance-sampling
mixture of G's policy-gradient step."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from irgan import kernels
from irgan.models.mf import MatrixFactorization


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
        if kernels.enabled(self.items) and users.dtype == items.dtype == torch.long:
            return kernels.contains(self.starts, self.counts, self.items, users, items)
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
        bad = self.contains(users, items).nonzero().squeeze(1)  # ascending: redrawn in the order a mask gives
        while len(bad):  # only the redrawn entries are checked again
            redrawn = torch.randint(self.n_items, bad.shape, generator=generator, device=users.device)
            items[bad] = redrawn
            bad = bad[self.contains(users.index_select(0, bad), redrawn)]
        return items

    def random_positives(self, users: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One item per entry of ``users``, drawn uniformly from that user's positives."""
        counts = self.counts.index_select(0, users)
        if (counts == 0).any():
            raise ValueError("a user has no positives to draw from")
        offset = (torch.rand(users.shape, generator=generator, device=users.device) * counts).long()
        offset = torch.minimum(offset, counts - 1)
        return self.items.index_select(0, self.starts.index_select(0, users) + offset)


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


@torch.no_grad()
def dns_negatives(
    scorer, positives: PositiveSet, users: torch.Tensor, candidates: int, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One negative per entry of ``users``: the best-scored of ``candidates`` uniform non-positives
    (dynamic negative sampling, Zhang et al., SIGIR 2013); ``candidates=1`` is plain uniform."""
    if candidates == 1:
        return positives.uniform_negatives(users, generator)
    drawn = positives.uniform_negatives(users.repeat_interleave(candidates), generator).view(-1, candidates)
    if isinstance(scorer, MatrixFactorization) and kernels.enabled(scorer.user_emb) and scorer.user_emb.dtype == torch.float32:
        return kernels.best_of(scorer.user_emb, scorer.item_emb, scorer.item_bias, users, drawn)
    scores = scorer.score(users[:, None].expand(-1, candidates).reshape(-1), drawn.view(-1)).view(-1, candidates)
    return drawn.gather(1, scores.argmax(1, keepdim=True)).squeeze(1)


@torch.no_grad()
def sample_fake(
    G, positives: PositiveSet, users: torch.Tensor, temperature: float, exclude_positives: bool,
    rng: torch.Generator | None = None, batch_users: int = 1024,
) -> torch.Tensor:
    """G's proposals for D: |pos_u| items per user from softmax(G / temperature), aligned with
    the row-major order of the positive pairs; ``exclude_positives`` draws only non-positives."""
    if exclude_positives and bool((positives.counts[users] >= positives.n_items).any()):
        raise ValueError("d_exclude_positives: a user has interacted with every item, so no negative exists for D")
    out = []
    rows = torch.empty(min(batch_users, len(users)) * positives.n_items) if users.device.type == "cpu" else None
    for batch in users.split(batch_users):
        exclude = positives.mask(batch) if exclude_positives else None
        out.append(G.sample(batch, positives.counts[batch], temperature, exclude, rng, out=rows))
    return torch.cat(out)


@torch.no_grad()
def sample_mixture(
    policy, positives: PositiveSet, users: torch.Tensor, counts: torch.Tensor, mix: float,
    rng: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``counts[r]`` draws for ``users[r]`` from (1 - mix) p[r] + mix uniform(positives of users[r]),
    p G's softmax for the batch (a ``policy.Policy``).

    Each draw picks its component by a coin flip, so the dense mixture is never built. Returns
    (rows, items), both (counts.sum(),), grouped by row in order.
    """
    rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
    items = policy.sample(counts, rng)
    if mix > 0:  # drawing both components for every draw is cheaper than splitting the draws
        from_positives = torch.rand(rows.shape, generator=rng, device=rows.device) < mix
        items = torch.where(from_positives, positives.random_positives(users.index_select(0, rows), rng), items)
    return rows, items
