"""Top-k selection with deterministic ties (the lower index first), fast on CPU."""
from __future__ import annotations

import torch


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Item indices (batch, k) of the k best scores, ties going to the lower item index.

    On CPU ``torch.topk`` is slow per element, so narrow the search first: cut each row into
    chunks; the k-th best chunk maximum is a lower bound on the k-th best score, so the k
    chunks reaching it (more when maxima tie) and the ragged tail hold the whole top k, ties
    included. When heavy ties (a constant model) make most chunks reach the bound, or the
    row is short, whole rows are searched.
    """
    n_batch, n_items = scores.shape
    width = max(1, min(64, n_items // (16 * k + 16)))  # > 16k chunks: the bound is tight, few candidates
    n_chunks = n_items // width
    if n_chunks <= k:
        return ordered_top_k(scores, k)
    maxima = scores[:, : n_chunks * width].unflatten(1, (n_chunks, width)).amax(2)
    best, chunks = maxima.topk(k + 1, dim=1, sorted=False)
    best, order = best.sort(dim=1)  # ascending: the k-th best maximum comes second
    bound = best[:, 1:2]
    if (best[:, :1] == bound).any():  # tied maxima: take every chunk reaching the bound
        chunks = _true_columns(maxima >= bound)
        if 2 * chunks.shape[1] * width > n_items:
            return ordered_top_k(scores, k)
        # pad with a chunk lying wholly past the end, clear of the ragged tail's items
        chunks = chunks.masked_fill(chunks == n_chunks, n_items)
    else:
        chunks = chunks.gather(1, order[:, 1:]).sort(dim=1).values
    offsets = torch.arange(width, device=scores.device)
    items = (chunks.unsqueeze(2) * width + offsets).flatten(1)  # ascending in each row
    tail = torch.arange(n_chunks * width, n_items, device=scores.device)
    items = torch.cat([items, tail.expand(n_batch, -1)], 1)
    if chunks.shape[1] > k:  # padded: the padding chunk lies past the end
        values = scores.gather(1, items.clamp(max=n_items - 1))
        values = values.masked_fill(items >= n_items, -torch.inf)
    else:
        values = scores.gather(1, items)
    # keep only the items reaching the bound (a few more than k), still in index order
    keep = _true_columns(values >= bound)
    padded = keep == items.shape[1]
    keep = keep.masked_fill(padded, 0)
    items = items.gather(1, keep).masked_fill(padded, n_items)
    values = values.gather(1, keep).masked_fill(padded, -torch.inf)
    return items.gather(1, ordered_top_k(values, k))


def _true_columns(mask: torch.Tensor) -> torch.Tensor:
    """Columns of each row's True entries, ascending, padded to the longest row with the
    column count (one past the end)."""
    n_rows, n_cols = mask.shape
    slot = mask.cumsum(1)
    n_out = int(slot[:, -1].max())
    slot = torch.where(mask, slot - 1, n_out)  # False entries all land in a spare last slot
    columns = torch.arange(n_cols, device=mask.device).expand(n_rows, n_cols)
    out = torch.full((n_rows, n_out + 1), n_cols, device=mask.device, dtype=torch.long)
    return out.scatter_(1, slot, columns)[:, :n_out]


def ordered_top_k(values: torch.Tensor, k: int) -> torch.Tensor:
    """Columns (rows, k) of each row's k largest values, best first, ties by lower column.

    ``torch.topk`` settles ties arbitrarily, so ask it for k + 1: where the k-th and
    (k+1)-th values differ, its set is right and only needs ordering; where they are equal,
    take the items above the k-th value plus the lowest-indexed of those equal to it.
    """
    best, top = values.topk(min(k + 1, values.shape[1]), dim=1)
    top = top[:, :k]
    if best.shape[1] > k:
        spill = (best[:, k] == best[:, k - 1]).nonzero().squeeze(1)
        if spill.numel():
            part, kth = values[spill], best[spill, k - 1 : k]
            above, tied = part > kth, part == kth
            room = k - above.sum(1, keepdim=True)
            keep = above | (tied & (tied.cumsum(1) <= room))
            top[spill] = keep.nonzero()[:, 1].view(-1, k)
    top = top.sort(dim=1).values  # index order, which the stable sort keeps among ties
    order = values.gather(1, top).sort(dim=1, descending=True, stable=True).indices
    return top.gather(1, order)
