"""Full-ranking top-k evaluation, the protocol of the IRGAN paper (Wang et al., SIGIR 2017).

Every user with at least one test item ranks *all* items except the user's own train items;
relevance is binary (an item is relevant when it is one of the user's test items). Users
without test items are skipped, never counted as zero. Ties between equal scores are broken by
item index: the lower index ranks first. The work is done with torch tensor ops one batch of
users at a time, so a scoring callable never has to build a dense n_users x n_items matrix.
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from irgan.distributed import Shard
from irgan.topk import top_k
from irgan import kernels

Scores = Union[np.ndarray, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]

#: Metric names, in the order ``evaluate`` reports them for each k (then one ``"MRR"``).
METRICS = ("P", "Recall", "NDCG", "MAP", "HR")

#: Default batch size x n_items: small enough for the allocator to reuse a batch's memory.
BATCH_ELEMENTS = 2**22


class NonFiniteScores(ValueError):
    """A scorer's scores hold NaN or -inf: a diverged model, or -inf given where it is not allowed."""


def eval_ks(n_items: int, *also: str | int) -> tuple[int, ...]:
    """The cut-offs irgan reports, (3, 5, 10), plus ``also`` (cut-offs, or metric names such as
    "NDCG@20" whose cut-off a selection needs), less those longer than the catalog."""
    extra = {int(a) if isinstance(a, int) else int(a.split("@")[1]) for a in also if isinstance(a, int) or "@" in a}
    return tuple(sorted(k for k in {3, 5, 10} | extra if k <= n_items)) or (n_items,)


def metric_names(ks: Sequence[int]) -> list[str]:
    """The keys ``evaluate`` returns for the cut-offs ``ks``, in its order."""
    return [f"{m}@{k}" for k in sorted(set(ks)) for m in METRICS] + ["MRR"]


def evaluate(
    scores: Scores,
    train: sp.spmatrix,
    test: sp.spmatrix,
    ks: Sequence[int] = (3, 5, 10),
    batch_size: int | None = None,
    per_user: bool = False,
    device: str | torch.device | None = None,
) -> dict[str, float] | tuple[dict[str, float], pd.DataFrame]:
    """Mean top-k metrics over every user with at least one test item.

    Args:
        scores: float scores of shape (n_users, n_items), as a numpy array or torch tensor; or
            a callable ``f(users) -> FloatTensor (len(users), n_items)`` taking a LongTensor of
            user indices (on ``device``, CPU when ``device`` is None); or any object with such a
            ``score_users`` method (a model). Higher is better; equal scores rank the lower
            item index first. NaN and -inf are rejected (-inf is how train items are
            excluded). Each batch's scores are masked in place and restored before returning,
            so the caller's array or tensor ends as it began.
        train: csr_matrix of shape (n_users, n_items), the positives seen in training; these
            items are removed from the user's ranking. An ``Interactions`` (anything with a
            ``.matrix``) is accepted too. Any stored non-zero counts as a positive.
        test: the held-out positives, same shape and types as ``train``. A (user, item) pair in
            both ``train`` and ``test`` raises ValueError (leakage).
        ks: cut-offs, each in 1..n_items.
        batch_size: users scored and ranked at a time; None picks ``BATCH_ELEMENTS //
            n_items`` (155 users for 27,000 items), which keeps a batch's score tensor small
            enough for the CPU allocator to reuse its memory. Raise it on a GPU.
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
    first hit in the full ranking. (Long for this docstring, which defines every metric.)
    """
    return Evaluation(train, test, ks, batch_size, device)(scores, per_user)


