"""read_ratings on your own data: columns by header name, exact ids, quoting, formats, options.

Each test is one case found by probing the reader as a new user would; errors must be one
DataError line naming the file (and its line, where there is one).
"""
from __future__ import annotations

import bz2
import gzip
import logging
import lzma
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from irgan.data import DataError, from_dataframe, interactions_from_dataframe, load_dataset, read_ratings
from helpers import zip_of


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def pairs(df: pd.DataFrame) -> list[tuple]:
    return list(zip(df["user"].tolist(), df["item"].tolist()))


def one_line_error(call, path: Path | None = None) -> str:
    """The message of the DataError ``call()`` raises, checked to be one line naming ``path``."""
    with pytest.raises(DataError) as err:
        call()
    message = str(err.value)
    assert type(err.value) is DataError and "\n" not in message
    assert path is None or str(path) in message
    return message


# --- columns by header name ----------------------------------------------------------------


def test_swapped_header_maps_columns_by_name(tmp_path):
    path = write(tmp_path / "r.csv", "item_id,user_id,rating,timestamp\n10,1,5,100\n11,2,4,101\n")
    df = read_ratings(path)
    assert list(df.columns) == ["user", "item", "rating", "timestamp"]
    assert pairs(df) == [(1, 10), (2, 11)]


@pytest.mark.parametrize(
    "header, row, expected",
    [
        ("user_id,product_id,rating,review_text", "A1,B7,5,great", ("A1", "B7", 5.0)),
        ("userId,movieId,rating,timestamp", "1,31,2.5,1260759144", (1, 31, 2.5)),  # ml-20m
        ("User-ID;ISBN;Book-Rating", '"276725";"034545104X";"0"', (276725, "034545104X", 0.0)),  # Book-Crossing
        ("user_id,business_id,stars,date", "u1,b1,4,2016-03-09", ("u1", "b1", 4.0)),  # Yelp
        ("reviewerID,asin,overall,unixReviewTime", "A2S,0000013714,5.0,1393545600", ("A2S", "0000013714", 5.0)),
        ("UID\tIID\tScore", "1\t2\t3", (1, 2, 3.0)),
        ("customer_id|track_id", "c1|t1", ("c1", "t1", None)),
    ],
)
def test_common_header_spellings(tmp_path, header, row, expected):
    df = read_ratings(write(tmp_path / "r.txt", f"{header}\n{row}\n"))
    user, item, rating = expected
    assert pairs(df) == [(user, item)]
    assert (df["rating"].tolist() == [rating]) if rating is not None else "rating" not in df


def test_extra_header_columns_are_ignored_and_logged(tmp_path, caplog):
    path = write(tmp_path / "r.csv", "user_id,product_id,rating,review_text\nA,B,5,nice\n")
    with caplog.at_level(logging.DEBUG, logger="irgan.data.readers"):
        df = read_ratings(path)
    assert list(df.columns) == ["user", "item", "rating"]
    assert "ignoring column(s) ['review_text']" in caplog.text


@pytest.mark.parametrize(
    "header, words",
    [
        ("foo,bar,baz", "the header ['foo', 'bar', 'baz'] has no user and no item column"),
        ("user,score", "has no item column"),
        ("user_id,userId,item", "names the user column twice ('user_id', 'userId')"),
        ("user,item,time,date", "names the timestamp column twice"),
    ],
)
def test_header_that_cannot_be_mapped_is_refused(tmp_path, header, words):
    path = write(tmp_path / "r.csv", f"{header}\n" + ",".join(["1"] * len(header.split(","))) + "\n")
    message = one_line_error(lambda: read_ratings(path), path)
    assert "line 1:" in message and words in message and "columns=" in message


