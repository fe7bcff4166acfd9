"""Read and check rating tables: text files (plain or compressed), parquet files and DataFrames.

Every reader returns a DataFrame with columns ``user``, ``item`` and, when present, ``rating``
(float64) and ``timestamp`` (int64; float64 only for fractional numbers). Bad input raises one
:class:`DataError` line naming the file and 1-based line (parquet: row; DataFrame: row and index).

Ids are read exactly, never through a float. An id column is int64 when every id in it is a
canonical integer (an optional '-', then digits with no leading zero unless the id is "0", within
int64); otherwise its ids are strings as spelled, so "007" and "7" are two users, and one "1e3"
among 18-digit ids makes the whole column strings. DataFrames follow the same rule: a column of
such strings becomes int64; integer columns stay integers; a float column becomes int64 when every
value is whole and within +-2**53, and is refused otherwise (nearby large floats would merge).

Text: ``sep`` is sniffed from the first non-blank line ("::", tab, ",", ";", "|", else runs of
spaces and tabs). Fields may be quoted ('"196"' reads 196); spaces around a field are not part of
it; a byte-order mark, CRLF and blank lines are fine; gzip, bz2, xz and one-file zip archives are
recognised by their first bytes, parquet files too. Tokens such as "", "NA", "NaN", "null" and
"None" are missing values: a missing id or rating is an error.

Columns: the first non-blank line is a header when none of its fields is a number and either one
of them is a known column name (``COLUMN_NAMES``; case, spaces, '_', '-', '.' and a RecBole
':type' suffix do not matter) or the next line has a number. Header fields (and parquet columns)
are mapped by name and the others ignored; a header with no user or no item column, or with two
of one, is refused. Without a header, fields go by position: user, item, then rating, then
timestamp. ``columns`` names every field in file order instead: ``user``, ``item``, ``rating``,
``timestamp``, or ``-`` / "" / None for a field to skip, as a sequence or a comma-separated string.

Timestamps: numbers stay numbers; ISO-8601 dates and times become int64 seconds since 1970-01-01
UTC (a time without an offset is taken as UTC).

This module holds the readers, each taking its source to a checked DataFrame. The steps they
share live beside it: ``files`` (a file's bytes and pyarrow's parse of its text), ``columns``
(which field holds which column) and ``checks`` (what each column must hold, and becomes).
"""
from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from irgan.data.checks import (
    MISSING,
    Problem,
    _canonical_ints,
    _ids,
    _is_strings,
    _missing,
    _ratings,
    _short,
    _timestamps,
)
from irgan.data.columns import (
    COLUMN_NAMES,
    DEFAULT_COLUMNS,
    _ignored,
    _looks_like_header,
    _roles_by_width,
    _roles_from_columns,
    _roles_from_header,
)
from irgan.data.files import (
    _SNIFFED,
    _WHITESPACE,
    _as_utf8,
    _bad_line,
    _LineFinder,
    _lines,
    _nonblank_rows,
    _number_types,
    _parse,
    _payload,
    _Sep,
    UNPACK_LIMIT_MB,
)
from irgan.errors import DataError, first_line

__all__ = ["COLUMN_NAMES", "DEFAULT_COLUMNS", "MISSING", "from_dataframe", "kcore", "read_ratings"]

logger = logging.getLogger(__name__)


def read_ratings(
    path: str | os.PathLike,
    sep: str | None = None,
    columns: Sequence[str | None] | str | None = None,
    header: bool | None = None,
    encoding: str = "utf-8",
    max_unpacked_mb: float = UNPACK_LIMIT_MB,
) -> pd.DataFrame:
    """Read a ratings file (text, compressed text or parquet) into a DataFrame of shape (n_rows, 2-4).

    ``sep`` (sniffed when None) is one character, a literal string such as "::" or "||", ``r"\\s+"``
    for runs of spaces and tabs, or a regular expression (one with any of ``.^$*+?{}[]\\|()`` that
    matches no empty string; slower). ``encoding`` is the text's (UTF-16 with a byte-order mark is found).
    ``columns`` and header detection (``header=None``) are as the module docstring says. A compressed
    file (or parquet's compressed columns) may unpack to at most ``max_unpacked_mb`` MiB.
    """
    return _read_ratings(path, sep, columns, header, encoding, max_unpacked_mb=max_unpacked_mb)


