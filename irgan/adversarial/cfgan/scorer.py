"""CFGAN's generator as a scorer: G's rebuilt purchase vectors are the scores.

User-based (uCFGAN), user u's scores are G(x_u), x_u u's row of the interactions X. Item-based
(iCFGAN, the authors' ML100K choice), G rebuilds each item's column of X, and score(u, i) is
G(x_i)[u]: a user's row of scores takes G over every item, which ``score_users`` runs in batches
of items and transposes.
"""
from __future__ import annotations

from typing import Callable

import scipy.sparse as sp
import torch

from irgan.adversarial.cfgan.nets import GeneratorNet
from irgan.metrics import BATCH_ELEMENTS
from irgan.models import register_scorer
from irgan.models.held import HeldInteractions


class CFGANScorer(HeldInteractions):
    """score(u, i) = G(x_u)[i] (``mode="user"``) or G(x_i)[u] (``mode="item"``), G a
    ``GeneratorNet`` (``self.net``) of ``layers`` hidden layers of ``hidden`` units over the binary
    interactions X (n_users, n_items) the scorer holds as CSR buffers (so ``state_dict()`` loads
    into a fresh ``CFGANScorer`` of the same arguments)."""

    def __init__(self, n_users: int, n_items: int, mode: str = "item", hidden: int = 400, layers: int = 1,
                 activation: str = "sigmoid", interactions: sp.spmatrix | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if mode not in ("item", "user"):
            raise ValueError(f"mode must be 'item' or 'user', got {mode!r}")
        self._hold(n_users, n_items)
        self.mode, self.hidden, self.layers, self.activation = mode, hidden, layers, activation
        self.net = GeneratorNet(self.condition_size, hidden, layers, activation, generator)
        if interactions is not None:
            self.set_interactions(interactions)

    def init_args(self) -> dict:
        """The constructor arguments that rebuild this scorer (saved in model files); X travels in the state dict."""
        return {"n_users": self.n_users, "n_items": self.n_items, "mode": self.mode, "hidden": self.hidden,
                "layers": self.layers, "activation": self.activation}

    @property
    def condition_size(self) -> int:
        """Length of G's vectors: n_users item-based, n_items user-based."""
        return self.n_users if self.mode == "item" else self.n_items

    @property
    def n_conditions(self) -> int:
        """How many vectors G rebuilds: n_items item-based, n_users user-based."""
        return self.n_items if self.mode == "item" else self.n_users

    def conditions(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """G's inputs: the rows of X (user-based) or of Xᵀ (item-based) at ``rows`` (LongTensor;
        None: all), dense float32 (len(rows), condition_size) on the buffers' device."""
        device = self.indptr.device
        rows = torch.arange(self.n_conditions, device=device) if rows is None else rows.to(device)
        if self.mode == "user":
            return self._rows(rows)
        return _dense_rows(*self._columns(), rows, self.n_users)

    def fold_in(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Scores of new users from their histories, (n_new, n_items) -> (n_new, n_items): user-based
        G rebuilds a history as it rebuilds a training user's vector; item-based G cannot (a new user
        is one more entry of every item's vector over the training users: that needs a refit)."""
        if self.mode != "user":
            raise NotImplementedError("item-based CFGAN (mode='item') reads a user as one entry of every item's "
                                      "vector over the training users: a new user needs a refit (mode='user' folds in)")
        return self.net

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of a batch of users against the whole catalog, (len(users), n_items)."""
        users = users.to(self.indptr.device)
        if self.mode == "user":
            return self.net(self._rows(users))
        indptr, indices = self._columns()
        step = max(1, BATCH_ELEMENTS // self.n_users)
        parts = [self.net(_dense_rows(indptr, indices, items, self.n_users)).index_select(1, users)
                 for items in torch.arange(self.n_items, device=users.device).split(step)]
        return torch.cat(parts).T

    forward = score_users

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs: two LongTensors (n,) give a float tensor (n,). G runs once
        per distinct condition (item item-based, user user-based)."""
        users, items = users.to(self.indptr.device), items.to(self.indptr.device)
        if self.mode == "user":
            unique, inverse = torch.unique(users, return_inverse=True)
            return self.net(self._rows(unique))[inverse, items]
        unique, inverse = torch.unique(items, return_inverse=True)
        return self.net(_dense_rows(*self._columns(), unique, self.n_users))[inverse, users]

    def _columns(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Xᵀ as CSR: indptr (n_items + 1,) and each item's users (nnz,), ascending."""
        order = torch.argsort(self.indices, stable=True)
        counts = torch.bincount(self.indices, minlength=self.n_items)
        indptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        return indptr, self._user_of_entry()[order]


def _dense_rows(indptr: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor, n_cols: int) -> torch.Tensor:
    """The ``rows`` of a binary CSR matrix (indptr, indices) as dense float32 (len(rows), n_cols)."""
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    row = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), lengths)
    first = torch.repeat_interleave(starts - (lengths.cumsum(0) - lengths), lengths)
    cols = indices[first + torch.arange(len(row), device=rows.device)]
    dense = torch.zeros(len(rows), n_cols, device=indices.device)
    return dense.index_put_((row, cols), torch.ones((), device=dense.device))


register_scorer(CFGANScorer, "cfgan")

__all__ = ["CFGANScorer"]