def test_header_detection(tmp_path):
    # string ids with a numeric rating: data, not a header
    assert pairs(read_ratings(write(tmp_path / "a.csv", "alice,x1,4\nbob,x2,2\n"))) == [("alice", "x1"), ("bob", "x2")]
    # no number and a known name: a header, even with nothing below it
    assert "empty" in one_line_error(lambda: read_ratings(write(tmp_path / "b.csv", "user,item\n")))
    # header=False reads the first line as data; header=True refuses a line it cannot map
    path = write(tmp_path / "c.csv", "a,b\nc,d\n")
    assert pairs(read_ratings(path, header=False)) == [("a", "b"), ("c", "d")]
    assert "header=False" in one_line_error(lambda: read_ratings(path, header=True), path)


# --- ids read exactly -------------------------------------------------------------------------


def test_one_float_looking_id_keeps_18_digit_ids_distinct(tmp_path):
    path = write(tmp_path / "r.csv", "123456789012345678,1\n123456789012345679,1\n1e3,2\n1000.0,2\n1000,2\n")
    users = read_ratings(path)["user"].tolist()
    assert users == ["123456789012345678", "123456789012345679", "1e3", "1000.0", "1000"]
    assert interactions_from_dataframe(read_ratings(path)).n_users == 5


def test_leading_zeros_make_distinct_ids_in_files_and_dataframes(tmp_path):
    path = write(tmp_path / "r.csv", "007,1\n7,1\n")
    assert read_ratings(path)["user"].tolist() == ["007", "7"]
    df = from_dataframe(pd.DataFrame({"user": ["007", "7"], "item": ["1", "2"]}))
    assert df["user"].tolist() == ["007", "7"]
    assert df["item"].dtype == np.int64 and df["item"].tolist() == [1, 2]  # canonical strings: int64, as in files


@pytest.mark.parametrize(
    "ids, expected",
    [
        (["-5", "0", "12"], [-5, 0, 12]),
        (["9223372036854775807", "-9223372036854775808"], [2**63 - 1, -(2**63)]),
        (["9223372036854775808", "1"], ["9223372036854775808", "1"]),  # beyond int64: strings
        (["-0", "0"], ["-0", "0"]),
        (["0x1f", "31"], ["0x1f", "31"]),
        (["+7", "8"], ["+7", "8"]),
    ],
)
def test_id_rule(tmp_path, ids, expected):
    path = write(tmp_path / "r.csv", "".join(f"{u},1\n" for u in ids))
    assert read_ratings(path)["user"].tolist() == expected
    assert from_dataframe(pd.DataFrame({"user": ids, "item": [1] * len(ids)}))["user"].tolist() == expected


@pytest.mark.parametrize(
    "values, expected, words",
    [
        ([1.0, 2.0, -3.0], [1, 2, -3], None),
        ([1.0, 1.5], None, "user id 1.5 is not a whole number"),
        ([2.0**60, 1.0], None, "is beyond +-2**53"),
        ([np.inf, 1.0], None, "is not finite"),
        ([np.nan, 1.0], None, "empty or NaN user"),
        (pd.array([1, 2], dtype="Int64"), [1, 2], None),
        (pd.array(["7", "8"], dtype="string"), [7, 8], None),
    ],
)
def test_dataframe_id_columns(values, expected, words):
    df = pd.DataFrame({"user": values, "item": [1, 2, 3][: len(values)]})
    if words is None:
        out = from_dataframe(df)
        assert out["user"].dtype == np.int64 and out["user"].tolist() == expected
    else:
        assert words in one_line_error(lambda: from_dataframe(df))


# --- a real CSV parser ----------------------------------------------------------------------


def test_quoted_fields(tmp_path):
    path = write(tmp_path / "r.csv", '"196","242","3","881250949"\n"186","302","3","891717742"\n')
    df = read_ratings(path)
    assert pairs(df) == [(196, 242), (186, 302)] and df["user"].dtype == np.int64
    path = write(tmp_path / "q.csv", 'user,item,rating\n"Smith, J.","The Film, Part 2",4\n')
    assert pairs(read_ratings(path)) == [("Smith, J.", "The Film, Part 2")]


