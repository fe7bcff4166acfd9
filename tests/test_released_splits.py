"""Released train/test files: read alike, ids mapped jointly, min_rating on both, validation from train."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from irgan import compare as compare_cli
from irgan import train as train_cli
from irgan.data import DataError, load_dataset


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    """Train has users a-c and items 10-12; test adds user d and item 13, and a low rating."""
    train = tmp_path / "r.train"
    test = tmp_path / "r.test"
    train.write_text("a 10 5\r\na 11 4\r\nb 11 5\r\nb 12 2\r\nc 12 4\r\nc 10 5\r\n")
    test.write_text("a 12 5\r\nb 10 1\r\nd 11 5\r\nc 13 4\r\n")
    return train, test


def pairs(interactions) -> set[tuple]:
    m = interactions.matrix.tocoo()
    return {(interactions.user_ids[u], interactions.item_ids[i]) for u, i in zip(m.row, m.col)}


def test_ids_are_mapped_jointly_and_min_rating_applies_to_both(pair):
    data = load_dataset(pair[0], test=pair[1])
    assert list(data.train.user_ids) == ["a", "b", "c", "d"]
    assert list(data.train.item_ids) == [10, 11, 12, 13]
    assert data.train.same_maps(data.test)
    assert pairs(data.train) == {("a", 10), ("a", 11), ("b", 11), ("c", 12), ("c", 10)}  # b-12 rated 2: out
    assert pairs(data.test) == {("a", 12), ("d", 11), ("c", 13)}  # b-10 rated 1: out
    everything = load_dataset(pair[0], test=pair[1], min_rating=None)
    assert ("b", 12) in pairs(everything.train) and ("b", 10) in pairs(everything.test)


def test_validation_is_carved_from_train_only(pair):
    plain = load_dataset(pair[0], test=pair[1], min_rating=None)
    data = load_dataset(pair[0], test=pair[1], min_rating=None, validation_fraction=0.5, seed=3)
    assert pairs(data.test) == pairs(plain.test)
    assert pairs(data.train) | pairs(data.validation) == pairs(plain.train)
    assert not pairs(data.train) & pairs(data.validation) and pairs(data.validation)


def test_users_and_items_train_never_saw_are_counted(pair, caplog):
    with caplog.at_level(logging.INFO, logger="irgan.data.datasets"):
        load_dataset(pair[0], test=pair[1])
    assert "1 test users and 1 test items are not in train (2 of 3 test positives)" in caplog.text


def test_a_split_and_a_test_file_exclude_each_other(pair):
    with pytest.raises(DataError, match="exclude each other"):
        load_dataset(pair[0], test=pair[1], split="random")


def test_a_missing_test_file_is_one_line(pair, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(pair[0], test=tmp_path / "nope.test")


def test_a_pair_that_shares_a_positive_is_refused(tmp_path):
    (tmp_path / "a").write_text("1,1,5\n1,2,5\n2,2,5\n")
    (tmp_path / "b").write_text("1,2,5\n2,1,5\n")
    with pytest.raises(DataError, match="share 1"):
        load_dataset(tmp_path / "a", test=tmp_path / "b")


@pytest.fixture
def released(tmp_path) -> tuple[Path, Path]:
    """40 users x 30 items, 0-based, every rating a positive, as CFGAN's files are."""
    rng = np.random.default_rng(0)
    train, test = [], []
    for u in range(40):
        items = rng.choice(30, 14, replace=False)
        train += [f"{u} {i} {rng.integers(1, 6)}" for i in items[:10]]
        test += [f"{u} {i} {rng.integers(1, 6)}" for i in items[10:]]
    (tmp_path / "R.train").write_text("\r\n".join(train) + "\r\n")
    (tmp_path / "R.test").write_text("\r\n".join(test) + "\r\n")
    return tmp_path / "R.train", tmp_path / "R.test"


def short_run(released, out, epochs: int = 1) -> list[str]:
    """``irgan train``'s arguments for a short IRGAN run on the released pair, into ``out``."""
    return ["--dataset", str(released[0]), "--test", str(released[1]), "--min-rating", "none", "--epochs", str(epochs),
            "--d-epochs", "1", "--g-epochs", "1", "--pretrain-epochs", "1", "--quiet", "--out", str(out)]


def test_the_train_cli_reads_a_released_pair(released, tmp_path):
    out = tmp_path / "run"
    assert train_cli.main(short_run(released, out)) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert (report["data"]["n_users"], report["data"]["n_items"]) == (40, 30)
    assert report["data"]["test"] == 160  # every rating a positive
    request = json.loads((out / "run.json").read_text())
    assert request["test"] == str(released[1].resolve())
    data = load_dataset(released[0], test=released[1], min_rating=None)
    assert data.test.matrix.nnz == 160 and data.train.matrix.nnz == 400


