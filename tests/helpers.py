"""Test data shared by several test modules."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def planted(seed: int = 0, n_groups: int = 3, users_per_group: int = 20, items_per_group: int = 20,
            n_train: int | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Users in groups, each group liking its own block of items: ``n_train`` (default half) of
    each user's block is train, the rest test. Item popularity carries no signal, the groups
    carry all of it. Returns (train, test), csr_matrix float32 of shape (n_groups * users, n_groups * items)."""
    n_train = items_per_group // 2 if n_train is None else n_train
    rng = np.random.default_rng(seed)
    n_users, n_items = n_groups * users_per_group, n_groups * items_per_group
    train, test = np.zeros((n_users, n_items), np.float32), np.zeros((n_users, n_items), np.float32)
    for u in range(n_users):
        block = rng.permutation(items_per_group) + (u // users_per_group) * items_per_group
        train[u, block[:n_train]] = 1
        test[u, block[n_train:]] = 1
    return sp.csr_matrix(train), sp.csr_matrix(test)