def _read_ratings(
    path: str | os.PathLike,
    sep: str | None = None,
    columns: Sequence[str | None] | str | None = None,
    header: bool | None = None,
    encoding: str = "utf-8",
    time_optional: bool = False,
    max_unpacked_mb: float = UNPACK_LIMIT_MB,
) -> pd.DataFrame:
    """``read_ratings``; with ``time_optional`` a bad timestamp column is dropped with a warning, not an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not (isinstance(max_unpacked_mb, (int, float)) and max_unpacked_mb > 0):
        raise DataError(f"max_unpacked_mb must be a positive number, got {max_unpacked_mb!r}")
    limit = int(min(max_unpacked_mb, 2**40) * 2**20)
    roles = None if columns is None else _roles_from_columns(str(path), columns)
    raw = _payload(path, limit)
    raw_is_text = raw[:4] != b"PAR1"
    if not raw_is_text:
        cols, fail = _parquet_columns(path, raw, roles, limit)
    else:
        cols, fail = _text_columns(path, raw, sep, roles, header, encoding, limit)
    del raw
    out = _convert(cols, fail, time_optional, from_text=raw_is_text)
    logger.debug("read %d ratings (%s) from %s", len(out), ", ".join(out.columns), path)
    return out


def from_dataframe(
    df: pd.DataFrame,
    user_col: str = "user",
    item_col: str = "item",
    rating_col: str | None = "rating",
    timestamp_col: str | None = None,
) -> pd.DataFrame:
    """Validate a user DataFrame and return it renamed to columns user, item[, rating][, timestamp].

    Ids follow the module docstring's rule. ``rating_col`` may be None (or absent when left at its
    default) for implicit data. Raises DataError naming the first bad row (0-based position and label).
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

    return _convert({std: df[col] for std, col in wanted.items()}, fail, time_optional=False, from_text=False)


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


# --- text and parquet ------------------------------------------------------------------------


def _text_columns(path: Path, raw: bytes, sep: str | None, roles: list[str | None] | None, header: bool | None,
                  encoding: str, limit: int) -> tuple[dict[str, pa.ChunkedArray], Callable[[int, str], DataError]]:
    """Parse delimited text into one pyarrow column per role, and a ``fail(row, reason)`` naming the row's line.

    Kept in one piece from sniffing to parsed columns because every step feeds the next its
    line numbers: the header's line is pyarrow's ``skip_rows``, and errors are mapped back to lines.
    """
    raw = _as_utf8(path, raw, encoding)
    head = list(itertools.islice(((no, text) for no, text in _lines(raw) if text.strip()), 2))
    if not head:
        raise DataError(f"{path}: file is empty (no ratings)")
    first_no, first = head[0]
    splitter = _Sep(sep or next((s for s in _SNIFFED if s in first), _WHITESPACE))
    fields = splitter.split(first)
    where = f"{path}, line {first_no}"
    if header is None:
        header = _looks_like_header(fields, splitter.split(head[1][1]) if len(head) > 1 else None)
        if header:
            logger.info("%s read as a header: %s (pass header=False if it is data)", where, _short(fields, 120))
    if roles is None:
        roles = _roles_from_header(where, fields, first) if header else _roles_by_width(where, fields, first)
    if len(fields) != len(roles):
        raise DataError(_bad_line(path, first_no, first, f"expected {len(roles)} fields (as columns= says), "
                                                         f"found {len(fields)}"))
    if header and _ignored(fields, roles):
        logger.debug("%s: ignoring column(s) %s", where, _ignored(fields, roles))
    lines = _LineFinder(path, encoding, first_no if header else 0, len(roles), splitter, limit)
    first_row = fields if not header else (splitter.split(head[1][1]) if len(head) > 1 else [])
    table = _parse(path, splitter.data(path, raw), splitter.delimiter, roles, _number_types(roles, first_row), lines)
    del raw
    kept = _nonblank_rows(table)
    if kept is not None:
        table = table.take(pa.array(kept))
    if table.num_rows == 0:
        raise DataError(f"{path}: file is empty (no ratings)")

    def fail(row: int, reason: str) -> DataError:
        line_no, text = lines.line_of(int(row if kept is None else kept[row]))
        return DataError(_bad_line(path, line_no, text, reason))

    return {name: table.column(name) for name in table.column_names}, fail


