"""One model file for the CLI, the estimators and G's pretrained start; the resumable training state.

A model file is a plain dict read back with ``torch.load(weights_only=True)``, so no code runs on
load: the estimator that wrote it, each scorer as (kind, constructor arguments, state dict), the
raw-id maps, the positives seen in fitting, the parameters and what fitting found. Files are
written atomically and checked on load (id maps against table rows, shapes, finite values), each
problem reported in one line.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from irgan.models import SCORERS, Popularity, scorer_kind

log = logging.getLogger(__name__)
FORMAT = "irgan-model-v2"
OLD_FORMATS = ("irgan-checkpoint-v1", "irgan-estimator-v1")
STATE_FORMAT = "irgan-train-state-v2"
STATE_KEYS = {"epoch", "seconds", "config", "fingerprint", "generator", "discriminator", "g_opt", "d_opt", "rng",
              "fake_items", "history", "best_generator", "best_discriminator"}


class ModelFileError(ValueError):
    """A file that is not an irgan model file, or a damaged one."""


@dataclass
class ModelFile:
    """What a model file holds: scorers by role ('generator', 'discriminator', 'model'), raw ids
    (numpy arrays), the positives seen in fitting (csr (n_users, n_items)), the estimator's name,
    its parameters and what fitting found (history, selection, config...)."""

    estimator: str
    scorers: dict[str, nn.Module]
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_items: sp.csr_matrix
    params: dict
    fitted: dict


def save_model(path: str | Path, estimator: str, scorers: dict[str, nn.Module], user_ids: np.ndarray,
               item_ids: np.ndarray, user_items: sp.csr_matrix, params: dict | None = None,
               fitted: dict | None = None) -> None:
    """Write a model file to ``path`` through a temporary file and an atomic rename."""
    m = sp.csr_matrix(user_items)
    state = {
        "format": FORMAT,
        "estimator": estimator,
        "scorers": {role: {"kind": scorer_kind(s), "args": _init_args(s), "state": _plain(s.state_dict())}
                    for role, s in scorers.items()},
        "user_ids": _ids_state(np.asarray(user_ids), "user"),
        "item_ids": _ids_state(np.asarray(item_ids), "item"),
        "user_items": {"shape": list(m.shape), "indptr": torch.from_numpy(m.indptr.astype(np.int64)),
                       "indices": torch.from_numpy(m.indices.astype(np.int64))},
        "params": _plain(params or {}),
        "fitted": _plain(fitted or {}),
    }
    atomic_write(Path(path), lambda f: torch.save(state, f))


def load_model(path: str | Path, scorers: Iterable[type[nn.Module]] = ()) -> ModelFile:
    """Read and check a model file (``save_model``'s, or a version-1 ``model.pt`` / estimator file,
    converted as read). ``scorers``: classes of your own scorers the file may hold, beyond the
    registered ones. Raises FileNotFoundError or ModelFileError with one line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for foreign files
        raise ModelFileError(f"{path} is not a loadable irgan model file: {_first_line(err)}") from None
    if isinstance(state, dict) and state.get("format") in OLD_FORMATS:
        state = _upgrade(state)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an irgan model file (expected format {FORMAT!r})")
    known = {**SCORERS, **{cls.__name__: cls for cls in scorers}}
    try:
        return _read(state, known)
    except ModelFileError as err:
        raise ModelFileError(f"{path}: {err}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as err:
        raise ModelFileError(f"{path} is a damaged irgan model file: {type(err).__name__}: {_first_line(err)[:200]}") from None


def _read(state: dict, known: dict[str, type[nn.Module]]) -> ModelFile:
    user_ids, item_ids = _ids_from_state(state["user_ids"]), _ids_from_state(state["item_ids"])
    shape = tuple(int(n) for n in state["user_items"]["shape"])
    if shape != (len(user_ids), len(item_ids)):
        raise ModelFileError(f"its positives are {shape[0]} x {shape[1]} but it names {len(user_ids)} users "
                             f"and {len(item_ids)} items")
    indices, indptr = state["user_items"]["indices"].numpy(), state["user_items"]["indptr"].numpy()
    user_items = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)
    user_items.check_format(full_check=True)
    players = {role: _scorer(role, spec, known, shape) for role, spec in state["scorers"].items()}
    return ModelFile(state["estimator"], players, user_ids, item_ids, user_items, state["params"], state["fitted"])


