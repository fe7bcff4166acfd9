"""RP3beta (Paudel, Christoffel, Newell and Bernstein, ACM TiiS 2017; after P3alpha, Cooper et al.
WWW 2014 and Christoffel et al. RecSys 2015): item-item weights of a 3-step random walk user → item
→ user → item, with transition probabilities raised to ``alpha`` and the arrival item's weight
divided by its popularity to the power ``beta``. As in Ferrari Dacrema et al.'s framework (the one
the ECIR 2022 study used):

    P_ui = X row-normalised (L1), P_iu = binary Xᵀ row-normalised, both raised element-wise to alpha;
    W[i, j] = (P_iu P_ui)[i, j] / pop_j^beta for i != j, W[i, i] = 0 (pop_j: item j's positives);
    each row i keeps its ``k`` largest entries; with ``normalize_similarity`` the rows are then
    L1-normalised; finally each column keeps its ``k`` largest entries.

Scores are X W. Rows of W are computed a block at a time: no n_items² buffer is built.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: Cells of the dense (block, n_items) block of walk probabilities computed at a time.
BLOCK_ELEMENTS = 2**22


def fit_rp3beta(train: sp.spmatrix, alpha: float = 1.0, beta: float = 0.6, k: int = 100,
                normalize_similarity: bool = True) -> sp.csr_matrix:
    """RP3beta's weights W, csr_matrix float32 (n_items, n_items), from ``train`` (sparse (n_users,
    n_items), non-negative; stored values weigh the user → item step, 1 for binary data)."""
    if not alpha >= 0 or not beta >= 0 or k < 1:
        raise ValueError(f"RP3beta needs alpha >= 0, beta >= 0 and k >= 1, got {alpha}, {beta}, {k}")
    x = sp.csr_matrix(train, dtype=np.float64)
    x.sum_duplicates()
    x.eliminate_zeros()
    n_items = x.shape[1]
    p_ui = _power(_normalize_rows(x), alpha)
    binary = sp.csr_matrix((np.ones(x.nnz), x.indices, x.indptr), shape=x.shape)
    p_iu = _power(_normalize_rows(sp.csr_matrix(binary.T)), alpha)
    popularity = np.asarray(binary.sum(0)).ravel()
    penalty = np.divide(1.0, popularity ** beta, out=np.zeros(n_items), where=popularity > 0)
    block = max(1, BLOCK_ELEMENTS // n_items)
    parts = []
    for start in range(0, n_items, block):
        sources = np.arange(start, min(start + block, n_items))
        walk = (p_iu[sources] @ p_ui).toarray() * penalty  # (block, n_items) 3-step probabilities, penalised
        walk[np.arange(len(sources)), sources] = 0.0
        parts.append(_top_k_per_row(sp.csr_matrix(walk), k))
    weights = sp.vstack(parts, format="csr")
    if normalize_similarity:
        weights = _normalize_rows(weights)
    weights = sp.csr_matrix(_top_k_per_row(sp.csr_matrix(weights.T), k).T)
    weights.sort_indices()
    return weights.astype(np.float32)


def _normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` with every non-empty row divided by its sum (entries are non-negative)."""
    sums = np.asarray(matrix.sum(1)).ravel()
    return sp.csr_matrix(sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ matrix)


def _power(matrix: sp.csr_matrix, exponent: float) -> sp.csr_matrix:
    """The stored entries raised to ``exponent`` (zeros stay zero, also for exponent 0)."""
    out = matrix.copy()
    out.data = out.data ** exponent
    return out


def _top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """``matrix`` keeping each row's ``k`` largest positive entries (ties to the lower column)."""
    coo = matrix.tocoo()
    positive = coo.data > 0
    rows, cols, values = coo.row[positive], coo.col[positive], coo.data[positive]
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    starts = np.searchsorted(rows, rows, side="left")
    keep = np.arange(len(rows)) - starts < k
    return sp.csr_matrix((values[keep], (rows[keep], cols[keep])), shape=matrix.shape)
