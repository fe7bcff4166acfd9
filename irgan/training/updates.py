"""How each player takes a step: the hand-derived MF fast path or autograd, behind one interface.

``d_update`` and ``g_update`` pick the fast path (``irgan.training.fast_mf``) for a matrix-factorisation
scorer with ``fast_path`` on, and autograd (``irgan.training.objectives`` with ``torch.optim``) for any
other scorer; both paths give the same parameters for MF (tests/test_objectives.py).
"""
from __future__ import annotations

import torch
from torch import nn

from irgan import kernels
from irgan.config import IRGANConfig
from irgan.distributed import Shard
from irgan.training.fast_mf import (RowOptimizer, packed_items, packed_users, pointwise_loss, policy_gradient_loss,
                                   policy_gradient_updates)
from irgan.training.policy import Policy, rows_buffer
from irgan.models.mf import MatrixFactorization
from irgan.training.sampling import PositiveSet
from irgan.training.objectives import (exact_policy_gradient_objective, l2_term, pointwise_objective,
                              policy_gradient_objective)


def torch_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """'sgd' (plain, as the IRGAN authors') or 'adam', from torch.optim."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}: use 'sgd' or 'adam'")


def is_fast(scorer: nn.Module, fast_path: bool) -> bool:
    """Whether ``scorer`` trains on the hand-derived MF path."""
    return fast_path and type(scorer) is MatrixFactorization


class _Update:
    """A player's optimizer; the L2 of plain SGD adapts to repeated rows (``l2_per_occurrence``)."""

    def __init__(self, scorer: nn.Module, optimizer: str, lr: float, shard: Shard) -> None:
        self.scorer, self.shard, self.sgd_lr = scorer, shard, lr if optimizer == "sgd" else None
        self.optimizer = self._optimizer(optimizer, lr)

    def _optimizer(self, name: str, lr: float):
        return torch_optimizer(name, self.scorer.parameters(), lr)

    def _backward_step(self, loss: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.shard.active:  # every process applies the summed gradient
            for param in self.scorer.parameters():
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
                self.shard.sum(param.grad)
        self.optimizer.step()
        return loss.item()

    def gather_owned(self) -> None:
        """Make the player's tables whole across processes (only the fast path keeps user rows apart)."""
        if isinstance(self.optimizer, RowOptimizer):
            self.optimizer.gather_owned()

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)


class DUpdate(_Update):
    """D's step by autograd: pointwise BCE on (user, item, label) plus L2."""

    def __call__(self, users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor, l2: float) -> float:
        return self._backward_step(pointwise_objective(self.scorer, users, items, labels, l2, self.sgd_lr, self.shard))

    def triples(self, users: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, batch: torch.Tensor | None,
                l2: float) -> float:
        """One step on the pairs (users[k], real[k], 1) and (users[k], fake[k], 0) of the triples k in
        ``batch``, all reals then all fakes; ``batch`` None: every triple, its two pairs side by side."""
        if batch is None:
            labels = torch.tensor([1.0, 0.0], device=users.device).repeat(len(users))
            return self(users.repeat_interleave(2), torch.stack([real, fake], 1).view(-1), labels, l2)
        labels = torch.cat([torch.ones(len(batch), device=users.device), torch.zeros(len(batch), device=users.device)])
        return self(users.index_select(0, batch).repeat(2),
                    torch.cat([real.index_select(0, batch), fake.index_select(0, batch)]), labels, l2)


