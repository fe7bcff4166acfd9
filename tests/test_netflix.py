"""Netflix Prize reader: both public layouts, the paper's protocol, malformed files, missing data."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from irgan.data import DataError, load_dataset, read_netflix

# movie id -> its (customer, rating, date) lines, as in the real files
MOVIES = {
    1: [(1488844, 3, "2005-09-06"), (822109, 5, "2005-05-13"), (885013, 4, "2005-10-19")],
    2: [(2059652, 4, "2005-09-05"), (1488844, 5, "2004-02-29"), (30878, 1, "1999-12-31")],
    3: [(822109, 2, "2003-01-01"), (30878, 4, "2004-07-04")],
}


def lines(movie: int, movies: dict = MOVIES) -> str:
    return f"{movie}:\n" + "".join(f"{c},{r},{d}\n" for c, r, d in movies[movie])


def per_movie(folder: Path, sub: str = "training_set", movies: dict = MOVIES) -> Path:
    """The original layout: one mv_*.txt per movie."""
    (folder / sub).mkdir(parents=True, exist_ok=True)
    for movie in movies:
        (folder / sub / f"mv_{movie:07d}.txt").write_text(lines(movie, movies))
    return folder


def combined(folder: Path, movies: dict = MOVIES) -> Path:
    """The Kaggle layout: blocks of movies in combined_data_*.txt (the last movie in a second file)."""
    folder.mkdir(parents=True, exist_ok=True)
    *first, last = movies
    (folder / "combined_data_1.txt").write_text("".join(lines(m, movies) for m in first))
    (folder / "combined_data_2.txt").write_text(lines(last, movies))
    return folder


def many_movies(n_customers: int = 40, n_movies: int = 12, seed: int = 0) -> dict:
    """A denser random data set: each customer rates each movie with probability 0.6."""
    rng = np.random.default_rng(seed)
    return {
        m: [(c, int(rng.integers(1, 6)), f"2005-01-{m:02d}") for c in range(1, n_customers + 1) if rng.random() < 0.6]
        for m in range(1, n_movies + 1)
    }


def expected() -> pd.DataFrame:
    rows = [(c, m, r, d) for m, ratings in MOVIES.items() for c, r, d in ratings]
    df = pd.DataFrame(rows, columns=["user", "item", "rating", "date"])
    df["timestamp"] = (pd.to_datetime(df.pop("date")) - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    return df.astype({"user": np.int32, "item": np.int32, "rating": np.int8, "timestamp": np.int32})


@pytest.mark.parametrize("layout", ["training_set", "flat", "combined"])
@pytest.mark.parametrize("block_bytes", [1 << 25, 20])  # 20 bytes: a block boundary every line or so
def test_both_layouts_read_the_same_ratings(tmp_path, layout, block_bytes):
    if layout == "combined":
        folder = combined(tmp_path)
    else:
        folder = per_movie(tmp_path, "training_set" if layout == "training_set" else ".")
    df = read_netflix(folder, block_bytes=block_bytes)
    pd.testing.assert_frame_equal(df, expected())
    assert df["timestamp"].iloc[0] == 1125964800  # 2005-09-06 00:00 UTC


def test_crlf_blank_lines_and_missing_final_newline(tmp_path):
    text = lines(1).replace("\n", "\r\n") + "\n" + lines(2).rstrip("\n")
    (tmp_path / "combined_data_1.txt").write_text(text, newline="")
    assert read_netflix(tmp_path)[["user", "item"]].values.tolist() == expected()[["user", "item"]].values[:6].tolist()


def test_load_dataset_uses_the_papers_protocol(tmp_path, no_network):
    movies = many_movies()
    a = load_dataset("netflix", data_dir=per_movie(tmp_path / "a", movies=movies))  # data_dir holding the files
    combined(tmp_path / "b" / "netflix", movies)
    b = load_dataset("netflix", data_dir=tmp_path / "b")  # data_dir/netflix holding them
    positives = read_netflix(tmp_path / "a").query("rating >= 4")
    assert 0 < len(positives) < sum(map(len, movies.values()))
    for split in (a, b):
        assert split.train.shape == (40, 12)
        assert split.test.nnz == pytest.approx(0.2 * len(positives), rel=0.25)  # the paper's 4:1
        both = split.train.matrix + split.test.matrix
        got = split.train.with_matrix(both).to_dataframe()
        assert sorted(map(tuple, got.values)) == sorted(map(tuple, positives[["user", "item"]].values))
        assert split.train.matrix.multiply(split.test.matrix).nnz == 0
    assert (a.test.matrix != b.test.matrix).nnz == 0  # same positives, same seeded split
    explicit = load_dataset("netflix", data_dir=tmp_path / "a", split="random", test_fraction=0.2, seed=0)
    assert (explicit.test.matrix != a.test.matrix).nnz == 0
    assert not no_network


def test_missing_data_says_where_to_put_which_files(tmp_path, no_network):
    with pytest.raises(DataError) as err:
        load_dataset("netflix", data_dir=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "netflix") in message and "cannot be downloaded" in message
    assert "training_set/mv_0000001.txt" in message and "combined_data_1.txt" in message
    assert not no_network and list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="no Netflix Prize files"):
        read_netflix(tmp_path)


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("1488844,3,2005-09-06\n", 1, "rating line before any 'MOVIEID:' line"),
        ("1:\n1488844,6,2005-09-06\n", 2, "rating is not one of 1, 2, 3, 4, 5"),
        ("1:\n1,3,2005-09-06\n1488844,0,2005-09-06\n", 3, "rating is not one of 1, 2, 3, 4, 5"),
        ("1:\n1488844,good,2005-09-06\n", 2, "rating is not a number"),
        ("1:\nalice,3,2005-09-06\n", 2, "customer or movie id is not a number"),
        ("x:\n1488844,3,2005-09-06\n", 1, "customer or movie id is not a number"),
        ("1:\n1488844,3,2005-02-30\n", 2, "date is not a valid YYYY-MM-DD"),
        ("1:\n1488844,3,06/09/2005\n", 2, "date is not YYYY-MM-DD"),
        ("1:\n1488844,3\n", 2, "expected 'MOVIEID:' or 'CUSTOMERID,RATING,YYYY-MM-DD'"),
        ("1:\n1488844,3,2005-09-06,9\n", 2, "expected 'MOVIEID:'"),
        ("1:\n1488844:3,2005-09-06\n", 2, "expected 'MOVIEID:'"),
        ("1:\n2.5,3,2005-09-06\n", 2, "customer id is not a positive integer"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "combined_data_1.txt"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_netflix(tmp_path)
    assert f"{path}, line {line}:" in str(err.value) and words in str(err.value)


def test_each_movie_file_needs_its_own_movie_line(tmp_path):
    per_movie(tmp_path)
    (tmp_path / "training_set" / "mv_0000002.txt").write_text("2059652,4,2005-09-05\n")
    with pytest.raises(DataError, match=r"mv_0000002.txt, line 1: rating line before any 'MOVIEID:'"):
        read_netflix(tmp_path, block_bytes=1 << 20)  # all files in one block: movie 1 must not leak into it


def test_real_netflix_counts():
    root = Path(os.environ.get("IRGAN_DATA", "/nonexistent")) / "netflix"
    if not root.is_dir():
        pytest.skip("real data not found: set IRGAN_DATA to a folder holding netflix/ (see data/README.md)")
    df = read_netflix(root)
    assert len(df) == 100_480_507
    assert df["user"].nunique() == 480_189 and df["item"].nunique() == 17_770
    assert df["rating"].between(1, 5).all()
