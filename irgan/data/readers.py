"""Read and check rating tables: delimited files and DataFrames into one validated layout.

Every reader returns a DataFrame with columns ``user``, ``item`` and, when present, ``rating``
(float64) and ``timestamp``. Ids stay as the file spells them: int64 when every id is an
integer, strings otherwise. Bad input raises one :class:`DataError` naming the file and line.
"""
from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from irgan.errors import DataError

logger = logging.getLogger(__name__)

DEFAULT_COLUMNS = ("user", "item", "rating", "timestamp")
_BY_WIDTH = {2: ("user", "item"), 3: ("user", "item", "rating"), 4: DEFAULT_COLUMNS}
# Header cells we recognise (lower case, without '_' or spaces); a first line made of
# anything else is data, so a typo in line 1 is reported instead of silently skipped.
_HEADER_WORDS = {
    "user", "userid", "users", "item", "itemid", "items", "movie", "movieid", "rating",
    "ratings", "score", "timestamp", "time", "date", "datetime",
}
_NUMERIC = ("rating", "timestamp")


def read_ratings(
    path: str | os.PathLike,
    sep: str | None = None,
    columns: Sequence[str] | None = DEFAULT_COLUMNS,
    header: bool | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a delimited ratings file into a DataFrame of shape (n_rows, len(columns)).

    ``sep`` is detected from the first non-blank line when None ("::", tab, comma, or
    whitespace); ``header`` is detected from column names such as ``userId`` when None;
    ``columns=None`` names the fields by their count (2: user, item; 3: + rating; 4: +
    timestamp). Blank lines are skipped. Raises DataError naming the file and 1-based line.
    Kept in one piece from sniffing to checked columns, because every error must name the line
    of the file, which each step computes from the ones before; parsing is ``_parse_csv``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if codecs.lookup(encoding).name == "utf-8":
            encoding = "utf-8-sig"  # drops a byte-order mark (Excel writes one), else plain utf-8
    except LookupError:
        raise DataError(f"{path}: unknown encoding {encoding!r}") from None
    first_no, first = _first_line(path, encoding)
    if first is None:
        raise DataError(f"{path}: file is empty (no ratings)")
    sep = sep or _sniff_sep(first)
    fields = _split(first, sep)
    if columns is None:
        if len(fields) not in _BY_WIDTH:
            raise DataError(f"{path}, line {first_no}: expected 2-4 fields, found {len(fields)}")
        columns = _BY_WIDTH[len(fields)]
    columns = tuple(columns)
    if header is None:
        header = all(re.sub(r"[\s_]", "", f.lower()) in _HEADER_WORDS for f in fields)
    skip = first_no if header else first_no - 1  # header row and blank lines before it
    if not header and len(fields) > len(columns):
        # pandas would silently drop extra fields of the first row; catch it here.
        raise DataError(_bad_line(path, first_no, first, f"expected {len(columns)} fields, found {len(fields)}"))

    names = list(columns) + ["_extra"]
    source: str | io.StringIO = str(path)
    parse_sep = sep
    if sep == "::":  # the C parser takes one-character separators only
        source = io.StringIO(path.read_text(encoding=encoding).replace("::", "\t"))
        parse_sep = "\t"
    parse = dict(sep=parse_sep, header=None, names=names, skiprows=skip, index_col=False,
                 skip_blank_lines=False, quoting=csv.QUOTE_NONE, encoding=encoding, engine="c")
    df = _parse_csv(path, source, parse, len(columns), encoding)

    blank = np.logical_and.reduce([df[col].isna().to_numpy() for col in names])  # blank lines
    kept = np.flatnonzero(~blank) if blank.any() else None
    if blank.all():
        raise DataError(f"{path}: file is empty (no ratings)")
    cols = {col: (df[col] if kept is None else df[col].iloc[kept]) for col in names}
    if kept is not None:
        cols.update(_exact_after_blank_lines(df, columns, kept, source, parse))

    def fail(row: int, reason: str) -> DataError:
        line_no = int(row if kept is None else kept[row]) + skip + 1
        text = _line_at(path, line_no, encoding)
        n = len(_split(text, sep))
        if n != len(columns):  # a too-short row reads as NaN fields; say what really happened
            reason = f"expected {len(columns)} fields, found {n}"
        return DataError(_bad_line(path, line_no, text, reason))

    out = _check(cols, columns, fail)
    logger.debug("read %d ratings from %s (sep=%r, header=%s)", len(out), path, sep, header)
    return out


def _parse_csv(path: Path, source, parse: dict, n_columns: int, encoding: str) -> pd.DataFrame:
    """``pd.read_csv(source, **parse)``, its errors as one-line DataErrors naming the file and line."""
    try:
        with warnings.catch_warnings():  # rows longer than the names: the _extra column reports them
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return pd.read_csv(source, **parse)
    except pd.errors.ParserError as err:
        match = re.search(r"line (\d+), saw (\d+)", str(err))
        if match is None:
            raise DataError(f"{path}: cannot parse: {err}") from err
        line_no = int(match.group(1))
        reason = f"expected {n_columns} fields, found {match.group(2)}"
        raise DataError(_bad_line(path, line_no, _line_at(path, line_no, encoding), reason)) from err
    except (UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{path}: cannot parse: {_one_line(err)}") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read: {_one_line(err)}") from err


def _exact_after_blank_lines(df: pd.DataFrame, columns: tuple[str, ...], kept: np.ndarray, source,
                             parse: dict) -> dict[str, pd.Series]:
    """The id and timestamp columns of the ``kept`` rows, exact.

    Blank lines read as NaN rows, which turns integer columns into float64; ids and timestamps
    above 2**53 would then be rounded (two users could merge). Those columns are read again as
    text and converted on the kept rows only.
    """
    lossy = [col for col in ("user", "item", "timestamp") if col in columns and df[col].dtype.kind == "f"
             and (np.abs(df[col].to_numpy()) >= 2**53).any()]
    if not lossy:
        return {}
    source = io.StringIO(source.getvalue()) if isinstance(source, io.StringIO) else source
    exact = pd.read_csv(source, **parse, dtype={col: str for col in lossy})
    out = {}
    for col in lossy:
        try:
            out[col] = pd.to_numeric(exact[col].iloc[kept])
        except (ValueError, TypeError):
            pass  # something pandas reads as a number but to_numeric does not: keep the floats
    return out


def from_dataframe(
    df: pd.DataFrame,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str | None = "rating",
    timestamp_col: str | None = None,
) -> pd.DataFrame:
    """Validate a user DataFrame and return it renamed to columns user, item[, rating][, timestamp].

    ``rating_col`` may be None (or absent when left at its default) for pure implicit data.
    Raises DataError naming the first bad row (0-based position and index label).
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if rating_col == "rating" and "rating" not in df.columns:
        rating_col = None
    wanted = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": timestamp_col}
    wanted = {std: col for std, col in wanted.items() if col is not None}
    missing = [col for col in wanted.values() if col not in df.columns]
    if missing:
        raise DataError(f"DataFrame has no column(s) {missing}; it has {list(df.columns)}")
    if df.empty:
        raise DataError("DataFrame is empty (no ratings)")
    labels = df.index

    def fail(pos: int, reason: str) -> DataError:
        return DataError(f"DataFrame row {pos} (index {_short(labels[pos])}): {reason}")

    return _check({std: df[col] for std, col in wanted.items()}, tuple(wanted), fail)


def kcore(df: pd.DataFrame, k: int, user_col: str = "user", item_col: str = "item") -> pd.DataFrame:
    """Rows of ``df`` left once every user and every item has at least ``k`` rows (repeated to a fixed point)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    for round_ in itertools.count(1):
        user_n = df[user_col].map(df[user_col].value_counts())
        item_n = df[item_col].map(df[item_col].value_counts())
        keep = (user_n >= k) & (item_n >= k)
        if keep.all():
            logger.debug("%d-core: %d rows after %d rounds", k, len(df), round_)
            return df
        df = df[keep.to_numpy()]


def _check(cols: dict[str, pd.Series], columns: tuple[str, ...], fail) -> pd.DataFrame:
    """Find the first bad row (0-based) with vectorized checks; raise ``fail(row, reason)`` for it."""
    problems: list[tuple[np.ndarray, str]] = []
    if "_extra" in cols:
        problems.append((cols["_extra"].notna().to_numpy(), f"expected {len(columns)} fields, found more"))
    changed: dict[str, np.ndarray] = {}  # converted columns; the rest are reused as parsed
    for col in columns:
        raw = cols[col].to_numpy()
        isna = cols[col].isna().to_numpy()
        problems.append((isna, f"empty or NaN {col}"))
        values = raw
        if col in _NUMERIC and raw.dtype.kind not in "iuf":  # text in a numeric column: find it
            values = _real_numbers(cols[col])
            not_number = np.isnan(values) & ~isna
            if not_number.any():
                problems.append((not_number, f"{col} is not a number: {_short(raw[not_number.argmax()])}"))
        elif col not in _NUMERIC and raw.dtype == object:  # ids from a DataFrame: one kind, hashable
            mixed = _mixed_ids(raw, isna, col)
            if mixed is not None:
                problems.append(mixed)
        if col in _NUMERIC and values.dtype.kind == "f":
            problems.append((np.isinf(values), f"{col} is infinite"))
        values = values.astype(np.float64, copy=False) if col == "rating" else _tidy(values)
        if values is not raw:
            changed[col] = values
    first = [(int(mask.argmax()), reason) for mask, reason in problems if mask.any()]
    if first:
        raise fail(*min(first, key=lambda p: p[0]))
    # pd.concat of Series shares memory; DataFrame(dict of arrays) would copy every column.
    series = [
        pd.Series(changed[col], name=col) if col in changed else cols[col].reset_index(drop=True).rename(col)
        for col in columns
    ]
    return pd.concat(series, axis=1)


def _real_numbers(column: pd.Series) -> np.ndarray:
    """float64 values of a column that is not plainly numeric; NaN where an entry is not a real number."""
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.dtype.kind == "c":  # complex: only those with no imaginary part are real numbers
        values = numbers.to_numpy()
        return np.where(values.imag == 0, values.real, np.nan)
    if numbers.dtype == object:  # e.g. a mix of numbers and complex numbers: check one by one
        return np.array([v if isinstance(v, (int, float, np.integer, np.floating)) else np.nan
                         for v in numbers.to_numpy()], dtype=np.float64)
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


_ID_KINDS = {"string", "bytes", "integer", "floating", "mixed-integer-float", "decimal", "boolean", "empty",
             "datetime", "datetime64", "date", "time", "timedelta", "timedelta64"}


def _mixed_ids(raw: np.ndarray, isna: np.ndarray, col: str) -> tuple[np.ndarray, str] | None:
    """(rows, reason) for ids of an object column that cannot be sorted with the others, else None.

    Ids must be hashable and of one kind: all numbers, all strings or all bytes. A mix (the
    number 1 next to the string "1") would make two users of one, and cannot be ordered.
    """
    if pd.api.types.infer_dtype(raw, skipna=True) in _ID_KINDS:
        return None

    def kind(value) -> str:
        if isinstance(value, (bool, np.bool_)):
            return "bool"
        if isinstance(value, (int, float, np.integer, np.floating)):
            return "number"
        if isinstance(value, (str, bytes)):
            return type(value).__name__
        return "other"

    kinds = np.array(["na" if na else kind(v) for v, na in zip(raw, isna)])
    first = kinds[kinds != "na"][0]
    bad = (kinds == "other") | ((kinds != first) & (kinds != "na"))
    value = raw[bad.argmax()]
    if kind(value) == "other":
        return bad, f"{col} id {_short(value)} is a {type(value).__name__}: ids must be numbers or strings"
    return bad, (f"{col} id {_short(value)} is a {kind(value)}, unlike the {col} ids before it ({first}): "
                 "ids must be all numbers or all strings")


def _short(value, limit: int = 60) -> str:
    """repr of a value from the data, numpy scalars shown as plain Python ones, cut at ``limit``."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _tidy(values: np.ndarray) -> np.ndarray:
    """Integral float ids and timestamps (floats because of blank lines) back to int64."""
    if values.dtype.kind == "f" and np.all(np.abs(values) < 2**53) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    return values


def _first_line(path: Path, encoding: str) -> tuple[int, str | None]:
    """1-based number and text of the first non-blank line, or (0, None) for an empty file."""
    try:
        with open(path, encoding=encoding) as f:
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    return line_no, line.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not {encoding.removesuffix('-sig')} text: {err}") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read: {_one_line(err)}") from err
    return 0, None


def _line_at(path: Path, line_no: int, encoding: str) -> str:
    with open(path, encoding=encoding, errors="replace") as f:
        return next(itertools.islice(f, line_no - 1, None), "").rstrip("\r\n")


def _sniff_sep(line: str) -> str:
    for sep in ("::", "\t", ","):
        if sep in line:
            return sep
    return r"\s+"


def _split(line: str, sep: str) -> list[str]:
    return re.split(sep, line.strip()) if sep == r"\s+" else line.split(sep)


def _bad_line(path: Path, line_no: int, text: str, reason: str) -> str:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return f"{path}, line {line_no}: {reason}: {shown!r}"
