"""Read a pretrained scorer's parameters from a file, safely (no code runs on load).

Formats: the IRGAN authors' ``.pkl`` (a Python 2 pickle of [user_emb, item_emb, item_bias],
rows indexed by their 0-based ids, which for MovieLens are the raw ids minus 1), ``.npz`` with
arrays ``user_emb``, ``item_emb``, ``item_bias`` and optionally ``user_ids``/``item_ids``.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from irgan.models import MatrixFactorization

# The only globals a pickle of plain numpy arrays needs; anything else could run code.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # Python 3 pickles of bytes at protocols 0-2
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return super().find_class(module, name)


def load_model_file(path: str | Path, user_ids: np.ndarray, item_ids: np.ndarray) -> MatrixFactorization:
    """A MatrixFactorization whose rows follow ``user_ids``/``item_ids`` (raw ids of the data).

    A file that stores its own ids is matched id by id; an authors' ``.pkl`` is taken to be
    indexed by raw id - 1. Ids the file does not cover raise ValueError.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.suffix == ".pkl":
        with path.open("rb") as f:
            try:
                arrays = _ArrayUnpickler(f, encoding="latin1").load()
            except (pickle.UnpicklingError, EOFError, ValueError) as err:
                raise ValueError(f"{path}: not a model file of the IRGAN authors' format ({err})") from None
        if not (isinstance(arrays, (list, tuple)) and len(arrays) == 3):
            raise ValueError(f"{path}: expected a list [user_emb, item_emb, item_bias]")
        user_emb, item_emb, item_bias = (np.asarray(a, dtype=np.float32) for a in arrays)
        rows_u = _positions(np.arange(len(user_emb)) + 1, user_ids, path, "user")
        rows_i = _positions(np.arange(len(item_emb)) + 1, item_ids, path, "item")
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            user_emb, item_emb, item_bias = data["user_emb"], data["item_emb"], data["item_bias"]
            file_users = data["user_ids"] if "user_ids" in data else np.arange(len(user_emb)) + 1
            file_items = data["item_ids"] if "item_ids" in data else np.arange(len(item_emb)) + 1
        rows_u = _positions(file_users, user_ids, path, "user")
        rows_i = _positions(file_items, item_ids, path, "item")
    else:
        raise ValueError(f"{path}: unknown model file type {path.suffix!r} (use .pkl or .npz)")
    return MatrixFactorization.from_arrays(user_emb[rows_u], item_emb[rows_i], item_bias[rows_i])


def _positions(file_ids: np.ndarray, wanted: np.ndarray, path: Path, kind: str) -> np.ndarray:
    rows = pd.Index(np.asarray(file_ids).astype(str)).get_indexer(np.asarray(wanted).astype(str))
    if (rows < 0).any():
        missing = np.asarray(wanted)[rows < 0][:5].tolist()
        raise ValueError(f"{path}: has no {kind} rows for id(s) {missing}: it was trained on other data")
    return rows
