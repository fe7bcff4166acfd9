"""SLIM ElasticNet (Ning and Karypis, ICDM 2011; Levy and Jack's ElasticNet form, LSRS 2013), as the
reproducibility studies run it (Ferrari Dacrema et al.'s framework, used by the ECIR 2022 study).

For every item j, scikit-learn's ``ElasticNet`` regresses X's column j on X with column j zeroed
(so W's diagonal is 0), non-negative weights, no intercept, minimising
1/(2 n_users) |x_j - X w_j|² + alpha l1_ratio |w_j|_1 + alpha (1 - l1_ratio) |w_j|²/2;
column j of W keeps its ``k`` largest weights. Scores are X W.

The regressions are independent: item blocks run in ``n_jobs`` processes (joblib). Each fit is
seeded (``selection='random'`` draws the coordinate order from ``seed``), so W does not depend on
how the items are split into blocks.
"""
from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet

from irgan.progress import bar

log = logging.getLogger(__name__)

#: Item blocks per worker process: enough for the workers to share the load evenly.
BLOCKS_PER_JOB = 4


def fit_slim(
    train: sp.spmatrix,
    alpha: float = 1e-3,
    l1_ratio: float = 0.1,
    k: int = 100,
    max_iter: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
    n_jobs: int = 1,
    show_progress: bool = False,
) -> sp.csr_matrix:
    """SLIM's item-item weights W, csr_matrix float32 (n_items, n_items), from ``train`` (sparse
    (n_users, n_items); stored values are the targets, 1 for binary data): column j holds the
    regression of item j on the other items, at most ``k`` non-zero weights, all positive."""
    if not alpha > 0 or not 0 <= l1_ratio <= 1:
        raise ValueError(f"SLIM needs alpha > 0 and 0 <= l1_ratio <= 1, got alpha={alpha}, l1_ratio={l1_ratio}")
    if min(k, max_iter, n_jobs) < 1 or not tol > 0:
        raise ValueError(f"k, max_iter and n_jobs must be >= 1 and tol > 0, got {k}, {max_iter}, {n_jobs}, {tol}")
    x = sp.csc_matrix(train, dtype=np.float64)
    x.sum_duplicates()
    x.eliminate_zeros()
    n_items = x.shape[1]
    params = dict(alpha=alpha, l1_ratio=l1_ratio, k=k, max_iter=max_iter, tol=tol, seed=seed)
    blocks = [b for b in np.array_split(np.arange(n_items), max(1, n_jobs * BLOCKS_PER_JOB)) if len(b)]
    progress = bar(show_progress, total=n_items, desc="SLIM")
    if n_jobs == 1:
        parts = (_fit_block(x, block, **params) for block in blocks)
    else:
        parts = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_fit_block)(x, block, **params) for block in blocks)
    rows, cols, values, stopped = [], [], [], 0
    for block, (r, c, v, s) in zip(blocks, parts):
        rows.append(r), cols.append(c), values.append(v)
        stopped += s
        progress.update(len(block))
    progress.close()
    if stopped:
        log.info("SLIM: %d of %d regressions stopped at max_iter=%d before tol=%g", stopped, n_items, max_iter, tol)
    return sp.csr_matrix((np.concatenate(values).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_items, n_items))


def _fit_block(x: sp.csc_matrix, items: np.ndarray, alpha: float, l1_ratio: float, k: int, max_iter: int,
               tol: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The regressions of ``items`` on X (csc, float64): (source items, target items, weights) of
    the kept weights, and how many fits stopped at ``max_iter``."""
    x = x.copy()  # column j is zeroed in place while j is the target (a worker's X may be read-only)
    model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, positive=True, fit_intercept=False, copy_X=False,
                       precompute=False, selection="random", max_iter=max_iter, tol=tol, random_state=seed)
    y = np.zeros(x.shape[0])
    rows, cols, values, stopped = [], [], [], 0
    for j in items:
        start, end = x.indptr[j], x.indptr[j + 1]
        if start == end:  # no positives: every weight is 0
            continue
        target = x.data[start:end].copy()
        y[:] = 0
        y[x.indices[start:end]] = target
        x.data[start:end] = 0.0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(x, y, check_input=False)
        stopped += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        x.data[start:end] = target
        coef = model.coef_
        coef[j] = 0.0
        kept = np.flatnonzero(coef > 0)
        if len(kept) > k:  # the k largest, ties to the lower item index
            kept = kept[np.argsort(-coef[kept], kind="stable")[:k]]
        rows.append(kept), cols.append(np.full(len(kept), j)), values.append(coef[kept])
    empty = [np.zeros(0, np.int64)]
    return (np.concatenate(rows + empty), np.concatenate(cols + empty), np.concatenate(values + [np.zeros(0)]),
            stopped)
