"""One model file for the CLI, the estimators and G's pretrained start; the resumable training state.

A model file is a plain dict read back with ``torch.load(weights_only=True)``, so no code runs on
load: the estimator that wrote it, each scorer as (kind, constructor arguments, state dict), the
raw-id maps, the positives seen in fitting, the parameters and what fitting found. Files are
written atomically (mode 0o666 less the umask, as ``open`` creates files) and checked on load:
first the zip archive's directory against ``unpack_limit`` (nothing is decompressed before), then
the layout, id maps against table rows, shapes and finite values; each problem in one line.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import numbers
import os
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from irgan.errors import first_line
from irgan.models import SCORERS, Popularity, scorer_kind

log = logging.getLogger(__name__)
FORMAT = "irgan-model-v2"
OLD_FORMATS = ("irgan-checkpoint-v1", "irgan-estimator-v1")
STATE_FORMAT = "irgan-train-state-v2"
STATE_LAYOUT = {"epoch": int, "seconds": numbers.Real, "config": dict, "fingerprint": str, "generator": dict,
                "discriminator": dict, "g_opt": dict, "d_opt": dict, "rng": torch.Tensor,
                "fake_items": (torch.Tensor, type(None)), "history": list, "best_generator": dict,
                "best_discriminator": dict}
STATE_KEYS = set(STATE_LAYOUT)
# IRGANConfig fields added after STATE_FORMAT, with the value that keeps the older behaviour: a state
# written before a field existed resumes as if it held that value
LATER_CONFIG_FIELDS = {"patience": None, "eval_users": None}
BEST_LAYOUT = {"state": dict, "score": numbers.Real, "info": dict}
MODEL_LAYOUT = {"estimator": str, "scorers": dict, "user_ids": dict, "item_ids": dict, "user_items": dict,
                "params": dict, "fitted": dict}
IDS_LAYOUT = {"values": list, "dtype": str}
POSITIVES_LAYOUT = {"shape": list, "indptr": torch.Tensor, "indices": torch.Tensor}
SCORER_LAYOUT = {"kind": str, "args": dict, "state": dict}
SIZE_ARGS = ("dim", "hidden")  # scorer arguments that size a table, beside n_users and n_items

ZIP_MAGIC = b"PK\x03\x04"  # torch.load reads any file not starting so as a legacy pickle, sized by its own claims
MAX_UNPACK_RATIO = 4  # a zip archive may unpack to at most this many times its size on disk...
UNPACK_FLOOR_BYTES = 64 * 2**20  # ...or to this many bytes, whichever is larger (see unpack_limit)


class ModelFileError(ValueError):
    """A file that is not an irgan model file, or a damaged one."""


class _Damaged(ModelFileError):
    """A model file whose layout is not what save_model writes (a key missing, a value of the wrong type)."""


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
    state = _load_archive(path, ModelFileError, "irgan model file")
    if not isinstance(state, dict) or state.get("format") not in (FORMAT, *OLD_FORMATS):
        raise ModelFileError(f"{path} is not an irgan model file (expected format {FORMAT!r})")
    known = {**SCORERS, **{cls.__name__: cls for cls in scorers}}
    try:
        return _read(_upgrade(state) if state["format"] in OLD_FORMATS else state, known)
    except _Damaged as err:
        raise ModelFileError(f"{path} is a damaged irgan model file: {err}") from None
    except ModelFileError as err:
        raise ModelFileError(f"{path}: {err}") from None
    except Exception as err:  # what a hand-edited value makes numpy, scipy or a scorer's constructor raise
        raise ModelFileError(f"{path} is a damaged irgan model file: {type(err).__name__}: {first_line(err)[:200]}") from None


def unpack_limit(file_bytes: int) -> int:
    """The most a zip archive of ``file_bytes`` bytes on disk may unpack to:
    max(UNPACK_FLOOR_BYTES, MAX_UNPACK_RATIO * file_bytes), i.e. max(64 MiB, 4 x its size).

    torch.save stores its entries uncompressed, so its files unpack to their own size or less (a
    Netflix-size model of 1.3 GB to 1.3 GB), while deflate unpacks up to ~1000 times; the floor
    lets small compressed archives (numpy.savez_compressed) through."""
    return max(UNPACK_FLOOR_BYTES, MAX_UNPACK_RATIO * file_bytes)


def check_archive(path: Path) -> None:
    """ValueError (one line, not naming ``path``) unless ``path`` is a zip archive whose entries
    unpack to at most ``unpack_limit`` of its size; reads the archive's directory, decompresses nothing."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
            raise ValueError("not a zip archive (torch.save and numpy.savez write zip archives)")
        try:
            with zipfile.ZipFile(f) as archive:
                unpacked = sum(info.file_size for info in archive.infolist())
        except Exception as err:  # BadZipFile, struct.error, ... for a damaged directory
            raise ValueError(f"a damaged zip archive ({first_line(err)})") from None
    limit = unpack_limit(size)
    if unpacked > limit:
        raise ValueError(f"its entries unpack to {unpacked:,} bytes from {size:,} on disk, over the limit of "
                         f"{limit:,} (max({UNPACK_FLOOR_BYTES // 2**20} MiB, {MAX_UNPACK_RATIO} x its size)): "
                         "a decompression bomb, or not a file irgan wrote")