def test_bom_crlf_and_spaces_around_fields(tmp_path):
    path = write(tmp_path / "r.csv", b"\xef\xbb\xbfuserId, movieId, rating\r\n1, 2, 5\r\n3, 4, 4.5\r\n")
    df = read_ratings(path)
    assert pairs(df) == [(1, 2), (3, 4)] and df["rating"].tolist() == [5.0, 4.5]


def test_rows_of_empty_fields_are_blank_lines_and_errors_name_the_right_line(tmp_path):
    path = write(tmp_path / "r.csv", "user,item,rating\n1,2,5\n,,\n\n  \n3,4,x\n")
    assert "line 6: rating is not a number: 'x'" in one_line_error(lambda: read_ratings(path), path)
    path = write(tmp_path / "ok.csv", "1,2,5\n,,\n3,4,4\n")
    assert pairs(read_ratings(path)) == [(1, 2), (3, 4)]


def test_wrong_number_of_fields_names_the_line_after_a_header(tmp_path):
    path = write(tmp_path / "r.csv", "user,item,rating\n1,2,5\n\n3,4\n")
    assert "line 4: expected 3 fields, found 2" in one_line_error(lambda: read_ratings(path), path)


@pytest.mark.parametrize(
    "sep, text",
    [
        (None, "1\t2\t5\n3\t4\t4\n"),
        (None, "1::2::5\n3::4::4\n"),
        (None, "1;2;5\n3;4;4\n"),
        (None, "1|2|5\n3|4|4\n"),
        (None, "  1   2  5\n3\t4 4 \n"),
        ("||", "1||2||5\n3||4||4\n"),
        (r"\s+", "1  2 5\n3\t4\t4\n"),
        ("[;,]", "1;2,5\n3,4;4\n"),
        (",", "1,2,5\n3,4,4\n"),
    ],
)
def test_sep_option_and_sniffing(tmp_path, sep, text):
    df = read_ratings(write(tmp_path / "r.txt", text), sep=sep)
    assert pairs(df) == [(1, 2), (3, 4)] and df["rating"].tolist() == [5.0, 4.0]


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "columns",
    ["user,item,-,rating", ["user", "item", None, "rating"], ("user", "item", "", "rating"), "userId, movieId, -, stars"],
)
def test_columns_option_names_fields_in_file_order(tmp_path, columns):
    path = write(tmp_path / "r.csv", "1,2,999,5\n3,4,999,4\n")
    df = read_ratings(path, columns=columns)
    assert list(df.columns) == ["user", "item", "rating"] and df["rating"].tolist() == [5.0, 4.0]


def test_columns_option_overrides_a_header_and_swaps_columns(tmp_path):
    path = write(tmp_path / "r.csv", "a,b\n1,10\n2,11\n")
    assert pairs(read_ratings(path, columns="item,user")) == [(10, 1), (11, 2)]


@pytest.mark.parametrize(
    "columns, words",
    [
        ("user,item,stuff", "'stuff' is not user, item, rating, timestamp, or '-'"),
        ("user,-,rating", "has no item column"),
        ("user,item,user", "names the user column twice"),
        ("user,item", "line 1: expected 2 fields (as columns= says), found 3"),
        (7, "columns must be a sequence"),
    ],
)
def test_bad_columns_option(tmp_path, columns, words):
    path = write(tmp_path / "r.csv", "1,2,5\n")
    assert words in one_line_error(lambda: read_ratings(path, columns=columns), path)


def test_implicit_two_column_file_and_min_rating(tmp_path, caplog):
    path = write(tmp_path / "r.csv", "".join(f"{u},{i}\n" for u in range(4) for i in range(5)))
    with caplog.at_level(logging.INFO, logger="irgan.data.datasets"):
        split = load_dataset(path)  # default min_rating: no rating column, so every row is a positive
    assert split.train.nnz + split.test.nnz == 20 and "every row is a positive" in caplog.text
    assert load_dataset(path, min_rating=None).train.nnz == split.train.nnz
    message = one_line_error(lambda: load_dataset(path, min_rating=4.0), path)
    assert "no rating column, so min_rating=4 cannot apply" in message


