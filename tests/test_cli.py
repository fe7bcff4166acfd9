"""The command line, end to end on a tiny ratings file: outputs, refusals, and flags <-> config."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import raw_id_ratings

from irgan.checkpoint import FORMAT, load_model
from irgan.config import BPRConfig, IRGANConfig, preset
from irgan.estimator import IRGAN
from irgan.models import ItemItemScorer, LightGCNScorer, MatrixFactorization, MLPScorer
from irgan.train import DERIVED_PRETRAIN_FIELDS, config_from_args, config_parser, main

N_USERS, N_ITEMS = 40, 30
FAST = ["--split", "random", "--epochs", "1", "--d-epochs", "1", "--g-epochs", "2", "--pretrain-epochs", "2",
        "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory) -> Path:
    """40 users x 30 items, 15 ratings (1-5) per user, with raw ids that are not 0..n-1."""
    return raw_id_ratings(tmp_path_factory.mktemp("data") / "ratings.csv", N_USERS, N_ITEMS)


@pytest.fixture(scope="module")
def run_dir(ratings_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(out)]) == 0
    return out


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# --- a run -----------------------------------------------------------------------------------

def test_run_writes_metrics_and_checkpoint(run_dir):
    assert {"metrics.json", "model.pt"} <= {p.name for p in run_dir.iterdir()}
    report = json.loads((run_dir / "metrics.json").read_text())
    assert {"test", "test_discriminator", "validation", "config", "seconds", "history"} <= set(report)
    assert "selection_test" not in report
    assert {"P@3", "P@5", "P@10", "NDCG@10", "MRR"} <= set(report["test"])
    assert all(0 <= v <= 1 for v in report["test"].values())
    assert report["test_init"] is not None  # DNS-pretrained start, evaluated too
    assert len(report["history"]) == 2  # 1 epoch x 2 G-epochs
    assert report["config"]["epochs"] == 1 and report["config"]["pretrain"]["epochs"] == 2
    assert IRGANConfig(**report["config"]) == IRGANConfig(epochs=1, d_epochs=1, g_epochs=2, pretrain=BPRConfig(epochs=2))
    assert "validation" in report["protocol"] and "TEST" not in report["protocol"]
    assert report["seconds"] > 0 and report["device"] == "cpu"


def test_run_model_file_loads(run_dir):
    saved = load_model(run_dir / "model.pt")
    assert torch.load(run_dir / "model.pt", weights_only=True)["format"] == FORMAT
    report = json.loads((run_dir / "metrics.json").read_text())
    assert saved.estimator == "IRGAN"
    params = {k: v for k, v in saved.params.items() if k != "seed"}
    assert IRGANConfig(**params) == IRGANConfig(**report["config"])
    assert saved.params["seed"] == 0
    assert saved.user_ids.tolist() == [1000 + u for u in range(N_USERS)]
    assert saved.item_ids.tolist() == [7 * i + 3 for i in range(N_ITEMS)]
    assert set(saved.scorers) == {"generator", "discriminator"}
    assert all(type(s) is MatrixFactorization for s in saved.scorers.values())
    assert (saved.scorers["generator"].n_users, saved.scorers["generator"].n_items) == (N_USERS, N_ITEMS)
    assert saved.user_items.shape == (N_USERS, N_ITEMS) and saved.user_items.nnz > 0
    assert {"history", "best", "test", "refit", "dataset"} <= set(saved.fitted)
    assert saved.fitted["history"] == report["history"]
    assert saved.fitted["dataset"].endswith("ratings.csv") and saved.fitted["refit"] is False
    assert saved.fitted["test"]["generator"] == pytest.approx(report["test"])


def test_run_model_serves_recommend_by_raw_ids(run_dir):
    """The CLI's model.pt is an estimator: recommend by raw ids, ranked as the saved G scores."""
    model = IRGAN.load(run_dir / "model.pt", device="cpu")
    generator = load_model(run_dir / "model.pt").scorers["generator"]
    assert model.config.epochs == 1 and model.seed == 0
    assert model.chosen_side_ == "generator"
    users = [1000, 1017, 1000 + N_USERS - 1]
    recs = model.recommend(users, k=5)
    assert recs["user"].tolist() == np.repeat(users, 5).tolist()
    with torch.no_grad():
        scores = generator.score_users(torch.arange(N_USERS)).numpy()
    for user in users:
        row = model.user_ids_.tolist().index(user)
        masked = scores[row].copy()
        masked[model.user_items_[row].indices] = -np.inf  # exclude what training saw
        expected = model.item_ids_[np.argsort(-masked, kind="stable")[:5]]
        got = recs.loc[recs["user"] == user]
        assert got["item"].tolist() == expected.tolist()
        assert set(got["item"]) <= {7 * i + 3 for i in range(N_ITEMS)}  # raw item ids
        np.testing.assert_allclose(got["score"].to_numpy(), masked[np.argsort(-masked, kind="stable")[:5]], rtol=1e-6)
    pairs = model.score_pairs(recs["user"].to_numpy(), recs["item"].to_numpy())
    np.testing.assert_allclose(pairs, recs["score"].to_numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("flags, g_scorer, d_scorer, fast_path", [
    (["--g-scorer", "mlp", "--d-scorer", "mlp", "--hidden", "8"], MLPScorer, MLPScorer, True),
    (["--g-scorer", "itemitem"], ItemItemScorer, MatrixFactorization, True),
    (["--no-fast-path"], MatrixFactorization, MatrixFactorization, False),
    (["--d-scorer", "lightgcn", "--dim", "8"], MatrixFactorization, LightGCNScorer, True),
], ids=["mlp", "itemitem", "no-fast-path", "lightgcn"])
def test_scorer_flags_write_a_model_of_those_scorers(ratings_csv, run_dir, tmp_path, flags, g_scorer, d_scorer,
                                                    fast_path):
    out = tmp_path / "r"
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(out), *flags]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert all(0 <= v <= 1 for v in report["test"].values())
    config = IRGANConfig(**report["config"])
    names = {MatrixFactorization: "mf", MLPScorer: "mlp", ItemItemScorer: "itemitem", LightGCNScorer: "lightgcn"}
    assert (config.g_scorer, config.d_scorer) == (names[g_scorer], names[d_scorer])
    assert config.fast_path is fast_path
    model = IRGAN.load(out / "model.pt", device="cpu")
    assert model.config == config
    assert type(model.generator_.scorer) is g_scorer and type(model.discriminator_.scorer) is d_scorer
    if g_scorer is MLPScorer:
        assert model.generator_.scorer.hidden == 8 and model.discriminator_.scorer.hidden == 8
    recs = model.recommend(1000, k=3)
    assert len(recs) == 3 and np.isfinite(recs["score"]).all()
    assert set(recs["item"]) <= {7 * i + 3 for i in range(N_ITEMS)}
    if not fast_path:  # autograd throughout: the same players as run_dir's hand-derived MF gradients
        fast = load_model(run_dir / "model.pt").scorers
        for role in ("generator", "discriminator"):
            slow = load_model(out / "model.pt").scorers[role].state_dict()
            for name, tensor in fast[role].state_dict().items():
                torch.testing.assert_close(slow[name], tensor, rtol=1e-4, atol=1e-5)


