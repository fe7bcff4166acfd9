"""Named data sets (MovieLens, Netflix) and rating files, loaded into a train/test Split.

Files are looked for under ``data_dir``, else ``$IRGAN_DATA``, else ``~/.cache/irgan``; a
folder holding ``ml-100k/u.data`` is read as is. Missing MovieLens data is downloaded from
GroupLens, checked against its published checksum and unpacked there; existing files are
never overwritten. The Netflix Prize data is never downloaded (it is no longer hosted): it is
read from ``netflix/`` under the root, or from the root itself (see ``irgan.data.netflix``).
"""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from irgan.data.files import UNPACK_LIMIT_MB
from irgan.data.netflix import NETFLIX, find_netflix, read_netflix
from irgan.data.readers import _read_ratings, read_ratings
from irgan.data.splits import (
    Split,
    interactions_from_dataframe,
    leave_one_out,
    random_holdout,
    sorted_unique,
    temporal_split,
)
from irgan.errors import DataError, first_line

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Remote:
    url: str  # the official GroupLens zip
    md5: str  # its published md5
    ratings: str  # the ratings file inside the unpacked folder
    sep: str
    header: bool


DATASETS = {
    "ml-100k": _Remote("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                       "0e33842e24a9c977be4e0107933c0723", "u.data", "\t", False),
    "ml-1m": _Remote("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                     "c4d9eecfca2ab87c1945afe126590906", "ratings.dat", "::", False),
    "ml-20m": _Remote("https://files.grouplens.org/datasets/movielens/ml-20m.zip",
                      "cd245b17a1ae2cc31bb14903e1204af3", "ratings.csv", ",", True),
}
ML100K_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")  # GroupLens's own .base/.test pairs
SPLITS = ("random", "loo", "temporal")
NO_TEST = "none"  # a production fit: every positive in train, an empty test set


def data_home(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_dir``, else ``$IRGAN_DATA``, else ``~/.cache/irgan``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("IRGAN_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "irgan"


class _DefaultMinRating(float):
    """The default min_rating (4.0), told apart from an explicit 4.0: a file without ratings takes only the default."""


DEFAULT_MIN_RATING: float = _DefaultMinRating(4.0)
TIME_SPLITS = ("loo", "temporal")  # the splits that read timestamps


def load_dataset(
    name: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    min_rating: float | None = DEFAULT_MIN_RATING,
    split: str | None = None,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.0,
    seed: int = 0,
    download: bool = True,
    sep: str | None = None,
    columns: Sequence[str | None] | str | None = None,
    header: bool | None = None,
    test: str | os.PathLike | None = None,
    max_unpacked_mb: float = UNPACK_LIMIT_MB,
) -> Split:
    """Load a data set as a Split of (n_users, n_items) Interactions over all its users and items.

    ``name`` is ``ml-100k``, ``ml-1m``, ``ml-20m``, ``netflix`` or the path of a ratings file (text,
    compressed or parquet), read by ``read_ratings`` with ``sep``, ``columns`` and ``header`` (files
    only). Ids are read exactly: int64 when every id of a column is a canonical integer ("7", not
    "007", "7.0" or "1e3"), strings as spelled otherwise. Ratings >= ``min_rating`` are positives;
    None keeps every row, and so does the default on a file without a rating column (logged);
    an explicit number there is an error. ``split``: ``u1``-``u5``, ``ua``, ``ub`` (ml-100k only;
    default ``u1`` there), ``random`` (default elsewhere), ``loo`` or ``temporal``; only the last
    two read timestamps, so the others drop a bad timestamp column with a warning; ``none`` holds
    out no test set (a production fit): train holds every positive, test is empty with the same shape.
    ``validation_fraction > 0`` carves a validation set from train. Netflix is never downloaded
    (see ``irgan.data.netflix``); its defaults follow the IRGAN paper: ratings >= 4 are positives,
    20% of each user's positives to test at random, seeded. ``test``: the path of a released test file beside a released train file ``name`` (read the
    same way, ids mapped jointly, ``min_rating`` applied to both; no ``split``). A compressed file
    may unpack to at most ``max_unpacked_mb`` MiB. (Long for this docstring.)
    """
    name = os.fspath(name)
    if test is not None and split == NO_TEST:
        raise DataError(f"split={NO_TEST!r} holds out no test set, so a released test= file cannot apply: drop one")
    if test is not None:
        return _released(Path(name).expanduser(), Path(os.fspath(test)).expanduser(), min_rating, split,
                         validation_fraction, seed, dict(sep=sep, columns=columns, header=header,
                                                         max_unpacked_mb=max_unpacked_mb))
    if name in DATASETS or name == NETFLIX:
        given = {key: value for key, value in (("sep", sep), ("columns", columns), ("header", header))
                 if value is not None}
        if given:
            raise DataError(f"{', '.join(given)} apply to rating files; {name} is read in its own layout")
    if name in DATASETS:
        remote = DATASETS[name]
        folder = _locate(name, data_home(data_dir), download)
        source = folder / remote.ratings
        ratings = read_ratings(source, sep=remote.sep, header=remote.header)
        default_split = split_of(name)
    elif name == NETFLIX:
        folder = source = find_netflix(data_home(data_dir))
        ratings = read_netflix(folder)
        default_split = split_of(name)
    elif _ratings_file(name) is not None:
        folder, source = None, _ratings_file(name)
        default_split = split_of(name)
        ratings = _read_ratings(source, sep, columns, header, time_optional=(split or default_split) not in TIME_SPLITS,
                                max_unpacked_mb=max_unpacked_mb)
    else:
        raise DataError(
            f"unknown data set {name!r}: known names are {', '.join(DATASETS)}, {NETFLIX}, "
            "or give the path of a ratings file"
        )
    split = split or default_split
    users, items = sorted_unique(ratings["user"]), sorted_unique(ratings["item"])
    maps = {"user_ids": users, "item_ids": items}
    if split in ML100K_SPLITS and name == "ml-100k":
        parts = []
        for part_file in (folder / f"{split}.base", folder / f"{split}.test"):
            part = read_ratings(part_file, sep="\t", header=False)
            parts.append(_naming(part_file, lambda: interactions_from_dataframe(_positives(part, min_rating), users, items)))
        result = _naming(folder, lambda: Split(*parts))
    elif split == NO_TEST:
        everything = _naming(source, lambda: interactions_from_dataframe(_positives(ratings, min_rating), users, items))
        result = Split(everything, everything.with_matrix(sp.csr_matrix(everything.shape, dtype=np.float32)))
    elif split in SPLITS:
        positives = _naming(source, lambda: _positives(ratings, min_rating))
        if split == "random":
            result = _naming(source, lambda: random_holdout(positives, test_fraction, seed, **maps))
        elif split == "loo":
            result = _naming(source, lambda: leave_one_out(positives, **maps))
        else:
            result = _naming(source, lambda: temporal_split(positives, test_fraction, **maps))
    else:
        known = (ML100K_SPLITS if name == "ml-100k" else ()) + SPLITS + (NO_TEST,)
        raise DataError(f"unknown split {split!r} for {name}: choose one of {', '.join(known)}")
    if validation_fraction > 0:
        result = _naming(source, lambda: result.with_validation(validation_fraction, seed))
    logger.info("loaded %s (split %s): %r", name, split, result)
    return result


def _ratings_file(name: str) -> Path | None:
    """``name`` as the path of a ratings file; None when nothing is there (an unknown data set name);
    DataError for a folder, a device, a pipe or a link that leads nowhere."""
    path = Path(name).expanduser()
    try:
        if path.is_file():
            return path
        if not path.exists() and not path.is_symlink():
            return None
    except OSError as err:
        raise DataError(f"{path}: cannot read: {first_line(err)}") from None
    kind = "a folder" if path.is_dir() else "a link that leads nowhere (or to itself)" if path.is_symlink() \
        and not path.exists() else "not a regular file"
    raise DataError(f"{path}: not a ratings file ({kind})")


def _released(train_path: Path, test_path: Path, min_rating: float | None, split: str | None,
              validation_fraction: float, seed: int, read: dict) -> Split:
    """A released train/test pair: both files read alike, ids mapped jointly over the two."""
    if split not in (None, RELEASED):
        raise DataError(f"split={split!r} and test= exclude each other: a released test file is the split")
    for path in (train_path, test_path):
        if _ratings_file(os.fspath(path)) is None:
            raise DataError(f"{path}: no such file")
    train, test = (_read_ratings(path, read["sep"], read["columns"], read["header"], time_optional=True,
                                 max_unpacked_mb=read["max_unpacked_mb"]) for path in (train_path, test_path))
    users = sorted_unique(pd.concat([train["user"], test["user"]], ignore_index=True))
    items = sorted_unique(pd.concat([train["item"], test["item"]], ignore_index=True))
    parts = [_naming(path, lambda df=df: interactions_from_dataframe(_positives(df, min_rating), users, items))
             for path, df in ((train_path, train), (test_path, test))]
    result = _naming(test_path, lambda: Split(*parts))
    _log_unseen(result, test_path)
    if validation_fraction > 0:
        result = _naming(train_path, lambda: result.with_validation(validation_fraction, seed))
    logger.info("loaded %s with test %s: %r", train_path, test_path, result)
    return result


def _log_unseen(split: Split, test_path: Path) -> None:
    """Log how many test users and items, and their positives, train never saw (cold start)."""
    train, test = split.train.matrix, split.test.matrix
    cold_users = (np.diff(train.indptr) == 0) & (np.diff(test.indptr) > 0)
    cold_items = (np.bincount(train.indices, minlength=train.shape[1]) == 0) & \
        (np.bincount(test.indices, minlength=test.shape[1]) > 0)
    if cold_users.any() or cold_items.any():
        cold = test[cold_users].nnz + test[:, cold_items].nnz - test[cold_users][:, cold_items].nnz
        logger.info("%s: %d test users and %d test items are not in train (%d of %d test positives)", test_path,
                    int(cold_users.sum()), int(cold_items.sum()), cold, test.nnz)


def _naming(path: Path, build):
    """``build()``, its DataErrors prefixed by ``path`` unless they already name it."""
    try:
        return build()
    except DataError as err:
        if str(path) in str(err):
            raise
        raise DataError(f"{path}: {err}") from err


RELEASED = "released"  # the split of a released train/test pair, as run folders record it


def split_of(dataset: str, split: str | None = None, test: object = None) -> str:
    """The split ``load_dataset`` uses for these arguments: ``split`` when given, "released" with a
    released ``test`` file, else the data set's default (ml-100k: the paper's u1; others: random)."""
    if test is not None:
        return RELEASED
    return split or ("u1" if str(dataset) == "ml-100k" else "random")


def _positives(df: pd.DataFrame, min_rating: float | None) -> pd.DataFrame:
    """Rows rated >= min_rating (all rows when None, or at the default without ratings); DataError when none is."""
    if min_rating is None:
        return df
    if "rating" not in df.columns:
        if min_rating is DEFAULT_MIN_RATING:
            logger.info("the ratings have no rating column: every row is a positive")
            return df
        raise DataError(f"the ratings have no rating column, so min_rating={min_rating:g} cannot apply: "
                        "leave min_rating at its default or pass None (every row is a positive)")
    rating = df["rating"].to_numpy()
    keep = rating >= min_rating
    if not keep.any():
        raise DataError(
            f"no rating reaches min_rating={min_rating:g} (the ratings run from {rating.min():g} to "
            f"{rating.max():g}), so there are no positives: lower min_rating, or pass None to use every row"
        )
    logger.info("min_rating=%g kept %d of %d rows as positives (%.0f%%), dropped %d", min_rating, int(keep.sum()),
                len(keep), 100 * keep.mean(), int((~keep).sum()))
    return df[keep]


def _locate(name: str, root: Path, download: bool) -> Path:
    """The folder holding ``name``'s files under ``root``, downloading and unpacking it if needed."""
    remote = DATASETS[name]
    for folder in [root / name] + ([root] if root.name == name else []):  # root may be the folder itself
        if (folder / remote.ratings).is_file():
            return folder
    where = (
        f"put the unpacked {name} folder at {root / name} (so that {root / name / remote.ratings} "
        f"exists; it comes from {remote.url}), or pass data_dir=... or set IRGAN_DATA"
    )
    if not download:
        raise DataError(f"{name} not found and download=False: {where}")
    archive = root / f"{name}.zip"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not archive.exists():
            _download(remote.url, archive, remote.md5)
        elif _md5(archive) != remote.md5:
            raise DataError(f"{archive} exists but its md5 is not {remote.md5}: delete or move it and retry")
        _safe_extract(archive, root)
    except DataError as err:
        raise DataError(f"{err}; or {where}") from err
    except OSError as err:  # includes urllib's URLError and timeouts
        raise DataError(f"could not download {name} from {remote.url} ({err}): {where}") from err
    if not (root / name / remote.ratings).is_file():
        raise DataError(f"{archive} unpacked but {root / name / remote.ratings} is missing: {where}")
    return root / name


def _download(url: str, dest: Path, md5: str) -> None:
    """Fetch ``url`` to a temporary file beside ``dest``, check its md5, then rename it to ``dest``."""
    logger.info("downloading %s to %s", url, dest)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)  # umask applies
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out, length=1 << 20)
        got = _md5(tmp)
        if got != md5:
            raise DataError(f"checksum mismatch for {url}: md5 {got}, expected {md5}; the download was removed")
        if dest.exists():  # appeared meanwhile (another process): keep theirs
            return
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``, refusing any member that would land outside it; never overwrites."""
    dest = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for member in members:  # check everything before writing anything
            target = (dest / member.filename).resolve()
            if not target.is_relative_to(dest):
                raise DataError(f"{archive}: refusing member {member.filename!r}, which escapes {dest}")
        for member in members:
            target = (dest / member.filename).resolve()
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif target.exists():
                logger.debug("keeping existing %s", target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
