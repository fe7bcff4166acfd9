"""Save and load a trained IRGAN run: a plain dict of tensors, config and id maps, written
atomically and read back with ``torch.load(weights_only=True)`` so no code runs on load."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from irgan.config import IRGANConfig
from irgan.models import Discriminator, Generator

FORMAT = "irgan-checkpoint-v1"
STATE_FORMAT = "irgan-train-state-v1"
STATE_KEYS = {"epoch", "seconds", "config", "fingerprint", "generator", "discriminator", "g_opt", "d_opt", "rng",
              "fake_items", "history", "best_generator", "best_discriminator"}


@dataclass
class Checkpoint:
    """What a run leaves behind: both players, the config, and the raw ids of rows and columns."""

    generator: Generator
    discriminator: Discriminator
    config: IRGANConfig
    user_ids: np.ndarray
    item_ids: np.ndarray
    extra: dict


def save_checkpoint(path: str | Path, generator: Generator, discriminator: Discriminator, config: IRGANConfig,
                    user_ids: np.ndarray, item_ids: np.ndarray, **extra) -> None:
    """Write the checkpoint to ``path`` through a temporary file and an atomic rename."""
    state = {
        "format": FORMAT,
        "generator": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
        "discriminator": {k: v.detach().cpu() for k, v in discriminator.state_dict().items()},
        "config": dataclasses.asdict(config),
        "user_ids": np.asarray(user_ids).tolist(),
        "item_ids": np.asarray(item_ids).tolist(),
        "extra": extra,
    }
    atomic_write(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; anything else raises ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for foreign files
        raise ValueError(f"{path} is not a loadable irgan checkpoint: {_first_line(err)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an irgan checkpoint (expected format {FORMAT!r})")
    try:
        config = IRGANConfig(**state["config"])
        players = [cls.from_arrays(state[key]["user_emb"], state[key]["item_emb"], state[key]["item_bias"])
                   for cls, key in ((Generator, "generator"), (Discriminator, "discriminator"))]
        return Checkpoint(*players, config, np.asarray(state["user_ids"]), np.asarray(state["item_ids"]), state["extra"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} is a damaged irgan checkpoint: {_first_line(err)}") from None


def atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def data_fingerprint(*matrices: sp.csr_matrix) -> str:
    """A digest of the shapes and positives of the matrices a run was trained on."""
    digest = hashlib.sha256()
    for matrix in matrices:
        matrix = sp.csr_matrix(matrix)
        digest.update(np.asarray(matrix.shape, dtype=np.int64).tobytes())
        digest.update(matrix.indptr.astype(np.int64).tobytes())
        digest.update(matrix.indices.astype(np.int64).tobytes())
    return digest.hexdigest()


def save_train_state(path: str | Path, state: dict) -> None:
    """Write a resumable training state (tensors, numbers, strings and containers only)."""
    atomic_write(Path(path), lambda f: torch.save({"format": STATE_FORMAT, **state}, f))


def load_train_state(path: str | Path, config: IRGANConfig, fingerprint: str) -> dict:
    """Read a training state, refusing one written for another config or other data."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a loadable irgan training state: {_first_line(err)}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not an irgan training state (expected format {STATE_FORMAT!r})")
    missing = STATE_KEYS - state.keys()
    if missing:
        raise ValueError(f"{path} is a damaged irgan training state: it lacks {sorted(missing)}")
    if state["config"] != dataclasses.asdict(config):
        changed = sorted(k for k, v in dataclasses.asdict(config).items() if state["config"].get(k) != v)
        raise ValueError(f"{path} was written with another config (differs in {changed}): cannot resume")
    if state["fingerprint"] != fingerprint:
        raise ValueError(f"{path} was written for other data (different shape or positives): cannot resume")
    return state


def _first_line(err: BaseException) -> str:
    lines = str(err).splitlines()
    return lines[0] if lines else type(err).__name__