def test_run_prints_a_table(ratings_csv, tmp_path, capsys):
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(tmp_path / "r"), "--d-epochs", "0"]) == 0
    out = capsys.readouterr().out
    assert "IRGAN G" in out and "IRGAN D" in out and "P@3" in out and "init (dns)" in out


def test_rerun_into_non_empty_out_is_refused(ratings_csv, run_dir, capsys):
    before = snapshot(run_dir)
    capsys.readouterr()
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err
    assert snapshot(run_dir) == before


def test_unknown_dataset_is_one_line_error(tmp_path, capsys):
    assert main(["--dataset", "no-such-data", "--quiet", "--device", "cpu", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "no-such-data" in err


def test_failed_start_does_not_block_the_retry(ratings_csv, tmp_path):
    out = tmp_path / "r"
    assert main(["--dataset", str(ratings_csv) + ".typo", *FAST, "--out", str(out)]) == 2
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(out)]) == 0


def test_bad_config_value_is_an_error(ratings_csv, tmp_path, capsys):
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(tmp_path / "r"), "--g-mix", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "g_mix" in err
    assert not (tmp_path / "r").exists()


def test_select_on_test_says_test(ratings_csv, tmp_path):
    out = tmp_path / "r"
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(out), "--select-on", "test",
                 "--init", "random"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert "TEST" in report["protocol"]
    assert "selection_test" in report and "validation" not in report
    assert report["test_init"] is None  # random start: nothing to evaluate
    assert report["selection_test"] == report["test"]  # selected on test, so its test figures are the selection's


