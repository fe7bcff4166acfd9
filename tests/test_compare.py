"""The honest comparison: tune on validation, refit, test per seed, paired tests, resumable parts."""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats

import torch

import irgan.compare
import irgan.protocol
from irgan.checkpoint import load_model
from irgan.config import MAX_COUNT, preset
from irgan.compare import compare, format_table, main, significance
from irgan.data import load_dataset, validation_split
from irgan.metrics import evaluate
from irgan.models import ItemItemScorer, Popularity
from irgan.protocol import CANDIDATES, Candidate, Fitted, refit_and_test, tune
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
        for figures in result["test"].values():
            x, y = figures["per_seed"]
            assert figures["mean"] == pytest.approx((x + y) / 2)
            assert figures["std"] == pytest.approx(abs(x - y) / np.sqrt(2))  # sample std (0 here: see the spread test)
        assert {"config", "seconds", "validation"} <= set(result)
    assert report["trials"] == 3 and report["seeds"] == 2 and report["metric"] == "P@5"
    assert (finished / "results.png").stat().st_size > 0


def test_table_means_equal_evaluate_on_the_saved_models(finished, data):
    report = json.loads((finished / "results.json").read_text())
    for name in FAST_MODELS.split(","):
        for seed in range(2):
            once = report["models"][name].get("fitted_once", False)  # one fit, its figures reused for every seed
            saved = load_model(finished / "parts" / f"{name}.seed{0 if once else seed}.pt")
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


def scripted(score, epochs=None) -> Candidate:
    """EASE's search space with a fit that trains nothing: a trial's validation figure is
    ``score(l2)``; with ``epochs``, the k-th fit of each trial (its k-th validation split) chooses
    ``epochs[k]``. Trials then differ, so the best and the first can be told apart."""
    calls = []

    def fit(train, validation, params, seed, device, metric, fraction) -> Fitted:
        calls.append(params)
        refit = dict(params) if epochs is None else {**params, "epochs": epochs[(len(calls) - 1) % len(epochs)]}
        return Fitted(torch.nn.Identity(), refit, {metric: score(params["l2"])})
    return dataclasses.replace(CANDIDATES["ease"], fit=fit)


def near_2000(l2: float) -> float:
    return -abs(float(np.log(l2 / 2000.0)))


def test_tuning_tries_the_defaults_first_and_keeps_the_best_trial(data):
    tuned = tune(scripted(near_2000), data.train, trials=6, seed=0)
    best = max(tuned.trials, key=lambda t: t["value"])
    assert tuned.trials[0]["params"] == {"l2": 300.0}
    assert best["number"] != 0 and len({t["value"] for t in tuned.trials}) == 6  # the first trial is not the best
    assert tuned.params == {"l2": best["params"]["l2"]} and tuned.validation == best["value"]


def test_a_real_tuning_keeps_the_best_trial(data):
    tuned = tune(CANDIDATES["ease"], data.train, trials=4, seed=0)
    assert tuned.trials[0]["params"] == {"l2": 300.0}
    assert tuned.validation == max(t["value"] for t in tuned.trials)
    assert tuned.params["l2"] == max(tuned.trials, key=lambda t: t["value"])["params"]["l2"]


def test_the_refit_epochs_are_the_mean_over_the_validation_splits(data):
    tuned = tune(scripted(near_2000, epochs=(10, 15, 40)), data.train, trials=1, seed=0, splits=3)
    assert tuned.params == {"l2": 300.0, "epochs": 22}  # round(65 / 3), not the first split's 10


def test_tuning_is_seeded(data):
    a = tune(CANDIDATES["itemknn"], data.train, trials=3, seed=1)
    b = tune(CANDIDATES["itemknn"], data.train, trials=3, seed=1)
    assert a.trials == b.trials and a.params == b.params


def test_trials_zero_uses_the_documented_defaults(data):
    tuned = tune(CANDIDATES["ials"], data.train, trials=0)
    assert tuned.params == CANDIDATES["ials"].defaults and tuned.trials == [] and tuned.validation is None


def test_bpr_refits_for_the_epochs_validation_chose(data, monkeypatch):
    """Validation (checked every 5 epochs of 15) peaks at epoch 10: the refit trains 10 epochs, not 15."""
    candidate = dataclasses.replace(CANDIDATES["bpr"], first_trial={},
                                    space=lambda t: {"dim": 8, "lr": 0.05, "l2": 0.05, "epochs": 15})
    trained, real_fit = [], irgan.protocol.fit_bpr
    monkeypatch.setattr(irgan.protocol, "fit_bpr", lambda m, config, **k: trained.append(config.epochs) or real_fit(m, config, **k))
    with monkeypatch.context() as m:
        figures = iter([0.1, 0.3, 0.2])  # epochs 5, 10, 15
        m.setattr(irgan.protocol, "evaluate", lambda *a, **k: {"P@5": next(figures)})
        tuned = tune(candidate, data.train, trials=1, seed=0)
    assert tuned.params["epochs"] == 10 and tuned.validation == 0.3
    tested = refit_and_test(candidate, tuned.params, data.train, data.test, seed=0)
    assert trained == [15, 10]
    assert 0 <= tested.test["P@5"] <= 1 and len(tested.per_user) == np.count_nonzero(np.diff(data.test.matrix.indptr))


USERS = pd.Index([f"u{i}" for i in range(21)], name="user")


