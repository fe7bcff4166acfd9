"""Item k-nearest-neighbours by cosine similarity (Sarwar et al., WWW 2001; Deshpande and Karypis,
TOIS 2004): score(u, j) = the sum of j's similarities to the items u has, among j's k nearest."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from irgan.models.held import HeldInteractions

#: Cells of the dense (block, n_items) similarity block computed at a time when fitting.
BLOCK_ELEMENTS = 2**22


class ItemKNNScorer(HeldInteractions):
    """score(u, j) = x_u . S[:, j], with X (n_users, n_items) the binary interactions the scorer
    holds and S the item-item cosine similarity cos(i, j) = |U_i ∩ U_j| / (|U_i|^½ |U_j|^½ +
    shrink), pruned to each target item j's ``k`` most similar items (column j keeps k entries,
    ties to the lower index; the diagonal is never kept).

    S is held sparse, row j of Sᵀ as CSR buffers ``sim_indptr`` (n_items + 1,), ``sim_indices``
    and ``sim_values`` (n_items * k at most): X and S move with ``.to(device)`` and load into a
    fresh ``ItemKNNScorer(n_users, n_items)``. Scoring a batch builds one dense (batch, n_items)
    block, nothing larger.
    """

    _resizable = ("indices", "sim_indices", "sim_values")
    _csr_buffers = (("indptr", "indices"), ("sim_indptr", "sim_indices"))

    def __init__(self, n_users: int, n_items: int, interactions: sp.spmatrix | None = None, k: int = 100,
                 shrink: float = 0.0) -> None:
        super().__init__()
        self._hold(n_users, n_items)
        self.register_buffer("sim_indptr", torch.zeros(n_items + 1, dtype=torch.int64))
        self.register_buffer("sim_indices", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("sim_values", torch.zeros(0))
        if interactions is not None:
            self.set_interactions(interactions)
            self.fit_cosine(k, shrink)

    def init_args(self) -> dict:
        """The constructor arguments that rebuild this scorer's shapes (saved in model files); X and
        S travel in the state dict."""
        return {"n_users": self.n_users, "n_items": self.n_items}

    def fit_cosine(self, k: int = 100, shrink: float = 0.0) -> "ItemKNNScorer":
        """Set S from the held X (see the class), item blocks at a time with scipy, and return self."""
        if k < 1 or not shrink >= 0:
            raise ValueError(f"k must be >= 1 and shrink >= 0, got k={k}, shrink={shrink}")
        x = self.interactions()
        xt = sp.csr_matrix(x.T)
        norms = np.sqrt(np.diff(xt.indptr)).astype(np.float64)
        k = min(k, self.n_items - 1)
        block = max(1, BLOCK_ELEMENTS // self.n_items)
        rows, cols, values = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
        for start in range(0, self.n_items if k > 0 else 0, block):
            targets = np.arange(start, min(start + block, self.n_items))
            overlap = (xt[targets] @ x).toarray().astype(np.float64)  # (targets, n_items) co-occurrence counts
            sims = overlap / np.maximum(norms[targets, None] * norms[None, :] + shrink, np.finfo(np.float64).tiny)
            sims[np.arange(len(targets)), targets] = 0.0
            top = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # ties: the lower item index
            rows.append(np.repeat(targets, k))
            cols.append(top.ravel())
            values.append(np.take_along_axis(sims, top, axis=1).ravel())
        sim_t = sp.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(self.n_items, self.n_items))
        sim_t.eliminate_zeros()
        sim_t.sort_indices()
        device = self.indptr.device
        self.sim_indptr = torch.as_tensor(sim_t.indptr.astype(np.int64), device=device)
        self.sim_indices = torch.as_tensor(sim_t.indices.astype(np.int64), device=device)
        self.sim_values = torch.as_tensor(sim_t.data, dtype=torch.float32, device=device)
        return self

    def similarity(self) -> torch.Tensor:
        """Sᵀ as a torch sparse COO tensor (n_items, n_items): row j holds j's neighbours and similarities."""
        rows = torch.repeat_interleave(torch.arange(self.n_items, device=self.sim_indptr.device), self.sim_indptr.diff())
        return torch.sparse_coo_tensor(torch.stack([rows, self.sim_indices]), self.sim_values,
                                       (self.n_items, self.n_items), is_coalesced=True, check_invariants=False)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of a batch of users against the whole catalog: X[users] S, (len(users), n_items)."""
        return torch.sparse.mm(self.similarity(), self._rows(users, self.sim_values.dtype).T).T

    forward = score_users

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs: two LongTensors (n,) give a float tensor (n,); each distinct
        user is scored once against the catalog."""
        unique, inverse = torch.unique(users, return_inverse=True)
        return self.score_users(unique)[inverse, items]