def test_out_that_is_a_file_is_an_error(ratings_csv, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(target)]) == 2
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("metric, words", [("P@0", "select_metric must be one of"), ("X@5", "select_metric must be one of"),
                                           ("P@50", "needs more than the catalog's 30 items")])
def test_unknown_select_metric_is_an_error(ratings_csv, tmp_path, capsys, metric, words):
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(tmp_path / "r"), "--select-metric", metric]) == 2
    assert words in capsys.readouterr().err


def test_selection_and_cutoffs_at_any_k(ratings_csv, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(out), "--select-metric", "NDCG@7",
                 "--cutoffs", "2,20"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert "NDCG@7" in report["validation"] and "NDCG@7" in report["history"][0]["selection"]
    assert {"P@2", "NDCG@2", "P@20", "NDCG@20", "P@5"} <= set(report["test"]) and report["cutoffs"] == [2, 20]
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[-4:] == ["P@2", "P@20", "NDCG@2", "NDCG@20"]
    assert main(["--resume", str(out), "--cutoffs", "5"]) == 2
    assert "--cutoffs [5] (the run has [2, 20])" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0", "a,b", "", "5,100000"])
def test_bad_cutoffs_are_one_line(ratings_csv, tmp_path, capsys, text):
    with pytest.raises(SystemExit) as exit_:
        main(["--dataset", str(ratings_csv), *FAST, "--out", str(tmp_path / "r"), "--cutoffs", text])
    assert exit_.value.code == 2 and "--cutoffs" in capsys.readouterr().err


def test_help_lists_every_field(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--d-exclude-positives" in out and "--pretrain-lr" in out and "--select-on" in out


# --- flags <-> IRGANConfig -------------------------------------------------------------------

def parse(*argv: str) -> IRGANConfig:
    parser = argparse.ArgumentParser()
    config_parser(parser)
    return config_from_args(parser.parse_args(list(argv)))


CHOICES = {"g_scorer": "mlp", "d_scorer": "itemitem", "itemitem_init": "zero", "g_estimator": "snis", "init": "random",
           "optimizer": "adam", "d_negatives": "refresh", "reward": "paper", "select_on": "test",
           "select_metric": "NDCG@10"}


def other_value(f: dataclasses.Field):
    """A valid value of the field that differs from its default, and the flag's text for it."""
    if f.name in CHOICES:
        return CHOICES[f.name], CHOICES[f.name]
    if f.type == "bool":
        return (not f.default), None
    if f.type == "int":
        return f.default + 1, str(f.default + 1)
    if f.type == "int | None":
        return 3, "3"
    value = f.default / 2 if f.default else 0.25
    return value, repr(value)


def flag_for(f: dataclasses.Field, prefix: str = "") -> list[str]:
    value, text = other_value(f)
    name = prefix + f.name.replace("_", "-")
    if text is None:
        return [f"--{name}" if value else f"--no-{name}"]
    return [f"--{name}", text]


def test_no_flags_give_the_defaults():
    assert parse() == IRGANConfig()


@pytest.mark.parametrize("field", [f for f in dataclasses.fields(IRGANConfig) if f.name != "pretrain"],
                         ids=lambda f: f.name)
def test_each_config_field_has_its_flag(field):
    expected = dataclasses.replace(IRGANConfig(), **{field.name: other_value(field)[0]})
    assert parse(*flag_for(field)) == expected


@pytest.mark.parametrize("field", [f for f in dataclasses.fields(BPRConfig) if f.name not in DERIVED_PRETRAIN_FIELDS],
                         ids=lambda f: f.name)
def test_each_pretrain_field_has_its_flag(field):
    pretrain = dataclasses.replace(BPRConfig(), **{field.name: other_value(field)[0]})
    assert parse(*flag_for(field, "pretrain-")) == IRGANConfig(pretrain=pretrain)


def test_all_flags_at_once_and_nothing_else():
    together = [f for f in dataclasses.fields(IRGANConfig) if f.name not in ("pretrain", "refit")]  # refit: not with select_on test
    argv = [a for f in together for a in flag_for(f)]
    argv += [a for f in dataclasses.fields(BPRConfig) if f.name not in DERIVED_PRETRAIN_FIELDS
             for a in flag_for(f, "pretrain-")]
    config = parse(*argv)
    for f in together:
        assert getattr(config, f.name) == other_value(f)[0], f.name
    parser = argparse.ArgumentParser(add_help=False)
    config_parser(parser)
    n_fields = len(dataclasses.fields(IRGANConfig)) - 1 + len(dataclasses.fields(BPRConfig)) - len(DERIVED_PRETRAIN_FIELDS)
    assert len(parser._actions) == n_fields  # one flag per field, no more


def test_named_flags():
    config = parse("--pretrain-lr", "0.2", "--no-d-exclude-positives", "--d-lr", "0.01", "--g-epochs", "7")
    assert config.pretrain.lr == 0.2 and config.d_exclude_positives is False
    assert config.d_lr == 0.01 and config.g_epochs == 7
    assert parse("--d-exclude-positives").d_exclude_positives is True


def test_refit_with_selection_on_test_is_refused():
    with pytest.raises(ValueError, match="refit needs select_on='validation'"):
        parse("--refit", "--select-on", "test")


def test_the_strong_preset_runs_with_flags_on_top(ratings_csv, run_dir, tmp_path):
    out = tmp_path / "strong"
    assert main(["--dataset", str(ratings_csv), *FAST, "--preset", "strong", "--dim", "6", "--out", str(out)]) == 0
    config = IRGANConfig(**json.loads((out / "run.json").read_text())["config"])
    assert config == preset("strong", dim=6, epochs=1, d_epochs=1, g_epochs=2, pretrain={"epochs": 2})
    assert config.refit and config.pretrain_select and config.pretrain.l2 == preset("strong").pretrain.l2
    report = json.loads((out / "metrics.json").read_text())
    assert "refit on all of train" in report["protocol"]
    plain = json.loads((run_dir / "metrics.json").read_text())["data"]  # no refit: trained on train less validation
    assert report["data"]["train"] == plain["train"] + plain["selection"]
    assert load_model(out / "model.pt").params["refit"] is True


def test_an_unknown_preset_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--preset", "fastest"])
    assert exit_.value.code == 2 and "invalid choice: 'fastest'" in capsys.readouterr().err


def test_derived_pretrain_fields_have_no_flag():
    with pytest.raises(SystemExit):
        parse("--pretrain-negatives", "uniform")
    with pytest.raises(SystemExit):
        parse("--pretrain-dim", "8")


def test_config_from_args_validates():
    with pytest.raises(ValueError, match="optimizer"):
        parse("--optimizer", "rmsprop")
    with pytest.raises(ValueError, match="dns_candidates"):
        parse("--pretrain-dns-candidates", "0")


TWO_LAYER = '''
import torch
from torch import nn


class TwoLayer(nn.Module):
    """score(u, i) = MLP([p_u, q_i]) over learned user and item embeddings."""

    def __init__(self, n_users, n_items, dim=8):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.users, self.items = nn.Embedding(n_users, dim), nn.Embedding(n_items, dim)
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)
        self.mlp = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def score(self, users, items):
        return self.mlp(torch.cat([self.users(users), self.items(items)], -1)).squeeze(-1)

    def score_users(self, users):
        pairs = torch.cat([self.users(users)[:, None].expand(-1, self.n_items, -1),
                           self.items.weight[None].expand(len(users), -1, -1)], -1)
        return self.mlp(pairs).squeeze(-1)
'''


def test_a_scorer_of_your_own_trains_through_the_cli_on_ml100k(shared_data, tmp_path, monkeypatch, capsys):
    """A 20-line scorer in a module of the user's plays G and D through ``irgan train`` on MovieLens
    100K, and the run's model.pt serves it by raw ids: no gradient written by hand."""
    (tmp_path / "my_scorers.py").write_text(TWO_LAYER)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    assert main(["--dataset", "ml-100k", "--data-dir", str(shared_data), "--quiet", "--out", str(out),
                 "--g-scorer", "my_scorers:TwoLayer", "--d-scorer", "my_scorers:TwoLayer", "--init", "random",
                 "--epochs", "2", "--d-epochs", "2", "--g-epochs", "2", "--optimizer", "adam",
                 "--d-lr", "0.01", "--g-lr", "0.01"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert 0 <= report["test"]["P@5"] <= 1 and len(report["history"]) == 2 * 2
    import my_scorers
    with pytest.raises(ValueError, match="register_scorer"):
        IRGAN.load(out / "model.pt", device="cpu")  # the file names the class; loading never imports it
    model = IRGAN.load(out / "model.pt", device="cpu", scorers=[my_scorers.TwoLayer])
    assert type(model.generator_.scorer) is type(model.discriminator_.scorer) is my_scorers.TwoLayer
    top = model.recommend([1, 2], k=5)
    assert list(top["user"]) == [1] * 5 + [2] * 5 and top.groupby("user")["score"].is_monotonic_decreasing.all()
    seen = model.user_items_[model._lookup(model._user_lookup, [1], "user")].indices
    assert not set(model._lookup(model._item_lookup, top[top.user == 1]["item"], "item")) & set(seen)


def test_an_unknown_scorer_path_is_one_line(capsys, ratings_csv, tmp_path):
    assert main(["--dataset", str(ratings_csv), *FAST, "--out", str(tmp_path / "x"), "--g-scorer", "nowhere:Thing"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot import scorer 'nowhere:Thing'") and "\n" not in err


# --- reading options -------------------------------------------------------------------------

def two_column_ratings(folder: Path, header: str = "") -> Path:
    """An implicit file: user, item per line (every row a positive), 40 users x 12 items."""
    rng = np.random.default_rng(1)
    lines = [header] if header else []
    lines += [f"u{u}\tp{i}" for u in range(40) for i in rng.choice(30, 12, replace=False)]
    path = folder / "implicit.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_two_column_implicit_file_trains_every_row_a_positive(tmp_path):
    out = tmp_path / "r"
    assert main(["--dataset", str(two_column_ratings(tmp_path)), *FAST, "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["data"]["n_users"] == 40 and report["data"]["train"] + report["data"]["test"] + \
        report["data"]["selection"] == 40 * 12
    assert load_model(out / "model.pt").user_ids[0] == "u0"


def test_columns_sep_and_min_rating_flags_reach_the_reader(tmp_path):
    path = tmp_path / "odd.txt"
    rng = np.random.default_rng(2)
    path.write_text("".join(f"{7 * i}|x|{100 + u}|{rng.integers(1, 6)}\n" for u in range(40)
                            for i in rng.choice(30, 12, replace=False)))
    out = tmp_path / "r"
    args = ["--dataset", str(path), *FAST, "--out", str(out), "--sep", "|", "--columns", "item,-,user,rating",
            "--min-rating", "none"]
    assert main(args) == 0
    saved = load_model(out / "model.pt")
    assert saved.user_ids.tolist() == list(range(100, 140))  # users came from the third field
    assert json.loads((out / "run.json").read_text())["read"] == {"sep": "|", "columns": "item,-,user,rating",
                                                                 "min_rating": None}
    report = json.loads((out / "metrics.json").read_text())
    assert report["data"]["train"] + report["data"]["test"] + report["data"]["selection"] == 40 * 12


def test_a_header_that_names_no_item_is_one_line(tmp_path, capsys):
    path = tmp_path / "h.csv"
    path.write_text("customer,thing,stars\n1,2,5\n")
    assert main(["--dataset", str(path), *FAST, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "customer" in err[0]


def test_parquet_trains_through_the_cli(ratings_csv, tmp_path):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "ratings.parquet"
    frame = pd.read_csv(ratings_csv).rename(columns={"user": "user_id", "item": "item_id"})
    frame[["item_id", "user_id", "rating"]].to_parquet(path)
    out = tmp_path / "r"
    assert main(["--dataset", str(path), *FAST, "--out", str(out)]) == 0
    assert load_model(out / "model.pt").user_ids.tolist() == sorted(frame["user_id"].unique().tolist())