class FastDUpdate(DUpdate):
    """D's step on the MF fast path; with plain SGD on the CPU, one compiled pass (``kernel``)."""

    kernel = True

    def __init__(self, scorer: nn.Module, optimizer: str, lr: float, shard: Shard) -> None:
        super().__init__(scorer, optimizer, lr, shard)
        self._scratch: dict = {}  # the D kernel's zeroed user buffers, kept between steps

    def _optimizer(self, name: str, lr: float):
        return RowOptimizer(name, list(self.scorer.parameters()), lr, self.shard, local=[self.scorer.user_emb])

    @torch.no_grad()
    def __call__(self, users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor, l2: float) -> float:
        if self._on_kernel():
            return self._kernel_step(l2, users, items, labels)
        loss, grads = pointwise_loss(self.scorer, users, items, labels, l2, self.sgd_lr, self.shard)
        self.optimizer.step(grads)
        return loss

    @torch.no_grad()
    def triples(self, users: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, batch: torch.Tensor | None,
                l2: float) -> float:
        if batch is None and self._on_kernel() and users.dtype == real.dtype == fake.dtype == torch.long:
            return self._kernel_step(l2, users, real, None, fake)  # a full step: the kernel reads the triples
        return super().triples(users, real, fake, batch, l2)  # a minibatch's pairs gathered first: faster at scale

    def _on_kernel(self) -> bool:
        return (self.kernel and self.sgd_lr is not None and kernels.enabled(self.scorer.item_emb)
                and self.scorer.item_emb.dtype == torch.float32)

    def _kernel_step(self, l2: float, users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor | None,
                     fake: torch.Tensor | None = None) -> float:
        """``pointwise_loss`` and an SGD step in one compiled pass over the pairs (``kernels.pointwise_sgd``'s);
        the items' gradients and counts summed over processes, each item shrunk as its count of SGD steps would."""
        D, lr = self.scorer, self.sgd_lr
        loss, item_sums = kernels.pointwise_sgd(D.user_emb.detach(), D.item_emb.detach(), D.item_bias.detach(),
                                                users, items, labels, lr, l2, self._scratch, fake)
        if self.shard.active:
            self.shard.sum(item_sums)  # gradients and counts in one all-reduce
        shrink = (1 - lr * l2) ** item_sums[:, -1]
        D.item_emb.mul_(shrink[:, None]).sub_(item_sums[:, :-2], alpha=lr)
        D.item_bias.mul_(shrink).sub_(item_sums[:, -2], alpha=lr)
        return loss


