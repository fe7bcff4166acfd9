"""An item-item scorer: a user's score for an item is the sum of the weights from the items the
user already has, score(u, i) = x_u . B[:, i] with B's diagonal held at zero; trainable by any
objective, or set in closed form by EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse
Data", WWW 2019)."""
from __future__ import annotations

import warnings

import scipy.sparse as sp
import torch
from torch import nn

from irgan.models.held import HeldInteractions


class ItemItemScorer(HeldInteractions):
    """score(u, i) = x_u . B[:, i]: x_u is user u's row of the binary interactions X (n_users,
    n_items) the scorer holds, B = ``self.weight`` (n_items, n_items) the parameter, starting at 0.
    B's diagonal is masked out in scoring, so an item never scores itself.

    X is held as CSR buffers (``HeldInteractions``), so ``state_dict()`` loads into a fresh
    ``ItemItemScorer(n_users, n_items)``. B has n_items² parameters (and as much gradient and
    optimizer state): fine up to tens of thousands of items.
    """

    def __init__(self, n_users: int, n_items: int, interactions: sp.spmatrix | None = None) -> None:
        super().__init__()
        self._hold(n_users, n_items)
        self.weight = nn.Parameter(torch.zeros(n_items, n_items))
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

    def fit_ease(self, l2: float = 300.0) -> "ItemItemScorer":
        """Set B in place to EASE's closed form on the held X, and return self: with G = XᵀX + l2 I
        and P = G⁻¹, B_ij = -P_ij / P_jj off the diagonal, B_jj = 0. Solved in float64 on B's
        device, stored float32; O(n_items³) time and a few n_items² float64 buffers."""
        if not l2 > 0:
            raise ValueError(f"EASE needs l2 > 0, got {l2}")
        x = self._sparse(torch.float64)
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

    def _masked_weight(self) -> torch.Tensor:
        """B with its diagonal zeroed (a copy; B itself keeps whatever its diagonal holds)."""
        masked = self.weight.clone()
        masked.diagonal().zero_()
        return masked

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of a batch of users against the whole catalog: X[users] @ B_masked, (len(users), n_items)."""
        return self._rows(users, self.weight.dtype) @ self._masked_weight()

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
