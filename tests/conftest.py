"""Shared fixtures: the real data folder (skipped when absent) and a seeded generator."""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder holding ml-100k/u.data: $IRGAN_DATA, else <repo>/../shared/data; skips otherwise."""
    candidates = [Path(os.environ["IRGAN_DATA"])] if os.environ.get("IRGAN_DATA") else []
    candidates.append(REPO.parent / "shared" / "data")
    for folder in candidates:
        if (folder / "ml-100k" / "u.data").is_file():
            return folder
    pytest.skip("real data not found: set IRGAN_DATA to a folder holding ml-100k/u.data")


@pytest.fixture(autouse=True, scope="session")
def compiled_kernels():
    """Compile the kernels once, first: the CLI runs the tests start in subprocesses then load them
    from numba's cache instead of each compiling them (seconds each in a fresh clone)."""
    from irgan import kernels

    kernels.warm()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tests' tensors are tiny: one thread is faster than two, and much faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt fails as it would offline, and is counted."""
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return calls
