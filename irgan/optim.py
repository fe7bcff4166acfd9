"""Optimizers that take row-sparse gradients, so a step touches only the rows a batch used."""
from __future__ import annotations

from typing import Sequence

import torch

from irgan.distributed import Shard

# One update: (parameter, rows or None for the whole tensor, gradient of those rows).
Update = tuple[torch.Tensor, "torch.Tensor | None", torch.Tensor]
OPTIMIZERS = ("sgd", "adam")


class RowOptimizer:
    """Plain SGD applied in place to the touched rows (the IRGAN authors' optimizer), or Adam.

    SGD scatters each gradient straight into its parameter with ``index_add_``, so a step costs
    O(batch), not O(catalog). Adam keeps dense moments (torch.optim.Adam semantics). With
    ``shard`` active (torch.distributed), each step first sums the processes' gradients, densely,
    so that every process applies the same update.
    """

    def __init__(self, name: str, params: Sequence[torch.nn.Parameter], lr: float, shard: Shard = Shard()) -> None:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}: choose one of {list(OPTIMIZERS)}")
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.name, self.lr, self.params, self.shard = name, lr, list(params), shard
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
        """One dense gradient per parameter, summed over the processes."""
        dense = {id(p): torch.zeros_like(p) for p in self.params}
        for param, rows, grad in updates:
            if rows is None:
                dense[id(param)].add_(grad)
            else:
                dense[id(param)].index_add_(0, rows, grad)
        return [(p, None, self.shard.sum(dense[id(p)])) for p in self.params]

    def state_dict(self) -> dict:
        return self.adam.state_dict() if self.adam is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.adam is not None:
            self.adam.load_state_dict(state)
