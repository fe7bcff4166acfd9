"""Readers, k-core and load_dataset: real ml-100k counts, bad input, offline and download safety."""
from __future__ import annotations

import hashlib
import os
import io
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import irgan.data.datasets as datasets
from irgan.data import (
    DataError,
    from_dataframe,
    interactions_from_dataframe,
    kcore,
    load_dataset,
    read_ratings,
)
from helpers import zip_of

ROWS = [(1, 10, 5, 100), (1, 11, 3, 101), (2, 10, 4, 102), (3, 12, 4.5, 103)]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def table(sep: str, rows=ROWS) -> str:
    return "".join(sep.join(str(v) for v in row) + "\n" for row in rows)


def fake_ml100k(root: Path) -> Path:
    """A tiny folder laid out like the unpacked ml-100k.zip: 3 users, 4 items, u1 split."""
    folder = root / "ml-100k"
    rows = [(1, 1, 5, 10), (1, 2, 4, 11), (1, 3, 2, 12), (2, 1, 4, 13), (2, 4, 5, 14), (3, 2, 1, 15)]
    write(folder / "u.data", table("\t", rows))
    write(folder / "u1.base", table("\t", rows[:2] + rows[3:4] + rows[5:]))
    write(folder / "u1.test", table("\t", rows[2:3] + rows[4:5]))
    return folder


# --- readers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text",
    [
        ("u.data", table("\t")),
        ("ratings.dat", table("::")),
        ("ratings.csv", "userId,movieId,rating,timestamp\n" + table(",")),
        ("spaces.txt", table("  ")),
        ("blank-lines.tsv", "\n" + table("\t").replace("\n", "\n\n", 1)),
    ],
)
def test_read_ratings_detects_separator_and_header(tmp_path, name, text):
    df = read_ratings(write(tmp_path / name, text))
    assert list(df.columns) == ["user", "item", "rating", "timestamp"]
    assert df["user"].tolist() == [1, 1, 2, 3] and df["item"].dtype == np.int64
    assert df["rating"].tolist() == [5.0, 3.0, 4.0, 4.5]
    assert df["timestamp"].dtype == np.int64


def test_read_ratings_string_ids_and_inferred_columns(tmp_path):
    df = read_ratings(write(tmp_path / "r.csv", "alice,x1,4\nbob,x2,2\n"), columns=None)
    assert list(df.columns) == ["user", "item", "rating"]
    assert df["user"].tolist() == ["alice", "bob"] and df["item"].tolist() == ["x1", "x2"]


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("1\t2\t5\t1\n1\t2\t5\n", 2, "expected 4 fields, found 3"),
        ("1\t2\t5\t1\n\n1\t2\t5\t1\t9\n", 3, "expected 4 fields, found 5"),
        ("1\t2\t5\t1\n1\t2\t5\t1\t9\t9\n", 2, "expected 4 fields, found 6"),
        ("1\t2\t5\t1\t9\n1\t2\t5\t1\n", 1, "expected 2-4 fields, found 5"),
        ("1\t2\t5\t1\n1\t2\tgood\t1\n", 2, "rating is not a number: 'good'"),
        ("1\t2\t5\t1\n1\t2\t5\t1\n3\t2\tNaN\t1\n", 3, "NaN rating"),
        ("1\t2\t\t1\n", 1, "NaN rating"),
        ("1\t2\t5\tyesterday\n", 1, "timestamp is not a number"),
        ("\n1\t2\t5\t1\n\n1\t2\tx\t1\n", 4, "rating is not a number: 'x'"),
        ("user\titem\trating\ttimestamp\n1\t2\t4\t1\n1\t2\tinf\t1\n", 3, "rating is infinite"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path / "bad.tsv", text)
    with pytest.raises(DataError) as err:
        read_ratings(path)
    assert str(path) in str(err.value) and f"line {line}:" in str(err.value)
    assert words in str(err.value)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path / "empty.csv", text)
    with pytest.raises(DataError, match="empty"):
        read_ratings(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file") as err:
        read_ratings(tmp_path / "nope.csv")
    assert "nope.csv" in str(err.value)


def test_from_dataframe_renames_and_validates():
    raw = pd.DataFrame({"uid": ["a", "b"], "iid": [1, 2], "stars": [4.0, 5.0], "t": [1, 2]})
    df = from_dataframe(raw, "uid", "iid", "stars", "t")
    assert list(df.columns) == ["user", "item", "rating", "timestamp"]
    assert list(from_dataframe(raw.rename(columns={"uid": "user", "iid": "item"})).columns) == ["user", "item"]
    with pytest.raises(DataError, match="no column"):
        from_dataframe(raw, "user", "iid")
    raw.loc[1, "stars"] = np.nan
    with pytest.raises(DataError, match=r"row 1 .*NaN rating"):
        from_dataframe(raw, "uid", "iid", "stars")


def test_kcore_reaches_a_fixed_point():
    df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3, 4], "item": [1, 2, 1, 2, 1, 3, 1]})
    core = kcore(df, 2)
    # user 4 and item 3 fall first, then user 3 (left with one row): users 1, 2 x items 1, 2 stay.
    assert sorted(map(tuple, core.to_numpy())) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert kcore(df, 1).equals(df) and kcore(df, 5).empty


