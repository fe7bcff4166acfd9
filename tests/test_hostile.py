"""Hostile input: every loader and the CLI give a correct result or ONE clear error.

"Clear" means: a ``DataError`` or ``ValueError`` raised by irgan itself (never a pandas, numpy or
torch exception class, nor a subclass of ValueError such as UnicodeDecodeError or ParserError
escaping), with a one-line message that names the file when a file was given; for the CLI, exit
code 2, exactly one ``error: ...`` line on stderr, no traceback, and nothing written outside its
run directory. Property tests run a fixed, derandomized budget so CI sees the same examples.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from irgan.data import (
    DataError,
    Interactions,
    from_dataframe,
    interactions_from_dataframe,
    leave_one_out,
    load_dataset,
    random_holdout,
    read_ratings,
    temporal_split,
)
from irgan.data.readers import DEFAULT_COLUMNS
from irgan.train import main
from helpers import zip_of

HOSTILE = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    # tmp_path, monkeypatch and capsys are shared by the examples of one test: each example works
    # in a fresh sub-folder (``fresh``) and reads capsys before it starts.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
FAST = ["--epochs", "1", "--d-epochs", "1", "--g-epochs", "1", "--pretrain-epochs", "1", "--quiet", "--device", "cpu"]
SPLITS = ("random", "loo", "temporal")


class Folders:
    """A fresh sub-folder of tmp_path per hypothesis example."""

    def __init__(self, root: Path) -> None:
        self.root, self.n = root, 0

    def __call__(self) -> Path:
        self.n += 1
        folder = self.root / f"ex{self.n}"
        folder.mkdir()
        return folder


@pytest.fixture
def fresh(tmp_path) -> Folders:
    return Folders(tmp_path)


def outcome(call, names: Path | str | None = None):
    """``call()``'s result, or the irgan error it raised, checked to be one clear line."""
    try:
        return call()
    except (DataError, ValueError) as err:
        assert type(err) in (DataError, ValueError), f"{type(err).__module__}.{type(err).__name__} escaped: {err}"
        message = str(err)
        assert message and "\n" not in message and "Traceback" not in message, repr(message)
        if names is not None:
            assert str(names) in message, f"the error does not name {names}: {message}"
        return err


def check_ratings(df: pd.DataFrame) -> None:
    """What every reader promises when it succeeds."""
    assert len(df) >= 1
    assert list(df.columns[:2]) == ["user", "item"] and list(df.columns) == [c for c in DEFAULT_COLUMNS if c in df]
    assert not df.isna().any().any()
    if "rating" in df.columns:
        assert df["rating"].dtype == np.float64 and np.isfinite(df["rating"].to_numpy()).all()


def check_split(split) -> None:
    parts = [split.train, split.test] + ([split.validation] if split.validation is not None else [])
    for part in parts:
        assert isinstance(part, Interactions) and part.same_maps(split.train)
    assert split.test.nnz >= 1  # a split with no test users is an error, never a silent empty test


# --- strategies -----------------------------------------------------------------------------

# Tokens pandas reads as missing, boolean, infinite or otherwise not what they look like.
NA_LIKE = {"nan", "na", "null", "none", "inf", "infinity", "true", "false", "n/a", "-nan", "<na>", "#na", "#n/a"}
letters = st.text(st.characters(categories=("L",)), min_size=1, max_size=6).filter(lambda s: s.lower() not in NA_LIKE)
int_ids = st.integers(-(2**63), 2**63 - 1)
nasty_tokens = st.sampled_from(
    ["", " ", "nan", "NaN", "NA", "null", "None", "inf", "-inf", "1e400", "-1e400", "0x1f", "1.5", "-0", "True",
     "5 stars", "\u0663", "\x00", "\ufeff", '"', "'", "#", "\\", "1,5", "99999999999999999999999", "-99999999999999999999999"]
)
any_token = st.one_of(int_ids.map(str), letters, nasty_tokens, st.floats().map(repr),
                      st.text(max_size=5).filter(lambda s: "\n" not in s and "\r" not in s))
separators = st.sampled_from([",", "\t", "::", " "])


