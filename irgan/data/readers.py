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
"""
from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import itertools
import logging
import lzma
import os
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from irgan.errors import DataError

logger = logging.getLogger(__name__)

DEFAULT_COLUMNS = ("user", "item", "rating", "timestamp")
# Header names mapped to each column, compared by _name_key (so "userId", "USER_ID" and
# "user_id:token" all read as "userid").
COLUMN_NAMES = {
    "user": ("user", "user_id", "users", "uid", "customer", "customer_id", "reviewer_id", "member_id",
             "visitor_id", "account_id", "client_id", "person_id"),
    "item": ("item", "item_id", "items", "iid", "movie", "movie_id", "product", "product_id", "asin", "isbn",
             "business_id", "track_id", "song_id", "book_id", "artist_id", "anime_id", "game_id", "recipe_id",
             "article_id", "video_id", "news_id", "venue_id", "poi_id", "sku"),
    "rating": ("rating", "ratings", "score", "stars", "star", "rate", "overall", "preference", "book_rating"),
    "timestamp": ("timestamp", "time", "date", "datetime", "ts", "unix_time", "unix_review_time", "created_at"),
}
MISSING = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
           "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")  # pandas's missing-value tokens
_BY_WIDTH = {2: ("user", "item"), 3: ("user", "item", "rating"), 4: DEFAULT_COLUMNS}
_SNIFFED = ("::", "\t", ",", ";", "|")
_WHITESPACE = r"\s+"
_UNIT = "\x1f"  # ASCII unit separator: stands in for any separator pyarrow cannot take (it takes one byte)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_CANONICAL = r"^(0|-?[1-9][0-9]*)$"
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip"}
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_BREAK = re.compile(rb"\r\n|\r|\n")
_CHECK_BYTES = 1 << 24  # UTF-8 is checked this much at a time

Problem = tuple[int, str]  # (0-based row, reason)


def read_ratings(
    path: str | os.PathLike,
    sep: str | None = None,
    columns: Sequence[str | None] | str | None = None,
    header: bool | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a ratings file (text, compressed text or parquet) into a DataFrame of shape (n_rows, 2-4).

    ``sep`` (sniffed when None) is one character, a literal string such as "::" or "||", ``r"\\s+"``
    for runs of spaces and tabs, or a regular expression (one with any of ``.^$*+?{}[]\\|()`` that
    matches no empty string; slower). ``encoding`` is the text's (UTF-16 with a byte-order mark is found).
    ``columns`` and header detection (``header=None``) are as the module docstring says.
    """
    return _read_ratings(path, sep, columns, header, encoding)


def _read_ratings(
    path: str | os.PathLike,
    sep: str | None = None,
    columns: Sequence[str | None] | str | None = None,
    header: bool | None = None,
    encoding: str = "utf-8",
    time_optional: bool = False,
) -> pd.DataFrame:
    """``read_ratings``; with ``time_optional`` a bad timestamp column is dropped with a warning, not an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    roles = None if columns is None else _roles_from_columns(str(path), columns)
    raw = _payload(path)
    raw_is_text = raw[:4] != b"PAR1"
    if not raw_is_text:
        cols, fail = _parquet_columns(path, raw, roles)
    else:
        cols, fail = _text_columns(path, raw, sep, roles, header, encoding)
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


# --- bytes ----------------------------------------------------------------------------------


def _payload(path: Path) -> bytes:
    """The file's bytes, decompressed when they begin as gzip, bz2, xz or a zip archive does."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise DataError(f"{path}: cannot read: {_one_line(err)}") from err
    kind = next((kind for magic, kind in _MAGIC.items() if raw.startswith(magic)), None)
    if kind is None:
        return raw
    try:
        if kind == "zip":
            return _unzip(path, raw)
        return {"gzip": gzip.decompress, "bz2": bz2.decompress, "xz": lzma.decompress}[kind](raw)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, ValueError) as err:
        raise DataError(f"{path}: cannot decompress it as {kind}: {_one_line(err)}") from err