class Evaluation:
    """``evaluate`` prepared once for one train/test pair: the checks, the users with test items
    and each batch's rows done here, so that a model evaluated at every epoch pays only for its
    scores and their ranking. Call it with scores as ``evaluate`` takes them."""

    def __init__(self, train: sp.spmatrix, test: sp.spmatrix, ks: Sequence[int] = (3, 5, 10),
                 batch_size: int | None = None, device: str | torch.device | None = None) -> None:
        train, test = _as_csr(train, "train"), _as_csr(test, "test")
        if train.shape != test.shape:
            raise ValueError(f"train has shape {train.shape} but test has shape {test.shape}")
        self.n_users, self.n_items = n_users, n_items = train.shape
        self.ks = ks = sorted({int(k) for k in ks})
        if not ks or ks[0] < 1 or ks[-1] > n_items:
            raise ValueError(f"ks must be non-empty cut-offs in 1..{n_items} (n_items), got {ks}")
        if batch_size is None:
            batch_size = max(1, min(4096, BATCH_ELEMENTS // n_items))
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if train.astype(bool).multiply(test.astype(bool)).nnz:
            raise ValueError("leakage: some (user, item) pairs are in both train and test")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = None if device is None else torch.device(device)
        self.train, self.test = train, test
        self.users = np.flatnonzero(np.diff(test.indptr))
        self.batches = [(batch, _int64_rows(train[batch]), _int64_rows(test[batch]))
                        for batch in np.array_split(self.users, range(batch_size, self.users.size, batch_size))]
        self.buffer = None

    def __call__(self, scores: Scores, per_user: bool = False) -> dict[str, float] | tuple[dict[str, float], pd.DataFrame]:
        """``evaluate(scores, train, test, ks, batch_size, per_user, device)`` for the prepared pair."""
        score_batch = _scorer(scores, self.n_users, self.n_items, self.device)
        if self.users.size == 0:
            raise ValueError("no user has a test item: nothing to evaluate")
        if self.buffer is None:
            # One float buffer for the rank counts, reused by every batch and call: on CPU, the page
            # faults of a fresh large tensor can cost more than the arithmetic done in it.
            self.buffer = torch.empty(len(self.batches[0][0]), self.n_items,
                                      dtype=torch.float32 if self.n_items < 2**24 else torch.float64,
                                      device=self.device or "cpu")
        parts = []
        with torch.no_grad():
            for batch, train, test in self.batches:
                scores_batch = score_batch(batch)
                self.buffer = self.buffer.to(scores_batch.device)
                parts.append(_evaluate_batch(scores_batch, train, test, self.ks, self.buffer))
        values = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        summary = {name: float(v.mean()) for name, v in values.items()}
        if not per_user:
            return summary
        return summary, pd.DataFrame(values, index=pd.Index(self.users, name="user"))

    def over_processes(self, scores: Scores, shard: Shard = Shard()) -> dict[str, float]:
        """The mean metrics over every process's users, for an evaluation of this process's own
        (``Shard.rows`` of the test matrix; a process may have none)."""
        if not shard.active:
            return self(scores)
        names = metric_names(self.ks)
        if self.users.size:
            _, per_user = self(scores, per_user=True)
            sums = per_user[names].to_numpy().sum(0).tolist() + [len(per_user)]
        else:
            sums = [0.0] * (len(names) + 1)
        sums = shard.sum(torch.tensor(sums, dtype=torch.float64))
        return dict(zip(names, (sums[:-1] / sums[-1]).tolist()))


def _int64_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` with int64 index arrays, as the ranking kernel reads them (converted once, not per call)."""
    matrix.indptr, matrix.indices = matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64)
    return matrix


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
    if kernels.enabled(scores) and scores.dtype in (torch.float32, torch.float64):
        _, hit, rank, bad = kernels.rank_rows(scores, train, test, ks[-1])
        if bad:
            raise NonFiniteScores("scores contain NaN or -inf; -inf is reserved for excluded train items")
        return _summarize(hit, rank, torch.from_numpy(np.diff(test.indptr)), ks)
    low = scores.amin()  # NaN propagates through amin, so one pass checks both
    if torch.isnan(low) or low == -torch.inf:
        raise NonFiniteScores("scores contain NaN or -inf; -inf is reserved for excluded train items")

    # (row, item) pairs as positions in the flattened batch: sorted, so membership is a
    # binary search and no dense mask is built
    flat = scores.view(-1)
    _, train_pos = _positions(train, dev)
    test_rows, test_pos = _positions(test, dev)
    # Exclude train items in place and put their scores back afterwards: the tensor may
    # belong to the caller, and copying it would cost more than the ranking itself.
    saved = flat[train_pos]
    flat.index_fill_(0, train_pos, -torch.inf)
    try:
        top = top_k(scores, ks[-1])
        rows = torch.arange(n_batch, device=dev).unsqueeze(1)
        hit = (top < n_items) & _isin_sorted(rows * n_items + top, test_pos)  # (batch, k_max)
        rank = _first_hit_rank(scores, test_rows, test_pos, hit, buffer[:n_batch])
    finally:
        flat[train_pos] = saved
    return _summarize(hit, rank, torch.bincount(test_rows, minlength=n_batch), ks)


def _summarize(
    hit: torch.Tensor, rank: torch.Tensor, n_relevant: torch.Tensor, ks: list[int]
) -> dict[str, np.ndarray]:
    """Per-user metrics from the top-k hits (batch, k_max), first-hit ranks and test counts."""
    hits = hit.double()
    n_rel = n_relevant.double()
    ranks = torch.arange(1, hits.shape[1] + 1, device=hits.device, dtype=torch.float64)
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


def _first_hit_rank(
    scores: torch.Tensor,
    test_rows: torch.Tensor,
    test_pos: torch.Tensor,
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
    test_scores = scores.view(-1)[test_pos]
    best = torch.full((n_batch,), -torch.inf, device=dev, dtype=scores.dtype)
    best = best.scatter_reduce(0, test_rows, test_scores, "amax")
    is_best = test_scores == best[test_rows]
    best_item = torch.full((n_batch,), n_items, device=dev, dtype=torch.long)
    best_item = best_item.scatter_reduce(0, test_rows[is_best], test_pos[is_best] % n_items, "amin")

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


def _positions(matrix: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and flat positions (row * n_items + column) of a CSR matrix's entries, sorted."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    pos = rows * matrix.shape[1] + matrix.indices
    return torch.from_numpy(rows).to(device), torch.from_numpy(pos).to(device)


def _as_csr(matrix: sp.spmatrix, name: str) -> sp.csr_matrix:
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
            out = _as_float(_as_tensor(out), device)
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
    # Copy each batch's rows into one reused tensor: the caller's array is never written, and
    # no fresh (batch, n_items) tensor is paged in per batch.
    rows = torch.empty(0, n_items, dtype=dense.dtype, device=dense.device)

    def dense_batch(users: np.ndarray) -> torch.Tensor:
        nonlocal rows
        if rows.shape[0] < len(users):
            rows = torch.empty(len(users), n_items, dtype=dense.dtype, device=dense.device)
        index = torch.from_numpy(users).to(dense.device)
        return _as_float(torch.index_select(dense, 0, index, out=rows[: len(users)]), device)

    return dense_batch


def _as_tensor(scores) -> torch.Tensor:
    """A tensor sharing ``scores``' memory, except numpy arrays torch cannot or must not share."""
    if isinstance(scores, np.ndarray) and (
        not scores.flags.writeable or any(stride < 0 for stride in scores.strides)
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


def evaluate_sharded(model, train: sp.csr_matrix, test: sp.csr_matrix, ks: Sequence[int],
                     shard: Shard = Shard()) -> dict[str, float]:
    """``evaluate`` over all users, each process of a torch.distributed job ranking only its own users."""
    return sharded_evaluation(train, test, ks, shard).over_processes(model, shard)


def sharded_evaluation(train: sp.csr_matrix, test: sp.csr_matrix, ks: Sequence[int], shard: Shard = Shard()) -> Evaluation:
    """An ``Evaluation`` of this process's users of ``test`` (all of them when alone), for ``over_processes``."""
    return Evaluation(train, shard.rows(test) if shard.active else test, ks)


class KeepBest:
    """Keeps a copy of the model with the highest selection metric seen so far (ties keep the first)."""

    def __init__(self, metric: str) -> None:
        self.metric, self.score, self.model, self.info = metric, -np.inf, None, {}

    def offer(self, model: torch.nn.Module, metrics: dict[str, float], **info) -> None:
        if metrics[self.metric] > self.score:
            self.score, self.model = metrics[self.metric], copy.deepcopy(model)
            self.info = {**info, "metrics": metrics}
