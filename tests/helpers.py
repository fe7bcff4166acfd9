"""Test data shared by several test modules."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp


def planted(seed: int = 0, n_groups: int = 3, users_per_group: int = 20, items_per_group: int = 20,
            n_train: int | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Users in groups, each group liking its own block of items: ``n_train`` (default half) of
    each user's block is train, the rest test. Item popularity carries no signal, the groups
    carry all of it. Returns (train, test), csr_matrix float32 of shape (n_groups * users, n_groups * items)."""
    n_train = items_per_group // 2 if n_train is None else n_train
    rng = np.random.default_rng(seed)
    n_users, n_items = n_groups * users_per_group, n_groups * items_per_group
    train, test = np.zeros((n_users, n_items), np.float32), np.zeros((n_users, n_items), np.float32)
    for u in range(n_users):
        block = rng.permutation(items_per_group) + (u // users_per_group) * items_per_group
        train[u, block[:n_train]] = 1
        test[u, block[n_train:]] = 1
    return sp.csr_matrix(train), sp.csr_matrix(test)


class Evil:
    """Pickles into a call of os.system("touch marker"): unpickling it unsafely creates the marker."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        import os
        import shlex
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


N_USERS, N_ITEMS, DIM = 5, 8, 3  # the small MF scorer whose gradients the fast-path and objective tests check


def seeded(seed: int = 0):
    import torch
    return torch.Generator().manual_seed(seed)


def make_model(seed: int = 0, n_users: int = N_USERS, n_items: int = N_ITEMS):
    """A small MF scorer with large enough parameters, non-zero biases included, for gradients to matter."""
    import torch
    from irgan.models import MatrixFactorization
    model = MatrixFactorization(n_users, n_items, DIM, init_scale=0.7, generator=seeded(seed))
    with torch.no_grad():
        model.item_bias.copy_(torch.randn(n_items, generator=seeded(seed + 100)) * 0.5)
    return model


def repeated_batch(n: int = 40, seed: int = 0):
    """(users, items, items) index tensors (n,) with many repeats: gradients must accumulate per row."""
    import torch
    g = seeded(seed)
    return (torch.randint(N_USERS, (n,), generator=g), torch.randint(N_ITEMS, (n,), generator=g),
            torch.randint(N_ITEMS, (n,), generator=g))


REPO = Path(__file__).resolve().parents[1]
WAIT_S = 120  # generous: the machine may be busy; a healthy small run takes a few seconds


def start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """``python -m irgan.train ARGS`` as a real process, one thread, its output to ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with open(log, "wb") as out:  # a file, not a pipe: a full pipe would stall the child
        return subprocess.Popen([sys.executable, "-m", "irgan.train", *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    """Until ``path`` exists; the test fails if ``proc`` exits first or WAIT_S pass."""
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run exited ({proc.returncode}) before writing {path}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {path} after {WAIT_S} s")
        time.sleep(0.01)


def zip_of(members: dict[str, bytes | str]) -> bytes:
    """A zip archive in memory holding ``members`` (name -> contents)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def raw_id_ratings(path: Path, n_users: int = 40, n_items: int = 30) -> Path:
    """A CSV at ``path``: 15 ratings (1-5) per user, raw ids that are not 0..n-1 (user 1000 + u,
    item 7 i + 3), so that a mix-up of raw and internal ids shows."""
    rng = np.random.default_rng(0)
    lines = ["user,item,rating"]
    for u in range(n_users):
        for i in rng.choice(n_items, 15, replace=False):
            lines.append(f"{1000 + u},{7 * i + 3},{rng.integers(1, 6)}")
    path.write_text("\n".join(lines) + "\n")
    return path