@st.composite
def messy_text(draw) -> str:
    """Rows of 0-6 arbitrary tokens, mixed separators, blank lines, headers, BOM, CRLF."""
    sep = draw(separators)
    rows = draw(st.lists(st.lists(any_token, min_size=0, max_size=6), min_size=0, max_size=8))
    lines = [sep.join(row) for row in rows]
    if draw(st.booleans()):
        lines.insert(0, sep.join(draw(st.sampled_from([["user", "item", "rating"], ["userId", "movieId", "rating", "timestamp"], ["user", "item"]]))))
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "   ", sep * 3, "\t"])))
    text = draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))
    return (draw(st.sampled_from(["", "\ufeff"])) + text)


@st.composite
def ratings_table(draw, min_rows: int = 1, max_rows: int = 12):
    """A well-formed ratings table and the DataFrame any correct reader must return for it.

    Ids are int64 (negative and huge included) or Unicode words; a column holding any word
    reads as strings spelled as in the file. Ratings are finite, timestamps int64.
    """
    n = draw(st.integers(min_rows, max_rows))
    cols = {}
    for col in ("user", "item"):
        kind = draw(st.sampled_from(["int", "word", "mixed"]))
        pool = {"int": int_ids, "word": letters, "mixed": st.one_of(int_ids, letters)}[kind]
        values = draw(st.lists(pool, min_size=1, max_size=max(1, n // 2)))  # repeats make users with many rows
        cols[col] = [values[draw(st.integers(0, len(values) - 1))] for _ in range(n)]
        if any(isinstance(v, str) for v in cols[col]):
            cols[col] = [str(v) for v in cols[col]]
    cols["rating"] = [round(draw(st.floats(-1e6, 1e6, allow_nan=False)), 3) for _ in range(n)]
    with_time = draw(st.booleans())
    if with_time:
        cols["timestamp"] = draw(st.lists(int_ids, min_size=n, max_size=n))
    expected = pd.DataFrame(cols)
    sep = draw(separators)
    lines = [sep.join(str(v) for v in row) for row in zip(*cols.values())]
    header = draw(st.booleans())
    if header:
        lines.insert(0, sep.join(["userId", "movieId", "rating", "timestamp"][: len(cols)]))
    for _ in range(draw(st.integers(0, 2))):  # blank lines anywhere, including the end
        lines.insert(draw(st.integers(0, len(lines))), "")
    return "\n".join(lines) + "\n", expected


def frames_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    for col in ("user", "item", "timestamp"):
        if col in expected:
            assert got[col].tolist() == expected[col].tolist(), col
    np.testing.assert_allclose(got["rating"].to_numpy(), expected["rating"].to_numpy(), rtol=1e-12)


# --- read_ratings ---------------------------------------------------------------------------


@HOSTILE
@given(data=st.binary(max_size=400))
def test_random_bytes_file(fresh, data):
    path = fresh() / "ratings.csv"
    path.write_bytes(data)
    for kwargs in ({}, {"columns": None}):
        result = outcome(lambda: read_ratings(path, **kwargs), names=path)
        if isinstance(result, pd.DataFrame):
            check_ratings(result)


@HOSTILE
@given(text=messy_text())
def test_messy_text_file(fresh, text):
    path = fresh() / "ratings.txt"
    path.write_text(text, encoding="utf-8", newline="")
    for kwargs in ({}, {"columns": None}, {"sep": ","}, {"header": True}, {"header": False}):
        result = outcome(lambda: read_ratings(path, **kwargs), names=path)
        if isinstance(result, pd.DataFrame):
            check_ratings(result)


@HOSTILE
@given(table=ratings_table())
def test_well_formed_file_reads_exactly(fresh, table):
    """Negative, huge (int64) and Unicode ids, duplicate rows and blank lines read back exactly."""
    text, expected = table
    path = fresh() / "ratings.csv"
    path.write_text(text, encoding="utf-8")
    frames_equal(read_ratings(path, columns=None), expected)


# --- from_dataframe -------------------------------------------------------------------------

good_ids = [st.integers(-(2**63), 2**63 - 1), st.integers(), st.floats(allow_nan=False), letters, st.binary(max_size=2),
            st.dates(), st.decimals(allow_nan=False, places=2)]
bad_ids = [st.complex_numbers(max_magnitude=1e3), st.lists(st.integers(), max_size=1)]
id_kinds = good_ids + [st.booleans()] + bad_ids
missing = [st.none(), st.just(float("nan")), st.just(pd.NA), st.just(pd.NaT)]
cells = st.one_of(*id_kinds, *missing)


@st.composite
def object_column(draw, n: int, kinds: list, hostile: bool = True) -> pd.Series:
    """n cells: all of one kind; or, when hostile, a mix of two kinds, anything at all, or a missing cell."""
    how = draw(st.sampled_from(["one", "two", "any", "gap"])) if hostile else "one"
    pool = {"one": draw(st.sampled_from(kinds)), "two": st.one_of(draw(st.sampled_from(kinds)), draw(st.sampled_from(kinds))),
            "any": cells, "gap": draw(st.sampled_from(kinds))}[how]
    values = draw(st.lists(pool, min_size=n, max_size=n))
    if how == "gap" and n:
        values[draw(st.integers(0, n - 1))] = draw(st.sampled_from(missing))
    return pd.Series(values, dtype=object)


@HOSTILE
@given(data=st.data())
def test_from_dataframe_any_cells(data):
    """One column (or none) is hostile; the others are clean, so that the check of each is reached."""
    n = data.draw(st.integers(0, 6))
    bad = data.draw(st.sampled_from([None, "u", "i", "r", "t"]))
    kinds = {"u": (good_ids, id_kinds), "i": (good_ids, id_kinds),
             "r": ([st.integers(-10, 10), st.floats(-5, 5), st.booleans()],
                   [st.floats(), letters, st.complex_numbers(max_magnitude=10), st.text(max_size=3)]),
             "t": ([st.integers(-5, 5)], [st.floats(), st.datetimes(), letters])}
    df = pd.DataFrame({col: data.draw(object_column(n, good + (hostile if col == bad else []), hostile=col == bad))
                       for col, (good, hostile) in kinds.items()})
    if data.draw(st.booleans()):  # or let pandas infer the dtypes
        df = df.infer_objects()
    out = outcome(lambda: from_dataframe(df, "u", "i", "r", "t"))
    event("error" if isinstance(out, Exception) else "validated")
    if isinstance(out, pd.DataFrame):
        check_ratings(out)
        inter = outcome(lambda: interactions_from_dataframe(out))
        assert isinstance(inter, Interactions), inter  # validated ids always build a matrix
        assert inter.nnz == len(set(zip(out["user"], out["item"])))
        outcome(lambda: random_holdout(out, 0.5))
        outcome(lambda: leave_one_out(out))
        outcome(lambda: temporal_split(out, 0.5))


@HOSTILE
@given(data=st.data())
def test_splits_on_unvalidated_frames(data):
    """The split functions take plain DataFrames too: NaN, mixed or unhashable ids are one DataError."""
    n = data.draw(st.integers(0, 6))
    df = pd.DataFrame({"user": data.draw(object_column(n, id_kinds)), "item": data.draw(object_column(n, id_kinds)),
                       "timestamp": data.draw(object_column(n, [st.integers(-5, 5), st.floats()]))})
    outcome(lambda: interactions_from_dataframe(df))
    outcome(lambda: random_holdout(df, 0.5))
    outcome(lambda: leave_one_out(df))


# --- load_dataset ---------------------------------------------------------------------------


@HOSTILE
@given(text=messy_text(), split=st.sampled_from(SPLITS), min_rating=st.sampled_from([4.0, None, -1e9]),
       validation=st.sampled_from([0.0, 0.5]))
def test_load_dataset_messy_file(fresh, text, split, min_rating, validation):
    path = fresh() / "ratings.csv"
    path.write_text(text, encoding="utf-8", newline="")
    result = outcome(lambda: load_dataset(path, split=split, min_rating=min_rating, validation_fraction=validation),
                     names=path)
    if not isinstance(result, Exception):
        check_split(result)


@HOSTILE
@given(table=ratings_table(max_rows=20), split=st.sampled_from(SPLITS), min_rating=st.sampled_from([0.0, None, 1e5]))
def test_load_dataset_well_formed_file(fresh, table, split, min_rating):
    """Positives are exactly the distinct pairs rated >= min_rating; every user and item is in the maps."""
    text, expected = table
    path = fresh() / "ratings.csv"
    path.write_text(text, encoding="utf-8")
    if split != "random" and "timestamp" not in expected:
        expected = None  # the loader must say the split needs a timestamp
    result = outcome(lambda: load_dataset(path, split=split, min_rating=min_rating), names=path)
    event("error" if isinstance(result, Exception) else "loaded")
    if isinstance(result, Exception):
        return
    assert expected is not None
    check_split(result)
    assert result.train.user_ids.tolist() == sorted(set(expected["user"]))
    assert result.train.item_ids.tolist() == sorted(set(expected["item"]))
    keep = expected if min_rating is None else expected[expected["rating"] >= min_rating]
    got = set()
    for part in (result.train, result.test):
        got |= set(map(tuple, part.to_dataframe().itertuples(index=False)))
    assert got == set(zip(keep["user"], keep["item"]))


def ml100k_folder(root: Path, u_data: str, base: str | None, test: str | None) -> Path:
    folder = root / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text(u_data, encoding="utf-8", newline="")
    for name, text in (("u1.base", base), ("u1.test", test)):
        if text is not None:
            (folder / name).write_text(text, encoding="utf-8", newline="")
    return folder


@HOSTILE
@given(u_data=messy_text(), other=st.sampled_from(["missing", "same", "empty"]), split=st.sampled_from([None, "u1", "random"]))
def test_ml100k_with_hostile_u_data(fresh, no_network, u_data, other, split):
    root = fresh()
    part = {"missing": None, "same": u_data, "empty": ""}[other]
    folder = ml100k_folder(root, u_data, part, part)
    result = outcome(lambda: load_dataset("ml-100k", data_dir=root, split=split), names=folder)
    if not isinstance(result, Exception):
        check_split(result)
    assert no_network == []  # u.data is there: never a download


# --- the CLI --------------------------------------------------------------------------------


def tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def run_cli(root: Path, args: list[str], capsys) -> tuple[int, str]:
    """main(args) with cwd at ``root``; asserts nothing changed outside root/run."""
    before = tree(root)
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    after = tree(root)
    outside = {k for k in set(before) | set(after) if before.get(k) != after.get(k) and not k.startswith("run")}
    assert not outside, f"the CLI wrote outside its run directory: {sorted(outside)}"
    assert "Traceback" not in err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    return code, err


@st.composite
def cli_files(draw) -> str:
    """Mostly-valid ratings (so training is reached) with a few hostile rows, or plain mess."""
    if draw(st.booleans()):
        return draw(messy_text())
    n_users, n_items = draw(st.integers(1, 12)), draw(st.integers(1, 14))
    rows = [f"{u},{i},{draw(st.sampled_from([1, 3, 4, 5]))},{t}"
            for t, (u, i) in enumerate((u, i) for u in range(n_users) for i in range(n_items) if draw(st.booleans()))]
    for _ in range(draw(st.integers(0, 2))):
        rows.insert(draw(st.integers(0, len(rows))), ",".join(draw(st.lists(any_token, max_size=5))))
    return "\n".join(rows) + "\n"


@HOSTILE
@given(text=cli_files(), split=st.sampled_from(SPLITS), extra=st.sampled_from([[], ["--select-on", "test"], ["--init", "random"]]))
def test_cli_hostile_file(fresh, monkeypatch, capsys, text, split, extra):
    root = fresh()
    monkeypatch.chdir(root)  # a default runs/ folder would show up in the tree
    path = root / "ratings.csv"
    path.write_text(text, encoding="utf-8", newline="")
    code, err = run_cli(root, ["--dataset", str(path), "--split", split, "--out", str(root / "run"), *FAST, *extra], capsys)
    assert code in (0, 2)
    event(f"exit {code}")
    if code == 0:
        assert (root / "run" / "metrics.json").is_file() and (root / "run" / "model.pt").is_file()


@HOSTILE
@given(u_data=messy_text())
def test_cli_hostile_ml100k(fresh, monkeypatch, capsys, no_network, u_data):
    root = fresh()
    monkeypatch.chdir(root)
    ml100k_folder(root, u_data, u_data, u_data)
    code, err = run_cli(root, ["--dataset", "ml-100k", "--data-dir", str(root), "--out", str(root / "run"), *FAST], capsys)
    assert code in (0, 2)
    assert no_network == []


# --- named cases: each row of the README's failure table -------------------------------------


GOOD = "".join(f"{u},{i},{5 if (u + i) % 3 else 2},{u * 100 + i}\n" for u in range(12) for i in range(14) if (u * i) % 4 != 1)


@pytest.mark.parametrize(
    "name, content, kwargs, words",
    [
        ("empty file", b"", {}, "file is empty"),
        ("only blank lines", b"\n \n\t\n", {}, "file is empty"),
        ("header only", b"user,item,rating\n", {}, "file is empty"),
        ("random bytes", bytes(range(256)), {}, "not utf-8 text"),
        ("latin-1 text", "caf\xe9,1,5\n".encode("latin-1"), {}, "not utf-8 text"),
        ("one column", b"1\n2\n", {}, "expected 2-4 fields, found 1"),
        ("five columns", b"1,2,3,4,5\n", {}, "expected 2-4 fields, found 5"),
        ("a short row later", b"1,2,5\n3,4\n", {}, "line 2: expected 3 fields, found 2"),
        ("a long row later", b"1,2,5\n3,4,5,6,7\n", {}, "line 2: expected 3 fields, found 5"),
        ("text rating", b"1,2,good\n", {}, "rating is not a number: 'good'"),
        ("NaN rating", b"1,2,NaN\n", {}, "empty or NaN rating"),
        ("infinite rating", b"1,2,1e400\n", {}, "rating is infinite"),
        ("missing user", b",2,5\n", {}, "empty or NaN user"),
        ("'NA' as a user id", b"NA,2,5\n", {}, "empty or NaN user"),
        ("text timestamp, temporal split", b"1,2,5,yesterday\n", {"split": "temporal"}, "timestamp is not a number"),
        ("no rating reaches min_rating", b"1,2,1\n2,3,2\n3,1,3\n", {}, "no rating reaches min_rating=4"),
        ("no rating column, min_rating given", b"1,2\n2,3\n", {"min_rating": 4.0}, "no rating column"),
        ("a split with no test users", b"1,2,5\n2,3,5\n", {}, "no test positives"),
        ("loo without timestamps", b"1,2,5\n1,3,5\n", {"split": "loo"}, "needs a 'timestamp' column"),
        ("temporal, all at one time", b"1,2,5,7\n1,3,5,7\n", {"split": "temporal"}, "train would be empty"),
        ("nothing left for validation", b"1,2,5,1\n1,3,5,2\n2,2,5,1\n2,3,5,2\n", {"split": "loo", "validation_fraction": 0.5},
         "no validation positives"),
        ("unknown split", b"1,2,5\n", {"split": "u1"}, "unknown split 'u1'"),
        ("a header with no item column", b"user,thing,rating\n1,2,5\n", {}, "has no item column"),
        ("a header naming the user twice", b"user_id,userId,item\n1,2,3\n", {}, "names the user column twice"),
        ("a zip of two files", zip_of({"a.csv": b"1,2\n", "b.csv": b"1,2\n"}), {}, "must hold one file"),
        ("a truncated gzip", gzip.compress(b"1,2,5\n" * 50)[:-8], {}, "cannot decompress it as gzip"),
        ("columns= naming an unknown field", b"1,2,5\n", {"columns": "user,item,stars!"}, "is not user, item"),
    ],
)
def test_named_hostile_file(tmp_path, name, content, kwargs, words):
    path = tmp_path / "ratings.csv"
    path.write_bytes(content)
    err = outcome(lambda: load_dataset(path, **kwargs), names=path)
    assert isinstance(err, DataError), f"{name}: loaded {err!r}"
    assert words in str(err), str(err)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("negative ids", b"-1,-2,5\n-3,4,5\n", [(-1, -2), (-3, 4)]),
        ("int64 extremes", b"9223372036854775807,1,5\n-9223372036854775808,2,5\n", [(2**63 - 1, 1), (-(2**63), 2)]),
        ("ids above 2**53 and a trailing blank line", b"9007199254740993,1,5\n9007199254740992,1,5\n\n",
         [(9007199254740993, 1), (9007199254740992, 1)]),
        ("ids beyond int64", b"99999999999999999999999,1,5\n2,3,5\n", [("99999999999999999999999", 1), ("2", 3)]),
        ("Unicode ids", "用户,物品,5\nü,ö,4\n".encode(), [("用户", "物品"), ("ü", "ö")]),
        ("numbers and words in one column", b"1,2,5\nab,2,5\n", [("1", 2), ("ab", 2)]),
        ("duplicate rows", b"1,2,5\n1,2,5\n1,2,5\n", [(1, 2)] * 3),
        ("byte-order mark and header", "\ufeffuser,item,rating\n1,2,5\n".encode(), [(1, 2)]),
        ("CRLF line ends", b"1,2,5\r\n3,4,5\r\n", [(1, 2), (3, 4)]),
        ("a header in another order", b"item_id,user_id,rating\n10,1,5\n", [(1, 10)]),
        ("a header irgan does not know in full", b"user_id,product_id,rating,review\nA,B,5,ok\n", [("A", "B")]),
        ("one float-looking id among 18-digit ids", b"123456789012345678,1,5\n1e3,2,5\n1000.0,2,5\n",
         [("123456789012345678", 1), ("1e3", 2), ("1000.0", 2)]),
        ("leading zeros", b"007,1,5\n7,1,5\n", [("007", 1), ("7", 1)]),
        ("quoted fields", b'"196","242","3"\n"Smith, J.","7","4"\n', [("196", 242), ("Smith, J.", 7)]),
        ("gzip-compressed", gzip.compress(b"1,2,5\n3,4,5\n"), [(1, 2), (3, 4)]),
    ],
)
def test_named_files_read_correctly(tmp_path, name, content, expected):
    path = tmp_path / "ratings.csv"
    path.write_bytes(content)
    df = read_ratings(path, columns=None)
    assert list(zip(df["user"].tolist(), df["item"].tolist())) == expected


def test_duplicate_rows_count_once(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("1,2,5\n1,2,5\n1,3,5\n1,3,4\n2,2,5\n2,3,5\n")
    split = load_dataset(path, split="random", test_fraction=0.5)
    assert split.train.nnz + split.test.nnz == 4


def test_users_and_items_without_positives_stay_in_the_maps(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(GOOD + "ghost,99,1,1\n".replace("ghost", "9999"))
    split = load_dataset(path, split="random")
    assert 9999 in split.train.user_ids and 99 in split.train.item_ids
    u, i = split.train.user_index([9999])[0], split.train.item_index([99])[0]
    assert split.train.matrix[u].nnz == split.test.matrix[u].nnz == 0
    assert split.train.matrix[:, i].nnz == split.test.matrix[:, i].nnz == 0


def test_ml100k_u1_test_with_no_positives(tmp_path, no_network):
    rows = "1\t1\t5\t1\n1\t2\t5\t2\n2\t1\t5\t3\n2\t2\t1\t4\n"
    folder = ml100k_folder(tmp_path, rows, "1\t1\t5\t1\n1\t2\t5\t2\n2\t1\t5\t3\n", "2\t2\t1\t4\n")
    with pytest.raises(DataError, match="no rating reaches min_rating") as err:
        load_dataset("ml-100k", data_dir=tmp_path)
    assert str(folder / "u1.test") in str(err.value)


def test_ml100k_split_file_with_unknown_ids(tmp_path, no_network):
    folder = ml100k_folder(tmp_path, "1\t1\t5\t1\n1\t2\t5\t2\n", "1\t1\t5\t1\n", "7\t2\t5\t2\n")
    with pytest.raises(DataError, match=r"user ids \[7\] are not in") as err:
        load_dataset("ml-100k", data_dir=tmp_path)
    assert str(folder / "u1.test") in str(err.value)


def test_unreadable_file_is_one_error(tmp_path, monkeypatch):
    import irgan.data.files as files

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    path = tmp_path / "ratings.csv"
    path.write_text("1,2,5\n")
    monkeypatch.setattr(files, "open", denied, raising=False)
    err = outcome(lambda: read_ratings(path), names=path)
    assert isinstance(err, DataError) and "Permission denied" in str(err)


@pytest.mark.parametrize(
    "column, values, words",
    [
        ("user", [1, "1"], "user id '1' is a str, unlike the user ids before it (number)"),
        ("user", [b"a", "a"], "is a str, unlike the user ids before it (bytes)"),
        ("item", [[1], [2]], "item id [1] is a list"),
        ("user", [{}, {}], "user id {} is a dict"),
        ("rating", [1 + 2j, 3.0], "rating is not a number: (1+2j)"),
        ("rating", ["5", "x"], "rating is not a number: 'x'"),
        ("user", [pd.NA, 1], "empty or NaN user"),
    ],
)
def test_from_dataframe_bad_cells(column, values, words):
    df = pd.DataFrame({"user": pd.Series([1, 2], dtype=object), "item": [1, 2], "rating": [5.0, 4.0]})
    df[column] = pd.Series(values, dtype=object)
    err = outcome(lambda: from_dataframe(df))
    assert isinstance(err, DataError) and words in str(err), str(err)


@pytest.mark.parametrize("bad", [None, np.nan, pd.NA, [1]])
def test_split_functions_refuse_bad_ids(bad):
    df = pd.DataFrame({"user": pd.Series([1, bad, 2, 2], dtype=object), "item": [1, 2, 1, 2], "timestamp": [1, 2, 3, 4]})
    for call in (lambda: interactions_from_dataframe(df), lambda: random_holdout(df, 0.5), lambda: leave_one_out(df)):
        assert isinstance(outcome(call), DataError)


@pytest.mark.parametrize(
    "name, text, split, code",
    [
        ("empty file", "", "random", 2),
        ("random bytes", None, "random", 2),
        ("no rating reaches min_rating", "1,2,1\n2,3,2\n", "random", 2),
        ("a split with no test users", "1,2,5\n2,3,5\n", "random", 2),
        ("users and items without positives", GOOD + "9999,99,1,1\n", "random", 0),
        ("leave-one-out", GOOD, "loo", 0),
        ("temporal", GOOD, "temporal", 0),
    ],
)
def test_cli_named_cases(tmp_path, monkeypatch, capsys, name, text, split, code):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ratings.csv"
    if text is None:
        path.write_bytes(bytes(range(256)))
    else:
        path.write_text(text)
    got, err = run_cli(tmp_path, ["--dataset", str(path), "--split", split, "--out", str(tmp_path / "run"), *FAST], capsys)
    assert got == code, err
    if code == 2:
        assert str(path) in err
        assert not (tmp_path / "run").exists()  # failed while loading: nothing to clean up, the retry is free


def test_cli_trains_on_fewer_than_10_items(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ratings.csv"
    path.write_text("".join(f"{u},{i},{5 if (u + i) % 4 else 1}\n" for u in range(8) for i in range(5)))
    code, err = run_cli(tmp_path, ["--dataset", str(path), "--out", str(tmp_path / "run"), *FAST], capsys)
    assert code == 0, err


def test_cli_failure_after_loading_leaves_the_out_free(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ratings.csv"
    path.write_text("1,1,5\n1,2,5\n2,1,5\n2,2,5\n")  # loads, but leaves nothing for a validation split
    code, err = run_cli(tmp_path, ["--dataset", str(path), "--out", str(tmp_path / "run"), *FAST], capsys)
    assert code == 2 and "no validation positives" in err
    assert not (tmp_path / "run").exists()