def _unzip(path: Path, raw: bytes) -> bytes:
    """The one file of a zip archive (folders and macOS metadata aside)."""
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        members = [m for m in zf.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")
                   and not Path(m.filename).name.startswith(".")]
        if len(members) != 1:
            names = [m.filename for m in members]
            raise DataError(f"{path}: a zip of ratings must hold one file, this one holds {len(names)}: "
                            f"{_short(names, 120)}; unzip it and pass the ratings file")
        return zf.read(members[0])


def _as_utf8(path: Path, raw: bytes, encoding: str) -> bytes:
    """``raw`` as UTF-8 (checked; other encodings and UTF-16 with a byte-order mark are transcoded)."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"{path}: unknown encoding {encoding!r}") from None
    if name in ("utf-8", "utf-8-sig") and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        name = "utf-16"  # what spreadsheets save as "Unicode text"
    if name not in ("utf-8", "utf-8-sig"):
        try:
            return raw.decode(name).encode("utf-8")
        except UnicodeError as err:
            raise DataError(f"{path}: not {encoding} text: {_one_line(err)}") from err
    if raw.isascii():
        return raw
    view, start = memoryview(raw), 0
    while start < len(raw):  # whole lines at a time: a character never straddles two pieces
        end = raw.find(b"\n", start + _CHECK_BYTES)
        end = len(raw) if end < 0 else end + 1
        try:
            codecs.utf_8_decode(view[start:end], "strict", True)
        except UnicodeDecodeError as err:
            at = start + err.start
            line_no = len(_BREAK.findall(raw, 0, at)) + 1
            raise DataError(f"{path}, line {line_no}: not utf-8 text (byte {raw[at]:#04x}): "
                            "pass the file's encoding, e.g. encoding='latin-1'") from None
        start = end
    return raw


def _lines(raw: bytes) -> Iterator[tuple[int, str]]:
    """(1-based number, text) of every line of UTF-8 ``raw`` (CR, LF or CRLF ends; a leading BOM dropped)."""
    for line_no, match in enumerate(_LINE.finditer(raw), 1):
        text = match.group().rstrip(b"\r\n").decode("utf-8", "replace")
        yield line_no, (text.removeprefix("\ufeff") if line_no == 1 else text)


# --- text files -----------------------------------------------------------------------------


class _Sep:
    """A field separator as pyarrow sees it: one ASCII character, else every match rewritten to _UNIT."""

    def __init__(self, sep: str) -> None:
        self.sep = sep
        if len(sep) == 1 and sep.isascii():
            self.mode = "direct"
        elif sep == _WHITESPACE:
            self.mode = "whitespace"
        else:
            self.mode = "regex" if _is_regex(sep) else "literal"
        self.delimiter = sep if self.mode == "direct" else _UNIT

    def line(self, text: str) -> str:
        """One line as pyarrow will parse it."""
        mode = self.mode
        if mode == "direct":
            return text
        if mode == "whitespace":
            return re.sub(r"[ \t]+", _UNIT, text.strip(" \t"))
        return text.replace(self.sep, _UNIT) if mode == "literal" else _UNIT.join(re.split(self.sep, text))

    def data(self, path: Path, raw: bytes) -> bytes:
        """The whole UTF-8 text as pyarrow will parse it (line for line what ``line`` gives)."""
        mode = self.mode
        if mode == "direct":
            return raw
        if _UNIT.encode() in raw:
            raise DataError(f"{path}: holds the control character 0x1f, which reading sep={self.sep!r} needs: "
                            "use a one-character sep")
        raw = raw.removeprefix(codecs.BOM_UTF8)
        if mode == "literal":
            return raw.replace(self.sep.encode(), _UNIT.encode())
        if mode == "whitespace":
            raw = re.sub(rb"[ \t]+", _UNIT.encode(), raw)
            return re.sub(rb"(?:\A|(?<=[\r\n]))\x1f|\x1f(?=[\r\n]|\Z)", b"", raw)
        return "\n".join(self.line(text) for _, text in _lines(raw)).encode()

    def split(self, text: str) -> list[str]:
        """The fields of one line, quotes handled as pyarrow does."""
        line = self.line(text)
        if '"' not in line:
            return line.split(self.delimiter) if line else []
        try:
            return next(csv.reader([line], delimiter=self.delimiter), [])
        except csv.Error:
            return line.split(self.delimiter)


def _is_regex(sep: str) -> bool:
    """A separator with regex metacharacters that compiles to a pattern matching no empty string ("||" is literal)."""
    if not set(sep) & set(".^$*+?{}[]\\|()"):
        return False
    try:
        return re.compile(sep).fullmatch("") is None
    except re.error:
        return False


def _text_columns(path: Path, raw: bytes, sep: str | None, roles: list[str | None] | None, header: bool | None,
                  encoding: str) -> tuple[dict[str, pa.ChunkedArray], Callable[[int, str], DataError]]:
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
    lines = _LineFinder(path, encoding, first_no if header else 0, len(roles), splitter)
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


def _number_types(roles: list[str | None], first_row: list[str]) -> dict[str, pa.DataType]:
    """pyarrow types to parse straight to: ratings as float64; timestamps as int64 when the first row has one."""
    types = {"rating": pa.float64()}
    k = roles.index("timestamp") if "timestamp" in roles else len(first_row)
    if k < len(first_row) and re.fullmatch(r"\s*-?\d{1,18}\s*", first_row[k]):
        types["timestamp"] = pa.int64()  # no text to build and cast; a later non-integer reparses as text
    return types


def _nonblank_rows(table: pa.Table) -> np.ndarray | None:
    """Positions of the rows with some text, None when every row has: a row of empty fields (",,,") is a blank line."""
    blank = None
    for col in table.columns:
        empty = pc.equal(col, "") if _is_strings(col) else pc.is_null(col)
        if not pc.any(empty).as_py():
            return None
        blank = empty if blank is None else pc.and_(blank, empty)
    if blank is None or not pc.any(blank).as_py():
        return None
    return np.flatnonzero(~blank.to_numpy())


def _ignored(fields: list[str], roles: list[str | None]) -> list[str]:
    """Header fields mapped to no column."""
    return [field for field, role in zip(fields, roles) if role is None]


def _parse(path: Path, data: bytes, delimiter: str, roles: list[str | None], numbers: dict[str, pa.DataType],
           lines: _LineFinder) -> pa.Table:
    """pyarrow's CSV parse of ``data`` into columns named by role: ids as text, ``numbers`` {role: type}.

    A field pyarrow cannot read as its number type makes a second parse with every column as
    text, where the checks find the row; a row with the wrong number of fields is reported by line.
    """
    names = [f"f{k}" for k in range(len(roles))]
    wanted = {name: role for name, role in zip(names, roles) if role}
    types = {name: numbers.get(role, pa.string()) for name, role in wanted.items()}
    wrong: list[str] = []

    def invalid(row) -> str:
        if not row.text.strip():  # a line of spaces: blank
            return "skip"
        wrong.append(row.text)
        return "error"

    try:
        table = pa_csv.read_csv(
            pa.py_buffer(data),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=lines.skip),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, include_columns=list(wanted), null_values=list(MISSING),
                strings_can_be_null=False),  # text is cheaper to parse as is; _missing finds the tokens
        )
    except pa.ArrowException as err:
        if wrong:
            raise lines.wrong_width(wrong[0]) from None
        if numbers and "conversion error" in str(err):
            return _parse(path, data, delimiter, roles, {}, lines)
        raise DataError(f"{path}: cannot parse: {_one_line(err)}") from None
    return table.rename_columns([wanted[name] for name in table.column_names])


class _LineFinder:
    """Maps pyarrow's rows back to file lines, by reading the file again (error paths only)."""

    def __init__(self, path: Path, encoding: str, skip: int, width: int, splitter: _Sep) -> None:
        self.path, self.encoding, self.skip, self.width, self.splitter = path, encoding, skip, width, splitter

    def _rows(self) -> Iterator[tuple[int, str, int]]:
        """(line, text, n_fields) of each line pyarrow reads as a row or refuses, in file order."""
        raw = _as_utf8(self.path, _payload(self.path), self.encoding)
        for line_no, text in _lines(raw):
            seen = self.splitter.line(text)
            if line_no <= self.skip or not seen:
                continue
            width = len(self.splitter.split(text))
            if width == self.width or seen.strip():
                yield line_no, text, width

    def line_of(self, row: int) -> tuple[int, str]:
        """Line number and text of the 0-based ``row`` of the parse."""
        rows = ((no, text) for no, text, width in self._rows() if width == self.width)
        return next(itertools.islice(rows, row, None), (0, ""))

    def wrong_width(self, text: str) -> DataError:
        """The error for the first line whose number of fields is wrong (``text``: one pyarrow refused)."""
        for line_no, line, width in self._rows():
            if width != self.width:
                return DataError(_bad_line(self.path, line_no, line, f"expected {self.width} fields, found {width}"))
        return DataError(f"{self.path}: expected {self.width} fields in every line, not in {_short(text)}")


