"""A ratings file's bytes, and pyarrow's parse of its text into columns.

Bytes: gzip, bz2, xz and one-file zip archives are recognised by their first bytes and
decompressed; text is checked as UTF-8, or transcoded to it from the encoding given. Parse:
pyarrow's CSV reader takes a one-byte delimiter, so any other separator ("::", runs of spaces, a
regular expression) is first rewritten to ``_UNIT``. pyarrow's rows carry no line numbers, so
``_LineFinder`` reads the file again to name the line of a bad row (on error paths only).
"""
from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import itertools
import lzma
import re
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from irgan.data.checks import MISSING, _is_strings, _short
from irgan.errors import DataError, first_line

_SNIFFED = ("::", "\t", ",", ";", "|")
_WHITESPACE = r"\s+"
_UNIT = "\x1f"  # ASCII unit separator: stands in for any separator pyarrow cannot take (it takes one byte)
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip"}
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_BREAK = re.compile(rb"\r\n|\r|\n")
_CHECK_BYTES = 1 << 24  # UTF-8 is checked this much at a time
_CHUNK_BYTES = 1 << 22  # compressed files are unpacked this much at a time
UNPACK_LIMIT_MB = 512  # the most a compressed ratings file may unpack to, unless raised (max_unpacked_mb)


# --- bytes -----------------------------------------------------------------------------------


def _payload(path: Path, limit: int = UNPACK_LIMIT_MB << 20) -> bytes:
    """The file's bytes, decompressed when they begin as gzip, bz2, xz or a zip archive does: as a
    stream, refused (one line) once it unpacks past ``limit`` bytes, so a small file cannot fill memory."""
    try:
        with open(path, "rb") as f:
            head = f.read(max(map(len, _MAGIC)))
            kind = next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)
            if kind is None:
                return head + f.read()
    except OSError as err:
        raise DataError(f"{path}: cannot read: {first_line(err)}") from err
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf, zf.open(_zip_member(path, zf)) as stream:
                return _bounded(path, stream, limit)
        with {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}[kind](path, "rb") as stream:
            return _bounded(path, stream, limit)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, ValueError) as err:
        raise DataError(f"{path}: cannot decompress it as {kind}: {first_line(err)}") from err


def _bounded(path: Path, stream: BinaryIO, limit: int) -> bytes:
    """What ``stream`` yields, read a chunk at a time; DataError once it passes ``limit`` bytes."""
    out = io.BytesIO()  # getvalue() hands over its buffer: no second copy of the text
    while chunk := stream.read(_CHUNK_BYTES):
        if out.tell() + len(chunk) > limit:
            raise DataError(f"{path}: unpacks to more than {limit:,} bytes, the limit for compressed ratings "
                            "(a decompression bomb, or a big file): unpack it yourself, or raise the limit with "
                            "--max-unpacked-mb (max_unpacked_mb= in Python)")
        out.write(chunk)
    return out.getvalue()


def _zip_member(path: Path, zf: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The one file of a zip archive (folders and macOS metadata aside)."""
    members = [m for m in zf.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")
               and not Path(m.filename).name.startswith(".")]
    if len(members) != 1:
        names = [m.filename for m in members]
        raise DataError(f"{path}: a zip of ratings must hold one file, this one holds {len(names)}: "
                        f"{_short(names, 120)}; unzip it and pass the ratings file")
    return members[0]


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
            raise DataError(f"{path}: not {encoding} text: {first_line(err)}") from err
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


# --- text ------------------------------------------------------------------------------------


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


def _number_types(roles: list[str | None], first_row: list[str]) -> dict[str, pa.DataType]:
    """pyarrow types to parse straight to: ratings as float64; timestamps as int64 when the first row has one."""
    types = {"rating": pa.float64()}
    k = roles.index("timestamp") if "timestamp" in roles else len(first_row)
    if k < len(first_row) and re.fullmatch(r"\s*-?\d{1,18}\s*", first_row[k]):
        types["timestamp"] = pa.int64()  # no text to build and cast; a later non-integer reparses as text
    return types


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
        raise DataError(f"{path}: cannot parse: {first_line(err)}") from None
    return table.rename_columns([wanted[name] for name in table.column_names])


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


class _LineFinder:
    """Maps pyarrow's rows back to file lines, by reading the file again (error paths only)."""

    def __init__(self, path: Path, encoding: str, skip: int, width: int, splitter: _Sep, limit: int) -> None:
        self.path, self.encoding, self.skip, self.width, self.splitter = path, encoding, skip, width, splitter
        self.limit = limit

    def _rows(self) -> Iterator[tuple[int, str, int]]:
        """(line, text, n_fields) of each line pyarrow reads as a row or refuses, in file order."""
        raw = _as_utf8(self.path, _payload(self.path, self.limit), self.encoding)
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


# --- messages --------------------------------------------------------------------------------



def _bad_line(path: Path, line_no: int, text: str, reason: str) -> str:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return f"{path}, line {line_no}: {reason}: {shown!r}"
