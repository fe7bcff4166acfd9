"""The honest comparison: tune on validation, refit, test per seed, paired tests, resumable parts."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import irgan.compare
import irgan.protocol
from irgan.checkpoint import load_model
from irgan.config import preset
from irgan.compare import compare, main, significance
from irgan.data import load_dataset, validation_split
from irgan.metrics import evaluate
from irgan.models import ItemItemScorer
from irgan.protocol import CANDIDATES, refit_and_test, tune
from irgan.significance import holm

FAST_MODELS = "pop,ease,itemknn,ials"


@pytest.fixture(scope="module")
def ratings(tmp_path_factory) -> Path:
    """60 users x 40 items with two taste groups, raw ids that are strings."""
    rng = np.random.default_rng(3)
    lines = ["user_id,item_id,rating"]
    for u in range(60):
        liked = np.arange(20) if u % 2 else np.arange(20, 40)
        for i in rng.choice(liked, 10, replace=False):
            lines.append(f"u{u},i{i},{rng.integers(4, 6)}")
        for i in rng.choice(40, 3, replace=False):
            lines.append(f"u{u},i{i},{rng.integers(1, 3)}")
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    path.write_text("\n".join(dict.fromkeys(lines)) + "\n")
    return path


@pytest.fixture(scope="module")
def data(ratings):
    return load_dataset(str(ratings), split="random", seed=0)


@pytest.fixture(scope="module")
def finished(ratings, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cmp") / "run"
    assert main(["--dataset", str(ratings), "--split", "random", "--models", FAST_MODELS, "--seeds", "2",
                 "--trials", "3", "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    return out


def test_results_json_has_the_documented_shape(finished):
    report = json.loads((finished / "results.json").read_text())
    assert list(report["models"]) == FAST_MODELS.split(",")
    for result in report["models"].values():
        assert {"mean", "std", "per_seed"} <= set(result["test"]["P@5"]) and len(result["test"]["P@5"]["per_seed"]) == 2
        assert result["test"]["P@5"]["mean"] == pytest.approx(np.mean(result["test"]["P@5"]["per_seed"]))
        assert {"config", "seconds", "validation"} <= set(result)
    assert report["trials"] == 3 and report["seeds"] == 2 and report["metric"] == "P@5"
    assert (finished / "results.png").stat().st_size > 0


def test_table_means_equal_evaluate_on_the_saved_models(finished, data):
    report = json.loads((finished / "results.json").read_text())
    for name in FAST_MODELS.split(","):
        for seed in range(2):
            saved = load_model(finished / "parts" / f"{name}.seed{seed}.pt")
            direct = evaluate(saved.scorers["model"], data.train, data.test)
            assert direct["P@5"] == pytest.approx(report["models"][name]["test"]["P@5"]["per_seed"][seed], abs=1e-12)
            assert direct["NDCG@10"] == pytest.approx(report["models"][name]["test"]["NDCG@10"]["per_seed"][seed],
                                                      abs=1e-12)


def test_per_user_csv_is_by_raw_user_id_and_averages_to_the_table(finished, data):
    per_user = pd.read_csv(finished / "per_user.csv")
    report = json.loads((finished / "results.json").read_text())
    assert list(per_user.columns[:3]) == ["model", "seed", "user"]
    assert set(per_user["user"]) <= set(data.test.user_ids.tolist()) and per_user["user"].str.startswith("u").all()
    means = per_user.groupby(["model", "seed"])["NDCG@5"].mean()
    assert means["ease", 1] == pytest.approx(report["models"]["ease"]["test"]["NDCG@5"]["per_seed"][1])


def test_tuning_tries_the_defaults_first_and_keeps_the_best_trial(data):
    tuned = tune(CANDIDATES["ease"], data.train, trials=4, seed=0)
    assert tuned.trials[0]["params"] == {"l2": 300.0}
    assert tuned.validation == max(t["value"] for t in tuned.trials)
    assert tuned.params["l2"] == max(tuned.trials, key=lambda t: t["value"])["params"]["l2"]


def test_tuning_is_seeded(data):
    a = tune(CANDIDATES["itemknn"], data.train, trials=3, seed=1)
    b = tune(CANDIDATES["itemknn"], data.train, trials=3, seed=1)
    assert a.trials == b.trials and a.params == b.params


def test_trials_zero_uses_the_documented_defaults(data):
    tuned = tune(CANDIDATES["ials"], data.train, trials=0)
    assert tuned.params == CANDIDATES["ials"].defaults and tuned.trials == [] and tuned.validation is None


def test_epoch_models_refit_for_the_epochs_validation_chose(data, monkeypatch):
    monkeypatch.setitem(CANDIDATES["bpr"].defaults, "epochs", 10)
    tuned = tune(CANDIDATES["bpr"], data.train, trials=1, seed=0)
    assert tuned.params["epochs"] % 5 == 0 and 5 <= tuned.params["epochs"] <= 100
    tested = refit_and_test(CANDIDATES["bpr"], tuned.params, data.train, data.test, seed=0)
    assert 0 <= tested.test["P@5"] <= 1 and len(tested.per_user) == np.count_nonzero(np.diff(data.test.matrix.indptr))


def test_significance_matches_scipy_and_holm(data):
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(30)]
    a = rng.random(30)
    frames = []
    for name, values in (("good", a + 0.2), ("mid", a + rng.normal(0, 0.05, 30)), ("bad", a - 0.1 + rng.normal(0, 0.05, 30))):
        frames.append(pd.DataFrame({"P@5": values, "NDCG@5": values}, index=pd.Index(users, name="user"))
                      .assign(model=name, seed=0))
    per_user = pd.concat(frames)
    results = {n: {"test": {"P@5": {"mean": float(v)}}} for n, v in (("good", 0.9), ("mid", 0.5), ("bad", 0.1))}
    rows = [r for r in significance(per_user, results, "P@5") if r["metric"] == "P@5"]
    assert [(r["a"], r["b"]) for r in rows] == [("good", "mid"), ("good", "bad")]
    raw = [stats.ttest_rel(a + 0.2, values).pvalue for values in (frames[1]["P@5"], frames[2]["P@5"])]
    assert [r["t_pvalue"] for r in rows] == pytest.approx(raw)
    assert [r["t_pvalue_holm"] for r in rows] == pytest.approx(holm(raw).tolist())
    wilcoxon = stats.wilcoxon(a + 0.2, frames[2]["P@5"].to_numpy()).pvalue
    assert rows[1]["wilcoxon_pvalue"] == pytest.approx(wilcoxon)


def test_an_interrupted_comparison_continues_and_recomputes_only_what_is_missing(ratings, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["--dataset", str(ratings), "--split", "random", "--models", "pop,ease", "--seeds", "2", "--trials", "2",
            "--device", "cpu", "--out", str(out), "--quiet"]
    assert main(args) == 0
    first = json.loads((out / "results.json").read_text())
    (out / "parts" / "ease.seed1.json").unlink()
    calls = []
    real = irgan.compare.refit_and_test
    monkeypatch.setattr(irgan.compare, "refit_and_test", lambda c, *a, **k: calls.append(c.name) or real(c, *a, **k))
    monkeypatch.setattr(irgan.compare, "tune", lambda *a, **k: pytest.fail("tuning was kept and must not rerun"))
    assert main(args) == 0
    assert calls == ["ease"]
    again = json.loads((out / "results.json").read_text())
    assert again["models"]["ease"]["test"] == first["models"]["ease"]["test"]


def test_a_deleted_refit_file_is_fitted_and_written_again(ratings, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["--dataset", str(ratings), "--split", "random", "--models", "pop,ease", "--seeds", "2", "--trials", "0",
            "--device", "cpu", "--out", str(out), "--quiet"]
    assert main(args) == 0
    record = json.loads((out / "parts" / "ease.seed1.json").read_text())
    (out / "parts" / "ease.seed1.pt").unlink()
    calls = []
    real = irgan.compare.refit_and_test
    monkeypatch.setattr(irgan.compare, "refit_and_test", lambda c, *a, **k: calls.append(c.name) or real(c, *a, **k))
    assert main(args) == 0
    assert calls == ["ease"] and (out / "parts" / "ease.seed1.pt").is_file()
    again = json.loads((out / "parts" / "ease.seed1.json").read_text())
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in record.items() if k != "seconds"}


def test_the_same_out_with_other_settings_is_refused(ratings, finished, capsys):
    before = (finished / "results.json").read_bytes()
    code = main(["--dataset", str(ratings), "--split", "random", "--models", FAST_MODELS, "--trials", "4",
                 "--out", str(finished), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and "trials" in err[-1]
    assert (finished / "results.json").read_bytes() == before


def test_unknown_models_are_one_line(ratings, tmp_path, capsys):
    assert main(["--dataset", str(ratings), "--models", "ease,nope", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "nope" in err[-1]
    assert not (tmp_path / "r").exists()


def test_irgan_is_tested_against_its_own_start(data, monkeypatch):
    monkeypatch.setitem(CANDIDATES["irgan"].defaults, "epochs", 1)
    monkeypatch.setitem(CANDIDATES["irgan"].defaults, "d_epochs", 2)
    monkeypatch.setitem(CANDIDATES["irgan"].defaults, "g_epochs", 2)
    monkeypatch.setitem(CANDIDATES["irgan"].defaults, "pretrain", {"epochs": 3})
    report = compare(data, ["ease", "irgan"], seeds=1, trials=0, device="cpu")
    assert set(report["models"]) == {"ease", "irgan", "irgan-start"}
    assert ("irgan", "irgan-start") in {(r["a"], r["b"]) for r in report["tests"]}
    assert set(report["per_user"]["model"]) == {"ease", "irgan", "irgan-start"}


def test_every_irgan_model_is_tested_against_its_own_start(data, monkeypatch):
    for name in ("irgan", "irgan-strong"):
        for key, value in {"epochs": 1, "d_epochs": 2, "g_epochs": 2, "dim": 4}.items():
            monkeypatch.setitem(CANDIDATES[name].defaults, key, value)
        monkeypatch.setitem(CANDIDATES[name].defaults, "pretrain", {"epochs": 3})
    report = compare(data, ["irgan", "irgan-strong"], seeds=1, trials=0, device="cpu")
    assert set(report["models"]) == {"irgan", "irgan-start", "irgan-strong", "irgan-strong-start"}
    pairs = {(r["a"], r["b"]) for r in report["tests"]}
    assert {("irgan", "irgan-start"), ("irgan-strong", "irgan-strong-start")} <= pairs
    assert not {name for pair in pairs for name in pair if name.endswith("-start")} - {"irgan-start", "irgan-strong-start"}
    assert all(not (a.endswith("-start") and b in ("irgan", "irgan-strong")) for a, b in pairs)  # a start is never "best"


def test_the_strong_candidate_is_the_strong_preset(data, monkeypatch):
    seen = {}
    real = irgan.protocol.run_recipe

    def spy(train, test, config, **kwargs):
        seen["config"] = config
        return real(train, test, dataclasses.replace(config, epochs=1, d_epochs=1, g_epochs=1,
                                                      pretrain=dataclasses.replace(config.pretrain, epochs=2)), **kwargs)
    monkeypatch.setattr(irgan.protocol, "run_recipe", spy)
    tuned = tune(CANDIDATES["irgan-strong"], data.train, trials=0)
    refit_and_test(CANDIDATES["irgan-strong"], tuned.params, data.train, data.test, seed=0)
    assert seen["config"].refit is True
    expected = preset("strong")
    for field in ("dim", "g_lr", "d_lr", "d_l2", "pretrain_select"):
        assert getattr(seen["config"], field) == getattr(expected, field)
    assert seen["config"].pretrain.l2 == expected.pretrain.l2


def test_several_validation_splits_average_the_trial_figure(data):
    one = tune(CANDIDATES["ease"], data.train, trials=2, seed=0, splits=1)
    three = tune(CANDIDATES["ease"], data.train, trials=2, seed=0, splits=3)
    folds = [validation_split(data.train, 0.1, k) for k in range(3)]
    figures = [evaluate(ItemItemScorer(*tr.shape, tr.matrix).fit_ease(300.0), tr, va)["P@5"] for tr, va in folds]
    assert three.trials[0]["value"] == pytest.approx(np.mean(figures))
    assert one.trials[0]["value"] == pytest.approx(figures[0])


def test_the_irgan_command_runs_compare(capsys):
    from irgan.cli import main as irgan_main
    with pytest.raises(SystemExit) as exit_:
        irgan_main(["compare", "--help"])
    assert exit_.value.code == 0 and "irgan compare" in capsys.readouterr().out


def test_a_comparison_refuses_to_continue_on_changed_data(tmp_path, ratings, capsys):
    path = tmp_path / "ratings.csv"
    path.write_text(ratings.read_text())
    out = tmp_path / "run"
    args = ["--dataset", str(path), "--split", "random", "--models", "pop", "--seeds", "1", "--trials", "0",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    path.write_text(path.read_text().replace(",1\n", ",5\n"))
    capsys.readouterr()
    assert main(args) == 2
    assert "data_fingerprint" in capsys.readouterr().err


def test_a_diverging_trial_fails_alone(data):
    real = CANDIDATES["ease"].fit
    calls = []

    def sometimes(*args):
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("diverged")
        return real(*args)
    candidate = dataclasses.replace(CANDIDATES["ease"], fit=sometimes)
    tuned = tune(candidate, data.train, trials=3, seed=0)
    assert [t["state"] for t in tuned.trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert tuned.validation == max(t["value"] for t in tuned.trials if t["value"] is not None)


def test_the_comparison_metric_is_tested_too(data):
    report = compare(data, ["pop", "ease"], seeds=1, trials=0, metric="Recall@10", device="cpu")
    assert {r["metric"] for r in report["tests"]} == {"Recall@10", "P@5", "NDCG@5", "NDCG@10"}
