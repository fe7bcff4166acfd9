"""Read a pretrained scorer's parameters from a file, safely: no code runs on load, and an archive
is decompressed only within ``irgan.checkpoint.unpack_limit``.

Formats: the IRGAN authors' ``.pkl`` (a Python 2 pickle of [user_emb, item_emb, item_bias],
rows indexed by their 0-based ids, which for MovieLens are the raw ids minus 1), ``.npz`` with
arrays ``user_emb``, ``item_emb``, ``item_bias`` and optionally ``user_ids``/``item_ids``.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from irgan.checkpoint import check_archive
from irgan.errors import first_line
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
TABLES = ("user_emb", "item_emb", "item_bias")


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
    arrays = load_arrays(path)
    rows_u = _positions(arrays["user_ids"], user_ids, path, "user")
    rows_i = _positions(arrays["item_ids"], item_ids, path, "item")
    return MatrixFactorization.from_arrays(arrays["user_emb"][rows_u], arrays["item_emb"][rows_i],
                                           arrays["item_bias"][rows_i])


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The checked arrays of a ``.pkl`` or ``.npz`` model file: ``user_emb`` (n_users, dim) and
    ``item_emb`` (n_items, dim) float32, ``item_bias`` (n_items,) float32, and the raw ids of their
    rows, ``user_ids`` and ``item_ids`` (row + 1 when the file has none, as in the authors' files).
    Raises FileNotFoundError, or ValueError in one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.suffix == ".pkl":
        arrays = _read_pickle(path)
    elif path.suffix == ".npz":
        arrays = _read_npz(path)
    else:
        raise ValueError(f"{path}: unknown model file type {path.suffix!r} (use .pkl or .npz)")
    return _checked(arrays, path)


def _read_pickle(path: Path) -> dict[str, np.ndarray]:
    with path.open("rb") as f:
        try:
            arrays = _ArrayUnpickler(f, encoding="latin1").load()
        except Exception as err:  # any malformed pickle: UnpicklingError, EOFError, TypeError, MemoryError...
            raise ValueError(f"{path}: not a model file of the IRGAN authors' format ({first_line(err)})") from None
    if not (isinstance(arrays, (list, tuple)) and len(arrays) == 3):
        raise ValueError(f"{path}: expected a list [user_emb, item_emb, item_bias]")
    return dict(zip(TABLES, arrays))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        check_archive(path)
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in TABLES if name not in data]
            if missing:
                raise ValueError(f"it has no array {missing[0]!r} (expected {', '.join(TABLES)})")
            return {name: data[name] for name in (*TABLES, "user_ids", "item_ids") if name in data}
    except Exception as err:  # a damaged archive or array header: BadZipFile, ValueError, MemoryError...
        raise ValueError(f"{path}: not a loadable .npz model file: {first_line(err)}") from None


def _checked(arrays: dict, path: Path) -> dict[str, np.ndarray]:
    """``arrays`` as float32 tables of fitting shapes with finite values, plus ids, one per row and unique."""
    for name in TABLES:
        value = arrays[name]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            raise ValueError(f"{path}: {name} is not a numeric array")
    user_emb, item_emb, item_bias = (arrays[name].astype(np.float32, copy=False) for name in TABLES)
    if user_emb.ndim != 2 or item_emb.ndim != 2 or user_emb.shape[1] != item_emb.shape[1] or 0 in user_emb.shape \
            or 0 in item_emb.shape or item_bias.shape != (item_emb.shape[0],):
        raise ValueError(f"{path}: shapes do not fit: user_emb {user_emb.shape}, item_emb {item_emb.shape}, "
                         f"item_bias {item_bias.shape} (expected (n_users, dim), (n_items, dim), (n_items,))")
    bad = next((name for name, a in zip(TABLES, (user_emb, item_emb, item_bias)) if not np.isfinite(a).all()), None)
    if bad is not None:
        raise ValueError(f"{path}: {bad} holds NaN or infinite values")
    checked = {"user_emb": user_emb, "item_emb": item_emb, "item_bias": item_bias}
    for kind, n in (("user", len(user_emb)), ("item", len(item_emb))):
        ids = np.asarray(arrays.get(f"{kind}_ids", np.arange(n) + 1))
        if ids.shape != (n,):
            raise ValueError(f"{path}: {kind}_ids has shape {ids.shape} but {kind} tables have {n} rows")
        if not pd.Index(ids.astype(str)).is_unique:
            raise ValueError(f"{path}: {kind}_ids holds the same id twice")
        checked[f"{kind}_ids"] = ids
    return checked


def _positions(file_ids: np.ndarray, wanted: np.ndarray, path: Path, kind: str) -> np.ndarray:
    rows = pd.Index(np.asarray(file_ids).astype(str)).get_indexer(np.asarray(wanted).astype(str))
    if (rows < 0).any():
        missing = np.asarray(wanted)[rows < 0][:5].tolist()
        raise ValueError(f"{path}: has no {kind} rows for id(s) {missing}: it was trained on other data")
    return rows

