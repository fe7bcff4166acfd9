"""CFGAN's two networks, MLPs over purchase vectors (Chae et al., CIKM 2018): G rebuilds a vector
from itself (the condition; no noise, as in the authors' code) and D tells a real vector from G's,
given the condition. Layers start as the authors' do: weights Glorot-uniform, biases
uniform(-0.01, 0.01); hidden layers use one activation, output layers are linear.

A condition is a 0/1 purchase vector, mostly zeros: the layers that read one (``SparseLinear``)
read only its non-zero entries, which spares most of the first layer's work.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound, generator=generator))


def _glorot(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6 / (fan_in + fan_out))


def _generator(generator: torch.Generator | None) -> torch.Generator:
    """``generator``, or one seeded 0: building a network never draws from the global RNG."""
    return generator if generator is not None else torch.Generator().manual_seed(0)


class SparseLinear(nn.Module):
    """x @ W + b, W (fan_in, fan_out), for inputs x (batch, fan_in) that are mostly zeros: only
    their non-zero entries are read (an embedding bag). No gradient flows to x."""

    def __init__(self, fan_in: int, fan_out: int, bound: float, generator: torch.Generator, bias: bool = True) -> None:
        super().__init__()
        self.weight = _uniform((fan_in, fan_out), bound, generator)
        self.bias = _uniform((fan_out,), 0.01, generator) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = x.nonzero(as_tuple=True)
        offsets = torch.searchsorted(rows, torch.arange(len(x), device=x.device))
        out = F.embedding_bag(cols, self.weight, offsets, mode="sum", per_sample_weights=x[rows, cols].detach())
        return out if self.bias is None else out + self.bias


def mlp(sizes: list[int], activation: str, generator: torch.Generator | None = None) -> nn.Sequential:
    """Dense layers sizes[0] -> sizes[1] -> ... -> sizes[-1] with ``activation`` after each but the
    last, drawn from ``generator`` (one seeded 0 when None)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    generator = _generator(generator)
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = nn.utils.skip_init(nn.Linear, fan_in, fan_out)
        layer.weight, layer.bias = _uniform((fan_out, fan_in), _glorot(fan_in, fan_out), generator), \
            _uniform((fan_out,), 0.01, generator)
        layers.append(layer)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def _check(size: int, hidden: int, layers: int, activation: str) -> None:
    if min(size, hidden, layers) < 1:
        raise ValueError(f"size, hidden and layers must be positive, got {size}, {hidden}, {layers}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")


class GeneratorNet(nn.Module):
    """G: a 0/1 condition vector (batch, size) to real scores (batch, size), the rebuilt vector,
    through ``layers`` hidden layers of ``hidden`` units."""

    def __init__(self, size: int, hidden: int = 400, layers: int = 1, activation: str = "sigmoid",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        _check(size, hidden, layers, activation)
        generator = _generator(generator)
        self.size = size
        self.first = SparseLinear(size, hidden, _glorot(size, hidden), generator)
        self.rest = nn.Sequential(ACTIVATIONS[activation](), *mlp([hidden] * layers + [size], activation, generator))

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        return self.rest(self.first(condition))


class DiscriminatorNet(nn.Module):
    """D: a 0/1 condition vector and a purchase vector, both (batch, size), to the logit (batch,)
    that the vector is the condition's real one. Its first layer reads their concatenation
    (batch, 2 size), held as two halves: one for the condition, one for the vector."""

    def __init__(self, size: int, hidden: int = 125, layers: int = 1, activation: str = "sigmoid",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        _check(size, hidden, layers, activation)
        generator = _generator(generator)
        self.size = size
        bound = _glorot(2 * size, hidden)  # one (2 size, hidden) layer, as the authors build it
        self.condition_layer = SparseLinear(size, hidden, bound, generator)
        self.vector_weight = _uniform((size, hidden), bound, generator)
        self.rest = nn.Sequential(ACTIVATIONS[activation](), *mlp([hidden] * layers + [1], activation, generator))

    def forward(self, condition: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        return self.rest(self.condition_layer(condition) + vector @ self.vector_weight).squeeze(1)


__all__ = ["DiscriminatorNet", "GeneratorNet", "SparseLinear", "mlp"]