def _parquet_columns(path: Path, raw: bytes, roles: list[str | None] | None, limit: int
                     ) -> tuple[dict[str, pa.ChunkedArray], Callable[[int, str], DataError]]:
    """The wanted columns of a parquet file (mapped by name, or by ``roles`` in schema order), once
    its footer says they unpack to at most ``limit`` bytes."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(raw))
        meta = parquet.metadata
        unpacked = sum(meta.row_group(k).column(c).total_uncompressed_size
                       for k in range(meta.num_row_groups) for c in range(meta.num_columns))
        if unpacked > limit:
            raise DataError(f"{path}: its columns unpack to {unpacked:,} bytes, over the limit of {limit:,} for "
                            "compressed ratings: raise it with --max-unpacked-mb (max_unpacked_mb= in Python)")
        names = parquet.schema_arrow.names
        if roles is None:
            roles = _roles_from_header(str(path), names, kind="parquet columns")
        elif len(roles) != len(names):
            raise DataError(f"{path}: columns= names {len(roles)} fields but the file has {len(names)} columns: "
                            f"{_short(names, 120)}")
        wanted = {name: role for name, role in zip(names, roles) if role}
        if len(wanted) < len(names):
            logger.debug("%s: ignoring column(s) %s", path, _ignored(names, roles))
        table = parquet.read(columns=list(wanted))
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: cannot read it as parquet: {first_line(err)}") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: file is empty (no ratings)")

    def fail(row: int, reason: str) -> DataError:
        return DataError(f"{path}, row {row + 1}: {reason}")

    return {role: table.column(name) for name, role in wanted.items()}, fail


# --- checked columns -------------------------------------------------------------------------


def _convert(cols: dict[str, Any], fail: Callable[[int, str], DataError], time_optional: bool,
             from_text: bool) -> pd.DataFrame:
    """Checked, converted columns in DEFAULT_COLUMNS order; ``fail(row, reason)`` for the first bad row.

    ``cols`` holds pyarrow arrays (files) or pandas Series (DataFrames). ``from_text``: fields of
    a text file, where MISSING tokens are missing and spaces around ids are dropped. With
    ``time_optional`` a bad timestamp column is dropped with a warning instead.
    """
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for col in [col for col in DEFAULT_COLUMNS if col in cols]:
        values = cols[col]
        ints = _canonical_ints(values) if col != "rating" and _is_strings(values) else None
        if ints is not None:  # the common case first: integer ids and times hold no missing token
            out[col] = ints
            continue
        missing = _missing(values, from_text)
        if missing.any():
            values, problem = None, (int(missing.argmax()), f"empty or NaN {col}")
        elif col in ("user", "item"):
            values, problem = _ids(values, col, from_text)
        elif col == "rating":
            values, problem = _ratings(values)
        else:
            values, problem = _timestamps(values)
        if problem is not None and col == "timestamp" and time_optional:
            logger.warning("%s; the timestamps are dropped (only the loo and temporal splits use them)", fail(*problem))
            continue
        if problem is not None:
            problems.append(problem)
        out[col] = values
    if problems:
        raise fail(*min(problems))
    # pd.concat of Series shares memory; DataFrame(dict of arrays) would copy every column.
    return pd.concat([_series(values, col) for col, values in out.items()], axis=1)


def _series(values: Any, name: str) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True).rename(name)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return pd.Series(values.to_pandas(), name=name)
    return pd.Series(values, name=name, copy=False)