def _load_archive(path: Path, error: type[ValueError], what: str) -> Any:
    """``torch.load(weights_only=True)`` of ``path`` once ``check_archive`` passes it; ``error`` in one line otherwise."""
    try:
        check_archive(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for foreign files
        raise error(f"{path} is not a loadable {what}: {first_line(err)}") from None


def _expect(mapping: Any, layout: dict[str, type | tuple], where: str, error: type[ValueError] = _Damaged) -> None:
    """``error`` unless ``mapping`` holds every key of ``layout``, each of the type it gives (bool is no number)."""
    for key, kind in layout.items():
        if key not in mapping:
            raise error(f"{where} has no {key!r}")
        value = mapping[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, numbers.Real)):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise error(f"{where} holds {key!r} of type {type(value).__name__}, expected {names}")


def _tensors(mapping: dict, where: str, error: type[ValueError]) -> None:
    """``error`` unless ``mapping`` maps names to tensors, the floating ones finite."""
    for name, value in mapping.items():
        if not isinstance(value, torch.Tensor):
            raise error(f"{where} holds {name!r} of type {type(value).__name__}, expected a tensor")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise error(f"{where}'s {name} holds NaN or infinite values")


def _read(state: dict, known: dict[str, type[nn.Module]]) -> ModelFile:
    _expect(state, MODEL_LAYOUT, "it")
    for key, layout in (("user_ids", IDS_LAYOUT), ("item_ids", IDS_LAYOUT), ("user_items", POSITIVES_LAYOUT)):
        _expect(state[key], layout, f"its {key}")
    for role, spec in state["scorers"].items():
        _expect(spec, SCORER_LAYOUT, f"its {role} scorer")
    user_ids, item_ids = _ids_from_state(state["user_ids"]), _ids_from_state(state["item_ids"])
    shape = tuple(int(n) for n in state["user_items"]["shape"])
    if shape != (len(user_ids), len(item_ids)):
        raise ModelFileError(f"its positives are {' x '.join(map(str, shape))} but it names {len(user_ids)} users "
                             f"and {len(item_ids)} items")
    indices, indptr = state["user_items"]["indices"], state["user_items"]["indptr"]
    if indices.dtype not in (torch.int32, torch.int64) or indptr.dtype not in (torch.int32, torch.int64):
        raise _Damaged(f"its positives are stored as {indices.dtype} and {indptr.dtype}, not integer indices")
    indices, indptr = indices.numpy(), indptr.numpy()
    user_items = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)
    user_items.check_format(full_check=True)
    players = {role: _scorer(role, spec, known, shape) for role, spec in state["scorers"].items()}
    return ModelFile(state["estimator"], players, user_ids, item_ids, user_items, state["params"], state["fitted"])


