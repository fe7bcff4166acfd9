"""The training interactions a scorer holds as CSR buffers, for scorers that read a user's row of
X at scoring time (item-item, item k-NN) or propagate over the user-item graph (LightGCN)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


class HeldInteractions(nn.Module):
    """Base of scorers holding binary interactions X (n_users, n_items) as int64 CSR buffers
    ``indptr`` (n_users + 1,) and ``indices`` (nnz,): they move with ``.to(device)`` and travel in
    ``state_dict()``, which loads into a fresh scorer of the same sizes (buffers named in
    ``_resizable`` take the saved length first)."""

    _resizable: tuple[str, ...] = ("indices",)
    _csr_buffers: tuple[tuple[str, str], ...] = (("indptr", "indices"),)  # (indptr, indices) pairs to check on load

    def _hold(self, n_users: int, n_items: int) -> None:
        """Register empty buffers for an (n_users, n_items) X; call from ``__init__`` after ``super().__init__()``."""
        if min(n_users, n_items) < 1:
            raise ValueError(f"n_users and n_items must be positive, got {n_users}, {n_items}")
        self.n_users, self.n_items = n_users, n_items
        self.register_buffer("indptr", torch.zeros(n_users + 1, dtype=torch.int64))
        self.register_buffer("indices", torch.zeros(0, dtype=torch.int64))

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
        matrix.sort_indices()
        device = self.indptr.device
        self.indptr = torch.as_tensor(matrix.indptr.astype(np.int64), device=device)
        self.indices = torch.as_tensor(matrix.indices.astype(np.int64), device=device)

    def interactions(self) -> sp.csr_matrix:
        """X as a scipy csr_matrix (n_users, n_items) of float32 ones, on the CPU."""
        indices = self.indices.cpu().numpy()
        return sp.csr_matrix((np.ones(len(indices), np.float32), indices, self.indptr.cpu().numpy()),
                             shape=(self.n_users, self.n_items))

    def _user_of_entry(self) -> torch.Tensor:
        """The row (user) of every stored entry of X: int64 (nnz,), ascending."""
        return torch.repeat_interleave(torch.arange(self.n_users, device=self.indptr.device), self.indptr.diff())

    def _sparse(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """X as a coalesced torch sparse COO tensor (n_users, n_items) of ``dtype``, on the buffers' device."""
        return torch.sparse_coo_tensor(torch.stack([self._user_of_entry(), self.indices]),
                                       torch.ones(len(self.indices), dtype=dtype, device=self.indices.device),
                                       (self.n_users, self.n_items), is_coalesced=True, check_invariants=False)

    def _rows(self, users: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The users' rows of X as a dense tensor (len(users), n_items) of ``dtype``, by index ops."""
        starts, lengths = self.indptr[users], self.indptr[users + 1] - self.indptr[users]
        row = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)
        first = torch.repeat_interleave(starts - (lengths.cumsum(0) - lengths), lengths)
        cols = self.indices[first + torch.arange(len(row), device=users.device)]
        dense = torch.zeros(len(users), self.n_items, dtype=dtype, device=self.indptr.device)
        return dense.index_put_((row, cols), torch.ones((), dtype=dtype, device=dense.device))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Resize the ``_resizable`` buffers to the saved ones' lengths before the copy, so that a
        scorer built without interactions loads them; then check that each CSR pair agrees."""
        for name in self._resizable:
            saved = state_dict.get(prefix + name)
            mine = getattr(self, name)
            if isinstance(saved, torch.Tensor) and saved.ndim == 1:
                setattr(self, name, torch.empty(len(saved), dtype=mine.dtype, device=mine.device))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        for indptr, indices in self._csr_buffers:
            end, length = int(getattr(self, indptr)[-1]), len(getattr(self, indices))
            if end != length:
                error_msgs.append(f"{prefix}{indptr} ends at {end} but {prefix}{indices} holds {length} entries")
