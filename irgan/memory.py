"""A memory estimate that refuses, in one line, a configuration that cannot fit.

Without it a typo (``--dim 100000``, ``--g-sample-factor 1000000``) is attempted until the
machine runs out of memory. The estimate counts the players' parameters and their copies, the
largest transient tensors of each phase (DNS candidates, a D batch, a G batch and its samples)
and the data. For the DNS step on an ml-1m-sized matrix (6,040 x 3,706, 575k positives) it gives
2.06 GiB at dim 64 and 8.23 GiB at dim 256, where 2.1 and 8.19 GiB were measured; it refuses only
what needs more than the free memory.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from irgan.config import BPRConfig, IRGANConfig

log = logging.getLogger(__name__)
FLOAT = 4  # bytes per float32
GiB = 2**30


def _pairs(kind: str, config: IRGANConfig, n_pairs: int, n_users: int, n_items: int, grad: bool = True) -> int:
    """Bytes a scorer of ``kind`` holds to score ``n_pairs`` (user, item) pairs of at most ``n_users``
    distinct users: both sides' rows for embeddings (and as much again for their gradients when
    ``grad``); for item-item, a dense catalog row per distinct user."""
    if kind == "itemitem":
        return min(n_pairs, n_users) * n_items * FLOAT * (3 if grad else 2)
    return n_pairs * config.dim * FLOAT * (6 if grad else 3)


def _parameters(kind: str, config: IRGANConfig, n_users: int, n_items: int) -> int:
    """Floats in a built-in scorer of ``kind``; 0 for a scorer of one's own (unknown)."""
    if kind == "mf":
        return (n_users + n_items) * config.dim + n_items
    if kind == "mlp":
        return (n_users + n_items) * config.dim + n_items + 2 * (2 * config.dim * config.hidden + config.hidden + config.dim)
    if kind == "itemitem":
        return n_items * n_items
    if kind == "lightgcn":
        return (n_users + n_items) * config.dim * 2  # the embeddings and their propagated copy
    return 0


def estimate(train: sp.csr_matrix, config: IRGANConfig | BPRConfig, pretraining: bool = True) -> dict[str, int]:
    """Bytes each part of training ``config`` (the game, or BPR alone) on ``train`` (csr (n_users, n_items))
    needs; ``pretraining=False`` leaves out the game's pretraining of G."""
    n_users, n_items = train.shape
    nnz = int(train.nnz)
    game = isinstance(config, IRGANConfig)
    pretrain = config.pretrain if game else config
    setting = config if game else IRGANConfig(dim=config.dim)
    g_kind, d_kind = setting.g_scorer, setting.d_scorer
    candidates = pretrain.dns_candidates if pretrain.negatives == "dns" else 1
    steps = {"DNS candidates": _pairs(g_kind, setting, nnz * candidates, n_users, n_items, grad=False)
             if pretraining else 0}
    adam = 2 if config.optimizer == "adam" else 0  # Adam's two moment buffers per parameter
    if not game:
        parts = {"data": nnz * 8 * 4, "the model": _parameters(g_kind, setting, n_users, n_items) * FLOAT * (1 + adam)}
    else:
        parts = {
            "data": nnz * 8 * 6,  # positives as csr, pairs, G's proposals for D
            "G (player, best, start)": _parameters(g_kind, config, n_users, n_items) * FLOAT * (3 + adam),
            "D (player, best)": _parameters(d_kind, config, n_users, n_items) * FLOAT * (2 + adam),
        }
        batch_positives = int(np.sort(np.diff(train.indptr))[::-1][: config.g_batch_users].sum())
        steps["a D batch"] = _pairs(d_kind, config, 2 * min(config.d_batch_size, nnz), n_users, n_items)
        steps["a G batch"] = (min(config.g_batch_users, n_users) * n_items * FLOAT * 6
                              + config.g_sample_factor * batch_positives * 40
                              + _pairs(g_kind, config, config.g_sample_factor * batch_positives,
                                       min(config.g_batch_users, n_users), n_items))
    name = max(steps, key=steps.get)
    parts[f"the largest step ({name})"] = steps[name]
    return parts


def available(device: torch.device) -> int | None:
    """Bytes free for a new allocation on ``device``, or None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits(train: sp.csr_matrix, config: IRGANConfig | BPRConfig, device: torch.device,
               pretraining: bool = True) -> None:
    """ValueError naming the sizes when training ``config`` on ``train`` needs more memory than ``device`` has free."""
    parts = estimate(train, config, pretraining)
    need, free = sum(parts.values()), available(device)
    log.debug("memory estimate: %s", {k: f"{v / GiB:.2f} GiB" for k, v in parts.items()})
    if free is not None and need > free:
        largest = max(parts, key=parts.get)
        raise ValueError(
            f"this configuration needs about {need / GiB:.1f} GiB on {device} but {free / GiB:.1f} GiB is free "
            f"(the largest part, {largest}, is {parts[largest] / GiB:.1f} GiB): lower dim, the batch sizes "
            "or g_sample_factor")