def scripted_compare(monkeypatch, data, per_user: dict[str, list[np.ndarray]], **kwargs) -> dict:
    """``compare`` of the models of ``per_user`` (ones with randomness, so each seed is refitted), whose
    refit with seed s gives the users USERS the values ``per_user[model][s]`` (P@5 and NDCG@5 alike):
    no model is fitted."""
    def refit_and_test(candidate, params, train, test, seed, *args, **kw) -> irgan.protocol.Tested:
        values = per_user[candidate.name][seed]
        figures = dict.fromkeys(("P@5", "NDCG@5", "P@10", "NDCG@10"), float(values.mean()))
        return irgan.protocol.Tested(figures, pd.DataFrame({"P@5": values, "NDCG@5": values}, index=USERS), 0.0)
    monkeypatch.setattr(irgan.compare, "refit_and_test", refit_and_test)
    return compare(data, list(per_user), seeds=len(next(iter(per_user.values()))), trials=0, device="cpu", **kwargs)


@pytest.mark.parametrize("levels, std", [
    ((0.2, 0.4, 0.9), 0.36055512754639896),  # mean 0.5; squares 0.09 + 0.01 + 0.16 over n - 1: sqrt(0.13), not sqrt(0.26 / 3)
    ((0.2, 0.4), 0.14142135623730953),  # sqrt(0.02 / 1), not 0.1
    ((0.3,), 0.0),  # one seed: no spread
])
def test_the_spread_over_seeds_is_the_sample_standard_deviation(data, monkeypatch, levels, std):
    offsets = np.linspace(-0.05, 0.05, 21)  # they sum to 0: a seed's mean is its level
    report = scripted_compare(monkeypatch, data, {"bpr": [level + offsets for level in levels],
                                                  "dns": [0.1 + offsets[::-1] for _ in levels]})
    bpr = report["models"]["bpr"]["test"]["P@5"]
    assert bpr["per_seed"] == pytest.approx(list(levels)) and bpr["mean"] == pytest.approx(np.mean(levels))
    assert bpr["std"] == pytest.approx(std, abs=1e-12)
    assert report["models"]["dns"]["test"]["P@5"]["std"] == pytest.approx(0.0, abs=1e-12)


