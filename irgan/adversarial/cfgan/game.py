"""CFGAN's training loop (Chae et al., CIKM 2018), as the authors' code runs it.

Each outer epoch draws the ZR and PM samples of every vector (each a share of its unobserved
entries, uniform without replacement), then makes ``d_steps`` passes of D and ``g_steps`` passes
of G over the vectors in shuffled mini-batches. D learns to tell (c, c) from (c, G(c) ⊙ m), m
the vector's observed entries plus its PM sample; G learns to fool D while pushing its outputs on
the ZR sample to zero. Losses are the authors': sigmoid cross-entropy on D's logits (G's the
non-saturating one), the ZR term a batch mean of sums of squares, and L2 the authors' l2 x ½‖θ‖²
on every weight and bias, applied as Adam's coupled weight decay (its gradient, l2 x θ), so the
losses reported leave it out.

Every vector is held dense, with its epoch's masks and G's outputs: a few (n_users, n_items)
float32 tensors, as the authors' code holds them.
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from irgan.adversarial.cfgan.config import CFGANConfig
from irgan.adversarial.cfgan.nets import DiscriminatorNet
from irgan.adversarial.cfgan.scorer import CFGANScorer
from irgan.device import resolve_device
from irgan.progress import bar

log = logging.getLogger(__name__)

#: ``on_epoch(epoch, scorer)`` runs after each outer epoch (0-based); True stops training.
EpochHook = Callable[[int, CFGANScorer], bool]


@dataclass
class CFGANFit:
    """What ``train_cfgan`` returns: G as a scorer, D, the outer epochs run and one row of mean
    batch losses per epoch ({"epoch", "d_loss", "g_loss"})."""

    scorer: CFGANScorer
    discriminator: DiscriminatorNet
    epochs: int
    losses: list[dict]


def sample_unobserved(observed: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """A 0/1 float mask (rows, cols) marking, in each row, floor(ratio x its unobserved count) of its
    unobserved entries (``observed`` False), uniform without replacement, as the authors draw them.

    The chosen entries are each row's that many smallest of uniform keys. Rather than sort the
    keys, the threshold is sought near ``ratio``, where it lies: among the largest keys below
    ``ratio`` when too many fell below it, among the smallest above when too few (two top-k of a
    few dozen per row, where a sort costs many times more)."""
    rows, cols = observed.shape
    unobserved = (~observed).sum(1, dtype=torch.float64)
    counts = torch.floor(unobserved * ratio + 1e-9).long()  # the authors' int(n * 70 / 100), ratio 0.7
    keys = torch.rand(rows, cols, generator=generator, dtype=torch.float64, device=observed.device)
    keys.masked_fill_(observed, 2.0)  # above every threshold: never chosen
    below = keys < ratio
    extra = below.sum(1) - counts  # > 0: drop the largest keys below ratio; < 0: add the smallest above
    drop = extra.clamp(min=0)
    largest_below = torch.where(below, keys, -1.0).topk(min(int(drop.max()) + 1, cols), dim=1).values
    threshold = largest_below.gather(1, drop.unsqueeze(1)).squeeze(1)
    if bool((extra < 0).any()):
        add = (-extra).clamp(min=1)
        smallest_above = torch.where(below, 3.0, keys).topk(int(add.max()), dim=1, largest=False).values
        threshold = torch.where(extra < 0, smallest_above.gather(1, (add - 1).unsqueeze(1)).squeeze(1), threshold)
    return (keys <= threshold.unsqueeze(1)).float()


def epoch_masks(condition: torch.Tensor, config: CFGANConfig,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One epoch's masks for every vector of ``condition`` (rows, size): where D sees G's output
    (observed entries, plus the PM sample under PM and ZP) and the ZR sample (None under PM)."""
    observed = condition > 0
    mask = condition
    if config.partial_masking:
        mask = condition + sample_unobserved(observed, config.pm_ratio, generator)
    zr = sample_unobserved(observed, config.zr_ratio, generator) if config.zero_reconstruction else None
    return mask, zr