def _scorer(role: str, spec: dict, known: dict[str, type[nn.Module]], shape: tuple[int, int]) -> nn.Module:
    """Rebuild one scorer from (kind, args, state), checked against the id maps; the arguments are
    tried on the meta device first, so that ones claiming tables larger than the file's allocate nothing."""
    kind, args, tensors = spec["kind"], dict(spec["args"]), spec["state"]
    if kind not in known:
        raise ModelFileError(f"its {role} is a {kind!r} scorer, which irgan does not know: pass scorers=[{kind}] "
                             f"to load, or register it with irgan.models.register_scorer")
    _tensors(tensors, f"its {role}", ModelFileError)
    _check_sizes(role, (args.get("n_users", shape[0]), args.get("n_items", shape[1])), shape)
    largest = max((max(t.shape, default=1) for t in tensors.values()), default=None)
    big = next((k for k in SIZE_ARGS if largest is not None and isinstance(args.get(k), int) and args[k] > largest), None)
    if big is not None:  # layers that skip_init builds on CPU even on the meta device
        raise _Damaged(f"its {role}'s {big}={args[big]} is larger than any table it holds")
    _check_tables(role, known[kind], args, tensors)
    scorer = _construct(known[kind], args)
    scorer.load_state_dict(tensors)
    _check_sizes(role, (getattr(scorer, "n_users", shape[0]), getattr(scorer, "n_items", shape[1])), shape)
    return scorer


def _check_sizes(role: str, sizes: tuple, shape: tuple[int, int]) -> None:
    if sizes != shape:
        raise ModelFileError(f"its {role} is sized {sizes[0]} x {sizes[1]} but the id maps hold "
                             f"{shape[0]} users x {shape[1]} items")


def _check_tables(role: str, cls: type[nn.Module], args: dict, tensors: dict) -> None:
    """_Damaged when ``cls(**args)``, built on the meta device, has a table larger than the file's:
    building it for real would allocate what the file does not hold."""
    try:
        with torch.device("meta"):
            expected = _construct(cls, args).state_dict()
    except Exception:  # a constructor that cannot run on meta: the real build below checks it
        return
    for name, value in expected.items():
        if name in tensors and value.numel() > tensors[name].numel():
            raise _Damaged(f"its {role}'s arguments make {name} {tuple(value.shape)}, larger than the "
                           f"{tuple(tensors[name].shape)} it holds")


def _upgrade(old: dict) -> dict:
    """A version-1 file (CLI ``model.pt`` or estimator file, both MF/popularity) in today's layout."""
    if old["format"] == "irgan-checkpoint-v1":
        n = (len(old["user_ids"]), len(old["item_ids"]))
        ids = [_ids_state(np.asarray(old[k]), k[:4]) for k in ("user_ids", "item_ids")]
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
    if hasattr(scorer, "n_users") and hasattr(scorer, "n_items"):
        return {"n_users": int(scorer.n_users), "n_items": int(scorer.n_items)}
    if hasattr(scorer, "irgan_size"):  # built by irgan as Class(n_users, n_items)
        return {"n_users": int(scorer.irgan_size[0]), "n_items": int(scorer.irgan_size[1])}
    raise ValueError(f"cannot save a {type(scorer).__name__} scorer that irgan did not build: give it init_args() "
                     "(the constructor arguments that rebuild it) or n_users and n_items attributes")


def _construct(cls: type[nn.Module], args: dict) -> nn.Module:
    """``cls(**args)``; a class without ``init_args()`` is built as irgan builds it, ``cls(n_users, n_items)``."""
    if hasattr(cls, "init_args") or set(args) != {"n_users", "n_items"}:
        return cls(**args)
    scorer = cls(args["n_users"], args["n_items"])
    if not hasattr(scorer, "n_users"):
        scorer.irgan_size = (args["n_users"], args["n_items"])  # so that it saves again
    return scorer


def _ids_state(ids: np.ndarray, kind: str) -> dict:
    """Raw ids as a plain list plus their numpy dtype (object for strings), for weights_only files."""
    values = [v.item() if isinstance(v, np.generic) else v for v in ids.tolist()]
    bad = [v for v in values if not isinstance(v, (str, int, float, bool))]
    if bad:
        raise ValueError(f"cannot save {kind} id {bad[0]!r} of type {type(bad[0]).__name__}: ids must be str, int or float")
    return {"values": values, "dtype": str(ids.dtype) if ids.dtype.kind in "biuf" else "object"}


