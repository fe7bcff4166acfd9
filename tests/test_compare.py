"""The honest comparison: tune on validation, refit, test per seed, paired tests, resumable parts."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import torch

import irgan.compare
import irgan.protocol
from irgan.checkpoint import load_model
from irgan.config import preset
from irgan.compare import compare, format_table, main, significance
from irgan.data import load_dataset, validation_split
from irgan.metrics import evaluate
from irgan.models import ItemItemScorer
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
