"""Read the Netflix Prize ratings from a local folder, in either of its two public layouts.

The data is no longer hosted by Netflix, so it is never downloaded: put one of these in the folder.

* ``training_set/mv_0000001.txt`` ... ``mv_0017770.txt`` (the unpacked ``training_set.tar`` of
  the original ``nf_prize_dataset.tar.gz``; the ``mv_*.txt`` files may also sit in the folder
  itself): one file per movie, its first line ``MOVIEID:``, then ``CUSTOMERID,RATING,YYYY-MM-DD``.
* ``combined_data_1.txt`` ... ``combined_data_4.txt`` (the Kaggle copy): blocks of a ``MOVIEID:``
  line followed by that movie's ``CUSTOMERID,RATING,YYYY-MM-DD`` lines.

When both are present the ``combined_data_*.txt`` files are read. Either way the result is the
same ratings table: 100,480,507 ratings of 480,189 customers on 17,770 movies for the full data.
Files are parsed in blocks of ``block_bytes`` with pandas' C parser (a ``MOVIEID:`` line's id is
carried forward to the lines below it), into compact columns: about 1.3 GB for the full data
(a 10-million-line file took 15 s on a busy 2-core machine, so the full data takes minutes).

``load_dataset("netflix")`` applies the IRGAN paper's protocol: ratings >= 4 are positives,
split at random 4:1 (the ``random`` split: 20% of each user's positives to test, seeded).
"""
from __future__ import annotations

import csv
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from irgan.errors import DataError

logger = logging.getLogger(__name__)

NETFLIX = "netflix"
BLOCK_BYTES = 1 << 25  # text parsed at a time: about 1.6 million rating lines
_LAYOUT = (
    "either training_set/mv_0000001.txt ... mv_0017770.txt (one file per movie, from the original "
    "nf_prize_dataset.tar.gz) or combined_data_1.txt ... combined_data_4.txt (the Kaggle copy)"
)
_SHAPE = "expected 'MOVIEID:' or 'CUSTOMERID,RATING,YYYY-MM-DD'"
# ':' and '-' become ',' so that every field parses as a number: "12:" -> "12," (a movie line,
# known by its last byte) and "2005-09-06" -> "2005,09,06". Both keep the byte length.
_TO_COMMA = bytes.maketrans(b":-", b",,")
_FIELDS = ("user", "rating", "year", "month", "day", "_extra")
# float64 keeps every int32 id exact; float32 holds ratings, dates and the extra field exactly.
_DTYPES = {name: np.float64 if name == "user" else np.float32 for name in _FIELDS}
_NUMBER_REASONS = {
    "user": "customer or movie id is not a number",
    "rating": "rating is not a number",
    **dict.fromkeys(("year", "month", "day"), "date is not YYYY-MM-DD"),
}
_INT32_MAX = np.iinfo(np.int32).max
_NEWLINE, _CR, _COLON = ord("\n"), ord("\r"), ord(":")
# Day number (since 1970-01-01) of the first day of each month from 1970-01 to 2038-01.
_FIRST_DAYS = np.arange(68 * 12 + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


@dataclass(frozen=True)
class _Segment:
    """Whole lines of one file: ``data`` ends with a newline and starts at 1-based ``first_line``."""

    path: Path
    first_line: int
    data: bytes
    starts_file: bool


def netflix_files(folder: str | os.PathLike) -> list[Path]:
    """The Netflix Prize rating files in ``folder`` (combined_data_*.txt, else mv_*.txt), sorted; [] if none."""
    folder = Path(folder)
    combined = sorted(folder.glob("combined_data_*.txt"))
    if combined:
        return combined
    for place in (folder / "training_set", folder):
        movies = sorted(place.glob("mv_*.txt"))
        if movies:
            return movies
    return []


def find_netflix(root: str | os.PathLike) -> Path:
    """Where the Netflix Prize files are: ``root/netflix`` or ``root``; else a DataError saying what goes where."""
    root = Path(root)
    for folder in (root / NETFLIX, root):
        if netflix_files(folder):
            return folder
    raise DataError(
        f"the Netflix Prize data is not in {root / NETFLIX} (nor in {root}), and it cannot be downloaded "
        f"(Netflix no longer hosts it): put {_LAYOUT} in {root / NETFLIX}, or pass data_dir=... or set "
        "IRGAN_DATA to the folder holding them"
    )


def read_netflix(folder: str | os.PathLike, block_bytes: int = BLOCK_BYTES) -> pd.DataFrame:
    """Every rating in ``folder`` as a DataFrame of shape (n_ratings, 4), in file order.

    Columns: ``user`` (customer id, int32), ``item`` (movie id, int32), ``rating`` (1-5, int8)
    and ``timestamp`` (the rating's date as Unix seconds at 00:00 UTC, int32). Raises DataError
    naming the file and line of the first malformed line, or the folder when it holds no files.
    """
    folder = Path(folder)
    files = netflix_files(folder)
    if not files:
        raise DataError(f"{folder}: no Netflix Prize files found: expected {_LAYOUT}")
    parts: list[dict[str, np.ndarray]] = []
    movie: float | None = None  # the movie whose lines the next block continues
    for segments in _blocks(files, block_bytes):
        part, movie = _parse(segments, movie)
        parts.append(part)
    if sum(len(part["user"]) for part in parts) == 0:
        raise DataError(f"{folder}: the Netflix Prize files hold no ratings")
    # Column by column, dropping the blocks' pieces as they are joined: the peak stays near one copy.
    columns = [
        pd.Series(np.concatenate([part.pop(name) for part in parts]), name=name, copy=False)
        for name in ("user", "item", "rating", "timestamp")
    ]
    ratings = pd.concat(columns, axis=1)  # concat of Series keeps each column's array, unlike DataFrame(dict)
    logger.info("read %d Netflix ratings from %d files in %s", len(ratings), len(files), folder)
    return ratings


def _blocks(files: list[Path], block_bytes: int) -> Iterator[list[_Segment]]:
    """Segments of the files in order, grouped so that each group holds about ``block_bytes``."""
    group: list[_Segment] = []
    size = 0
    for path in files:
        for segment in _segments(path, block_bytes):
            if group and size + len(segment.data) > block_bytes:
                yield group
                group, size = [], 0
            group.append(segment)
            size += len(segment.data)
    if group:
        yield group


def _segments(path: Path, block_bytes: int) -> Iterator[_Segment]:
    """``path`` cut at line ends into pieces of about ``block_bytes``; the last one gets a newline if missing."""
    line, rest, first = 1, b"", True
    try:
        with open(path, "rb") as f:
            while chunk := f.read(block_bytes):
                data = rest + chunk
                if first:
                    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    rest = data
                    continue
                data, rest = data[:cut], data[cut:]
                yield _Segment(path, line, data, first)
                line += data.count(b"\n")
                first = False
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err}") from err
    if rest:
        yield _Segment(path, line, rest + b"\n", first)


