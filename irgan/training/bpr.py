"""BPR training of any scorer, with uniform or dynamic (DNS) negatives: a baseline, and G's pretraining.

BPR: Rendle et al., UAI 2009. DNS: Zhang et al., SIGIR 2013 ("Optimizing top-n collaborative
filtering via dynamic negative item sampling"). DNS-BPR with ``BPRConfig()``'s defaults is how the
IRGAN authors pretrained the generator (their ``cf_dns.py``; the paper calls it LambdaFM).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import scipy.sparse as sp
import torch
from torch import nn

from irgan import kernels
from irgan.config import BPRConfig
from irgan.device import resolve_device
from irgan.training.fast_mf import RowOptimizer, bpr_loss, bpr_sgd_step, packed_items, packed_users
from irgan.memory import check_fits
from irgan.models.mf import MatrixFactorization
from irgan.training.objectives import bpr_objective
from irgan.progress import bar
from irgan.training.sampling import PositiveSet, dns_negatives, positive_pairs
from irgan.training.updates import torch_optimizer

log = logging.getLogger(__name__)


@kernels.serial_torch
def fit_bpr(
    train: sp.csr_matrix,
    config: BPRConfig = BPRConfig(),
    seed: int = 0,
    device: torch.device | str = "auto",
    show_progress: bool = False,
    on_epoch: Callable[[int, nn.Module], bool | None] | None = None,
    scorer: nn.Module | None = None,
    fast_path: bool = True,
) -> nn.Module:
    """Train ``scorer`` (default: a new ``MatrixFactorization`` of ``config.dim``) on the positives
    of ``train`` (csr (n_users, n_items)) and return it.

    Each epoch draws one negative per positive pair with the model as it stands at the start
    of the epoch (as the authors' DNS code does), then makes one shuffled pass over the triples
    with loss -log sigmoid(s(u, i) - s(u, j)) + l2/2 (squared norms of the rows touched). An MF
    scorer takes the hand-derived fast path unless ``fast_path=False``; any other, autograd.
    ``on_epoch(epoch, scorer)`` runs after each epoch; training stops early when it returns True.
    """
    train = sp.csr_matrix(train)
    if train.nnz == 0:
        raise ValueError("cannot train BPR on a matrix with no positives")
    device = resolve_device(device)
    check_fits(train, config, device)
    generator = torch.Generator(device).manual_seed(seed)
    if scorer is None:
        scorer = MatrixFactorization(*train.shape, config.dim, config.init_scale,
                                     generator=torch.Generator().manual_seed(seed))
    scorer = scorer.to(device)
    positives = PositiveSet(train, device)
    users, items = positive_pairs(train, device)
    keep = positives.counts[users] < train.shape[1]  # users who liked everything have no negative
    users, items = users[keep], items[keep]
    step = _step(scorer, config, fast_path and type(scorer) is MatrixFactorization)

    candidates = config.dns_candidates if config.negatives == "dns" else 1
    epochs = bar(show_progress, iterable=range(config.epochs), desc=f"BPR-{config.negatives}")
    every, start = max(1, config.epochs // 8), time.perf_counter()  # without a bar: about 8 log lines
    for epoch in epochs:
        negatives = dns_negatives(scorer, positives, users, candidates, generator)
        order = torch.randperm(len(users), generator=generator, device=device)
        step(users[order], items[order], negatives[order])
        if (epoch + 1) % every == 0 or epoch + 1 == config.epochs:
            log.log(logging.INFO if epochs.disable else logging.DEBUG, "BPR-%s: epoch %d/%d, %.1f s",
                    config.negatives, epoch + 1, config.epochs, time.perf_counter() - start)
        if on_epoch is not None and on_epoch(epoch, scorer):
            break
    return scorer


def _step(scorer: nn.Module, config: BPRConfig, fast: bool) -> Callable:
    """One pass of updates over the triples (users, pos, neg) in batches, on the fast MF path (a
    compiled pass on the CPU) or by autograd."""
    def batches(*triples: torch.Tensor):
        return zip(*(t.split(config.batch_size) for t in triples))

    if fast and config.optimizer == "sgd":  # packed tables stepped in place: the fastest
        def packed_pass(users, pos, neg) -> None:
            users_ext, items_ext = packed_users(scorer), packed_items(scorer)
            if kernels.enabled(users_ext) and users_ext.dtype == torch.float32:
                kernels.bpr_sgd(users_ext, items_ext, users, pos, neg, config.batch_size, config.lr, config.l2)
            else:
                for u, i, j in batches(users, pos, neg):
                    bpr_sgd_step(users_ext, items_ext, u, i, j, config.lr, config.l2)
            with torch.no_grad():
                scorer.user_emb.copy_(users_ext[:, :-1])
                scorer.item_emb.copy_(items_ext[:, :-1])
                scorer.item_bias.copy_(items_ext[:, -1])
        return packed_pass
    if fast:
        row_optimizer = RowOptimizer(config.optimizer, list(scorer.parameters()), config.lr)

        def row_pass(users, pos, neg) -> None:
            for u, i, j in batches(users, pos, neg):
                row_optimizer.step(bpr_loss(scorer, u, i, j, config.l2)[1])
        return row_pass
    optimizer = torch_optimizer(config.optimizer, scorer.parameters(), config.lr)

    def autograd_pass(users, pos, neg) -> None:
        for u, i, j in batches(users, pos, neg):
            optimizer.zero_grad(set_to_none=True)
            bpr_objective(scorer, u, i, j, config.l2).backward()
            optimizer.step()
    return autograd_pass
