"""What each column of a ratings table must hold, and what it becomes.

Missing values are null, NaN and, in text, the ``MISSING`` tokens. Ids follow the rule of the
readers module docstring (int64 when every id is a canonical integer, else as given); ratings
become float64; timestamps int64 (ISO-8601 text as seconds since 1970-01-01 UTC; fractional
numbers stay float64). A check takes one column, a pyarrow array (files) or a pandas Series
(DataFrames), and returns its values with a ``Problem`` for the first bad row, or None: each
reader names that row its own way (a file's line, a parquet row, a DataFrame's index).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

MISSING = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
           "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")  # pandas's missing-value tokens
Problem = tuple[int, str]  # (0-based row, reason)


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


# --- ids -------------------------------------------------------------------------------------


def _ids(values: Any, col: str, trim: bool) -> tuple[Any, Problem | None]:
    """Ids by the readers module docstring's rule: int64 when all are canonical integers, else as given."""
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


# --- numbers ---------------------------------------------------------------------------------


def _ratings(values: Any) -> tuple[np.ndarray | None, Problem | None]:
    """float64 ratings; a problem for the first one that is not a finite number."""
    numbers, problem = _numbers(values, "rating")
    if problem is None and np.isinf(numbers).any():
        problem = (int(np.isinf(numbers).argmax()), "rating is infinite")
    return numbers, problem


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


# --- timestamps ------------------------------------------------------------------------------


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


# --- messages --------------------------------------------------------------------------------


def _short(value, limit: int = 60) -> str:
    """repr of a value from the data, numpy scalars shown as plain Python ones, cut at ``limit``."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
