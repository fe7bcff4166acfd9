"""The one data object of irgan: an implicit-feedback CSR matrix plus the raw-id maps."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True, eq=False)
class Interactions:
    """Binary user x item feedback with the maps between raw ids and matrix indices.

    ``matrix`` is a ``csr_matrix`` of shape (n_users, n_items), float32, holding 1.0 for
    each positive (user, item) pair. ``user_ids[u]`` / ``item_ids[i]`` are the raw ids of row
    ``u`` / column ``i``. Train, validation and test sets of one data set share the same maps,
    so their matrices have the same shape and can be compared index by index.
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    def __post_init__(self) -> None:
        if not sp.issparse(self.matrix):
            raise TypeError(f"matrix must be a scipy sparse matrix, got {type(self.matrix).__name__}")
        matrix = sp.csr_matrix(self.matrix, dtype=np.float32)
        matrix.sum_duplicates()
        matrix.sort_indices()
        matrix.eliminate_zeros()
        if not np.isfinite(matrix.data).all() or (matrix.data < 0).any():
            raise ValueError("implicit feedback must be non-negative and finite: the matrix holds NaN, inf or negative values")
        matrix.data[:] = 1.0
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "user_ids", np.asarray(self.user_ids))
        object.__setattr__(self, "item_ids", np.asarray(self.item_ids))
        if matrix.shape != (len(self.user_ids), len(self.item_ids)):
            raise ValueError(
                f"matrix shape {matrix.shape} does not match {len(self.user_ids)} user ids "
                f"x {len(self.item_ids)} item ids"
            )

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        return self.matrix.nnz

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def with_matrix(self, matrix: sp.spmatrix) -> "Interactions":
        """A new Interactions over the same id maps (e.g. the other half of a split)."""
        return Interactions(matrix, self.user_ids, self.item_ids)

    def same_maps(self, other: "Interactions") -> bool:
        """True when ``other`` indexes users and items exactly as this one does."""
        return np.array_equal(self.user_ids, other.user_ids) and np.array_equal(
            self.item_ids, other.item_ids
        )

    def user_index(self, raw_ids: Iterable) -> np.ndarray:
        """Row indices of raw user ids; raises KeyError naming ids never seen."""
        return _lookup(self.user_ids, raw_ids, "user")

    def item_index(self, raw_ids: Iterable) -> np.ndarray:
        """Column indices of raw item ids; raises KeyError naming ids never seen."""
        return _lookup(self.item_ids, raw_ids, "item")

    def to_dataframe(self) -> pd.DataFrame:
        """The positives as a DataFrame of raw (user, item) ids."""
        coo = self.matrix.tocoo()
        return pd.DataFrame({"user": self.user_ids[coo.row], "item": self.item_ids[coo.col]})

    def __repr__(self) -> str:
        return f"Interactions(n_users={self.n_users}, n_items={self.n_items}, nnz={self.nnz})"


def _lookup(ids: np.ndarray, raw_ids: Iterable, kind: str) -> np.ndarray:
    raw = np.asarray(list(raw_ids) if not isinstance(raw_ids, np.ndarray) else raw_ids)
    index = pd.Index(ids).get_indexer(raw)
    if (index < 0).any():
        unknown = raw[index < 0][:5].tolist()
        raise KeyError(f"unknown {kind} id(s) {unknown}: not in the data this was built from")
    return index