def _parse(segments: list[_Segment], movie: float | None) -> tuple[dict[str, np.ndarray], float | None]:
    """The rating lines of ``segments`` as compact columns, and the movie in effect after them.

    ``movie`` is the movie of the lines before ``segments`` when its first segment continues a
    file. Raises DataError for the first malformed line. Kept in one piece: every check is one
    vectorized mask over all lines, and the earliest failing line must win across all of them.
    """
    data = b"".join(segment.data for segment in segments)
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == _NEWLINE)  # one per line: every segment ends with a newline
    starts = np.r_[0, ends[:-1] + 1]
    last = ends - 1  # the last byte of each line, before any '\r'
    last -= (last >= starts) & (raw[last] == _CR)
    is_movie = (last >= starts) & (raw[last] == _COLON)
    seg_bytes = np.array([len(segment.data) for segment in segments])
    seg_first_row = np.searchsorted(ends, np.cumsum(seg_bytes) - seg_bytes)

    def fail(row: int, reason: str) -> DataError:
        seg = int(np.searchsorted(seg_first_row, row, side="right")) - 1
        line_no = segments[seg].first_line + row - int(seg_first_row[seg])
        text = data[starts[row]:ends[row]].decode("utf-8", errors="replace").rstrip("\r")
        shown = text if len(text) <= 80 else text[:77] + "..."
        return DataError(f"{segments[seg].path}, line {line_no}: {reason}: {shown!r}")

    try:
        df = _read_fields(data.translate(_TO_COMMA))
    except pd.errors.ParserError as err:  # a line with too many fields
        match = re.search(r"line (\d+), saw", str(err))
        if match is None:
            raise DataError(f"{segments[0].path}: cannot parse: {err}") from err
        raise fail(int(match.group(1)) - 1, _SHAPE) from err
    if len(df) != len(ends):
        raise DataError(f"{segments[0].path}: cannot parse: lines end in something other than '\\n' or '\\r\\n'")

    values, missing, problems = _numbers(df)
    colons = np.flatnonzero(raw == _COLON)
    if len(colons) != np.count_nonzero(is_movie):  # a ':' that does not end a line
        stray = colons[~np.isin(colons, last[is_movie])]
        problems.append((np.isin(np.arange(len(ends)), np.searchsorted(ends, stray)), _SHAPE))
    user, rating = values["user"], values["rating"]
    rated = ~np.logical_and.reduce(list(missing.values())) & ~is_movie  # neither blank nor a movie line
    has_date = ~(missing["year"] | missing["month"] | missing["day"])
    seconds, valid_date = _unix_seconds(values["year"], values["month"], values["day"])
    file_start = np.zeros(len(ends), dtype=bool)
    file_start[seg_first_row[[segment.starts_file for segment in segments]]] = True
    items, orphan, movie = _movies(is_movie, file_start, user, movie)
    problems += [
        (is_movie & (missing["user"] | ~missing["rating"] | has_date | ~missing["_extra"]), _SHAPE),
        (rated & (missing["user"] | missing["rating"] | ~has_date | ~missing["_extra"]), _SHAPE),
        (is_movie & ~missing["user"] & ~_positive_int(user), "movie id is not a positive integer"),
        (rated & ~missing["user"] & ~_positive_int(user), "customer id is not a positive integer"),
        (rated & ~missing["rating"] & ~np.isin(rating, np.arange(1, 6)), "rating is not one of 1, 2, 3, 4, 5"),
        (rated & has_date & ~valid_date, "date is not a valid YYYY-MM-DD between 1970 and 2037"),
        (rated & orphan, "rating line before any 'MOVIEID:' line of its file"),
    ]
    firsts = [(int(mask.argmax()), reason) for mask, reason in problems if mask.any()]
    if firsts:
        raise fail(*min(firsts, key=lambda first: first[0]))  # the earliest line; the first reason on it
    part = {
        "user": user[rated].astype(np.int32),
        "item": items[rated].astype(np.int32),
        "rating": rating[rated].astype(np.int8),
        "timestamp": seconds[rated],
    }
    return part, movie


