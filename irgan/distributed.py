"""Data-parallel IRGAN on torch.distributed: users sharded across processes, parameters replicated.

Every process holds all of G and D and the users ``u % world == rank``. Each D and G step sums
the item gradients over the processes before applying them, so the item tables stay identical
everywhere, and a step is the one a single process would take on all the users' samples. A
user's rows change only in the process that owns the user: on the MF fast path their gradients
are applied there alone (``RowOptimizer(local=...)``) and the user tables are gathered whole
(``Shard.gather_owned``) when they are read in full: before each evaluation and state save.
Other scorers sum every gradient. Selection metrics are summed over the shards. Launch with ``torchrun``;
see the README, "Several processes and machines".
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    """This process's place in the job: ``rank`` of ``world`` processes (0 of 1 when alone)."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    def owns(self, users: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the ``users`` this process trains and evaluates."""
        return users % self.world == self.rank

    def rows(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """``matrix`` with the rows of other processes' users emptied (shape kept)."""
        return keep_rows(matrix, np.arange(matrix.shape[0]) % self.world == self.rank)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the processes, in place; unchanged when alone."""
        if self.active:
            device = _collective_device()  # NCCL sums CUDA tensors only, gloo CPU ones best
            if tensor.device == device:
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            else:
                summed = tensor.to(device)
                dist.all_reduce(summed, op=dist.ReduceOp.SUM)
                tensor.copy_(summed)
        return tensor

    def gather_owned(self, table: torch.Tensor) -> torch.Tensor:
        """``table`` (n_users, ...) made whole, in place: each row takes the value its owner's process
        holds (the others' copies are set to 0, not multiplied, so that a NaN elsewhere stays out)."""
        if self.active:
            with torch.no_grad():
                table[~self.owns(torch.arange(table.shape[0], device=table.device))] = 0
                self.sum(table)
        return table

    def max(self, value: int) -> int:
        """The largest ``value`` any process holds, so that all take the same number of steps."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.long, device=_collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())


def keep_rows(matrix: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """``matrix`` (csr) with the rows where ``keep`` (bool, one per row) is False emptied, shape and
    dtype kept, the kept rows' entries as they were."""
    matrix = sp.csr_matrix(matrix)
    counts = np.diff(matrix.indptr)
    entries = np.repeat(keep, counts)
    indptr = np.concatenate([[0], np.cumsum(np.where(keep, counts, 0))])
    return sp.csr_matrix((matrix.data[entries], matrix.indices[entries], indptr), shape=matrix.shape)


def current() -> Shard:
    """The shard of this process: from the initialised process group, else a lone process."""
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return Shard()


def init_from_env(device: torch.device) -> Shard:
    """Join the process group ``torchrun`` describes in the environment (WORLD_SIZE > 1):
    NCCL on CUDA, one GPU per local rank; gloo on CPU. A lone process gets Shard()."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return Shard()
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return current()


def local_device(device: torch.device) -> torch.device:
    """On CUDA, the GPU of this process's local rank; otherwise ``device``."""
    if device.type == "cuda" and current().active:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
