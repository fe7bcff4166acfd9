"""The fast path for matrix factorisation: BPR, D's pointwise loss and G's policy gradient with
their gradients written out by hand, and a row-sparse optimizer to apply them.

``irgan.training.objectives`` computes the same losses by autograd for any scorer; for MF both paths
give the same parameters (tests/test_objectives.py), and this one makes the default ml-100k run
about twice as fast (RESULTS.md): on tiny embeddings, autograd's bookkeeping costs several times
the arithmetic itself. Every loss is a sum over samples, so the learning rate is per sample, as
in SGD with batch 1.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from irgan.distributed import Shard
from irgan.models.mf import MatrixFactorization
from irgan.training.objectives import l2_per_occurrence
from irgan.training.policy import Policy

# One update: (parameter, rows or None for the whole tensor, gradient of those rows).
Update = tuple[torch.Tensor, "torch.Tensor | None", torch.Tensor]
OPTIMIZERS = ("sgd", "adam")


class RowOptimizer:
    """Plain SGD applied in place to the touched rows (the IRGAN authors' optimizer), or Adam.

    SGD scatters each gradient straight into its parameter with ``index_add_``, so a step costs
    O(batch), not O(catalog). Adam keeps dense moments (torch.optim.Adam semantics). With
    ``shard`` active (torch.distributed), each step first sums the processes' gradients, densely,
    so that every process applies the same update; except those of the ``local`` parameters
    (the user table, whose rows each process owns for its own users): each process applies its
    own, and ``Shard.gather_owned`` makes the tables whole again when someone reads them all.
    """

    def __init__(self, name: str, params: Sequence[torch.nn.Parameter], lr: float, shard: Shard = Shard(),
                 local: Sequence[torch.nn.Parameter] = ()) -> None:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}: choose one of {list(OPTIMIZERS)}")
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.name, self.lr, self.params, self.shard = name, lr, list(params), shard
        self.local = {id(p) for p in local}
        self.adam = torch.optim.Adam(self.params, lr=lr) if name == "adam" else None

    @torch.no_grad()
    def step(self, updates: Sequence[Update]) -> None:
        """Descend along the given gradients; repeated rows accumulate."""
        if self.shard.active:
            updates = self._summed(updates)
        if self.adam is None:
            for param, rows, grad in updates:
                if rows is None:
                    param.sub_(grad, alpha=self.lr)
                else:
                    # index_add_ with alpha takes a path several times slower on CPU: scale first.
                    param.index_add_(0, rows, grad * -self.lr)
            return
        for param in self.params:
            param.grad = torch.zeros_like(param)
        for param, rows, grad in updates:
            if rows is None:
                param.grad.add_(grad)
            else:
                param.grad.index_add_(0, rows, grad)
        self.adam.step()

    def _summed(self, updates: Sequence[Update]) -> list[Update]:
        """The ``local`` parameters' updates as they are, then one dense gradient per other
        parameter, summed over the processes."""
        dense = {id(p): torch.zeros_like(p) for p in self.params if id(p) not in self.local}
        for param, rows, grad in updates:
            if id(param) in self.local:
                continue
            if rows is None:
                dense[id(param)].add_(grad)
            else:
                dense[id(param)].index_add_(0, rows, grad)
        return ([u for u in updates if id(u[0]) in self.local]
                + [(p, None, self.shard.sum(dense[id(p)])) for p in self.params if id(p) not in self.local])

    def gather_owned(self) -> None:
        """Each ``local`` parameter, and its Adam moments, made whole from the rows their owners hold."""
        for param in self.params:
            if id(param) in self.local:
                self.shard.gather_owned(param.data)
                if self.adam is not None:
                    for moment in self.adam.state.get(param, {}).values():
                        if moment.dim() and moment.shape[0] == param.shape[0]:
                            self.shard.gather_owned(moment)

    def state_dict(self) -> dict:
        return self.adam.state_dict() if self.adam is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.adam is not None:
            self.adam.load_state_dict(state)


@torch.no_grad()
def bpr_loss(model: MatrixFactorization, users, pos, neg, l2: float) -> tuple[float, list[Update]]:
    """sum -log sigmoid(s(u,i) - s(u,j)) + l2/2 (|p_u|² + |q_i|² + b_i² + |q_j|² + b_j²)."""
    p, qi, qj = _rows(model.user_emb, users), _rows(model.item_emb, pos), _rows(model.item_emb, neg)
    bi, bj = _rows(model.item_bias, pos), _rows(model.item_bias, neg)
    x = (p * (qi - qj)).sum(1) + bi - bj
    loss = -F.logsigmoid(x).sum() + l2 * _half_square(p, qi, qj, bi, bj)
    g = -torch.sigmoid(-x)[:, None]
    return loss.item(), [
        (model.user_emb, users, g * (qi - qj) + l2 * p),
        (model.item_emb, pos, g * p + l2 * qi),
        (model.item_emb, neg, -g * p + l2 * qj),
        (model.item_bias, pos, g[:, 0] + l2 * bi),
        (model.item_bias, neg, -g[:, 0] + l2 * bj),
    ]


SUMMED_FROM = 1.0  # pairs per model row from which summing per row beats scattering per pair (measured)


@torch.no_grad()
def bpr_sgd_step(users_ext: torch.Tensor, items_ext: torch.Tensor, users, pos, neg, lr: float, l2: float) -> None:
    """One SGD step of ``bpr_loss`` in place on packed tables: [user_emb | 1] and [item_emb | item_bias].

    The same update as ``bpr_loss`` then ``RowOptimizer("sgd")``, in a third of the operations:
    with embeddings this small, a pretraining step costs its number of tensor operations.
    """
    p = users_ext.index_select(0, users)
    q = items_ext.index_select(0, torch.cat([pos, neg])).view(2, len(users), -1)
    diff = q[0] - q[1]
    g = torch.sigmoid((p * diff).sum(1)).sub_(1).mul_(-lr)[:, None]  # -lr d/dx of -log sigmoid(x)
    users_ext.index_add_(0, users, diff.mul_(g).add_(p, alpha=-lr * l2))
    users_ext[:, -1].fill_(1)  # the constant column took a step too: put it back
    gp = p.mul_(g)
    items_ext.index_add_(0, torch.cat([pos, neg]), torch.cat([gp, gp.neg()]).add_(q.view(2 * len(users), -1), alpha=-lr * l2))


@torch.no_grad()
def pointwise_loss(
    model: MatrixFactorization, users, items, labels, l2: float, lr: float | None = None, shard: Shard = Shard(),
) -> tuple[float, list[Update]]:
    """sum BCE(sigmoid(s(u,i)), label) + l2/2 (|p_u|² + |q_i|² + b_i²): IRGAN's discriminator loss.

    With ``lr`` (plain SGD), the L2 pull on a row the batch holds n times is the one n
    successive SGD steps would give, a shrink by (1 - lr l2)^n, not n times a single step:
    summed linearly it overshoots, and diverges, once lr l2 n > 2, as on the few popular items
    G proposes thousands of times in D's full-data step. Without it, the plain gradient. Under
    torch.distributed (``shard``), n counts the pairs of every process, as one process would.

    A batch with at least ``SUMMED_FROM`` pairs per row of the model (D's full-data step) gets its
    gradients summed per row through sparse products, then applied to the whole tables; a small
    one gets them per pair.
    """
    p, q, b = _rows(model.user_emb, users), _rows(model.item_emb, items), _rows(model.item_bias, items)
    x = (p * q).sum(1) + b
    loss = F.binary_cross_entropy_with_logits(x, labels, reduction="sum") + l2 * _half_square(p, q, b)
    g = torch.sigmoid(x) - labels
    user_n, item_n = _occurrences(users, model.n_users), _occurrences(items, model.n_items)  # this process's
    user_l2 = l2_per_occurrence(l2, lr, user_n)  # a user's pairs are all in the process that owns the user
    item_l2 = l2_per_occurrence(l2, lr, shard.sum(item_n.clone()))  # every process's count sets the shrink
    if len(users) < SUMMED_FROM * (model.n_users + model.n_items):
        u_l2, i_l2 = user_l2.index_select(0, users), item_l2.index_select(0, items)
        return loss.item(), [
            (model.user_emb, users, g[:, None] * q + u_l2[:, None] * p),
            (model.item_emb, items, g[:, None] * p + i_l2[:, None] * q),
            (model.item_bias, items, g + i_l2 * b),
        ]
    users_ext, items_ext = packed_users(model), packed_items(model)
    user_grad, item_grad = pair_products(users, items, g, (model.n_users, model.n_items), users_ext, items_ext)
    user_grad = user_grad[:, :-1] + (user_l2 * user_n)[:, None] * model.user_emb
    item_grad += (item_l2 * item_n)[:, None] * items_ext
    return loss.item(), [
        (model.user_emb, None, user_grad),
        (model.item_emb, None, item_grad[:, :-1]),
        (model.item_bias, None, item_grad[:, -1]),
    ]


@torch.no_grad()
def policy_gradient_loss(
    model: MatrixFactorization, users, rows, items, weights, temperature: float = 1.0, p: torch.Tensor | None = None,
    policy: Policy | None = None,
) -> tuple[float, list[Update]]:
    """REINFORCE surrogate -sum_k weights[k] log p(items[k] | users[rows[k]]), p = softmax(s / T).

    ``users`` (B,) is a batch of distinct users, ``rows``/``items``/``weights`` (N,) one entry per
    sample; G's softmax for the batch may be passed, as probabilities ``p`` (B, n_items) or as a
    ``Policy``, when the caller has it. The gradient with respect to row r's logits is
    c_r p_r - (its samples' weights scattered on their items), with c_r the sum of row r's
    weights; it is never formed: its dense part reaches the parameters through the expected item
    and one product with p, its sparse part through two sparse products.
    """
    users_ext, items_ext = packed_users(model, users), packed_items(model)
    if policy is None:
        policy = Policy.of_probs(p) if p is not None else Policy.of_mf(users_ext, items_ext, temperature)
    loss = -(weights * policy.at(rows, items).log()).sum()
    c = torch.zeros(len(users), dtype=weights.dtype, device=weights.device).index_add_(0, rows, weights)
    sparse_user, sparse_item = pair_products(rows, items, weights, policy.e.shape, users_ext, items_ext)
    return loss.item(), policy_gradient_updates(model, users, users_ext, policy, c, policy.expected(items_ext),
                                                sparse_user, sparse_item, temperature)


def policy_gradient_updates(model: MatrixFactorization, users: torch.Tensor, users_ext: torch.Tensor, policy: Policy,
                            c: torch.Tensor, expected: torch.Tensor, sparse_user: torch.Tensor,
                            sparse_item: torch.Tensor, temperature: float) -> list[Update]:
    """The parameters' gradients of the policy-gradient surrogate from its parts: the rows' weight
    sums c (B,), their expected item rows (B, dim + 1), sum_k w_k item_k per row (B, dim + 1) and
    sum_k w_k e_(item_k) (x) user_(row k) (n_items, dim + 1); the dense part of the items' gradient
    is one product with the policy."""
    user_grad = (c[:, None] * expected - sparse_user)[:, :-1]
    item_grad = policy.item_sum(users_ext * c[:, None]) - sparse_item
    if temperature != 1:
        user_grad /= temperature
        item_grad /= temperature
    return [
        (model.user_emb, users, user_grad),
        (model.item_emb, None, item_grad[:, :-1]),
        (model.item_bias, None, item_grad[:, -1]),
    ]


def pair_products(
    rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int],
    left: torch.Tensor, right: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W @ right, W.T @ left) for the sparse W of ``shape`` summing ``values`` at (rows, cols).

    This is how per-sample gradients reach their rows: on CPU through scipy's CSR products,
    many times faster than ``index_add_`` of the per-sample rows; elsewhere with ``index_add_``.
    """
    if rows.device.type != "cpu":
        return (torch.zeros(shape[0], right.shape[1], dtype=right.dtype, device=right.device)
                .index_add_(0, rows, _rows(right, cols) * values[:, None]),
                torch.zeros(shape[1], left.shape[1], dtype=left.dtype, device=left.device)
                .index_add_(0, cols, _rows(left, rows) * values[:, None]))
    if rows.numel() > 1 and bool((rows[1:] < rows[:-1]).any()):
        order = torch.argsort(rows)
        rows, cols, values = rows[order], cols[order], values[order]
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows.numpy(), minlength=shape[0]), out=indptr[1:])
    W = sp.csr_matrix((values.numpy(), cols.numpy(), indptr), shape=shape)
    return torch.from_numpy(W @ right.numpy()), torch.from_numpy(W.T @ left.numpy())


def packed_users(model: MatrixFactorization, users: torch.Tensor | None = None) -> torch.Tensor:
    """[user_emb | 1] for the users' rows (or all), a new tensor: dotted with a row of
    ``packed_items`` it gives score(u, i)."""
    user_emb = model.user_emb if users is None else _rows(model.user_emb, users)
    return torch.cat([user_emb, torch.ones_like(user_emb[:, :1])], 1).detach()


def packed_items(model: MatrixFactorization) -> torch.Tensor:
    """[item_emb | item_bias] (n_items, dim + 1), a new tensor."""
    return torch.cat([model.item_emb, model.item_bias[:, None]], 1).detach()


def _occurrences(index: torch.Tensor, n: int) -> torch.Tensor:
    return torch.bincount(index, minlength=n).to(torch.get_default_dtype())


def _rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    # index_select is several times faster than advanced indexing on CPU.
    return table.index_select(0, index)


def _half_square(*tensors: torch.Tensor) -> torch.Tensor:
    return sum(t.square().sum() for t in tensors) / 2