def _scorer(role: str, spec: dict, known: dict[str, type[nn.Module]], shape: tuple[int, int]) -> nn.Module:
    """Rebuild one scorer from (kind, args, state), checked against the id maps."""
    kind, args, tensors = spec["kind"], dict(spec["args"]), spec["state"]
    if kind not in known:
        raise ModelFileError(f"its {role} is a {kind!r} scorer, which irgan does not know: pass scorers=[{kind}] "
                             f"to load, or register it with irgan.models.register_scorer")
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise ModelFileError(f"its {role}'s {bad} holds NaN or infinite values")
    scorer = known[kind](**args)
    scorer.load_state_dict(tensors)
    sizes = (getattr(scorer, "n_users", shape[0]), getattr(scorer, "n_items", shape[1]))
    if sizes != shape:
        raise ModelFileError(f"its {role} is sized {sizes[0]} x {sizes[1]} but the id maps hold "
                             f"{shape[0]} users x {shape[1]} items")
    return scorer


def _upgrade(old: dict) -> dict:
    """A version-1 file (CLI ``model.pt`` or estimator file, both MF/popularity) in today's layout."""
    if old["format"] == "irgan-checkpoint-v1":
        n = (len(old["user_ids"]), len(old["item_ids"]))
        ids = [{"values": list(old[k]), "dtype": str(np.asarray(old[k]).dtype)} for k in ("user_ids", "item_ids")]
        fitted = {"config": old["config"], **old.get("extra", {})}
        players = {r: old[r] for r in ("generator", "discriminator")}
        empty = {"shape": list(n), "indptr": torch.zeros(n[0] + 1, dtype=torch.long), "indices": torch.zeros(0, dtype=torch.long)}
        params, user_items, name = {**old["config"], "seed": old.get("extra", {}).get("seed", 0)}, empty, "IRGAN"
        log.warning("a version-1 model.pt holds no training positives: recommend(exclude_seen=True) cannot "
                    "leave out what users already had; retrain, or save it again from a fitted estimator")
    else:
        ids, fitted, name = [old["user_ids"], old["item_ids"]], dict(old["fitted"]), old["estimator"]
        players = {r: fitted.pop(r) for r in ("generator", "discriminator", "model") if r in fitted}
        params, user_items, n = old["params"], old["user_items"], tuple(old["user_items"]["shape"])
    scorers = {}
    for role, tensors in players.items():
        if "counts" in tensors:
            scorers[role] = {"kind": "popularity", "args": {"n_items": n[1]}, "state": tensors}
        else:
            scorers[role] = {"kind": "mf", "args": {"n_users": n[0], "n_items": n[1], "dim": int(tensors["user_emb"].shape[1])},
                             "state": tensors}
    return {"format": FORMAT, "estimator": name, "scorers": scorers, "user_ids": ids[0], "item_ids": ids[1],
            "user_items": user_items, "params": params, "fitted": fitted}


def _init_args(scorer: nn.Module) -> dict:
    if hasattr(scorer, "init_args"):
        return _plain(scorer.init_args())
    if isinstance(scorer, Popularity):
        return {"n_items": int(scorer.counts.numel())}
    return {"n_users": int(scorer.n_users), "n_items": int(scorer.n_items)}


def _ids_state(ids: np.ndarray, kind: str) -> dict:
    """Raw ids as a plain list plus their numpy dtype (object for strings), for weights_only files."""
    values = [v.item() if isinstance(v, np.generic) else v for v in ids.tolist()]
    bad = next((v for v in values if not isinstance(v, (str, int, float, bool))), None)
    if bad is not None:
        raise ValueError(f"cannot save {kind} id {bad!r} of type {type(bad).__name__}: ids must be str, int or float")
    return {"values": values, "dtype": str(ids.dtype) if ids.dtype.kind in "biuf" else "object"}


def _ids_from_state(state: dict) -> np.ndarray:
    return np.array(state["values"], dtype=state["dtype"])


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers, paths as strings and tensors detached on
    CPU, so that ``torch.load(weights_only=True)`` reads it back."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    return value


def atomic_write(path: Path, write: Callable) -> None:
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


def load_train_state(path: str | Path, config, fingerprint: str) -> dict:
    """Read a training state, refusing one written for another config or other data."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a loadable irgan training state: {_first_line(err)}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not an irgan training state (expected format {STATE_FORMAT!r}; "
                         "a state from an older irgan cannot be resumed: start the run again)")
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