def discriminator_loss(d: nn.Module, condition: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D's loss on a batch: mean -log σ(D(c, real)) + mean -log(1 - σ(D(c, fake)))."""
    return F.softplus(-d(condition, real)).mean() + F.softplus(d(condition, fake)).mean()


def generator_loss(d: nn.Module, condition: torch.Tensor, output: torch.Tensor, mask: torch.Tensor,
                   zr_mask: torch.Tensor | None, zr_coefficient: float) -> torch.Tensor:
    """G's loss on a batch of its ``output`` (batch, size): mean -log σ(D(c, output ⊙ mask)), plus
    ``zr_coefficient`` x the batch mean of the sum of output² over the ZR sample when there is one."""
    loss = F.softplus(-d(condition, output * mask)).mean()
    if zr_mask is not None:
        loss = loss + zr_coefficient * (output.square() * zr_mask).sum(1).mean()
    return loss


def reconstruction_loss(condition: torch.Tensor, output: torch.Tensor, mask: torch.Tensor,
                        zr_mask: torch.Tensor | None, zr_coefficient: float) -> torch.Tensor:
    """G's loss without the adversary, on a batch: the batch mean of the sum of (output ⊙ mask - c)²,
    what D's verdict rewards at its optimum (G's masked output equal to the real vector), plus the
    same ZR term as ``generator_loss``."""
    loss = (output * mask - condition).square().sum(1).mean()
    if zr_mask is not None:
        loss = loss + zr_coefficient * (output.square() * zr_mask).sum(1).mean()
    return loss


def d_step(d: nn.Module, optimizer: torch.optim.Optimizer, condition: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """One update of D on a batch of real vectors ``condition`` and G's masked ``fake`` ones; its loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = discriminator_loss(d, condition, condition, fake)
    loss.backward()
    optimizer.step()
    return loss.detach()


def g_step(g: nn.Module, d: nn.Module, optimizer: torch.optim.Optimizer, condition: torch.Tensor,
           mask: torch.Tensor, zr_mask: torch.Tensor | None, config: CFGANConfig) -> torch.Tensor:
    """One update of G on a batch of condition vectors and their masks (D left as it is; without
    ``config.adversary``, G fits the real vectors instead); its loss."""
    optimizer.zero_grad(set_to_none=True)
    if config.adversary:
        loss = generator_loss(d, condition, g(condition), mask, zr_mask, config.zr_coefficient)
    else:
        loss = reconstruction_loss(condition, g(condition), mask, zr_mask, config.zr_coefficient)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_cfgan(matrix: sp.spmatrix, config: CFGANConfig = CFGANConfig(), seed: int = 0,
                device: torch.device | str = "auto", show_progress: bool = False,
                on_epoch: EpochHook | None = None) -> CFGANFit:
    """Train CFGAN on the positives of ``matrix`` (csr (n_users, n_items); any stored non-zero is a
    positive) for ``config.epochs`` outer epochs, or until ``on_epoch`` returns True.

    The networks start from ``seed`` (a CPU generator, so a seed builds the same start on any
    device); the samples and the batch orders come from a generator on ``device`` seeded alike.
    """
    matrix = sp.csr_matrix(matrix)
    matrix.eliminate_zeros()
    if matrix.nnz == 0:
        raise ValueError("cannot train CFGAN on a matrix with no positives")
    device = resolve_device(device)
    start = torch.Generator().manual_seed(seed)
    scorer = CFGANScorer(*matrix.shape, config.mode, config.g_hidden, config.g_layers, config.activation,
                         interactions=(matrix != 0).astype("float32"), generator=start).to(device)
    d = DiscriminatorNet(scorer.condition_size, config.d_hidden, config.d_layers, config.activation,
                         generator=start).to(device)
    g = scorer.net
    g_optimizer = _adam(g, config.g_lr, config.g_l2)
    d_optimizer = _adam(d, config.d_lr, config.d_l2)
    sampler = torch.Generator(device).manual_seed(seed)
    condition = scorer.conditions()
    losses: list[dict] = []
    began, epochs = time.perf_counter(), 0
    for epoch in bar(show_progress, iterable=range(config.epochs), desc="CFGAN"):
        mask, zr = epoch_masks(condition, config, sampler)
        d_losses = []
        if config.adversary:
            with torch.no_grad():  # G is fixed while D trains: its outputs are computed once
                fake = g(condition) * mask
            d_losses = [d_step(d, d_optimizer, condition[rows], fake[rows])
                        for _ in range(config.d_steps) for rows in _batches(len(condition), config.d_batch_size, sampler)]
        with _frozen(d):
            g_losses = [g_step(g, d, g_optimizer, condition[rows], mask[rows], None if zr is None else zr[rows], config)
                        for _ in range(config.g_steps)
                        for rows in _batches(len(condition), config.g_batch_size, sampler)]
        epochs = epoch + 1
        losses.append({"epoch": epochs, "d_loss": _mean(d_losses), "g_loss": _mean(g_losses)})
        log.debug("CFGAN epoch %d/%d: D loss %.4f, G loss %.4f, %.1f s", epochs, config.epochs,
                  losses[-1]["d_loss"], losses[-1]["g_loss"], time.perf_counter() - began)
        if on_epoch is not None and on_epoch(epoch, scorer):
            break
    log.info("CFGAN: %d epochs in %.1f s", epochs, time.perf_counter() - began)
    return CFGANFit(scorer, d, epochs, losses)


def _adam(module: nn.Module, lr: float, l2: float) -> torch.optim.Adam:
    """Adam over ``module``'s parameters; its (coupled) weight decay ``l2`` adds l2 x θ to each
    gradient, the gradient of the authors' l2 x ½‖θ‖² on every weight and bias."""
    try:
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=l2, fused=True)
    except RuntimeError:  # torch before 2.4 fuses Adam on CUDA only
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=l2)


def _batches(n: int, size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Row indices of one pass over n vectors: a new random order, cut into batches of ``size``."""
    return iter(torch.randperm(n, generator=generator, device=generator.device).split(size))


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """``module``'s parameters take no gradient while active (G's steps leave D's alone)."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


def _mean(values: list[torch.Tensor]) -> float:
    return float(torch.stack(values).mean()) if values else math.nan


__all__ = ["CFGANFit", "EpochHook", "d_step", "discriminator_loss", "epoch_masks", "g_step", "generator_loss",
           "reconstruction_loss", "sample_unobserved", "train_cfgan"]