def test_interactions_from_dataframe_dedupes():
    inter = interactions_from_dataframe(pd.DataFrame({"user": ["b", "a", "b"], "item": [2, 1, 2]}))
    assert inter.shape == (2, 2) and inter.nnz == 2 and inter.user_ids.tolist() == ["a", "b"]


# --- load_dataset --------------------------------------------------------------------------


def test_ml100k_u1_counts(shared_data, no_network):
    split = load_dataset("ml-100k", data_dir=shared_data)
    assert split.train.shape == split.test.shape == (943, 1682)
    assert split.train.nnz + split.test.nnz == 55_375
    assert (split.train.nnz, split.test.nnz) == (44_140, 11_235)
    assert (split.test.matrix.getnnz(axis=1) > 0).sum() == 456
    assert split.train.matrix.multiply(split.test.matrix).nnz == 0
    assert not no_network


def test_local_folder_read_without_network(tmp_path, no_network, monkeypatch):
    fake_ml100k(tmp_path)
    monkeypatch.setenv("IRGAN_DATA", str(tmp_path))
    split = load_dataset("ml-100k", validation_fraction=0.5)
    assert split.train.shape == (3, 4)  # user 3 and item 3 have no positive but stay in the maps
    assert (split.train.nnz, split.test.nnz) == (2, 1) and split.validation.nnz == 1
    assert load_dataset("ml-100k", data_dir=tmp_path / "ml-100k", split="loo").test.nnz == 2
    assert not no_network


def test_path_name_and_split_choices(tmp_path):
    path = write(tmp_path / "mine.csv", "user,item\n" + "\n".join(f"{u},{i}" for u in range(5) for i in range(4)))
    split = load_dataset(str(path), min_rating=None, seed=3)
    assert split.train.shape == (5, 4) and split.train.nnz + split.test.nnz == 20
    with pytest.raises(DataError, match="unknown split 'u1'.*random, loo, temporal"):
        load_dataset(path, min_rating=None, split="u1")
    assert load_dataset(path, seed=3).test.nnz == split.test.nnz  # no rating column: the default keeps every row
    with pytest.raises(DataError, match="no rating column, so min_rating=4 cannot apply"):
        load_dataset(path, min_rating=4.0)


def test_unknown_name_lists_known_ones():
    with pytest.raises(DataError, match="ml-100k, ml-1m, ml-20m"):
        load_dataset("ml-7b")


def test_offline_without_data_says_where_to_put_it(tmp_path, no_network):
    with pytest.raises(DataError) as err:
        load_dataset("ml-100k", data_dir=tmp_path)
    message = str(err.value)
    assert "could not download" in message and str(tmp_path / "ml-100k" / "u.data") in message
    assert no_network == [datasets.DATASETS["ml-100k"].url]
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
    with pytest.raises(DataError, match="download=False"):
        load_dataset("ml-1m", data_dir=tmp_path, download=False)



def serve(monkeypatch, payload: bytes) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(payload))


def test_checksum_mismatch_removes_the_partial_file(tmp_path, monkeypatch):
    serve(monkeypatch, b"not the real zip")
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("ml-100k", data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_unpacks_and_never_overwrites(tmp_path, monkeypatch):
    payload = zip_of({"ml-100k/u.data": table("\t"), "ml-100k/README": "new"})
    real = datasets.DATASETS["ml-100k"]
    fake = datasets._Remote(real.url, hashlib.md5(payload).hexdigest(), "u.data", "\t", False)
    monkeypatch.setitem(datasets.DATASETS, "ml-100k", fake)
    serve(monkeypatch, payload)
    write(tmp_path / "ml-100k" / "README", "mine")
    old_umask = os.umask(0o022)
    try:
        split = load_dataset("ml-100k", data_dir=tmp_path, split="loo", min_rating=None)
    finally:
        os.umask(old_umask)
    assert split.train.shape == (3, 3) and split.test.nnz == 1
    assert (tmp_path / "ml-100k.zip").read_bytes() == payload
    assert (tmp_path / "ml-100k.zip").stat().st_mode & 0o777 == 0o644  # the umask's, not mkstemp's 0600
    assert (tmp_path / "ml-100k" / "README").read_text() == "mine"
    # a user's own zip with another checksum is refused, not replaced
    (tmp_path / "ml-100k" / "u.data").unlink()
    (tmp_path / "ml-100k.zip").write_bytes(b"someone else's")
    with pytest.raises(DataError, match="exists but its md5"):
        load_dataset("ml-100k", data_dir=tmp_path)
    assert (tmp_path / "ml-100k.zip").read_bytes() == b"someone else's"


@pytest.mark.parametrize("evil", ["../evil", "ml-100k/../../evil", "/tmp/evil-absolute"])
def test_unzip_refuses_members_escaping_the_folder(tmp_path, evil):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(zip_of({"ml-100k/u.data": "1\t1\t5\t1\n", evil: "pwned"}))
    dest = tmp_path / "cache"
    dest.mkdir()
    with pytest.raises(DataError, match="refusing member"):
        datasets._safe_extract(archive, dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "evil").exists()


def test_data_home_order(tmp_path, monkeypatch):
    monkeypatch.setenv("IRGAN_DATA", str(tmp_path / "env"))
    assert datasets.data_home(tmp_path / "arg") == tmp_path / "arg"
    assert datasets.data_home() == tmp_path / "env"
    monkeypatch.delenv("IRGAN_DATA")
    assert datasets.data_home() == Path.home() / ".cache" / "irgan"