def _numbers(df: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[tuple[np.ndarray, str]]]:
    """Each field as floats (NaN where empty or not a number), where it is empty, and (rows, reason) for text."""
    values, missing, problems = {}, {}, []
    for name in _FIELDS:
        column = df[name]
        missing[name] = column.isna().to_numpy()
        if column.dtype.kind == "f":
            values[name] = column.to_numpy()
            continue
        values[name] = pd.to_numeric(column.astype(str), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if name in _NUMBER_REASONS:  # text in the extra field is a wrong shape, reported as such
            problems.append((np.isnan(values[name]) & ~missing[name], _NUMBER_REASONS[name]))
    return values, missing, problems


def _movies(is_movie: np.ndarray, file_start: np.ndarray, ids: np.ndarray, movie: float | None
            ) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Each line's movie (that of the latest movie line above it in its file), where it has none, and the last one.

    ``movie`` is in effect before the first line unless a file starts there.
    """
    rows = np.arange(len(is_movie))
    latest_movie = np.maximum.accumulate(np.where(is_movie, rows, -1))
    latest_start = np.maximum.accumulate(np.where(file_start, rows, -1))
    orphan = (latest_movie < latest_start) | ((latest_movie < 0) & (movie is None))
    items = np.where(latest_movie >= 0, ids[np.maximum(latest_movie, 0)], -1 if movie is None else movie)
    if latest_movie[-1] >= 0 and latest_movie[-1] >= latest_start[-1]:
        movie = float(ids[latest_movie[-1]])  # checked to be a valid id before it is used
    elif latest_start[-1] >= 0:
        movie = None  # a new file began and has no movie line yet
    return items, orphan, movie


def _read_fields(text: bytes) -> pd.DataFrame:
    """The comma-separated fields of ``text`` as floats; a column holding text is read as text, to be reported."""
    options = dict(header=None, names=_FIELDS, index_col=False, skip_blank_lines=False,
                   quoting=csv.QUOTE_NONE, engine="c")
    try:  # fixed float dtypes parse about twice as fast as inferred ones
        return pd.read_csv(io.BytesIO(text), dtype=_DTYPES, **options)
    except ValueError as err:
        if isinstance(err, pd.errors.ParserError):
            raise
        return pd.read_csv(io.BytesIO(text), **options)


def _positive_int(values: np.ndarray) -> np.ndarray:
    """Whether each float is a whole number in 1..2**31-1 (an id that fits int32)."""
    with np.errstate(invalid="ignore"):
        return (values >= 1) & (values <= _INT32_MAX) & (values == np.floor(values))


def _unix_seconds(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32 Unix seconds of each date at 00:00 UTC, and whether it is a real date in 1970-2037 (0 where not)."""
    with np.errstate(invalid="ignore"):
        whole = (year == np.floor(year)) & (month == np.floor(month)) & (day == np.floor(day))
        valid = whole & (year >= 1970) & (year <= 2037) & (month >= 1) & (month <= 12) & (day >= 1)
    months = np.where(valid, (year - 1970) * 12 + month - 1, 0).astype(np.int64)
    days = _FIRST_DAYS[months] + np.where(valid, day, 1).astype(np.int64) - 1
    valid &= days < _FIRST_DAYS[months + 1]
    return np.where(valid, days * 86400, 0).astype(np.int32), valid
