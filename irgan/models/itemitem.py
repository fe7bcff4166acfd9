"""An item-item scorer: a user's score for an item is the sum of the weights from the items the
user already has, score(u, i) = x_u . B[:, i] with B's diagonal held at zero; trainable by any
objective, or set in closed form by EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse
Data", WWW 2019)."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


class ItemItemScorer(nn.Module):
    """score(u, i) = x_u . B[:, i]: x_u is user u's row of the binary interactions X (n_users,
    n_items) the scorer holds, B = ``self.weight`` (n_items, n_items) the parameter, starting at 0.
    B's diagonal is masked out in scoring, so an item never scores itself.

    X is held as CSR buffers ``indptr`` (n_users + 1,) and ``indices`` (nnz,), int64: they move
    with ``.to(device)`` and are saved in ``state_dict()``, which loads into a fresh
    ``ItemItemScorer(n_users, n_items)``. B has n_items² parameters (and as much gradient and
    optimizer state): fine up to tens of thousands of items.
    """

    def __init__(self, n_users: int, n_items: int, interactions: sp.spmatrix | None = None) -> None:
        super().__init__()
        if min(n_users, n_items) < 1:
            raise ValueError(f"n_users and n_items must be positive, got {n_users}, {n_items}")
        self.n_users, self.n_items = n_users, n_items
        self.weight = nn.Parameter(torch.zeros(n_items, n_items))
        self.register_buffer("indptr", torch.zeros(n_users + 1, dtype=torch.int64))
        self.register_buffer("indices", torch.zeros(0, dtype=torch.int64))
        if interactions is not None:
            self.set_interactions(interactions)

    def init_args(self) -> dict:
        """The constructor arguments that rebuild this scorer's shapes (saved in model files); the
        interactions travel in the state dict."""
        return {"n_users": self.n_users, "n_items": self.n_items}

    @classmethod
    def ease(cls, interactions: sp.spmatrix, l2: float = 300.0) -> "ItemItemScorer":
        """A scorer holding ``interactions`` (n_users, n_items) with B set by EASE (see ``fit_ease``)."""
        n_users, n_items = getattr(interactions, "matrix", interactions).shape
        return cls(n_users, n_items, interactions).fit_ease(l2)

    def set_interactions(self, matrix: sp.spmatrix) -> None:
        """Hold ``matrix`` (n_users, n_items; a scipy sparse matrix or anything with a ``.matrix``)
        as X. Every stored non-zero must be 1 (duplicates are summed first, stored zeros dropped)."""
        matrix = sp.csr_matrix(getattr(matrix, "matrix", matrix), copy=True)
        if matrix.shape != (self.n_users, self.n_items):
            raise ValueError(f"interactions have shape {matrix.shape}, expected {(self.n_users, self.n_items)}")
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        if (matrix.data != 1).any():
            raise ValueError("interactions must be binary: every stored non-zero must be 1")
        device = self.indptr.device
        self.indptr = torch.as_tensor(matrix.indptr.astype(np.int64), device=device)
        self.indices = torch.as_tensor(matrix.indices.astype(np.int64), device=device)

    def fit_ease(self, l2: float = 300.0) -> "ItemItemScorer":
        """Set B in place to EASE's closed form on the held X, and return self: with G = XᵀX + l2 I
        and P = G⁻¹, B_ij = -P_ij / P_jj off the diagonal, B_jj = 0. Solved in float64 on B's
        device, stored float32; O(n_items³) time and a few n_items² float64 buffers."""
        if not l2 > 0:
            raise ValueError(f"EASE needs l2 > 0, got {l2}")
        device = self.weight.device
        rows = torch.repeat_interleave(torch.arange(self.n_users, device=device), self.indptr.diff())
        x = torch.sparse_coo_tensor(torch.stack([rows, self.indices]),
                                    torch.ones(len(self.indices), dtype=torch.float64, device=device),
                                    (self.n_users, self.n_items), is_coalesced=True, check_invariants=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            gram = torch.sparse.mm(x.t().coalesce(), x).to_dense()
        gram.diagonal().add_(l2)
        p = torch.cholesky_inverse(torch.linalg.cholesky(gram))
        b = p / -p.diagonal()
        b.diagonal().zero_()
        with torch.no_grad():
            self.weight.copy_(b)
        return self

    def _rows(self, users: torch.Tensor) -> torch.Tensor:
        """The users' rows of X as a dense float tensor (len(users), n_items), by index ops."""
        starts, lengths = self.indptr[users], self.indptr[users + 1] - self.indptr[users]
        row = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)
        first = torch.repeat_interleave(starts - (lengths.cumsum(0) - lengths), lengths)
        cols = self.indices[first + torch.arange(len(row), device=users.device)]
        dense = torch.zeros(len(users), self.n_items, dtype=self.weight.dtype, device=self.weight.device)
        return dense.index_put_((row, cols), torch.ones((), dtype=dense.dtype, device=dense.device))

    def _masked_weight(self) -> torch.Tensor:
        """B with its diagonal zeroed (a copy; B itself keeps whatever its diagonal holds)."""
        masked = self.weight.clone()
        masked.diagonal().zero_()
        return masked

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of a batch of users against the whole catalog: X[users] @ B_masked, (len(users), n_items)."""
        return self._rows(users) @ self._masked_weight()

    forward = score_users

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs: two LongTensors of shape (n,) give a float tensor (n,).
        Each distinct user is scored once against the catalog (unique users x n_items floats)."""
        unique, inverse = torch.unique(users, return_inverse=True)
        return self.score_users(unique)[inverse, items]

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(zeros per user: no user parameters, |B[:, i]|²/2 per item, the diagonal entry excluded)."""
        columns = self.weight.index_select(1, items).square()
        columns = columns.index_put((items, torch.arange(len(items), device=items.device)), columns.new_zeros(()))
        return self.weight.new_zeros(len(users)), columns.sum(0) / 2

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Resize the ``indices`` buffer to the saved one's length before the copy, so that a
        scorer built without interactions loads them."""
        saved = state_dict.get(prefix + "indices")
        if isinstance(saved, torch.Tensor) and saved.ndim == 1:
            self.indices = torch.empty(len(saved), dtype=torch.int64, device=self.indices.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if self.indptr[-1] != len(self.indices):
            error_msgs.append(f"{prefix}indptr ends at {int(self.indptr[-1])} but {prefix}indices holds "
                              f"{len(self.indices)} entries")