def test_compare_reads_a_released_pair_and_refuses_another_test_file_on_resume(released, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["--dataset", str(released[0]), "--test", str(released[1]), "--min-rating", "none", "--models", "pop",
            "--seeds", "1", "--trials", "0", "--quiet", "--out", str(out)]
    assert compare_cli.main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["test"] == str(released[1].resolve())
    other = tmp_path / "other.test"
    other.write_text(released[1].read_text().replace("\r\n", "\n", 3))
    args[3] = str(other)
    assert compare_cli.main(args) == 2
    assert "test" in capsys.readouterr().err


def test_cfgan_released_split(shared_data):
    """CFGAN's files as its README describes them: 943 users, 1,653 items, 80,000 / 19,963 rows."""
    folder = shared_data / "cfgan-ml100k"
    if not folder.is_dir():
        pytest.skip("cfgan-ml100k not in the data folder")
    data = load_dataset(folder / "ML100K.train", test=folder / "ML100K.test", min_rating=None)
    assert data.train.shape == (943, 1653)
    assert (data.train.matrix.nnz, data.test.matrix.nnz) == (80_000, 19_963)
    assert list(data.train.user_ids[:3]) == [0, 1, 2]


def test_the_irgan_authors_files_are_split_u1(shared_data):
    folder = shared_data / "irgan-ml100k"
    if not folder.is_dir():
        pytest.skip("irgan-ml100k not in the data folder")
    theirs = load_dataset(folder / "movielens-100k-train.txt", test=folder / "movielens-100k-test.txt")
    u1 = load_dataset("ml-100k", data_dir=shared_data)
    assert (theirs.train.user_ids + 1 == u1.train.user_ids).all()
    shift = {i: i + 1 for i in theirs.train.item_ids}
    for a, b in ((theirs.train, u1.train), (theirs.test, u1.test)):
        assert {(u + 1, shift[i]) for u, i in pairs(a)} == pairs(b)


def test_compare_with_the_ecir_protocol_reports_every_cutoff(released, tmp_path, capsys):
    """--cutoffs 5,20 --metric NDCG@10: tuned on NDCG@10, tested and drawn at 5 and 20 everywhere."""
    out = tmp_path / "cmp"
    assert compare_cli.main(["--dataset", str(released[0]), "--test", str(released[1]), "--min-rating", "none",
                             "--models", "pop,ease", "--seeds", "2", "--trials", "2", "--metric", "NDCG@10",
                             "--validation-fraction", "0.2", "--cutoffs", "5,20", "--quiet", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["cutoffs"] == [5, 20] and results["metric"] == "NDCG@10"
    assert {"P@5", "NDCG@5", "P@20", "NDCG@20", "NDCG@10"} <= set(results["models"]["ease"]["test"])
    assert {t["metric"] for t in results["tests"]} == {"NDCG@10", "P@5", "NDCG@5", "P@20", "NDCG@20"}
    trials = results["models"]["ease"]["trials"]
    assert len(trials) == 2 and results["models"]["ease"]["validation"] == max(t["value"] for t in trials)
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[1:6] == ["NDCG@10", "P@5", "NDCG@5", "P@20", "NDCG@20"]
    columns = (out / "per_user.csv").read_text().splitlines()[0].split(",")
    assert {"P@20", "NDCG@20"} <= set(columns)


def test_compare_refuses_a_cutoff_longer_than_the_catalog(released, tmp_path, capsys):
    assert compare_cli.main(["--dataset", str(released[0]), "--test", str(released[1]), "--min-rating", "none",
                             "--models", "pop", "--cutoffs", "5,50", "--quiet", "--out", str(tmp_path / "c")]) == 2
    assert "a cut-off of 50 needs more than the catalog's 30 items" in capsys.readouterr().err


def test_run_json_records_the_split_used_and_a_released_run_resumes(released, tmp_path):
    out = tmp_path / "run"
    assert train_cli.main(short_run(released, out, epochs=2)) == 0
    finished = json.loads((out / "metrics.json").read_text())
    assert json.loads((out / "run.json").read_text())["split"] == "released" == finished["split"]
    (out / "metrics.json").unlink()  # as if it had stopped after its last training state
    assert train_cli.main(["--resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "metrics.json").read_text())["test"] == finished["test"]
    random_run = tmp_path / "random"
    assert train_cli.main(["--dataset", str(released[0]), "--min-rating", "none", "--epochs", "1", "--d-epochs", "1",
                           "--g-epochs", "1", "--pretrain-epochs", "1", "--quiet", "--out", str(random_run)]) == 0
    assert json.loads((random_run / "run.json").read_text())["split"] == "random"


def test_the_log_says_how_many_rows_min_rating_kept(pair, caplog):
    with caplog.at_level(logging.INFO, logger="irgan.data.datasets"):
        load_dataset(pair[0], test=pair[1], min_rating=4)
    kept = [r.getMessage() for r in caplog.records if "min_rating=4 kept" in r.getMessage()]
    assert kept == ["min_rating=4 kept 5 of 6 rows as positives (83%), dropped 1",
                    "min_rating=4 kept 3 of 4 rows as positives (75%), dropped 1"]
