"""Full-ranking top-k evaluation, the protocol of the IRGAN paper (Wang et al., SIGIR 2017).

Every user with at least one test item ranks *all* items except the user's own train items;
relevance is binary (an item is relevant when it is one of the user's test items). Users
without test items are skipped, never counted as zero. Ties between equal scores are broken by
item index: the lower index ranks first. The work is done with torch tensor ops one batch of
users at a time, so a scoring callable never has to build a dense n_users x n_items matrix.
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

Scores = Union[np.ndarray, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]

#: Metric names, in the order ``evaluate`` reports them for each k (then one ``"MRR"``).
METRICS = ("P", "Recall", "NDCG", "MAP", "HR")


def evaluate(
    scores: Scores,
    train,
    test,
    ks: Sequence[int] = (3, 5, 10),
    batch_size: int = 256,
    per_user: bool = False,
    device: str | torch.device | None = None,
) -> dict[str, float] | tuple[dict[str, float], pd.DataFrame]:
    """Mean top-k metrics over every user with at least one test item.

    Args:
        scores: float scores of shape (n_users, n_items), as a numpy array or torch tensor; or
            a callable ``f(users) -> FloatTensor (len(users), n_items)`` taking a LongTensor of
            user indices (on ``device``, CPU when ``device`` is None); or any object with such a
            ``score_users`` method (a model). Higher is better. NaN and -inf are rejected
            (-inf is how train items are excluded). Scores are not modified.
        train: csr_matrix of shape (n_users, n_items), the positives seen in training; these
            items are removed from the user's ranking. An ``Interactions`` (anything with a
            ``.matrix``) is accepted too. Any stored non-zero counts as a positive.
        test: the held-out positives, same shape and types as ``train``. A (user, item) pair in
            both ``train`` and ``test`` raises ValueError (leakage).
        ks: cut-offs, each in 1..n_items.
        batch_size: users scored and ranked at a time. The default keeps each batch's score
            tensor small enough for the allocator to reuse its memory; raise it on a GPU.
        per_user: also return the per-user values.
        device: where to rank ("cpu", "cuda", "auto" = CUDA when available); None ranks
            where the scores are.

    Returns:
        A dict ``{"P@k", "Recall@k", "NDCG@k", "MAP@k", "HR@k"}`` for each k, then ``"MRR"``,
        mapped to floats. With ``per_user=True`` a pair ``(that dict, DataFrame)``: one row per
        evaluated user, indexed by user index (``"user"``), one float64 column per metric,
        which is what a paired significance test between two models needs.

    Definitions, for a user with ``n`` test items and ``hits@k`` of them in the top k:
    P@k = hits@k / k; Recall@k = hits@k / n; HR@k = 1 if hits@k > 0; NDCG@k = DCG@k / IDCG@k
    with gains 1 / log2(rank + 1) and the ideal list holding min(k, n) hits; MAP@k = sum of
    P@r over the ranks r <= k that hold a hit, divided by min(k, n); MRR = 1 / the rank of the
    first hit in the full ranking.
    """
    train, test = _as_csr(train, "train"), _as_csr(test, "test")
    if train.shape != test.shape:
        raise ValueError(f"train has shape {train.shape} but test has shape {test.shape}")
    n_users, n_items = train.shape
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > n_items:
        raise ValueError(f"ks must be non-empty cut-offs in 1..{n_items} (n_items), got {ks}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = _resolve_device(device)
    score_batch = _scorer(scores, n_users, n_items, device)

    n_test = np.diff(test.indptr)
    users = np.flatnonzero(n_test)
    if users.size == 0:
        raise ValueError("no user has a test item: nothing to evaluate")

    # one float buffer for the rank counts, reused by every batch: fresh large tensors cost
    # page faults that can outweigh the arithmetic on CPU
    buffer = torch.empty(
        min(batch_size, users.size),
        n_items,
        dtype=torch.float32 if n_items < 2**24 else torch.float64,
        device=device or "cpu",
    )
    parts = []
    with torch.no_grad():
        for start in range(0, users.size, batch_size):
            batch = users[start : start + batch_size]
            scores_batch = score_batch(batch)
            if buffer.device != scores_batch.device:
                buffer = buffer.to(scores_batch.device)
            parts.append(_evaluate_batch(scores_batch, train[batch], test[batch], ks, buffer))
    values = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    summary = {name: float(v.mean()) for name, v in values.items()}
    if not per_user:
        return summary
    return summary, pd.DataFrame(values, index=pd.Index(users, name="user"))


def _evaluate_batch(
    scores: torch.Tensor,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    ks: list[int],
    buffer: torch.Tensor,
) -> dict[str, np.ndarray]:
    """Per-user metrics of one batch of ``scores`` (batch, n_items), left as found."""
    n_batch, n_items = scores.shape
    dev = scores.device
    low = scores.amin()  # NaN propagates through amin, so one pass checks both
    if torch.isnan(low) or low == -torch.inf:
        raise ValueError("scores contain NaN or -inf; -inf is reserved for excluded train items")

    train_rows, train_cols = _coo(train, dev)
    test_rows, test_cols = _coo(test, dev)
    # (row, item) pairs as one sorted int64 key: membership is a binary search, no dense mask
    test_keys = test_rows * n_items + test_cols
    if train_cols.numel() and _isin_sorted(train_rows * n_items + train_cols, test_keys).any():
        raise ValueError("leakage: some (user, item) pairs are in both train and test")

    k_max = ks[-1]
    # Exclude train items in place and put their scores back afterwards: the tensor may
    # belong to the caller, and copying it would cost more than the ranking itself.
    saved = scores[train_rows, train_cols]
    scores[train_rows, train_cols] = -torch.inf
    try:
        top = _top_k(scores, k_max)
        rows = torch.arange(n_batch, device=dev).unsqueeze(1)
        hit = (top < n_items) & _isin_sorted(rows * n_items + top, test_keys)  # (batch, k_max)
        rank = _first_hit_rank(scores, test_rows, test_cols, hit, buffer[:n_batch])
    finally:
        scores[train_rows, train_cols] = saved

    hits = hit.double()
    n_rel = torch.bincount(test_rows, minlength=n_batch).double()
    ranks = torch.arange(1, k_max + 1, device=dev, dtype=torch.float64)
    gains = 1.0 / torch.log2(ranks + 1.0)
    hits_cum = hits.cumsum(1)
    dcg_cum = (hits * gains).cumsum(1)
    ideal_cum = gains.cumsum(0)
    ap_cum = (hits * hits_cum / ranks).cumsum(1)
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        h = hits_cum[:, k - 1]
        n_ideal = n_rel.clamp(max=k)
        out[f"P@{k}"] = h / k
        out[f"Recall@{k}"] = h / n_rel
        out[f"NDCG@{k}"] = dcg_cum[:, k - 1] / ideal_cum[n_ideal.long() - 1]
        out[f"MAP@{k}"] = ap_cum[:, k - 1] / n_ideal
        out[f"HR@{k}"] = (h > 0).double()
    out["MRR"] = 1.0 / rank.double()
    return {name: v.cpu().numpy() for name, v in out.items()}


def _top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Item indices (batch, k) of the k best scores, ties going to the lower item index.

    ``torch.topk`` orders ties arbitrarily and, on CPU, copies every row. Instead, cut each
    row into chunks: the k-th best chunk maximum is a lower bound on the k-th best score, so
    the chunks reaching it hold the whole top k, ties included. Those few chunks, kept in
    index order, are stable-sorted by score. Heavy ties (a constant model) make most chunks
    reach the bound; then the whole row is sorted. Slots past the row's real items (the
    ragged last chunk) hold index n_items.
    """
    n_batch, n_items = scores.shape
    width = max(1, min(64, n_items // (4 * k)))  # >= 4k chunks, so the bound is tight
    full = n_items // width
    maxima = scores[:, : full * width].unflatten(1, (full, width)).amax(2)
    if full * width < n_items:
        maxima = torch.cat([maxima, scores[:, full * width :].amax(1, keepdim=True)], 1)
    bound = maxima.topk(k, dim=1).values[:, -1:]
    n_reach = int((maxima >= bound).sum(1).max())
    if 2 * n_reach * width > n_items:
        candidates, values = None, scores
    else:
        chunks = maxima.topk(n_reach, dim=1).indices.sort(dim=1).values
        offsets = torch.arange(width, device=scores.device)
        candidates = (chunks.unsqueeze(2) * width + offsets).flatten(1)  # ascending per row
        values = scores.gather(1, candidates.clamp(max=n_items - 1))
        values = values.masked_fill(candidates >= n_items, -torch.inf)
    order = values.sort(dim=1, descending=True, stable=True).indices[:, :k]
    return order if candidates is None else candidates.gather(1, order)


def _first_hit_rank(
    scores: torch.Tensor,
    test_rows: torch.Tensor,
    test_cols: torch.Tensor,
    hit: torch.Tensor,
    buffer: torch.Tensor,
) -> torch.Tensor:
    """Full-ranking position (1-based) of each row's first test item, without sorting.

    Rows with a hit in ``hit`` (the exact top k) read it there. For the others the first hit
    is the best-scored test item (the lowest-indexed one among equals), ranked 1 + the items
    scoring strictly higher + the items with an equal score and a lower index. Comparisons go
    into the float ``buffer`` (rows, n_items): on CPU, summing floats is many times faster
    than summing a fresh bool tensor, and exact below 2**24 items.
    """
    n_batch, n_items = scores.shape
    dev = scores.device
    rank = torch.where(hit.any(1), hit.int().argmax(1) + 1, 0).long()
    rest = (rank == 0).nonzero().squeeze(1)
    if rest.numel() == 0:
        return rank
    test_scores = scores[test_rows, test_cols]
    best = torch.full((n_batch,), -torch.inf, device=dev, dtype=scores.dtype)
    best = best.scatter_reduce(0, test_rows, test_scores, "amax")
    is_best = test_scores == best[test_rows]
    best_item = torch.full((n_batch,), n_items, device=dev, dtype=torch.long)
    best_item = best_item.scatter_reduce(0, test_rows[is_best], test_cols[is_best], "amin")

    if 2 * rest.numel() > n_batch:  # compare every row rather than copy most of them
        part, part_best, rows = scores, best.unsqueeze(1), rest
    else:
        part, part_best = scores[rest], best[rest].unsqueeze(1)
        rows = torch.arange(rest.numel(), device=dev)
    buf = buffer[: part.shape[0]]
    higher = torch.gt(part, part_best, out=buf).sum(1)[rows]
    equal = torch.eq(part, part_best, out=buf).sum(1)[rows]  # >= 1: the best test item
    rank[rest] = 1 + higher.long()
    tied = (equal > 1).nonzero().squeeze(1)
    if tied.numel():
        before = torch.arange(n_items, device=dev) < best_item[rest[tied]].unsqueeze(1)
        rank[rest[tied]] += ((part[rows[tied]] == part_best[rows[tied]]) & before).sum(1)
    return rank


def _isin_sorted(keys: torch.Tensor, sorted_keys: torch.Tensor) -> torch.Tensor:
    """Elementwise ``keys in sorted_keys`` by binary search."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, keys).clamp(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == keys


def _coo(matrix: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) LongTensors of a CSR matrix's entries, sorted by row then column."""
    counts = torch.from_numpy(np.diff(matrix.indptr)).to(device)
    rows = torch.repeat_interleave(torch.arange(matrix.shape[0], device=device), counts)
    return rows, torch.from_numpy(matrix.indices.astype(np.int64)).to(device)


def _as_csr(matrix, name: str) -> sp.csr_matrix:
    """A canonical CSR matrix (sorted indices, no duplicates, no stored zeros) of ``matrix``."""
    matrix = getattr(matrix, "matrix", matrix)
    if not sp.issparse(matrix):
        raise ValueError(f"{name} must be a scipy sparse matrix, got {type(matrix).__name__}")
    matrix = sp.csr_matrix(matrix)
    if not matrix.has_canonical_format or (matrix.data == 0).any():
        matrix = matrix.copy()
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
    return matrix


def _resolve_device(device: str | torch.device | None) -> torch.device | None:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return None if device is None else torch.device(device)


def _scorer(
    scores: Scores, n_users: int, n_items: int, device: torch.device | None
) -> Callable[[np.ndarray], torch.Tensor]:
    """A function from a batch of user indices to a float tensor (batch, n_items)."""
    if hasattr(scores, "score_users"):
        scores = scores.score_users
    if callable(scores):
        score_users = scores

        def score_batch(users: np.ndarray) -> torch.Tensor:
            out = score_users(torch.from_numpy(users).to(device or "cpu"))
            out = _as_float(_as_tensor(out, writeable=True), device)
            if out.shape != (len(users), n_items):
                raise ValueError(
                    f"scoring {len(users)} users returned shape {tuple(out.shape)}, "
                    f"expected ({len(users)}, {n_items})"
                )
            return out.contiguous()  # an expanded (broadcast) tensor cannot be written to

        return score_batch

    dense = _as_tensor(scores)
    if dense.shape != (n_users, n_items):
        raise ValueError(
            f"scores has shape {tuple(dense.shape)}, expected (n_users, n_items) = "
            f"({n_users}, {n_items})"
        )
    # indexing rows with a tensor copies them, so the caller's array is never written
    return lambda users: _as_float(dense[torch.from_numpy(users).to(dense.device)], device)


def _as_tensor(scores, writeable: bool = False) -> torch.Tensor:
    """A tensor over ``scores`` (copying only numpy arrays torch cannot or must not share)."""
    if isinstance(scores, np.ndarray) and (
        any(stride < 0 for stride in scores.strides) or (writeable and not scores.flags.writeable)
    ):
        scores = np.array(scores)
    return torch.as_tensor(scores)


def _as_float(scores: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    """Integer and half-precision scores become float64/float32, to rank them exactly on CPU."""
    if not scores.is_floating_point():
        scores = scores.double()
    elif scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()
    return scores if device is None else scores.to(device)