def _looks_like_header(fields: list[str], following: list[str] | None) -> bool:
    """No field is a number, and one is a known column name or the next line holds a number."""
    if any(_NUMBER.fullmatch(field.strip()) for field in fields):
        return False
    if any(_role_of(field) for field in fields):
        return True
    return following is not None and any(_NUMBER.fullmatch(field.strip()) for field in following)


def _name_key(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", re.sub(r":\w+$", "", name.strip()).lower())


_ROLE_OF = {_name_key(name): role for role, names in COLUMN_NAMES.items() for name in names}


def _role_of(name: str) -> str | None:
    return _ROLE_OF.get(_name_key(name))


def _roles_from_columns(where: str, columns: Sequence[str | None] | str) -> list[str | None]:
    """The role of each field named by ``columns``; DataError for unknown names, repeats, or no user/item."""
    try:
        entries = columns.split(",") if isinstance(columns, str) else list(columns)
    except TypeError:
        raise DataError(f"{where}: columns must be a sequence of names or a comma-separated string, "
                        f"got {type(columns).__name__}") from None
    roles: list[str | None] = []
    for entry in entries:
        if entry is None or (isinstance(entry, str) and entry.strip() in ("", "-")):
            roles.append(None)
            continue
        role = _role_of(entry) if isinstance(entry, str) else None
        if role is None:
            raise DataError(f"{where}: columns={_short(columns)}: {entry!r} is not user, item, rating, timestamp, "
                            "or '-' for a field to skip")
        if role in roles:
            raise DataError(f"{where}: columns={_short(columns)} names the {role} column twice")
        roles.append(role)
    missing = [role for role in ("user", "item") if role not in roles]
    if missing:
        raise DataError(f"{where}: columns={_short(columns)} has no {' and no '.join(missing)} column")
    return roles


def _roles_from_header(where: str, fields: list[str], text: str | None = None, kind: str = "header"
                       ) -> list[str | None]:
    """The role of each header field (None: ignored); DataError when user or item is missing or named twice."""
    roles = [_role_of(field) for field in fields]
    twice = next((role for role in roles if role and roles.count(role) > 1), None)
    missing = [role for role in ("user", "item") if role not in roles]
    if twice is None and not missing:
        return roles
    guess = [role if role and role not in roles[:k] else None for k, role in enumerate(roles)]
    for role in missing:  # an example for the message: missing columns in the first unnamed places
        guess[next((k for k, r in enumerate(guess) if r is None), len(guess) - 1)] = role
    example = ",".join(role or "-" for role in guess)
    if twice:
        problem = f"names the {twice} column twice ({', '.join(repr(f) for f, r in zip(fields, roles) if r == twice)})"
    else:
        problem = f"has no {' and no '.join(missing)} column"
    data_hint = "; or header=False if that line is data" if text is not None else ""
    raise DataError(f"{where}: the {kind} {_short(fields, 120)} {problem}: name every field in order with "
                    f"columns=, e.g. columns={example!r} ('-' skips a field){data_hint}")


def _roles_by_width(where: str, fields: list[str], text: str) -> list[str | None]:
    if len(fields) not in _BY_WIDTH:
        raise DataError(f"{where}: expected 2-4 fields, found {len(fields)} (give the file a header, or name the "
                        f"fields with columns=): {_short(text, 80)}")
    return list(_BY_WIDTH[len(fields)])


# --- parquet --------------------------------------------------------------------------------


def _parquet_columns(path: Path, raw: bytes, roles: list[str | None] | None
                     ) -> tuple[dict[str, pa.ChunkedArray], Callable[[int, str], DataError]]:
    """The wanted columns of a parquet file (mapped by name, or by ``roles`` in schema order)."""
    try:
        parquet = pq.ParquetFile(pa.BufferReader(raw))
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
        raise DataError(f"{path}: cannot read it as parquet: {_one_line(err)}") from None
    if table.num_rows == 0:
        raise DataError(f"{path}: file is empty (no ratings)")

    def fail(row: int, reason: str) -> DataError:
        return DataError(f"{path}, row {row + 1}: {reason}")

    return {role: table.column(name) for name, role in wanted.items()}, fail


# --- checks ---------------------------------------------------------------------------------


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


def _is_strings(values: Any) -> bool:
    return isinstance(values, (pa.Array, pa.ChunkedArray)) and (
        pa.types.is_string(values.type) or pa.types.is_large_string(values.type))


def _missing(values: Any, tokens: bool) -> np.ndarray:
    """Boolean mask of missing entries: null, NaN, None, NaT, and with ``tokens`` text in MISSING."""
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.isna().to_numpy()
    if values.null_count == 0 and not pa.types.is_floating(values.type):
        missing = np.zeros(len(values), dtype=bool)
    else:
        missing = pc.is_null(values, nan_is_null=True).to_numpy(zero_copy_only=False)
    if tokens and _is_strings(values):
        missing |= pc.is_in(values, value_set=pa.array(MISSING)).to_numpy(zero_copy_only=False)
    return missing


def _classify(values: Any) -> tuple[str, Any]:
    """The kind of a column without missing entries and its data.

    ("str", pyarrow strings), ("int" | "float" | "bool", ndarray), ("time", datetime Series), or
    ("object", ndarray of anything else).
    """
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        kind = values.type
        if pa.types.is_dictionary(kind):
            values, kind = values.cast(kind.value_type), kind.value_type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return "str", values
        numeric = {"int": pa.types.is_integer, "float": pa.types.is_floating, "bool": pa.types.is_boolean}
        for name, test in numeric.items():
            if test(kind):
                return name, values.to_numpy()
        values = pd.Series(values.to_pandas())
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        values = values.astype(object)
        dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool", values.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(dtype):
        return "int", values.to_numpy(dtype=np.uint64 if dtype.kind == "u" and values.max() >= 2**63 else np.int64)
    if pd.api.types.is_float_dtype(dtype):
        return "float", values.to_numpy(dtype=np.float64)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "time", values
    if dtype != object and pd.api.types.is_string_dtype(dtype):
        return "str", pa.array(values)
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    try:
        if inferred == "string":
            return "str", pa.array(values, type=pa.string())
        if inferred == "integer":
            return "int", values.to_numpy(dtype=np.int64)
        if inferred in ("floating", "mixed-integer-float"):
            return "float", values.to_numpy(dtype=np.float64)
        if inferred == "boolean":
            return "bool", values.to_numpy(dtype=bool)
        if inferred in ("datetime", "datetime64", "date"):
            return "time", pd.to_datetime(values, utc=True)
    except (pa.ArrowException, UnicodeError, OverflowError, TypeError, ValueError):
        pass  # e.g. strings pyarrow cannot encode, ints beyond int64: kept as they are
    return "object", values.to_numpy(dtype=object)


def _ids(values: Any, col: str, trim: bool) -> tuple[Any, Problem | None]:
    """Ids by the module docstring's rule: int64 when all are canonical integers, else as given."""
    kind, data = _classify(values)
    if kind == "str":
        ints = _canonical_ints(data)
        if ints is None and trim:
            data = pc.utf8_trim_whitespace(data)
            ints = _canonical_ints(data)
        if ints is not None:
            return ints, None
        return (data if trim else values), None
    if kind == "int":
        return data, None
    if kind == "float":
        whole = np.isfinite(data) & (np.abs(data) <= 2**53)
        whole[whole] = data[whole] == np.round(data[whole])
        if whole.all():
            return data.astype(np.int64), None
        row = int(whole.argmin())
        value = data[row]
        if not np.isfinite(value):
            why = "is not finite"
        elif value != np.round(value):
            why = "is not a whole number"
        else:
            why = "is beyond +-2**53, where floats merge neighbouring ids"
        return None, (row, f"{col} id {_short(value)} {why}: give float ids as integers or strings")
    if kind == "object":
        return values, _mixed_ids(data, col)
    return values, None


def _canonical_ints(strings: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """int64 values when every string is a canonical integer within int64, else None.

    pyarrow's cast takes an optional '-' and digits, within int64, but also leading zeros and
    "0x" hex, which all begin with "0" or "-0": those are looked for in the strings' bytes.
    """
    chunks = strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]
    out, start = np.empty(len(strings), dtype=np.int64), 0
    for chunk in chunks:  # chunk by chunk into one array: no second copy of the whole column
        try:
            out[start:start + len(chunk)] = pc.cast(chunk, pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            return None
        if _zero_led(chunk):
            return None
        start += len(chunk)
    return out


def _zero_led(strings: pa.Array) -> bool:
    """True when a string of ``strings`` (none null or empty) is longer than "0" and begins with "0" or "-0"."""
    if len(strings) == 0:
        return False
    offset_type = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    _, offsets, data = strings.buffers()
    offsets = np.frombuffer(offsets, dtype=offset_type)[strings.offset: strings.offset + len(strings) + 1]
    data = np.frombuffer(data, dtype=np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    first, second = data[starts], data[np.minimum(starts + 1, len(data) - 1)]
    zero, minus = ord("0"), ord("-")
    return bool((((first == zero) & (lengths > 1)) | ((first == minus) & (second == zero))).any())


def _ratings(values: Any) -> tuple[np.ndarray | None, Problem | None]:
    """float64 ratings; a problem for the first one that is not a finite number."""
    numbers, problem = _numbers(values, "rating")
    if problem is None and np.isinf(numbers).any():
        problem = (int(np.isinf(numbers).argmax()), "rating is infinite")
    return numbers, problem


def _timestamps(values: Any) -> tuple[np.ndarray | None, Problem | None]:
    """int64 timestamps (ISO-8601 text as seconds since the epoch; fractional numbers stay float64)."""
    kind, data = _classify(values)
    if kind == "int":
        return data, None
    if kind == "time":
        return _seconds(data), None
    if kind == "str":
        ints = _canonical_ints(data)
        if ints is not None:
            return ints, None
        data = pc.utf8_trim_whitespace(data)
        try:
            numbers = pc.cast(data, pa.float64()).to_numpy()
        except pa.ArrowInvalid:
            if _castable(data.slice(0, 1), pa.float64()):  # numbers, then something else
                bad = _first_uncastable(data, pa.float64())
            else:
                seconds, bad = _iso_seconds(data)
                if seconds is not None:
                    return seconds, None
            return None, (bad, f"timestamp is not a number or an ISO-8601 time: {_short(data[bad].as_py())}")
    else:
        numbers, problem = _numbers(values, "timestamp")
        if problem is not None:
            return None, problem
    if np.isinf(numbers).any():
        return None, (int(np.isinf(numbers).argmax()), "timestamp is infinite")
    if np.all(np.abs(numbers) < 2**53) and np.all(numbers == np.round(numbers)):
        return numbers.astype(np.int64), None
    return numbers, None


def _numbers(values: Any, col: str) -> tuple[np.ndarray | None, Problem | None]:
    """float64 values of a column of numbers or number-like text; a problem for the first that is not one."""
    kind, data = _classify(values)
    if kind in ("int", "float", "bool"):
        return data.astype(np.float64, copy=False), None
    if kind == "str":
        data = pc.utf8_trim_whitespace(data)
        try:
            return pc.cast(data, pa.float64()).to_numpy(), None
        except pa.ArrowInvalid:
            row = _first_uncastable(data, pa.float64())
            return None, (row, f"{col} is not a number: {_short(data[row].as_py())}")
    if kind == "object":
        numbers = _real_numbers(pd.Series(data))
        if np.isnan(numbers).any():
            row = int(np.isnan(numbers).argmax())
            return None, (row, f"{col} is not a number: {_short(data[row])}")
        return numbers, None
    return None, (0, f"{col} is not a number: {_short(data.iloc[0])}")


def _castable(strings: pa.Array | pa.ChunkedArray, to: pa.DataType) -> bool:
    try:
        pc.cast(strings, to)
    except pa.ArrowInvalid:
        return False
    return True


def _first_uncastable(strings: pa.Array | pa.ChunkedArray, to: pa.DataType) -> int:
    """Position of the first string pyarrow cannot cast to ``to`` (bisection: a few casts, no Python loop)."""
    low, high = 0, len(strings)  # strings[low:high] holds a failure
    while high - low > 1:
        mid = (low + high) // 2
        if _castable(strings.slice(low, mid - low), to):
            low = mid
        else:
            high = mid
    return low


def _iso_seconds(strings: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray | None, int]:
    """(int64 seconds since 1970-01-01 UTC, 0) of ISO-8601 times, or (None, first row that is not one).

    pyarrow parses a column of times without offsets, or one of times with offsets; anything
    else (a mix, or forms pyarrow refuses) goes through pandas, which takes more time and memory.
    """
    for zone in (None, "UTC"):
        try:
            micros = pc.cast(strings, pa.timestamp("us", tz=zone)).cast(pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            continue
        return micros // 10**6, 0
    times = pd.to_datetime(pd.Series(strings.to_pandas()), format="ISO8601", utc=True, errors="coerce")
    bad = times.isna().to_numpy()
    return (None, int(bad.argmax())) if bad.any() else (_seconds(times), 0)


def _seconds(times: pd.Series) -> np.ndarray:
    """int64 seconds since 1970-01-01 UTC of a datetime Series (naive times taken as UTC), rounded down."""
    if times.dt.tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times.to_numpy().astype("datetime64[us]").astype(np.int64) // 10**6


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


def _mixed_ids(raw: np.ndarray, col: str) -> Problem | None:
    """(row, reason) for the first id of an object column that cannot be sorted with the others, else None.

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

    kinds = np.array([kind(v) for v in raw])
    bad = (kinds == "other") | (kinds != kinds[0])
    row = int(bad.argmax())
    value = raw[row]
    if kind(value) == "other":
        return row, f"{col} id {_short(value)} is a {type(value).__name__}: ids must be numbers or strings"
    return row, (f"{col} id {_short(value)} is a {kind(value)}, unlike the {col} ids before it ({kinds[0]}): "
                 "ids must be all numbers or all strings")


def _short(value, limit: int = 60) -> str:
    """repr of a value from the data, numpy scalars shown as plain Python ones, cut at ``limit``."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _bad_line(path: Path, line_no: int, text: str, reason: str) -> str:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return f"{path}, line {line_no}: {reason}: {shown!r}"
