"""LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020): embeddings smoothed over the user-item graph, no weights, no
non-linearity; score(u, i) = e_u . e_i of the layer-averaged embeddings."""
from __future__ import annotations

import warnings

import scipy.sparse as sp
import torch
from torch import nn

from irgan.models.held import HeldInteractions


class LightGCNScorer(HeldInteractions):
    """score(u, i) = e_u . e_i with [E_users; E_items] = mean over k = 0..layers of Âᵏ E⁰, where E⁰
    = [``user_emb`` (n_users, dim); ``item_emb`` (n_items, dim)] are the parameters (normal, std
    ``init_std``, as the paper's code) and Â = D^-½ A D^-½ is the normalised adjacency of the
    bipartite graph of the interactions X the scorer holds, A = [[0, X], [Xᵀ, 0]].

    Propagation costs O(layers · nnz · dim) and is differentiable. With gradients on, every call
    propagates afresh; under ``torch.no_grad()`` (evaluation, sampling, serving) the propagated
    embeddings are cached and recomputed only once the parameters or the graph change (their
    in-place version counters, bumped by optimizer steps and ``load_state_dict``, are the key).
    """

    def __init__(self, n_users: int, n_items: int, dim: int = 64, layers: int = 3,
                 interactions: sp.spmatrix | None = None, init_std: float = 0.1,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self._hold(n_users, n_items)
        if dim < 1 or layers < 0:
            raise ValueError(f"dim must be >= 1 and layers >= 0, got dim={dim}, layers={layers}")
        self.dim, self.layers, self.init_std = dim, layers, init_std
        self.user_emb = nn.Parameter(torch.randn(n_users, dim, generator=generator) * init_std)
        self.item_emb = nn.Parameter(torch.randn(n_items, dim, generator=generator) * init_std)
        self._cache: tuple[tuple, tuple[torch.Tensor, torch.Tensor]] | None = None
        self._adjacency: tuple[tuple, torch.Tensor] | None = None
        if interactions is not None:
            self.set_interactions(interactions)

    def init_args(self) -> dict:
        """The constructor arguments that rebuild this scorer's shapes (saved in model files); the
        interactions travel in the state dict."""
        return {"n_users": self.n_users, "n_items": self.n_items, "dim": self.dim, "layers": self.layers,
                "init_std": self.init_std}

    def __getstate__(self) -> dict:
        """The module's state less the caches, which copies and pickles rebuild (a sparse CSR
        tensor cannot be deep-copied)."""
        return {**self.__dict__, "_cache": None, "_adjacency": None}

    def adjacency(self) -> torch.Tensor:
        """Â = D^-½ A D^-½ as a torch sparse CSR tensor (n_users + n_items) squared, users first (a
        node without edges gets an empty row); built once per graph and device."""
        key = _version_key(self.indptr, self.indices)
        if self._adjacency is None or self._adjacency[0] != key:
            users, items = self._user_of_entry(), self.indices + self.n_users
            degree = torch.cat([self.indptr.diff(), torch.bincount(self.indices, minlength=self.n_items)]).float()
            scale = degree.clamp(min=1).rsqrt()
            weight = scale[users] * scale[items]
            index = torch.stack([torch.cat([users, items]), torch.cat([items, users])])
            n = self.n_users + self.n_items
            coo = torch.sparse_coo_tensor(index, torch.cat([weight, weight]), (n, n), check_invariants=False)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                self._adjacency = (key, coo.coalesce().to_sparse_csr())
        return self._adjacency[1]

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer-averaged embeddings (users (n_users, dim), items (n_items, dim)); cached under no_grad."""
        if torch.is_grad_enabled():
            return self._propagate()
        key = _version_key(self.user_emb, self.item_emb, self.indptr, self.indices)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._propagate())
        return self._cache[1]

    def _propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        adjacency = self.adjacency()
        layer = torch.cat([self.user_emb, self.item_emb])
        total = layer
        for _ in range(self.layers):
            layer = _SymmetricProduct.apply(adjacency, layer)
            total = total + layer
        total = total / (self.layers + 1)
        return total[:self.n_users], total[self.n_users:]

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs: two LongTensors (n,) give a float tensor (n,)."""
        user_final, item_final = self.propagate()
        return (user_final.index_select(0, users) * item_final.index_select(0, items)).sum(-1)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of a batch of users against the whole catalog: (len(users), n_items)."""
        user_final, item_final = self.propagate()
        return user_final.index_select(0, users) @ item_final.T

    forward = score_users

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Half the squared norm of the layer-0 rows a batch touches (the paper's L2): (per user, per item)."""
        return (self.user_emb.index_select(0, users).square().sum(1) / 2,
                self.item_emb.index_select(0, items).square().sum(1) / 2)


class _SymmetricProduct(torch.autograd.Function):
    """Â E for a symmetric sparse CSR Â: the gradient is Â G again (Âᵀ = Â), which spares the
    transpose torch's own backward of a CSR product makes (ten times the forward's cost on CPU)."""

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return adjacency @ dense

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.adjacency @ grad


def _version_key(*tensors: torch.Tensor) -> tuple:
    """Changes whenever one of ``tensors`` is moved, replaced or modified in place."""
    return tuple((t.device, t.data_ptr(), t._version) for t in tensors)