def _ids_from_state(state: dict) -> np.ndarray:
    """The ids ``_ids_state`` stored; a dtype it does not write (e.g. a huge fixed-width one) is refused."""
    dtype = np.dtype(state["dtype"])
    if dtype.kind not in "biufO" or dtype.itemsize > 8:
        raise _Damaged(f"its ids have dtype {state['dtype']!r}, not a number type or 'object'")
    return np.array(state["values"], dtype=dtype)


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
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``. The
    file gets mode 0o666 less the umask, as ``open`` would create it (mkstemp's 0o600 would not)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            sink = _Sink(f)
            try:
                write(sink)
            except Exception as err:
                if sink.error is None:
                    raise
                raise OSError(sink.error.errno, sink.error.strerror or first_line(sink.error), str(path)) from None
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None:  # the write's, about the temporary file's descriptor: name the file instead
            raise OSError(err.errno, err.strerror or first_line(err), str(path)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _Sink:
    """A file's ``write`` that remembers the OSError it raised (disk full...): torch.save turns it
    into a RuntimeError that no longer says why, and atomic_write raises the OSError instead."""

    def __init__(self, file) -> None:
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def _create_beside(path: Path) -> tuple[int, Path]:
    """A new hidden file beside ``path``, opened for writing; O_EXCL: never an existing file or link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


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
    """Read a training state, refusing (ValueError, one line) a damaged one, or one written for
    another config or other data."""
    path = Path(path)
    state = _load_archive(path, ValueError, "irgan training state")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not an irgan training state (expected format {STATE_FORMAT!r}; "
                         "a state from an older irgan cannot be resumed: start the run again)")
    missing = STATE_KEYS - state.keys()
    if missing:
        raise ValueError(f"{path} is a damaged irgan training state: it lacks {sorted(missing)}")
    try:
        _expect(state, STATE_LAYOUT, "it", ValueError)
        state["config"] = {**LATER_CONFIG_FIELDS, **state["config"]}
        if state["config"] == dataclasses.asdict(config) and state["fingerprint"] == fingerprint:
            _check_state(state, config.epochs)
    except ValueError as err:
        raise ValueError(f"{path} is a damaged irgan training state: {err}") from None
    if state["config"] != dataclasses.asdict(config):
        changed = sorted(k for k, v in dataclasses.asdict(config).items() if state["config"].get(k) != v)
        raise ValueError(f"{path} was written with another config (differs in {changed}): cannot resume")
    if state["fingerprint"] != fingerprint:
        raise ValueError(f"{path} was written for other data (different shape or positives): cannot resume")
    return state


def _check_state(state: dict, epochs: int) -> None:
    """ValueError unless the entries of a training state of a run of ``epochs`` outer epochs hold
    what ``_state`` in irgan.adversarial.irgan.game writes: numbers in range, finite tensors of matching shapes."""
    for key in ("best_generator", "best_discriminator"):
        _expect(state[key], BEST_LAYOUT, f"its {key}", ValueError)
    if not 0 <= state["epoch"] <= epochs:
        raise ValueError(f"its epoch is {state['epoch']}, outside 0..{epochs}")
    if not math.isfinite(state["seconds"]) or state["seconds"] < 0 or math.isnan(state["best_generator"]["score"]) \
            or math.isnan(state["best_discriminator"]["score"]):
        raise ValueError("its seconds or best scores are not numbers")
    for player, best in (("generator", "best_generator"), ("discriminator", "best_discriminator")):
        _tensors(state[player], f"its {player}", ValueError)
        _tensors(state[best]["state"], f"its {best}", ValueError)
        shapes = {k: tuple(v.shape) for k, v in state[player].items()}
        if shapes != {k: tuple(v.shape) for k, v in state[best]["state"].items()}:
            raise ValueError(f"its {best} has other tables than its {player}")
    if state["rng"].dtype != torch.uint8 or state["rng"].dim() != 1:
        raise ValueError("its rng is not a generator state (a 1-d uint8 tensor)")
    if not all(isinstance(row, dict) for row in state["history"]):
        raise ValueError("its history holds a row that is not a dict")

