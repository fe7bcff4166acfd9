"""PureSVD (Cremonesi, Koren and Turrin, RecSys 2010): a truncated SVD of the training matrix,
X ≈ U Σ Vᵀ with ``factors`` singular triplets; a user's scores are x_u V Vᵀ, her row of X projected
onto the top right singular vectors. Computed by scikit-learn's seeded ``randomized_svd``, as in
Ferrari Dacrema et al.'s framework (the one the ECIR 2022 study used).
"""
from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from irgan.models.mf import MatrixFactorization

log = logging.getLogger(__name__)


def item_factors(train: sp.spmatrix, factors: int = 50, seed: int = 0) -> np.ndarray:
    """V, float64 (n_items, f): the top f right singular vectors of ``train`` (sparse (n_users,
    n_items)), f = ``factors`` or the rank bound min(n_users, n_items) when that is smaller."""
    if factors < 1:
        raise ValueError(f"factors must be >= 1, got {factors}")
    x = sp.csr_matrix(train, dtype=np.float64)
    f = min(factors, *x.shape)
    if f < factors:
        log.info("PureSVD: %d factors asked, %d kept (the matrix is %d x %d)", factors, f, *x.shape)
    _, _, vt = randomized_svd(x, n_components=f, random_state=seed)
    return vt.T


def fit_puresvd(train: sp.spmatrix, factors: int = 50, seed: int = 0) -> MatrixFactorization:
    """PureSVD as a ``MatrixFactorization`` (user rows X V, item rows V, item biases 0), so that
    its scores are X V Vᵀ and G or D can start from it."""
    x = sp.csr_matrix(train, dtype=np.float64)
    v = item_factors(x, factors, seed)
    return MatrixFactorization.from_arrays(x @ v, v, np.zeros(x.shape[1]))
