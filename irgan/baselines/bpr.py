"""BPR matrix factorisation with uniform or dynamic (DNS) negative sampling.

BPR: Rendle et al., UAI 2009. DNS: Zhang et al., SIGIR 2013 ("Optimizing top-n collaborative
filtering via dynamic negative item sampling"). DNS-BPR with the defaults below is how the IRGAN
authors pretrained the generator (their ``cf_dns.py``; the paper calls it LambdaFM).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from irgan.models import MatrixFactorization
from irgan.sampling import PositiveSet, positive_pairs
from irgan.device import resolve_device
from irgan.losses import bpr_loss, bpr_sgd_step, packed_items, packed_users
from irgan.optim import RowOptimizer


@dataclass(frozen=True)
class BPRConfig:
    """Pairwise MF training; the defaults are the IRGAN authors' DNS pretraining."""

    negatives: str = field(default="dns", metadata={"help": "negative sampling: 'uniform' (BPR) or 'dns' (best of dns_candidates)"})
    dns_candidates: int = field(default=5, metadata={"help": "DNS: uniform non-positive candidates per pair; the highest-scored is the negative"})
    dim: int = field(default=5, metadata={"help": "embedding size"})
    init_scale: float = field(default=0.05, metadata={"help": "embeddings start uniform(-init_scale, init_scale)"})
    epochs: int = field(default=80, metadata={"help": "passes over the training positives"})
    lr: float = field(default=0.05, metadata={"help": "learning rate per (user, pos, neg) triple"})
    l2: float = field(default=0.1, metadata={"help": "L2 on the rows a triple touches, per occurrence"})
    optimizer: str = field(default="sgd", metadata={"help": "'sgd' (the authors') or 'adam'"})
    batch_size: int = field(default=64, metadata={"help": "triples per update, losses summed (the authors: 1; see RESULTS.md)"})

    def __post_init__(self) -> None:
        if self.negatives not in ("uniform", "dns"):
            raise ValueError(f"negatives must be 'uniform' or 'dns', got {self.negatives!r}")
        for name in ("dns_candidates", "dim", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def fit_bpr(
    train: sp.csr_matrix,
    config: BPRConfig = BPRConfig(),
    seed: int = 0,
    device: torch.device | str = "auto",
    show_progress: bool = False,
    on_epoch: Callable[[int, MatrixFactorization], None] | None = None,
) -> MatrixFactorization:
    """Train a ``MatrixFactorization`` on the positives of ``train`` (csr (n_users, n_items)).

    Each epoch draws one negative per positive pair with the model as it stands at the start
    of the epoch (as the authors' DNS code does), then makes one shuffled pass of SGD over the
    triples with loss -log sigmoid(s(u, i) - s(u, j)) + l2/2 (|p_u|² + |q_i|² + b_i² + |q_j|² + b_j²).
    """
    train = sp.csr_matrix(train)
    if train.nnz == 0:
        raise ValueError("cannot train BPR on a matrix with no positives")
    device = resolve_device(device)
    generator = torch.Generator(device).manual_seed(seed)
    model = MatrixFactorization(*train.shape, config.dim, config.init_scale, generator=torch.Generator().manual_seed(seed)).to(device)
    positives = PositiveSet(train, device)
    users, items = positive_pairs(train, device)
    keep = positives.counts[users] < train.shape[1]  # users who liked everything have no negative
    users, items = users[keep], items[keep]
    optimizer = RowOptimizer(config.optimizer, list(model.parameters()), config.lr)

    packed = config.optimizer == "sgd"  # plain SGD steps packed tables in place, much faster
    for epoch in tqdm(range(config.epochs), desc=f"BPR-{config.negatives}", disable=not show_progress):
        negatives = draw_negatives(model, positives, users, config, generator)
        order = torch.randperm(len(users), generator=generator, device=device)
        triples = users[order], items[order], negatives[order]
        if packed:
            users_ext, items_ext = packed_users(model), packed_items(model)
            for u, i, j in zip(*(t.split(config.batch_size) for t in triples)):
                bpr_sgd_step(users_ext, items_ext, u, i, j, config.lr, config.l2)
            with torch.no_grad():
                model.user_emb.copy_(users_ext[:, :-1])
                model.item_emb.copy_(items_ext[:, :-1])
                model.item_bias.copy_(items_ext[:, -1])
        else:
            for u, i, j in zip(*(t.split(config.batch_size) for t in triples)):
                optimizer.step(bpr_loss(model, u, i, j, config.l2)[1])
        if on_epoch is not None:
            on_epoch(epoch, model)
    return model


@torch.no_grad()
def draw_negatives(
    model: MatrixFactorization,
    positives: PositiveSet,
    users: torch.Tensor,
    config: BPRConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """One negative per entry of ``users``: uniform, or DNS (the best-scored of k uniform ones)."""
    if config.negatives == "uniform":
        return positives.uniform_negatives(users, generator)
    k = config.dns_candidates
    candidates = positives.uniform_negatives(users.repeat_interleave(k), generator).view(-1, k)
    scores = model.score(users[:, None].expand(-1, k), candidates)
    return candidates.gather(1, scores.argmax(1, keepdim=True)).squeeze(1)