def test_min_rating_none_keeps_low_ratings(tmp_path):
    path = write(tmp_path / "r.csv", "".join(f"{u},{i},{1 + (u + i) % 5}\n" for u in range(4) for i in range(5)))
    everything = load_dataset(path, min_rating=None)
    assert everything.train.nnz + everything.test.nnz == 20
    assert load_dataset(path).train.nnz < everything.train.nnz


def test_load_dataset_passes_reading_options(tmp_path):
    path = write(tmp_path / "r.dat", "".join(f"{i}::{u}::x::5\n" for u in range(4) for i in range(5)))
    split = load_dataset(path, sep="::", columns="item,user,-,rating", header=False)
    assert split.train.user_ids.tolist() == [0, 1, 2, 3] and split.train.n_items == 5
    message = one_line_error(lambda: load_dataset("ml-100k", sep="\t"))
    assert "sep apply to rating files" in message


# --- formats --------------------------------------------------------------------------------

TEXT = b"user,item,rating\n1,2,5\n3,4,4\n"



@pytest.mark.parametrize(
    "name, content",
    [
        ("r.csv.gz", gzip.compress(TEXT)),
        ("r.csv.bz2", bz2.compress(TEXT)),
        ("r.csv.xz", lzma.compress(TEXT)),
        ("r.zip", zip_of({"ml/ratings.csv": TEXT, "__MACOSX/._ratings.csv": b"junk"})),
        ("no-extension", gzip.compress(TEXT)),  # known by its first bytes
    ],
)
def test_compressed_text(tmp_path, name, content):
    assert pairs(read_ratings(write(tmp_path / name, content))) == [(1, 2), (3, 4)]


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("r.csv.gz", gzip.compress(TEXT)[:-8], "cannot decompress it as gzip"),
        ("r.zip", zip_of({"a.csv": TEXT, "b.csv": TEXT}), "a zip of ratings must hold one file, this one holds 2"),
        ("r.zip", b"PK\x03\x04 not really", "cannot decompress it as zip"),
    ],
)
def test_bad_archives(tmp_path, name, content, words):
    path = write(tmp_path / name, content)
    assert words in one_line_error(lambda: read_ratings(path), path)


def test_parquet_maps_columns_by_name(tmp_path):
    path = tmp_path / "r.parquet"
    pd.DataFrame({"item_id": [10, 11], "user_id": ["007", "7"], "stars": [4, 5], "title": ["a", "b"]}).to_parquet(path)
    df = read_ratings(path)
    assert pairs(df) == [("007", 10), ("7", 11)] and df["rating"].tolist() == [4.0, 5.0]
    pq.write_table(pa.table({"a": [1, 2], "b": [3.0, 4.0]}), tmp_path / "x.pq")
    assert pairs(read_ratings(tmp_path / "x.pq", columns="user,item")) == [(1, 3), (2, 4)]


@pytest.mark.parametrize(
    "table, words",
    [
        (pa.table({"user": [1, None], "item": [1, 2]}), "row 2: empty or NaN user"),
        (pa.table({"user": [1.0, 2.5], "item": [1, 2]}), "row 2: user id 2.5 is not a whole number"),
        (pa.table({"u": [1], "i": [2]}), "the parquet columns ['u', 'i'] has no user and no item column"),
    ],
)
def test_bad_parquet(tmp_path, table, words):
    path = tmp_path / "r.parquet"
    pq.write_table(table, path)
    assert words in one_line_error(lambda: read_ratings(path), path)


