"""Smoke runs of the scripts in benchmarks/, each at a tiny size, so that a change that breaks one fails here.

Most scripts read MovieLens 100K's split u1: they run here on ``fake_data``, a folder laid out like
$IRGAN_DATA (ml-100k/u.data, u1.base, u1.test and an authors'-format model_dns_ori.pkl) holding a
small synthetic data set. Scripts that write a section of benchmarks/RESULTS.md write it to a
temporary file; ``results_untouched`` checks that RESULTS.md itself is never written.
"""
from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks import (bench_baselines, bench_batching, bench_default_run, bench_eval, bench_processes, bench_read,
                        bench_train, profile_steps,
                        irgan_vs_start, reproduce_cfgan, reproduce_paper, research_adversarial, research_full_catalog,
                        research_strong, results)
from irgan.config import IRGANConfig
from irgan.data import Split, load_dataset, synthetic, validation_split
from irgan.metrics import evaluate
from irgan.model_files import load_model_file

REAL_DATA = Path(os.environ.get("IRGAN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
REPO = Path(__file__).resolve().parents[1]
METRICS = ("P@3", "P@5", "P@10", "NDCG@3", "NDCG@5", "NDCG@10")
SHORT_GAME = ["--epochs", "1", "--d-epochs", "1", "--g-epochs", "1"]


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory) -> Path:
    """A data folder like $IRGAN_DATA holding 60 users x 90 items of synthetic ratings (4 in 5 of them >= 4)."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    pairs = synthetic(60, 90, 1500, seed=0).matrix.tocoo()
    rating = np.where(rng.random(pairs.nnz) < 0.8, rng.integers(4, 6, pairs.nnz), rng.integers(1, 4, pairs.nnz))
    rows = np.column_stack([pairs.row + 1, pairs.col + 1, rating, 880_000_000 + np.arange(pairs.nnz)])
    test = rng.random(pairs.nnz) < 0.2
    (folder / "ml-100k").mkdir()
    for name, part in (("u.data", rows), ("u1.base", rows[~test]), ("u1.test", rows[test])):
        np.savetxt(folder / "ml-100k" / name, part, fmt="%d", delimiter="\t")
    (folder / "irgan-ml100k").mkdir()
    tables = [rng.uniform(-0.05, 0.05, (60, 5)), rng.uniform(-0.05, 0.05, (90, 5)), np.zeros(90)]
    (folder / "irgan-ml100k" / "model_dns_ori.pkl").write_bytes(pickle.dumps(tables, protocol=2))
    return folder


@pytest.fixture(scope="module")
def fake_split(fake_data) -> Split:
    return load_dataset("ml-100k", data_dir=fake_data)


@pytest.fixture(autouse=True)
def results_untouched():
    """No test writes benchmarks/RESULTS.md."""
    before = results.RESULTS.read_bytes() if results.RESULTS.exists() else None
    yield
    assert (results.RESULTS.read_bytes() if results.RESULTS.exists() else None) == before, "a test wrote RESULTS.md"


def random_p5(train, test) -> float:
    """Expected P@5 of a uniformly random ranking of each user's non-train items, over users with test items."""
    n_test, n_train = np.diff(test.indptr), np.diff(train.indptr)
    tested = n_test > 0
    return float(np.mean(n_test[tested] / (train.shape[1] - n_train[tested])))


def ease_p5(train, held, l2: float = 300.0) -> float:
    """P@5 on ``held`` of EASE (Steck 2019) in closed form, computed here in float64."""
    X = train.toarray().astype(np.float64)
    P = np.linalg.inv(X.T @ X + l2 * np.eye(X.shape[1]))
    B = -P / np.diag(P)
    np.fill_diagonal(B, 0.0)
    return evaluate(X @ B, train, held)["P@5"]


def table_rows(text: str) -> list[list[str]]:
    """The cells of each markdown table line of ``text``, the header's included (separator lines left out)."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.mark.parametrize("real", [False, True], ids=["synthetic", "released-split"])
def test_reproduce_cfgan_tiny(real, tmp_path, capsys, monkeypatch):
    if not real:
        monkeypatch.setenv("IRGAN_DATA", str(tmp_path / "none"))
    elif not (REAL_DATA / "cfgan-ml100k" / "ML100K.test").is_file():
        pytest.skip("real data not found: set IRGAN_DATA to a folder holding cfgan-ml100k/ (see data/README.md)")
    else:
        monkeypatch.setenv("IRGAN_DATA", str(REAL_DATA))
    rows = reproduce_cfgan.main(["--tiny", "--json", str(tmp_path / "seeds.json")])
    out = capsys.readouterr().out
    assert list(rows) == [0] and rows[0]["epochs"] == 2
    assert all(0 <= rows[0][m] <= 1 for m in reproduce_cfgan.METRICS)
    assert json.loads((tmp_path / "seeds.json").read_text())["0"]["P@5"] == rows[0]["P@5"]
    assert ("synthetic data" in out) != real and "| seed 0 | 2 |" in out


def test_bench_train_tiny(tmp_path):
    """The tiny catalog measured in its own process, as every size is, and reported into a temporary file."""
    out = tmp_path / "R.md"
    [row] = bench_train.main(["--sizes", "tiny", "--sample", "50", "--threads", "1", "--results", str(out)])
    config = IRGANConfig()
    assert (row["size"], row["n_users"], row["n_items"], row["train"] + row["test"]) == ("tiny", 200, 300, 4000)
    assert row["per_user_sample"] == 50 and row["pretrain_epochs"] == 2 and 0 < row["eval_users"] <= 200
    steps = ("fake", "d_epoch", "g_epoch", "eval", "pretrain", "per_user_d_epoch", "per_user_g_epoch",
             "per_user_eval", "d_bound", "g_bound", "eval_bound")
    assert all(0 < row[f"{step}_s"] < 60 for step in steps)
    assert row["outer_epoch_s"] == pytest.approx(row["fake_s"] + config.d_epochs * row["d_epoch_s"]
                                                 + config.g_epochs * (row["g_epoch_s"] + row["eval_s"]))
    written = out.read_text()
    assert "<!-- begin bench_train_cpu -->" in written and "--sizes tiny" in written
    [cells] = [r for r in table_rows(written) if r[0] == "tiny"]
    assert cells[1:3] == ["200 x 300", f"{row['train']:,}"] and len(cells) == 14
    assert "tiny: DNS pretraining (2 epochs)" in written


def test_bench_processes_tiny(tmp_path):
    """Two gloo processes against one on the tiny catalog: the item tables are summed every step,
    the user tables only in the set-up that sums every gradient (irgan before issue 22)."""
    out = tmp_path / "R.md"
    rows = bench_processes.main(["--size", "tiny", "--d-repeats", "3", "--results", str(out)])
    one, items, every = (rows[name] for name in bench_processes.SETUPS)
    assert all(len(r["d_epochs_s"]) == 3 and r["d_epoch_s"] == sorted(r["d_epochs_s"])[1] for r in (one, items, every))
    assert (one["processes"], items["processes"], every["processes"]) == (1, 2, 2)
    assert one["d_bytes"] == one["g_bytes"] == one["d_reduce_s"] == one["g_reduce_s"] == 0
    assert 0 < items["d_reduce_s"] < max(items["d_epochs_s"]) and 0 < items["g_reduce_s"] < items["g_epoch_s"]
    dim = IRGANConfig().dim
    user_table = 200 * dim * 4  # float32 user embeddings of the 200 x 300 catalog
    assert every["g_bytes"] - items["g_bytes"] == user_table
    assert every["d_bytes"] - items["d_bytes"] == user_table
    assert items["g_bytes"] >= 300 * (dim + 1) * 4  # the item table and biases, at least once
    written = out.read_text()
    assert "<!-- begin bench_processes -->" in written and "--size tiny --processes 2" in written
    assert [row[0] for row in table_rows(written)[1:]] == list(bench_processes.SETUPS)


def test_profile_steps_tiny(capsys):
    found = profile_steps.main(["--size", "tiny", "--top", "60"])
    assert list(found) == ["fake", "d_epoch", "g_epoch"]
    printed = capsys.readouterr().out
    for name, (seconds, text) in found.items():
        assert seconds > 0 and "tottime" in text and f"== {name}: " in printed
    assert "d_epoch" in found["d_epoch"][1] and "g_epoch" in found["g_epoch"][1]  # the step itself was profiled


def test_bench_baselines(fake_data, fake_split, monkeypatch, capsys):
    """The four baselines with their defaults, each above a random ranking's P@5 on planted tastes."""
    monkeypatch.setenv("IRGAN_DATA", str(fake_data))
    bench_baselines.main([])
    rows = table_rows(capsys.readouterr().out)
    assert [r[0] for r in rows] == ["model", *bench_baselines.BASELINES]
    assert rows[0][1:-1] == list(bench_baselines.METRICS)
    chance = random_p5(fake_split.train.matrix, fake_split.test.matrix)
    for cells in rows[1:]:
        figures = dict(zip(bench_baselines.METRICS, map(float, cells[1:-1])))
        assert all(0 <= v <= 1 for v in figures.values()) and figures["P@5"] > 1.5 * chance, cells


def test_bench_batching(fake_data, fake_split, tmp_path):
    """Each case's G, selected on test as the authors did, is at least as good as the file it starts from."""
    out = tmp_path / "R.md"
    lines = bench_batching.main(["--data-dir", str(fake_data), *SHORT_GAME, "--results", str(out)])
    rows = table_rows("\n".join(lines))
    assert len(rows) == 1 + 3 and rows[0][1:] == [*bench_batching.METRICS, "final D P@5", "seconds"]
    train, test = fake_split.train, fake_split.test
    start = load_model_file(fake_data / "irgan-ml100k" / "model_dns_ori.pkl", train.user_ids, train.item_ids)
    start_p5 = evaluate(start, train.matrix, test.matrix)["P@5"]
    for cells in rows[1:]:
        figures = [float(c) for c in cells[1:-1]]
        assert all(0 <= v <= 1 for v in figures) and figures[1] >= round(start_p5, 4), cells
    assert "\n".join(lines) in out.read_text()


def test_bench_default_run(fake_data, capsys):
    """This tree against itself as the old checkout, and on autograd: the same seed gives each the same G row."""
    runs = bench_default_run.main(["--old", str(REPO), "--data-dir", str(fake_data), "--tiny", "--repeats", "1",
                                   "--threads", "2"])
    assert list(runs) == ["old", "new (fast MF path)", "new (autograd, --no-fast-path)"]
    assert runs["old"]["row"] == runs["new (fast MF path)"]["row"] == runs["new (autograd, --no-fast-path)"]["row"]
    name, *figures = runs["old"]["row"].split()[1:]
    assert name == "G" and len(figures) == 6 and all(0 <= float(v) <= 1 for v in figures)
    assert all(0 < s < 60 for run in runs.values() for s in run["seconds"])
    assert "| old | " in capsys.readouterr().out


def test_bench_eval_tiny(tmp_path, monkeypatch):
    """Both cases in their own processes; the authors' DNS model, where its files are, scores the paper's DNS row."""
    monkeypatch.delenv("IRGAN_DATA", raising=False)  # the authors' files in ../shared/data if there, else random
    out = tmp_path / "R.md"
    small, big = bench_eval.main(["--tiny", "--results", str(out)])
    assert (small["case"], small["users"], small["items"]) == ("ml-100k", 943, 1683)
    if small["source"].startswith("authors'"):
        dns = dict(zip(METRICS, reproduce_paper.PAPER["paper: LambdaFM (DNS)"]))
        assert (small["P@10"], small["NDCG@10"]) == (pytest.approx(dns["P@10"], abs=5e-5),
                                                     pytest.approx(dns["NDCG@10"], abs=5e-5))
    else:
        assert small["source"] == "synthetic" and 0 <= small["P@10"] <= 1
    assert (big["case"], big["users"], big["items"], big["evaluated"]) == ("ml-20m-size", 500, 27_000, 500)
    assert big["test_nnz"] > 0 and 0 <= big["P@10"] < 0.01  # random scores on random positives
    assert all(r["seconds"] > 0 and r["rss_peak_mib"] > 0 for r in (small, big))
    written = out.read_text()
    assert "--tiny" in written and len([r for r in table_rows(written) if r[0] in ("ml-100k", "ml-20m-size")]) == 2


def test_bench_read_tiny(capsys):
    """1,000 rows as text and as parquet, each read in a fresh process by this tree as new and as old: every row."""
    runs = bench_read.main(["--rows", "1000", "--old", str(REPO)])
    assert sorted(runs) == [("new", "parquet"), ("new", "tsv"), ("old", "parquet"), ("old", "tsv")]
    for [result] in runs.values():
        assert "error" not in result, result
        assert result["rows"] == 1000 and result["dtypes"] == ["int64", "int64", "float64", "int64"]
        assert result["peak_rss_mib"] >= result["rss_before_mib"] > 0
    assert sorted(r[0] for r in table_rows(capsys.readouterr().out)[1:]) == ["new", "new", "old", "old"]


def test_irgan_vs_start(fake_data, fake_split, capsys):
    """Two seeds: the paired test's means are the seeds' mean figures, over every user with test items."""
    params = {"epochs": 1, "d_epochs": 1, "g_epochs": 2, "pretrain": {"epochs": 2}}
    tests = irgan_vs_start.main(["--data-dir", str(fake_data), "--seeds", "0,1", "--params", json.dumps(params)])
    seeds = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"seed"')]
    assert [s["seed"] for s in seeds] == [0, 1]
    n_tested = int((np.diff(fake_split.test.matrix.indptr) > 0).sum())
    for metric in ("P@5", "NDCG@5"):
        assert tests[metric]["n"] == n_tested
        assert tests[metric]["mean_a"] == pytest.approx(np.mean([s["G"][metric] for s in seeds]), abs=1e-4)
        assert tests[metric]["mean_b"] == pytest.approx(np.mean([s["start"][metric] for s in seeds]), abs=1e-4)
        assert 0 <= tests[metric]["t_pvalue"] <= 1 and 0 <= tests[metric]["wilcoxon_pvalue"] <= 1


def test_reproduce_paper_tiny(fake_data, tmp_path):
    """One seed of each protocol and of the authors' file: on the test protocol G is at least its DNS start."""
    out, saved = tmp_path / "R.md", tmp_path / "runs.json"
    runs = reproduce_paper.main(["--seeds", "1", *SHORT_GAME, "--bpr-epochs", "1", "--threads", "1",
                                 "--data-dir", str(fake_data), "--json", str(saved), "--results", str(out)])
    assert list(runs) == ["test", "validation", "authors_init"] and all(len(r) == 1 for r in runs.values())
    for protocol in ("test", "validation"):
        [rows] = runs[protocol]
        assert list(rows) == ["popularity", "BPR", "DNS-BPR", "IRGAN G", "IRGAN D"]
        assert all(0 <= rows[m][k] <= 1 for m in rows for k in reproduce_paper.METRICS)
    assert runs["test"][0]["IRGAN G"]["P@5"] >= runs["test"][0]["DNS-BPR"]["P@5"]  # G kept at its best on test
    stored = json.loads(saved.read_text())
    assert stored["seeds"] == 1 and stored["config"]["d_epochs"] == 1 and stored["test"] == runs["test"]
    written = out.read_text()
    assert "<!-- begin reproduce_paper_test_validation -->" in written and "--d-epochs 1" in written
    assert "| IRGAN G from the authors' DNS file |" in written


def test_research_adversarial_tiny(fake_data, fake_split, tmp_path):
    """Every configuration, shortened: each player kept at its best, never below its start (an item-item D's: EASE)."""
    out = tmp_path / "rows.jsonl"
    rows = research_adversarial.main(["--data-dir", str(fake_data), "--tiny", "--out", str(out)])
    assert [r["name"] for r in rows] == [*research_adversarial.CONFIGS, *research_adversarial.ANCHORED]
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    train, validation = validation_split(fake_split.train, 0.1, 0)
    ease = ease_p5(train.matrix, validation.matrix)
    for row in rows:
        assert all(0 <= row[k] <= 1 for k in ("G", "D", "G_NDCG@5", "D_NDCG@5")), row
        assert row["start"] is None or row["G"] >= row["start"] - 1e-12, row
        config = {**research_adversarial.CONFIGS, **research_adversarial.ANCHORED}[row["name"]]
        if config.d_scorer == "itemitem" or row["name"] in research_adversarial.ANCHORED:  # D starts from EASE
            assert row["D"] == pytest.approx(ease, abs=1e-6) if row["D_at"] == -1 else row["D"] >= ease - 1e-6, row


def test_research_full_catalog_tiny(fake_data, fake_split):
    """Every configuration for 20 epochs: best epoch at a check, and the plain model beats a random ranking."""
    rows = research_full_catalog.main(["--data-dir", str(fake_data), "--epochs", "20"])
    assert [r["name"] for r in rows] == list(research_full_catalog.CONFIGS)
    assert all(r["epoch"] in (10, 20) and 0 <= r["validation P@5"] <= 1 for r in rows)
    assert all({k: r[k] for k in research_full_catalog.CONFIGS[r["name"]]} == research_full_catalog.CONFIGS[r["name"]]
               for r in rows)
    train, validation = validation_split(fake_split.train, 0.1, 0)
    assert rows[0]["validation P@5"] > 1.5 * random_p5(train.matrix, validation.matrix)


@pytest.mark.parametrize("what", ["variants", "ensemble"])
def test_research_strong_tiny(what, fake_data, fake_split):
    """Shortened games; in the ensemble, EASE alone scores what EASE's closed form does."""
    rows = research_strong.main(["--data-dir", str(fake_data), what, "--tiny"])
    if what == "variants":
        assert [r["variant"] for r in rows] == list(research_strong.VARIANTS)
        for r in rows:
            assert 0 <= r["G P@5"] <= 1 and 0 <= r["start P@5"] <= 1
            assert r["G - start P@5"] == pytest.approx(r["G P@5"] - r["start P@5"], abs=2e-4)
        return
    alone, *weighted = rows
    assert sorted(alone["alone"]) == ["G", "ease", "ials", "start"]
    assert [r["w"] for r in weighted] == list(research_strong.WEIGHTS)
    train, validation = validation_split(fake_split.train, 0.1, 0)
    assert alone["alone"]["ease"] == pytest.approx(ease_p5(train.matrix, validation.matrix), abs=5e-5)
    assert all(0 <= v <= 1 for r in weighted for k, v in r.items() if k.startswith("ease + w"))


def test_write_section_replaces_its_own_section_only(tmp_path):
    path = tmp_path / "R.md"
    results.write_section("a", "## A\n\nfirst", path)
    results.write_section("b", "## B", path)
    results.write_section("a", "## A\n\nsecond", path)
    text = path.read_text()
    assert text.startswith(results.HEADER) and "first" not in text
    assert re.findall(r"<!-- begin (\w+) -->", text) == ["a", "b"] and "second" in text and "## B" in text