class GUpdate(_Update):
    """G's policy-gradient step by autograd, for sampled ``items`` of batch rows ``rows`` with
    ``weights``; ``policy`` is G's softmax for the batch before the step.
    Returns the entropy of each row's softmax before the step (B,)."""

    def __call__(self, users: torch.Tensor, temperature: float, l2: float, rows: torch.Tensor, items: torch.Tensor,
                 weights: torch.Tensor, policy: Policy) -> torch.Tensor:
        log_p = torch.log_softmax(self.scorer.score_users(users) / temperature, 1)
        loss = policy_gradient_objective(log_p, rows, items, weights)
        self._backward_step(loss + l2_term(self.scorer, l2, users, users[:0]))
        return _entropy(policy.p, log_p)

    def policy(self, users: torch.Tensor, temperature: float) -> Policy:
        """G's softmax for a batch of users, before the step."""
        with torch.no_grad():
            logits = self.scorer.score_users(users)
            if temperature != 1:
                logits /= temperature
            return Policy.of_logits(logits)

    def exact(self, users: torch.Tensor, temperature: float, l2: float,
              reward: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step along the exact expected gradient, ``reward`` (B, n_items) given for every item.
        Returns each row's entropy and expected reward under G before the step, both (B,)."""
        log_p = torch.log_softmax(self.scorer.score_users(users) / temperature, 1)
        self._backward_step(exact_policy_gradient_objective(log_p, reward) + l2_term(self.scorer, l2, users, users[:0]))
        p = log_p.detach().exp()
        return _entropy(p, log_p), (p * reward).sum(1)


class FastGUpdate(GUpdate):
    """G's policy-gradient step on the MF fast path (REINFORCE or SNIS weights)."""

    def _optimizer(self, name: str, lr: float):
        return RowOptimizer(name, list(self.scorer.parameters()), lr, self.shard, local=[self.scorer.user_emb])

    @torch.no_grad()
    def policy(self, users: torch.Tensor, temperature: float) -> Policy:
        """G's softmax for the batch, valid until the next call: its rows go into ``_policy_rows``."""
        return Policy.of_mf(packed_users(self.scorer, users), packed_items(self.scorer), temperature,
                            self._policy_rows(users))

    def _policy_rows(self, users: torch.Tensor) -> torch.Tensor:
        """The one buffer every batch's softmax rows go into (``rows_buffer``), grown when a batch needs more."""
        self._rows = rows_buffer(getattr(self, "_rows", None), len(users) * self.scorer.n_items)
        return self._rows

    @torch.no_grad()
    def __call__(self, users: torch.Tensor, temperature: float, l2: float, rows: torch.Tensor, items: torch.Tensor,
                 weights: torch.Tensor, policy: Policy) -> torch.Tensor:
        G = self.scorer
        _, grads = policy_gradient_loss(G, users, rows, items, weights, temperature, policy=policy)
        return self._step(users, grads, policy, policy.expected(packed_items(G)), temperature, l2)

    def _step(self, users: torch.Tensor, grads: list, policy: Policy, expected: torch.Tensor, temperature: float,
              l2: float) -> torch.Tensor:
        """Apply ``grads`` (with G's L2 on the users' rows); the rows' entropy before the step, from
        the policy and its expected item row (B, dim + 1)."""
        G = self.scorer
        if l2 > 0:
            grads.append((G.user_emb, users, l2 * G.user_emb[users].detach()))
        entropy = policy.entropy(((G.user_emb.index_select(0, users) * expected[:, :-1]).sum(1) + expected[:, -1])
                                 / temperature)
        self.optimizer.step(grads)
        return entropy

    def fuses(self, D: nn.Module) -> bool:
        """Whether ``fused`` can play G's step against the discriminator ``D``: both MF, on the kernels."""
        return type(D.scorer) is MatrixFactorization and all(
            kernels.enabled(t) and t.dtype == torch.float32 for t in (self.scorer.item_emb, D.scorer.item_emb))

    @torch.no_grad()
    def fused(self, users: torch.Tensor, D: nn.Module, positives: PositiveSet, config: IRGANConfig,
              rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``game._g_draws`` then this step in one compiled pass per softmax row (``kernels.g_step``),
        from the same uniforms of ``rng``. Returns the rows' entropy before the step, D's rewards and
        the items drawn."""
        G, temperature = self.scorer, config.g_temperature
        counts = config.g_sample_factor * positives.counts.index_select(0, users)
        users_ext = packed_users(G, users)
        out = kernels.g_step(users_ext, packed_items(G), temperature, counts, rng, self._policy_rows(users),
                             config.g_mix, users, positives, D.scorer.user_emb.detach(), D.scorer.item_emb.detach(),
                             D.scorer.item_bias.detach(), config.reward, config.g_estimator)
        policy = Policy(out["e"], out["z"], out["m"])
        grads = policy_gradient_updates(G, users, users_ext, policy, out["c"], out["expected"], out["sparse_user"],
                                        out["sparse_item"], temperature)
        return self._step(users, grads, policy, out["expected"], temperature, config.g_l2), out["rewards"], out["items"]

    def exact(self, users: torch.Tensor, temperature: float, l2: float,
              reward: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise ValueError("g_estimator 'exact' runs on autograd: build the update with fast_path=False")


def _entropy(p: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    return -(p * log_p.detach()).sum(1)


def d_update(scorer: nn.Module, optimizer: str, lr: float, fast_path: bool, shard: Shard = Shard()) -> DUpdate:
    return (FastDUpdate if is_fast(scorer, fast_path) else DUpdate)(scorer, optimizer, lr, shard)


def g_update(scorer: nn.Module, optimizer: str, lr: float, fast_path: bool, shard: Shard = Shard()) -> GUpdate:
    return (FastGUpdate if is_fast(scorer, fast_path) else GUpdate)(scorer, optimizer, lr, shard)