def test_paired_tests_average_each_user_over_the_seeds(data, monkeypatch):
    rng = np.random.default_rng(4)
    means = {"bpr": 0.6 + 0.2 * rng.random(21), "dns": 0.3 + 0.2 * rng.random(21)}
    noise = {name: rng.normal(0, 0.2, 21) for name in means}  # seed 0 above each user's mean, seed 1 below
    report = scripted_compare(monkeypatch, data, {m: [v + noise[m], v - noise[m]] for m, v in means.items()})
    row = next(r for r in report["tests"] if r["metric"] == "P@5")
    a, b = means["bpr"], means["dns"]
    assert (row["a"], row["b"], row["n"]) == ("bpr", "dns", 21)
    assert (row["mean_a"], row["mean_b"]) == pytest.approx((a.mean(), b.mean()))
    assert row["t_pvalue"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert row["wilcoxon_pvalue"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    seed_0 = stats.ttest_rel(a + noise["bpr"], b + noise["dns"]).pvalue
    assert seed_0 != pytest.approx(row["t_pvalue"], rel=0.1)  # seed 0 alone would give another answer


def test_wilcoxon_p_values_are_holm_corrected_and_that_changes_the_verdict(data, monkeypatch):
    gain = np.r_[0.3 * (1 + 0.01 * np.arange(11)), -0.003 * (1 + np.arange(10))]  # 11 users gain much, 10 lose little
    rng = np.random.default_rng(1)
    best = 0.5 + 0.1 * rng.random(21)
    per_user = {"bpr": [best], "dns": [best - gain[rng.permutation(21)]],
                "ials": [best - 0.9 * gain[rng.permutation(21)]]}
    report = scripted_compare(monkeypatch, data, per_user)
    rows = [r for r in report["tests"] if r["metric"] == "P@5"]
    assert [(r["a"], r["b"]) for r in rows] == [("bpr", "dns"), ("bpr", "ials")]
    raw = [stats.wilcoxon(best, per_user[r["b"]][0]).pvalue for r in rows]
    assert [r["wilcoxon_pvalue"] for r in rows] == pytest.approx(raw)
    assert [r["wilcoxon_pvalue_holm"] for r in rows] == pytest.approx(holm(raw).tolist())
    assert max(raw) < 0.05 < min(holm(raw))  # each is significant alone, neither after the correction
    assert all(r["t_pvalue_holm"] < 0.01 for r in rows)  # the t-test alone would call both significant
    lines = [line for line in format_table(report).splitlines() if line.startswith("P@5: bpr")]
    assert len(lines) == 2 and all(line.endswith("(Holm): not significant") for line in lines)


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
    for test, kind in ((stats.ttest_rel, "t_pvalue"), (stats.wilcoxon, "wilcoxon_pvalue")):
        raw = [test(a + 0.2, frame["P@5"].to_numpy()).pvalue for frame in frames[1:]]
        assert [r[kind] for r in rows] == pytest.approx(raw)
        assert [r[f"{kind}_holm"] for r in rows] == pytest.approx(holm(raw).tolist())
        assert not np.allclose([r[f"{kind}_holm"] for r in rows], raw, rtol=1e-3, atol=0)  # the correction acted


def test_an_interrupted_comparison_continues_and_recomputes_only_what_is_missing(ratings, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["--dataset", str(ratings), "--split", "random", "--models", "pop,ials", "--seeds", "2", "--trials", "2",
            "--device", "cpu", "--out", str(out), "--quiet"]
    assert main(args) == 0
    first = json.loads((out / "results.json").read_text())
    (out / "parts" / "ials.seed1.json").unlink()
    calls = []
    real = irgan.compare.refit_and_test
    monkeypatch.setattr(irgan.compare, "refit_and_test", lambda c, *a, **k: calls.append(c.name) or real(c, *a, **k))
    monkeypatch.setattr(irgan.compare, "tune", lambda *a, **k: pytest.fail("tuning was kept and must not rerun"))
    assert main(args) == 0
    assert calls == ["ials"]
    again = json.loads((out / "results.json").read_text())
    assert again["models"]["ials"]["test"] == first["models"]["ials"]["test"]


def test_a_deleted_refit_file_is_fitted_and_written_again(ratings, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["--dataset", str(ratings), "--split", "random", "--models", "pop,ials", "--seeds", "2", "--trials", "0",
            "--device", "cpu", "--out", str(out), "--quiet"]
    assert main(args) == 0
    record = json.loads((out / "parts" / "ials.seed1.json").read_text())
    (out / "parts" / "ials.seed1.pt").unlink()
    calls = []
    real = irgan.compare.refit_and_test
    monkeypatch.setattr(irgan.compare, "refit_and_test", lambda c, *a, **k: calls.append(c.name) or real(c, *a, **k))
    assert main(args) == 0
    assert calls == ["ials"] and (out / "parts" / "ials.seed1.pt").is_file()
    again = json.loads((out / "parts" / "ials.seed1.json").read_text())
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
    candidate = scripted(near_2000)
    real, calls = candidate.fit, []

    def sometimes(*args):
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("diverged")
        return real(*args)
    tuned = tune(dataclasses.replace(candidate, fit=sometimes), data.train, trials=4, seed=0)
    assert [t["state"] for t in tuned.trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    best = max((t for t in tuned.trials if t["value"] is not None), key=lambda t: t["value"])
    assert tuned.validation == best["value"] and tuned.params == {"l2": best["params"]["l2"]}


def test_a_tuning_where_every_trial_diverges_is_one_error(data):
    def diverge(*args):
        raise FloatingPointError("diverged")
    with pytest.raises(FloatingPointError, match="ease: every one of the 3 tuning trials diverged"):
        tune(dataclasses.replace(CANDIDATES["ease"], fit=diverge), data.train, trials=3, seed=0)


def test_a_failed_comparison_keeps_its_finished_parts_and_continues(ratings, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ["--dataset", str(ratings), "--split", "random", "--models", "pop,ease", "--seeds", "1", "--trials", "0",
            "--device", "cpu", "--out", str(out), "--quiet"]
    real, calls = irgan.compare.refit_and_test, []

    def ease_diverges(candidate, *a, **k):
        if candidate.name == "ease":
            raise FloatingPointError("ease diverged")
        return real(candidate, *a, **k)
    with monkeypatch.context() as m:
        m.setattr(irgan.compare, "refit_and_test", ease_diverges)
        assert main(args) == 2
    assert "error: ease diverged" in capsys.readouterr().err
    assert {"compare.json", "parts"} <= {p.name for p in out.iterdir()} and (out / "parts" / "pop.seed0.pt").is_file()
    monkeypatch.setattr(irgan.compare, "refit_and_test", lambda c, *a, **k: calls.append(c.name) or real(c, *a, **k))
    assert main(args) == 0
    assert calls == ["ease"] and (out / "results.json").is_file()


def test_the_comparison_metric_is_tested_too(data):
    report = compare(data, ["pop", "ease"], seeds=1, trials=0, metric="Recall@10", device="cpu")
    assert {r["metric"] for r in report["tests"]} == {"Recall@10", "P@5", "NDCG@5", "NDCG@10"}


class Player(torch.nn.Module):
    """A scorer wrapped as IRGAN's players wrap theirs: the model file keeps ``.scorer``."""

    def __init__(self, scorer):
        super().__init__()
        self.scorer = scorer


def stubbed_compare(monkeypatch, data, models=("bpr", "ease"), **kwargs) -> tuple[dict, dict]:
    """``compare`` with ``tune``, ``refit_and_test`` and the progress bar stubbed (nothing is fitted):
    the report, and what each stub was called with. Tuning (1.5 s) keeps the defaults; a refit (2.5 s) with
    seed s of the model at position m gives user k of USERS the value (m + 1) * (1 / 10 + k / 1000) + s / 100
    on every metric (mean (m + 1) * 0.11 + s / 100), and each scorer tested beside it 0.8 times that."""
    calls = {"tune": [], "refit": [], "bar": [], "updates": 0}

    def tune(candidate, train, trials, metric="P@5", fraction=0.1, seed=0, device="cpu", splits=1):  # tune's defaults
        calls["tune"].append({"name": candidate.name, "train": train, "trials": trials, "metric": metric,
                              "fraction": fraction, "seed": seed, "device": device, "splits": splits,
                              "epochs": candidate.epochs})
        return irgan.protocol.Tuned(dict(candidate.defaults), 0.5, [], 1.5)

    def refit_and_test(candidate, params, train, test, seed, device="cpu", metric="P@5", fraction=0.1, cutoffs=()):
        calls["refit"].append({"name": candidate.name, "params": params, "train": train, "test": test, "seed": seed,
                               "device": device, "metric": metric, "fraction": fraction, "cutoffs": cutoffs})
        values = (list(models).index(candidate.name) + 1) * (0.1 + np.arange(len(USERS)) / 1000) + seed / 100
        names = ("P@5", "NDCG@5", *irgan.compare._tested_names(metric, cutoffs))
        def figures(values):
            return dict.fromkeys(names, float(values.mean())), pd.DataFrame(dict.fromkeys(names, values), index=USERS)
        return irgan.protocol.Tested(*figures(values), 2.5, {also: figures(0.8 * values) for also in candidate.also},
                                     Player(Popularity(train.matrix)))

    class Bar:
        def update(self, n=1):
            calls["updates"] += n

        def close(self):
            pass

    def bar(show, **kw):
        calls["bar"].append({"show": show, **kw})
        return Bar()
    monkeypatch.setattr(irgan.compare, "tune", tune)
    monkeypatch.setattr(irgan.compare, "refit_and_test", refit_and_test)
    monkeypatch.setattr(irgan.compare, "bar", bar)
    return compare(data, list(models), **kwargs), calls


def test_compare_defaults_to_five_seeds_ten_trials_one_split_the_auto_device_and_no_bar(data, monkeypatch):
    report, calls = stubbed_compare(monkeypatch, data)
    auto = irgan.compare.resolve_device("auto")
    assert calls["tune"] == [{"name": name, "train": data.train, "trials": 10, "metric": "P@5", "fraction": 0.1,
                              "seed": 0, "device": auto, "splits": 1, "epochs": CANDIDATES[name].epochs}
                             for name in ("bpr", "ease")]
    assert [(c["name"], c["seed"]) for c in calls["refit"]] == [("bpr", s) for s in range(5)] + [("ease", 0)]
    assert all(c["device"] == auto and c["cutoffs"] == () for c in calls["refit"])
    assert [b["show"] for b in calls["bar"]] == [False]
    assert (report["seeds"], report["trials"], report["splits"], report["metric"]) == (5, 10, 1, "P@5")
    assert all(len(r["test"]["P@5"]["per_seed"]) == 5 for r in report["models"].values())


def test_compare_passes_its_settings_to_every_tuning_and_refit(data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine: device="cpu" stays the CPU
    report, calls = stubbed_compare(monkeypatch, data, seeds=3, trials={"*": 4, "ease": 2}, metric="NDCG@10",
                                    validation_fraction=0.2, device="cpu", splits=3, cutoffs=(3,), max_epochs=7)
    assert calls["tune"] == [{"name": "bpr", "train": data.train, "trials": 4, "metric": "NDCG@10", "fraction": 0.2,
                              "seed": 0, "device": torch.device("cpu"), "splits": 3, "epochs": 7},
                             {"name": "ease", "train": data.train, "trials": 2, "metric": "NDCG@10", "fraction": 0.2,
                              "seed": 0, "device": torch.device("cpu"), "splits": 3, "epochs": None}]
    expected = [("bpr", s) for s in range(3)] + [("ease", 0)]
    assert [(c["name"], c["seed"]) for c in calls["refit"]] == expected
    for c in calls["refit"]:
        assert c["params"] == CANDIDATES[c["name"]].defaults and c["train"] is data.train and c["test"] is data.test
        assert (c["device"], c["metric"], c["fraction"], c["cutoffs"]) == (torch.device("cpu"), "NDCG@10", 0.2, (3,))
    assert report["cutoffs"] == [3] and report["splits"] == 3 and report["validation_fraction"] == 0.2
    assert {r["metric"] for r in report["tests"]} == {"NDCG@10", "P@3", "NDCG@3"}  # the cut-offs' metrics are tested


def test_a_model_without_randomness_reuses_its_one_fit_for_every_seed(data, monkeypatch):
    report, calls = stubbed_compare(monkeypatch, data, seeds=3, trials=0)
    assert [(c["name"], c["seed"]) for c in calls["refit"]] == [("bpr", 0), ("bpr", 1), ("bpr", 2), ("ease", 0)]
    ease, bpr = report["models"]["ease"], report["models"]["bpr"]
    assert ease["fitted_once"] is True and bpr["fitted_once"] is False
    assert ease["test"]["P@5"]["per_seed"] == pytest.approx([0.22] * 3)  # seed 0's figure, three times
    assert bpr["test"]["P@5"]["per_seed"] == pytest.approx([0.11, 0.12, 0.13])
    per_user = report["per_user"]
    assert sorted(set(zip(per_user["model"], per_user["seed"]))) == [(m, s) for m in ("bpr", "ease") for s in range(3)]
    assert per_user[per_user["model"] == "ease"].groupby("seed")["P@5"].mean().tolist() == pytest.approx([0.22] * 3)
    assert ease["seconds"] == {"tuning": 1.5, "refit_and_test": [2.5, 0.0, 0.0], "total": 4.0}  # fitted once
    assert bpr["seconds"] == {"tuning": 1.5, "refit_and_test": [2.5, 2.5, 2.5], "total": 9.0}


def test_a_scorer_tested_beside_its_model_has_its_own_figures_rows_and_paired_test(data, monkeypatch):
    report, calls = stubbed_compare(monkeypatch, data, models=("bpr", "irgan"), seeds=2, trials=0)
    assert [c["name"] for c in calls["refit"]] == ["bpr", "bpr", "irgan", "irgan"]  # the start comes with each refit
    assert list(report["models"]) == ["bpr", "irgan", "irgan-start"]
    irgan_, start = report["models"]["irgan"], report["models"]["irgan-start"]
    assert irgan_["description"] == CANDIDATES["irgan"].description and "against" not in irgan_
    assert start["against"] == "irgan" and start["description"] == f"{CANDIDATES['irgan'].also['start']}, beside irgan"
    assert start["test"]["P@5"]["per_seed"] == pytest.approx([0.8 * 0.22, 0.8 * 0.23])
    assert start["seconds"] == {"tuning": 0.0, "refit_and_test": [0.0, 0.0], "total": 0.0}  # counted in irgan's
    assert start["config"] == irgan_["config"] == CANDIDATES["irgan"].defaults
    per_user = report["per_user"].set_index(["model", "seed", "user"])["P@5"]
    for seed in range(2):
        assert per_user["irgan-start", seed].tolist() == pytest.approx((0.8 * per_user["irgan", seed]).tolist())
    pairs = [(r["a"], r["b"]) for r in report["tests"] if r["metric"] == "P@5"]
    assert pairs == [("irgan", "bpr"), ("irgan", "irgan-start")]


def test_compare_keeps_each_finished_step_in_parts_with_the_refit_and_reads_them_back(data, monkeypatch, tmp_path):
    parts = tmp_path / "run" / "parts"
    first, _ = stubbed_compare(monkeypatch, data, seeds=2, trials=0, parts=parts)
    assert sorted(p.name for p in parts.iterdir()) == [
        "bpr.seed0.json", "bpr.seed0.pt", "bpr.seed1.json", "bpr.seed1.pt", "bpr.tuning.json",
        "ease.seed0.json", "ease.seed0.pt", "ease.tuning.json"]  # ease: fitted once
    saved = load_model(parts / "bpr.seed1.pt")
    assert saved.estimator == "bpr" and list(saved.scorers) == ["model"]
    assert isinstance(saved.scorers["model"], Popularity)  # the player's scorer, not the player
    assert (saved.user_ids == data.train.user_ids).all() and (saved.item_ids == data.train.item_ids).all()
    assert (saved.user_items != data.train.matrix).nnz == 0
    assert saved.params == CANDIDATES["bpr"].defaults and saved.fitted == {"seed": 1}
    again, calls = stubbed_compare(monkeypatch, data, seeds=2, trials=0, parts=parts)
    assert calls["tune"] == calls["refit"] == []  # everything read back
    assert again["models"] == first["models"]
    (parts / "bpr.seed1.pt").unlink()  # a refit whose model file is gone is fitted again
    _, calls = stubbed_compare(monkeypatch, data, seeds=2, trials=0, parts=parts)
    assert [(c["name"], c["seed"]) for c in calls["refit"]] == [("bpr", 1)] and (parts / "bpr.seed1.pt").is_file()
    for name, record, words in (("bpr.tuning.json", {"params": {"dim": "big"}}, "it has no validation"),
                                ("bpr.seed0.json", {"test": {}}, "it has no per_user")):
        (parts / name).write_text(json.dumps(record))
        with pytest.raises(ValueError) as err:
            stubbed_compare(monkeypatch, data, seeds=2, trials=0, parts=parts)
        assert str(err.value) == (f"{parts / name} is not a result this comparison wrote: {words}; delete it to "
                                  "compute it again")
        (parts / name).unlink()


def test_the_progress_bar_counts_a_tuning_and_each_seed_of_every_model(data, monkeypatch):
    _, calls = stubbed_compare(monkeypatch, data, seeds=3, trials=0, show_progress=True)
    assert calls["bar"] == [{"show": True, "total": 2 * (3 + 1), "desc": "compare"}]
    assert calls["updates"] == 2 * (3 + 1)


def test_compare_accepts_the_largest_counts_and_a_cut_off_as_long_as_the_catalog(data, monkeypatch):
    n_items = data.train.n_items
    report, calls = stubbed_compare(monkeypatch, data, seeds=1, trials=MAX_COUNT, splits=MAX_COUNT,
                                    max_epochs=MAX_COUNT, cutoffs=(n_items,), metric="MRR")
    assert [(c["trials"], c["splits"]) for c in calls["tune"]] == [(MAX_COUNT, MAX_COUNT)] * 2
    assert {r["metric"] for r in report["tests"]} == {"MRR", f"P@{n_items}", f"NDCG@{n_items}"}


@pytest.mark.parametrize("kwargs, message", [
    ({"models": ["ease", "nope"]}, f"unknown model(s) ['nope']: choose from {', '.join(CANDIDATES)}"),
    ({"models": []}, "no model to compare: give --models, e.g. --models pop,ease"),
    ({"seeds": 0}, "seeds must be from 1 to 10,000, got 0"),
    ({"seeds": MAX_COUNT + 1}, "seeds must be from 1 to 10,000, got 10001"),
    ({"trials": -1}, "trials must be from 0 to 10,000, got -1"),
    ({"trials": {"*": 2, "ease": MAX_COUNT + 1}}, "trials must be from 0 to 10,000, got 10001"),
    ({"splits": 0}, "splits must be from 1 to 10,000, got 0"),
    ({"splits": MAX_COUNT + 1}, "splits must be from 1 to 10,000, got 10001"),
    ({"max_epochs": 0}, "max_epochs must be from 1 to 10,000, got 0"),
    ({"max_epochs": MAX_COUNT + 1}, "max_epochs must be from 1 to 10,000, got 10001"),
    ({"metric": "AUC"}, f"metric must be one of {irgan.compare.SELECT_METRICS}, got 'AUC'"),
    ({"metric": "P@41"}, "a cut-off of 41 needs more than the catalog's 40 items"),
    ({"cutoffs": (5, 41)}, "a cut-off of 41 needs more than the catalog's 40 items"),
])
def test_compare_refuses_settings_it_cannot_run_in_one_line(data, kwargs, message):
    assert data.train.n_items == 40
    arguments = {"models": ["pop", "ease"], "seeds": 1, "trials": 0, "device": "cpu", **kwargs}
    with pytest.raises(ValueError) as err:
        compare(data, **arguments)
    assert str(err.value) == message


def test_compare_refuses_data_without_a_test_set(ratings):
    with pytest.raises(ValueError) as err:
        compare(load_dataset(str(ratings), split="none"), ["pop"], seeds=1, trials=0, device="cpu")
    assert str(err.value) == ("a comparison needs a test set: --split none (no test set) is for a production fit with "
                              "irgan train")


# --- the table ----------------------------------------------------------------------------------------

def table_report(metric="P@5", cutoffs=(), trials=3, tests=()) -> dict:
    """A report as ``compare`` returns it, for two models, with each metric's figures told apart."""
    metrics = ("P@3", "NDCG@3", "P@5", "NDCG@5", "P@10", "NDCG@10", "Recall@10")

    def model(base):
        return {"test": {m: {"mean": base + 0.01 * k, "std": 0.001 * (k + 1)} for k, m in enumerate(metrics)},
                "seconds": {"tuning": base * 100, "refit_and_test": [1.25, 2.0]}}
    return {"models": {"ease": model(0.3), "pop": model(0.1)}, "metric": metric, "cutoffs": list(cutoffs),
            "trials": trials, "splits": 2, "seeds": 2, "tests": list(tests)}


@pytest.mark.parametrize("metric, cutoffs, columns", [
    ("P@5", (), ["P@5", "NDCG@5", "P@10", "NDCG@10"]),
    ("NDCG@10", (), ["NDCG@10", "P@5", "NDCG@5", "P@10"]),  # the metric first, once
    ("Recall@10", (3,), ["Recall@10", "P@3", "NDCG@3"]),  # --cutoffs replace the default columns
])
def test_the_table_shows_mean_and_std_of_each_metric_under_its_column(metric, cutoffs, columns):
    header, ease, pop, *_ = format_table(table_report(metric, cutoffs)).splitlines()
    assert header.split() == ["model", *columns, "tuning", "s", "refit", "s"]
    index = {"P@3": 0, "NDCG@3": 1, "P@5": 2, "NDCG@5": 3, "P@10": 4, "NDCG@10": 5, "Recall@10": 6}
    for line, name, base in ((ease, "ease", 0.3), (pop, "pop", 0.1)):
        cells = [f"{base + 0.01 * index[m]:.4f} ± {0.001 * (index[m] + 1):.4f}" for m in columns]
        assert line.split() == [name, *" ".join(cells).split(), f"{base * 100:.1f}", "3.2"]  # refit: 1.25 + 2.0 s
        for column in columns:  # each header ends where its figures do
            end = header.index(column) + len(column)
            assert line[end - 6:end] == f"{0.001 * (index[column] + 1):.4f}", column


@pytest.mark.parametrize("trials, words", [
    (3, "2 seeds; tuned with 3 trials per model on P@5 averaged over 2 validation split(s); "),
    ({"*": 3, "ease": 2}, "2 seeds; tuned with * 3, ease 2 trials per model on P@5 averaged over 2 validation split(s); "),
    (0, "2 seeds; documented defaults, no tuning; "),
])
def test_the_table_says_how_the_models_were_tuned(trials, words):
    lines = format_table(table_report(trials=trials)).splitlines()
    assert lines[3] == words + "refit on all of train, tested once per seed"


def test_a_pair_is_significant_only_when_both_holm_p_values_are_below_0_05():
    def row(t, w):
        return {"metric": "P@5", "a": "ease", "b": "pop", "mean_diff": 0.123456, "t_pvalue_holm": t,
                "wilcoxon_pvalue_holm": w}
    tests = [row(0.00123, 0.0449), row(0.001, 0.05), row(0.2, 0.01)]
    lines = format_table(table_report(tests=tests)).splitlines()[4:]
    assert lines == ["P@5: ease - pop = +0.1235; paired t p = 0.0012, Wilcoxon p = 0.045 (Holm): significant",
                     "P@5: ease - pop = +0.1235; paired t p = 0.001, Wilcoxon p = 0.05 (Holm): not significant",
                     "P@5: ease - pop = +0.1235; paired t p = 0.2, Wilcoxon p = 0.01 (Holm): not significant"]


def test_trials_reads_a_count_or_a_count_with_counts_per_model():
    assert irgan.compare.trials_arg("7") == 7
    assert irgan.compare.trials_arg("50, cfgan=5,ease = 2") == {"*": 50, "cfgan": 5, "ease": 2}
    with pytest.raises(argparse.ArgumentTypeError) as err:
        irgan.compare.trials_arg("3,ease")
    assert str(err.value) == "expected N or N,MODEL=N,... (e.g. 50,cfgan=5), got '3,ease'"


# --- the files a comparison reads back are checked, with one-line refusals ----------------------------

REFERENCES = [{"k": 50, "l2": 0.5, "similarity": "cosine", "name": "mf", "normalize": True, "maybe": None,
               "epochs": 10, "d_epochs": 5, "pretrain": {"rate": 0.1}}]
DISTRIBUTIONS = {"similarity": optuna.distributions.CategoricalDistribution(["cosine", "jaccard"]),
                 "l2": optuna.distributions.FloatDistribution(0.01, 10.0, log=True)}


def test_params_within_the_search_or_among_the_references_are_accepted():
    irgan.compare._check_params({"k": 7, "l2": 3, "similarity": "jaccard", "name": "mf", "normalize": False,
                                 "maybe": None, "epochs": 0, "d_epochs": MAX_COUNT, "pretrain": {"rate": 0.2}},
                                REFERENCES, DISTRIBUTIONS, "params")
    irgan.compare._check_params({"similarity": "cosine", "l2": 0.5}, REFERENCES, DISTRIBUTIONS, "params")


@pytest.mark.parametrize("params, message", [
    ({"lr": 0.1}, "params holds 'lr', which is not a parameter of this model's search"),
    ({"pretrain": {"init": "x.pkl"}}, "params.pretrain holds 'init', which is not a parameter of this model's search"),
    ({"k": "7"}, "params.k is '7', not of the type of 50"),
    ({"k": True}, "params.k is True, not of the type of 50"),  # a bool is no count
    ({"normalize": 1}, "params.normalize is 1, not of the type of True"),  # nor a count a bool
    ({"name": None}, "params.name is None, not of the type of 'mf'"),
    ({"maybe": 3}, "params.maybe is 3, not of the type of None"),
    ({"l2": float("nan")}, "params.l2 is nan, not a finite number"),
    ({"epochs": -1}, f"params.epochs is -1, not from 0 to {MAX_COUNT:,}"),
    ({"epochs": MAX_COUNT + 1}, f"params.epochs is {MAX_COUNT + 1}, not from 0 to {MAX_COUNT:,}"),
    ({"d_epochs": -1}, f"params.d_epochs is -1, not from 0 to {MAX_COUNT:,}"),
    ({"name": "gru"}, "params.name is 'gru', not one of ['mf']"),
    ({"similarity": "pearson"}, "params.similarity is 'pearson', not one of ['cosine']"),
    ({"l2": 100.0}, f"params.l2 is 100.0, outside its search space {DISTRIBUTIONS['l2']}"),
])
def test_params_outside_the_search_are_refused_naming_the_parameter(params, message):
    with pytest.raises(ValueError) as err:
        irgan.compare._check_params(params, REFERENCES, DISTRIBUTIONS, "params")
    assert str(err.value) == message


def tuning_record(params: dict, trials: list | None = None) -> dict:
    return {"params": params, "validation": 0.1, "trials": [] if trials is None else trials, "seconds": 1.0}


def test_a_tuning_record_is_checked_against_its_candidate():
    irgan.compare._check_tuning(tuning_record({"l2": 250.0}, [{"number": 0}]), CANDIDATES["ease"])
    irgan.compare._check_tuning(tuning_record({"dim": 16, "epochs": 7}), CANDIDATES["irgan"])  # the epochs tuning chose
    with pytest.raises(ValueError) as err:
        irgan.compare._check_tuning(tuning_record({"l2": 250.0}, [{"number": 0}, 1]), CANDIDATES["ease"])
    assert str(err.value) == "its trials are not all JSON objects"
    with pytest.raises(ValueError) as err:
        irgan.compare._check_tuning(tuning_record({"similarity": 1}), CANDIDATES["itemknn"])
    assert str(err.value).startswith("params.similarity is 1, not of the type of '")


@pytest.mark.parametrize("validation", [True, float("nan"), float("inf")])
def test_a_tuning_record_whose_validation_figure_is_no_number_is_refused(validation):
    record = {**tuning_record({"l2": 250.0}), "validation": validation}
    with pytest.raises(ValueError) as err:
        irgan.compare._check_tuning(record, CANDIDATES["ease"])
    assert str(err.value) == f"its validation is {validation!r}, not a finite number"


def test_a_nested_parameter_is_checked_against_the_range_it_was_drawn_from():
    """IRGAN's pretrain.l2 is drawn as pretrain_l2 in [0.01, 0.5]: a kept value outside it is refused."""
    irgan.compare._check_tuning(tuning_record({"dim": 5, "pretrain": {"l2": 0.2}}), CANDIDATES["irgan"])
    with pytest.raises(ValueError) as err:
        irgan.compare._check_tuning(tuning_record({"dim": 5, "pretrain": {"l2": 1e9}}), CANDIDATES["irgan"])
    assert str(err.value).startswith("params.pretrain.l2 is 1000000000.0, outside its search space")


def seed_record(**changes) -> dict:
    tested = {"test": {"P@5": 0.5}, "per_user": {"index": ["u1", 2], "P@5": [0.5, 0.25]}}
    return {**tested, "seconds": 0.0, "also": {"start": tested}, **changes}


def test_a_seed_record_with_a_start_beside_it_is_accepted():
    irgan.compare._check_seed(seed_record())
    irgan.compare._check_seed(seed_record(also={}, seconds=2.5))


@pytest.mark.parametrize("changes, message", [
    ({"test": None}, "its test is NoneType, not what it should be"),
    ({"per_user": [1]}, "its per_user is list, not what it should be"),
    ({"seconds": True}, "its seconds is bool, not what it should be"),
    ({"seconds": -1.0}, "its seconds is -1.0"),
    ({"test": {"P@5": "high"}}, "its test.P@5 is 'high', not a number"),
    ({"per_user": {"P@5": [0.5]}}, "its per_user has no index list"),
    ({"per_user": {"index": ["u1", 2], "P@5": [0.5]}}, "its per_user.P@5 is not a list as long as its index"),
    ({"per_user": {"index": ["u1", 2], "P@5": [0.5, None]}}, "its per_user.P@5 holds a value that is not a number"),
    ({"per_user": {"index": [True, 2], "P@5": [0.5, 0.25]}},
     "its per_user.index holds a user id that is not a string or a number"),
    ({"also": {"start": {"test": {}}}}, "it has no also.start.per_user"),
    ({"also": {"start": {"test": {"P@5": "x"}, "per_user": {"index": []}}}}, "its also.start.test.P@5 is 'x', not a number"),
])
def test_a_seed_record_that_compare_did_not_write_is_refused_in_one_line(changes, message):
    with pytest.raises(ValueError) as err:
        irgan.compare._check_seed(seed_record(**changes))
    assert str(err.value) == message


def test_a_seed_record_missing_a_field_names_it():
    record = seed_record()
    del record["test"]
    with pytest.raises(ValueError) as err:
        irgan.compare._check_seed(record)
    assert str(err.value) == "it has no test"


@pytest.mark.parametrize("text, reason", [("[1, 2]", "not a JSON object"),
                                          ("not json", "Expecting value: line 1 column 1 (char 0)")])
def test_a_compare_json_that_is_no_request_is_refused_naming_it(tmp_path, text, reason):
    path = tmp_path / "compare.json"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        irgan.compare._request(path)
    assert str(err.value) == f"{path} is not the compare.json of a comparison: {reason}"


# --- the command's options ------------------------------------------------------------------------------

def test_help_shows_the_usage_the_example_and_what_every_option_does(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("usage: python -m irgan.compare ")
    assert "\n    python -m irgan.compare --dataset ml-100k --models pop,bpr,dns,ease,ials,itemknn,lightgcn,irgan \\\n" in out
    options = out.split("\noptions:\n")[1].splitlines()
    for k, line in enumerate(options):
        if line.startswith("  -"):  # its help on the same line, or indented on the next
            assert re.search(r"\S {2,}\S", line) or options[k + 1].startswith(" " * 20), line


def stopped_before_fitting(monkeypatch, data) -> dict:
    """What ``main`` passes to ``load_dataset`` and ``compare`` (stubs: nothing is read or fitted), and
    the compare.json it wrote."""
    seen = {}

    def load(dataset, **kwargs):
        seen["load"] = {"dataset": dataset, **kwargs}
        return data

    def stop(data, models, seeds, trials, metric, fraction, device, **kwargs):
        seen["compare"] = {"models": models, "seeds": seeds, "trials": trials, "metric": metric, "fraction": fraction,
                           "device": device, **kwargs}
        seen["request"] = json.loads((kwargs["parts"].parent / "compare.json").read_text())
        raise ValueError("stopped before fitting")
    monkeypatch.setattr(irgan.compare, "load_dataset", load)
    monkeypatch.setattr(irgan.compare, "compare", stop)
    return seen


def test_the_defaults_are_every_model_five_seeds_ten_trials_on_ml_100k(data, tmp_path, monkeypatch, capsys):
    seen = stopped_before_fitting(monkeypatch, data)
    assert main(["--out", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: stopped before fitting"
    assert seen["load"] == {"dataset": "ml-100k", "data_dir": None, "split": None, "test": None}
    assert seen["compare"] == {"models": list(CANDIDATES), "seeds": 5, "trials": 10, "metric": "P@5", "fraction": 0.1,
                               "device": "auto", "parts": tmp_path / "c" / "parts", "show_progress": True,
                               "splits": 1, "cutoffs": (), "max_epochs": None}
    request = seen["request"]
    assert (request["dataset"], request["trials"], request["metric"], request["splits"]) == ("ml-100k", 10, "P@5", 1)
    assert request["validation_fraction"] == 0.1 and request["read"] == {} and "cutoffs" not in request
    assert "max_epochs" not in request and not (tmp_path / "c").exists()  # nothing kept of a failed start


def test_every_option_reaches_the_comparison_and_its_request(ratings, data, tmp_path, monkeypatch):
    seen = stopped_before_fitting(monkeypatch, data)
    assert main(["--dataset", str(ratings), "--split", "random", "--models", " pop, ease ,", "--seeds", "2",
                 "--trials", "3,ease=1", "--metric", "NDCG@10", "--validation-fraction", "0.2", "--splits", "2",
                 "--max-epochs", "4", "--cutoffs", "3,7", "--device", "cpu", "--min-rating", "none", "--sep", ",",
                 "--data-dir", str(tmp_path), "--out", str(tmp_path / "c"), "--quiet"]) == 2
    assert seen["load"] == {"dataset": str(ratings), "data_dir": str(tmp_path), "split": "random", "test": None,
                            "min_rating": None, "sep": ","}
    assert seen["compare"] == {"models": ["pop", "ease"], "seeds": 2, "trials": {"*": 3, "ease": 1}, "metric": "NDCG@10",
                               "fraction": 0.2, "device": "cpu", "parts": tmp_path / "c" / "parts",
                               "show_progress": False, "splits": 2, "cutoffs": (3, 7), "max_epochs": 4}
    request = seen["request"]
    assert {k: request[k] for k in ("dataset", "data_dir", "split", "read", "trials", "metric", "splits",
                                    "validation_fraction", "device", "cutoffs", "max_epochs")} == {
        "dataset": str(ratings), "data_dir": str(tmp_path), "split": "random", "read": {"sep": ",", "min_rating": None},
        "trials": {"*": 3, "ease": 1}, "metric": "NDCG@10", "splits": 2, "validation_fraction": 0.2, "device": "cpu",
        "cutoffs": [3, 7], "max_epochs": 4}
    assert request["data_fingerprint"] == irgan.compare.split_fingerprint(data)


def test_a_released_pair_of_files_is_read_and_recorded_by_absolute_path(ratings, data, tmp_path, monkeypatch):
    seen = stopped_before_fitting(monkeypatch, data)
    (tmp_path / "train.csv").write_text(ratings.read_text())
    (tmp_path / "test.csv").write_text(ratings.read_text())
    monkeypatch.chdir(tmp_path)
    assert main(["--dataset", "train.csv", "--test", "test.csv", "--models", "pop", "--out", "c", "--quiet"]) == 2
    files = {"dataset": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")}
    assert seen["load"] == {**files, "data_dir": None, "split": None}
    assert {k: seen["request"][k] for k in files} == files