def test_recbole_atomic_file(tmp_path):
    path = write(tmp_path / "ml.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    df = read_ratings(path)
    assert pairs(df) == [(196, 242), (186, 302)] and df["timestamp"].tolist() == [881250949, 891717742]


@pytest.mark.parametrize("encoding, content", [("utf-16", "user,item\nü,1\n".encode("utf-16")),
                                               ("latin-1", "user,item\n\xfc,1\n".encode("latin-1"))])
def test_encodings(tmp_path, encoding, content):
    path = write(tmp_path / "r.csv", content)
    kwargs = {"encoding": encoding} if encoding == "latin-1" else {}  # UTF-16 is found by its byte-order mark
    assert pairs(read_ratings(path, **kwargs)) == [("ü", 1)]
    if encoding == "latin-1":
        assert "line 2: not utf-8 text" in one_line_error(lambda: read_ratings(path), path)


# --- timestamps -----------------------------------------------------------------------------


def test_iso_timestamps_are_seconds_and_feed_the_temporal_split(tmp_path):
    rows = [("a", "x", "2020-01-01"), ("a", "y", "2020-01-01T00:00:10Z"), ("b", "x", "2020-01-01T02:00:20+02:00"),
            ("b", "y", "2020-01-02 00:00:00"), ("c", "x", "2020-01-03T00:00:00.5")]
    path = write(tmp_path / "r.csv", "user,item,rating,time\n" + "".join(f"{u},{i},5,{t}\n" for u, i, t in rows))
    df = read_ratings(path)
    assert df["timestamp"].dtype == np.int64
    assert df["timestamp"].tolist() == [1577836800, 1577836810, 1577836820, 1577923200, 1578009600]
    split = load_dataset(path, split="temporal", test_fraction=0.4)
    test = set(map(tuple, split.test.to_dataframe().to_numpy().tolist()))
    assert test == {("b", "y"), ("c", "x")}


@pytest.mark.parametrize(
    "times, expected",
    [
        (["2020-01-01", "2020-01-01 00:00:10"], [1577836800, 1577836810]),
        (["2020-01-01T00:00:10Z", "1969-12-31T23:59:59.5+00:00"], [1577836810, -1]),  # rounded down
        (["2020-01-01", "1969-12-31T23:59:59.5Z"], [1577836800, -1]),  # with and without offsets
    ],
)
def test_iso_timestamp_forms(tmp_path, times, expected):
    path = write(tmp_path / "r.csv", "".join(f"u,{k},5,{t}\n" for k, t in enumerate(times)))
    assert read_ratings(path)["timestamp"].tolist() == expected


def test_bad_timestamps_matter_only_to_time_splits(tmp_path, caplog):
    path = write(tmp_path / "r.csv", "".join(f"{u},{i},5,{'yesterday' if (u, i) == (2, 3) else u * 10 + i}\n"
                                             for u in range(4) for i in range(5)))
    with caplog.at_level(logging.WARNING, logger="irgan.data.readers"):
        split = load_dataset(path, split="random")
    assert split.train.nnz + split.test.nnz == 20
    assert f"{path}, line 14: timestamp is not a number or an ISO-8601 time: 'yesterday'" in caplog.text
    assert "timestamps are dropped" in caplog.text
    for split_name in ("temporal", "loo"):
        message = one_line_error(lambda: load_dataset(path, split=split_name), path)
        assert "line 14: timestamp is not a number" in message
    assert "line 14" in one_line_error(lambda: read_ratings(path), path)


def test_fractional_and_huge_timestamps(tmp_path):
    df = read_ratings(write(tmp_path / "r.csv", "1,2,5,1.5\n1,3,5,2\n"))
    assert df["timestamp"].dtype == np.float64 and df["timestamp"].tolist() == [1.5, 2.0]
    df = read_ratings(write(tmp_path / "s.csv", "1,2,5,9007199254740993\n1,3,5,1\n"))
    assert df["timestamp"].tolist() == [9007199254740993, 1]
