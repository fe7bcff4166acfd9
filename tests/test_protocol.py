"""The protocol's pieces, each fit of a candidate checked without training: what a fit is given,
what it hands a refit, which validation it selects on; the search spaces, seeds and timings."""
from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace

import numpy as np
import optuna
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import irgan.protocol
from irgan.data import Interactions, synthetic, validation_split
from irgan.metrics import evaluate
from irgan.models import Popularity
from irgan.models.itemknn import SIMILARITIES
from irgan.protocol import CANDIDATES, capped, refit_and_test, tune


def interactions(n_items: int) -> tuple[Interactions, Interactions]:
    """(train, test) over 30 users x ``n_items`` items, raw ids that are not indices."""
    cells = np.random.default_rng(0).random((30, n_items))
    ids, items = np.array([f"u{u}" for u in range(30)]), np.arange(100, 100 + n_items)
    train = Interactions(sp.csr_matrix((cells < 0.5).astype(np.float32)), ids, items)
    test = Interactions(sp.csr_matrix((cells > 0.8).astype(np.float32)), ids, items)
    return train, test


@pytest.fixture(scope="module")
def data() -> tuple[Interactions, Interactions]:
    return interactions(12)


class Stub:
    """An estimator that trains nothing: it records its arguments and 'chooses' epoch 7."""

    made: list[dict] = []

    def __init__(self, **kwargs) -> None:
        Stub.made.append(kwargs)

    def fit(self, train, validation) -> "Stub":
        Stub.made[-1]["fitted_on"] = (train, validation)
        self.model_, self.best_epoch_ = torch.nn.Identity(), 7
        self.validation_metrics_ = None if validation is None else {"NDCG@5": 0.3}
        return self


@pytest.mark.parametrize("epochs_param", ["epochs", None])
def test_an_estimators_fit_passes_the_selection_on_and_the_chosen_epochs_back(data, epochs_param):
    train, _ = data
    fit = irgan.protocol._estimator(Stub, epochs_param)
    Stub.made.clear()
    tuning = fit(train, train, {"epochs": 20, "lr": 0.1}, 3, "cpu", "NDCG@5", 0.1)
    refit = fit(train, None, {"epochs": 20, "lr": 0.1}, 4, "cpu", "NDCG@5", 0.1)
    plain = {"epochs": 20, "lr": 0.1}
    assert [m.pop("fitted_on") for m in Stub.made] == [(train, train), (train, None)]
    if epochs_param:
        assert Stub.made == [{**plain, "select_metric": "NDCG@5", "seed": 3, "device": "cpu"},
                             {**plain, "select_metric": "NDCG@5", "patience": None, "seed": 4, "device": "cpu"}]
        assert tuning.refit_params == {"epochs": 7, "lr": 0.1}  # the epoch validation chose
    else:
        assert Stub.made == [{**plain, "seed": 3, "device": "cpu"}, {**plain, "seed": 4, "device": "cpu"}]
        assert tuning.refit_params == plain
    assert isinstance(tuning.scorer, torch.nn.Identity) and tuning.validation == {"NDCG@5": 0.3}
    assert refit.refit_params == plain and refit.validation is None


class Adversarial:
    """A CFGAN or APR that trains nothing: it records its arguments, and on validation 'chooses'
    one epoch fewer than it was given (two fewer for APR's pretraining)."""

    made: list["Adversarial"] = []

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        Adversarial.made.append(self)

    def fit(self, train, validation) -> "Adversarial":
        self.kwargs["fitted_on"] = (train, validation)
        self.model_, self.start_ = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
        self.best_epoch_ = self.kwargs.get("epochs", 100) - 1
        self.best_pretrain_epoch_ = self.kwargs.get("pretrain_epochs", 0) - 2
        self.validation_metrics_ = None if validation is None else {"P@5": 0.25}
        return self


def test_a_cfgan_fit_chooses_each_gs_epochs_on_validation_and_a_refit_runs_them(data, monkeypatch):
    train, _ = data
    monkeypatch.setattr(irgan.protocol, "CFGANRecommender", Adversarial)
    Adversarial.made.clear()
    params = {"g_lr": 1e-4, "epochs": 30, "noadv_epochs": 20}
    tuning = CANDIDATES["cfgan"].fit(train, "the fold", params, 3, "cpu", "P@5", 0.1)
    assert params == {"g_lr": 1e-4, "epochs": 30, "noadv_epochs": 20}  # the caller's parameters are left alone
    gan, plain = Adversarial.made
    own = {"select_metric": "P@5", "seed": 3, "device": "cpu", "fitted_on": (train, "the fold")}
    assert gan.kwargs == {"g_lr": 1e-4, "epochs": 30, **own}
    assert plain.kwargs == {"g_lr": 1e-4, "epochs": 20, "adversary": False, **own}
    assert tuning.refit_params == {"g_lr": 1e-4, "epochs": 29, "noadv_epochs": 19}  # each G's own choice
    assert tuning.scorer is gan.model_ and tuning.also == {"noadv": plain.model_} and tuning.validation == {"P@5": 0.25}
    Adversarial.made.clear()
    refit = CANDIDATES["cfgan"].fit(train, None, tuning.refit_params, 4, "cpu", "P@5", 0.1)
    gan, plain = Adversarial.made
    own = {"select_metric": "P@5", "patience": None, "seed": 4, "device": "cpu", "fitted_on": (train, None)}
    assert gan.kwargs == {"g_lr": 1e-4, "epochs": 29, **own}
    assert plain.kwargs == {"g_lr": 1e-4, "epochs": 19, "adversary": False, **own}
    assert refit.refit_params == tuning.refit_params and refit.validation is None
    assert refit.scorer is gan.model_ and refit.also == {"noadv": plain.model_}


@pytest.mark.parametrize("params, noadv", [({"epochs": 30}, 30), ({}, irgan.protocol.CFGANConfig().epochs)])
def test_without_its_own_epochs_cfgans_plain_g_runs_cfgans(data, monkeypatch, params, noadv):
    train, _ = data
    monkeypatch.setattr(irgan.protocol, "CFGANRecommender", Adversarial)
    Adversarial.made.clear()
    refit = CANDIDATES["cfgan"].fit(train, None, params, 0, "cpu", "P@5", 0.1)
    assert Adversarial.made[1].kwargs["epochs"] == noadv and refit.refit_params == {**params, "noadv_epochs": noadv}


def test_an_apr_fit_chooses_both_phases_epochs_on_validation_and_a_refit_runs_them(data, monkeypatch):
    train, _ = data
    monkeypatch.setattr(irgan.protocol, "APRRecommender", Adversarial)
    Adversarial.made.clear()
    params = {"eps": 0.5, "pretrain_epochs": 40, "epochs": 30}
    tuning = CANDIDATES["apr"].fit(train, "the fold", params, 3, "cpu", "P@5", 0.1)
    (apr,) = Adversarial.made
    assert apr.kwargs == {**params, "select_metric": "P@5", "seed": 3, "device": "cpu",
                          "fitted_on": (train, "the fold")}
    assert tuning.refit_params == {"eps": 0.5, "pretrain_epochs": 38, "epochs": 29} and params["epochs"] == 30
    assert tuning.scorer is apr.model_ and tuning.also == {"start": apr.start_} and tuning.validation == {"P@5": 0.25}
    Adversarial.made.clear()
    refit = CANDIDATES["apr"].fit(train, None, tuning.refit_params, 4, "cpu", "P@5", 0.1)
    (apr,) = Adversarial.made
    assert apr.kwargs == {**tuning.refit_params, "select_metric": "P@5", "patience": None, "seed": 4, "device": "cpu",
                          "fitted_on": (train, None)}
    assert refit.refit_params == tuning.refit_params and refit.validation is None
    assert refit.scorer is apr.model_ and refit.also == {"start": apr.start_}


@pytest.mark.parametrize("negatives", ["uniform", "dns"])
def test_a_bpr_fit_keeps_the_best_checked_epoch(data, monkeypatch, negatives):
    """Checked every 5 epochs and at the last (12): 5, 10, 12, on the selection metric P@7; epoch 10 scores best."""
    train, _ = data
    seen, figures = {}, iter([0.1, 0.3, 0.2])
    models = [torch.nn.Linear(1, 1) for _ in range(12)]

    def fit_bpr(matrix, config, seed, device, on_epoch):
        seen.update(config=config, seed=seed, device=device, matrix=matrix)
        for epoch, model in enumerate(models):
            on_epoch(epoch, model)
        return models[-1]
    checked = []

    def scripted(model, seen_train, validation, ks=(3, 5, 10)):
        assert (seen_train, validation) == (train, "the fold")
        checked.append(models.index(model) + 1)
        value = next(figures)
        return {f"P@{k}": value for k in ks}  # the cut-offs asked for: P@7 only when selection asks for it
    monkeypatch.setattr(irgan.protocol, "fit_bpr", fit_bpr)
    monkeypatch.setattr(irgan.protocol, "evaluate", scripted)
    params = {"dim": 8, "lr": 0.05, "l2": 0.01, "epochs": 12}
    fitted = irgan.protocol._bpr(negatives)(train, "the fold", params, 2, "cpu", "P@7", 0.1)
    assert checked == [5, 10, 12]
    assert (seen["config"].negatives, seen["config"].dim, seen["config"].epochs, seen["seed"]) == (negatives, 8, 12, 2)
    assert seen["matrix"] is train.matrix and seen["device"] == "cpu"
    assert fitted.refit_params == {**params, "epochs": 10} and fitted.validation["P@7"] == 0.3
    assert torch.equal(fitted.scorer.weight, models[9].weight) and fitted.scorer is not models[9]  # a copy
    checked.clear()
    last = irgan.protocol._bpr(negatives)(train, None, params, 2, "cpu", "P@7", 0.1)
    assert checked == [] and last.scorer is models[-1] and last.refit_params == params and last.validation is None


def test_popularity_reports_its_validation_figures(data):
    train, _ = data
    fit_train, validation = validation_split(train, 0.3, 0)
    fitted = CANDIDATES["pop"].fit(fit_train, validation, {}, 0, "cpu", "P@5", 0.1)
    assert isinstance(fitted.scorer, Popularity) and fitted.refit_params == {}
    assert fitted.validation == evaluate(fitted.scorer, fit_train, validation)
    assert CANDIDATES["pop"].fit(train, None, {}, 0, "cpu", "P@5", 0.1).validation is None
    on_meta = CANDIDATES["pop"].fit(train, None, {}, 0, "meta", "P@5", 0.1).scorer  # the device asked for (no GPU here)
    assert on_meta.counts.device.type == "meta"


@pytest.mark.parametrize("start", [torch.nn.Identity(), None])
def test_an_irgan_fit_selects_on_the_given_validation_and_refits_without_it(data, monkeypatch, start):
    train, _ = data
    calls = []

    def run_recipe(train, test, config, validation, seed, device):
        calls.append(SimpleNamespace(train=train, test=test, config=config, validation=validation, seed=seed,
                                     device=device))
        return SimpleNamespace(generator="G", init=start, best_generator={"metrics": {"NDCG@3": 0.4}})
    monkeypatch.setattr(irgan.protocol, "run_recipe", run_recipe)
    fit = CANDIDATES["irgan"].fit
    tuning = fit(train, "the fold", {"dim": 4}, 1, "cpu", "NDCG@3", 0.2)
    refit = fit(train, None, {"dim": 4}, 2, "cpu", "NDCG@3", 0.2)
    first, second = calls
    assert (first.train, first.validation, first.seed, first.device, first.test) == (train, "the fold", 1, "cpu", None)
    assert (second.train, second.seed, second.config.validation_fraction) == (train, 2, 0.2)
    assert first.config.refit is False and second.config.refit is True and second.validation is None
    assert first.config.dim == 4 and first.config.select_metric == "NDCG@3" and first.config.validation_fraction == 0.2
    assert first.config.pretrain_select is True
    assert tuning.validation == {"NDCG@3": 0.4} and refit.validation is None
    assert tuning.scorer == "G" and tuning.refit_params == {"dim": 4} == refit.refit_params
    assert tuning.also == ({} if start is None else {"start": start})


def test_rates_and_penalties_are_searched_on_a_log_scale():
    logged = {"bpr": {"lr", "l2"}, "dns": {"lr", "l2"}, "ease": {"l2"}, "ials": {"regularization", "alpha"},
              "itemknn": {"k"}, "lightgcn": {"lr", "l2"}, "irgan": {"g_lr", "d_lr", "d_l2", "pretrain_l2"},
              "irgan-strong": {"g_lr", "d_lr", "d_l2", "pretrain_l2"}}
    for name, expected in logged.items():
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        CANDIDATES[name].space(trial)
        assert {p for p, d in trial.distributions.items() if getattr(d, "log", False)} == expected, name


def test_the_adversarial_models_search_spaces():
    """CFGAN's, APR's and the strong IRGAN's spaces, and each drawn value handed to the fit under its own name."""
    def log(low, high):
        return optuna.distributions.FloatDistribution(low, high, log=True)
    uniform, choice = optuna.distributions.FloatDistribution, optuna.distributions.CategoricalDistribution
    cfgan, apr, strong = irgan.protocol.CFGANConfig(), irgan.protocol.APRConfig(), irgan.protocol.STRONG
    spaces = {
        "cfgan": {"g_hidden": choice([100, 200, 400, 800]), "d_hidden": choice([50, 125, 250, 500]),
                  "g_lr": log(1e-5, 1e-3), "d_lr": log(1e-5, 1e-3), "g_l2": log(1e-5, 1e-1),
                  "zr_coefficient": log(1e-3, 1.0), "zr_ratio": uniform(0.1, 0.9), "pm_ratio": uniform(0.1, 0.9)},
        "apr": {"dim": choice([16, 32, 64, 128]), "lr": log(0.005, 0.2), "eps": log(0.01, 5.0),
                "adv_reg": log(0.01, 10.0)},
        "irgan-strong": {name: log(x / 3, x * 3) for name, x in (("g_lr", strong["g_lr"]), ("d_lr", strong["d_lr"]),
                                                                 ("d_l2", strong["d_l2"]),
                                                                 ("pretrain_l2", strong["pretrain"]["l2"]))}}
    for name, space in spaces.items():
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        params = CANDIDATES[name].space(trial)
        assert trial.distributions == space, name
        drawn = trial.params
        if name == "cfgan":
            assert params == {**drawn, "epochs": cfgan.epochs}
        elif name == "apr":
            assert params == {**drawn, "pretrain_epochs": apr.pretrain_epochs, "epochs": apr.epochs}
        else:
            assert params == {"dim": strong["dim"], "g_lr": drawn["g_lr"], "d_lr": drawn["d_lr"], "d_l2": drawn["d_l2"],
                              "pretrain": {"l2": drawn["pretrain_l2"]}}


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_item_knn_searches_each_similarity_over_the_frameworks_ranges(similarity):
    """k 5-1000 (log), shrink 0-1000, the alphas and beta 0-2, the cosine's normalize, BM25 / TF-IDF for the
    cosines: each drawn only for the similarity that uses it, and handed to the fit under its own name."""
    uniform, choice = optuna.distributions.FloatDistribution, optuna.distributions.CategoricalDistribution
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"similarity": similarity})
    trial = study.ask()
    params = CANDIDATES["itemknn"].space(trial)
    weighting = {"feature_weighting": choice(["none", "BM25", "TF-IDF"])}
    extra = {"cosine": {"normalize": choice([True, False]), **weighting},
             "asymmetric": {"asymmetric_alpha": uniform(0.0, 2.0), **weighting},
             "tversky": {"tversky_alpha": uniform(0.0, 2.0), "tversky_beta": uniform(0.0, 2.0)}}.get(similarity, {})
    assert trial.distributions == {"similarity": choice(list(SIMILARITIES)),
                                   "k": optuna.distributions.IntDistribution(5, 1000, log=True),
                                   "shrink": uniform(0.0, 1000.0), **extra}
    assert params == trial.params and params["similarity"] == similarity


def test_the_strong_space_stays_within_a_factor_of_3_of_the_preset():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = []
    for _ in range(20):
        params = CANDIDATES["irgan-strong"].space(study.ask())
        assert params["dim"] == irgan.protocol.STRONG["dim"]
        drawn.append({"g_lr": params["g_lr"], "d_lr": params["d_lr"], "d_l2": params["d_l2"],
                      "pretrain_l2": params["pretrain"]["l2"]})
    for name, preset_value in irgan.protocol.STRONG_TUNED.items():
        values = [d[name] for d in drawn]
        assert preset_value / 3 <= min(values) < preset_value < max(values) <= preset_value * 3, name


def test_tuning_is_seeded_with_0_by_default_and_times_itself(data):
    train, _ = data
    before = time.perf_counter()
    tuned = tune(CANDIDATES["itemknn"], train, trials=2)
    elapsed = time.perf_counter() - before
    assert tuned.trials == tune(CANDIDATES["itemknn"], train, trials=2, seed=0).trials
    assert 0 < tuned.seconds <= elapsed
    before = time.perf_counter()
    defaults = tune(CANDIDATES["itemknn"], train, trials=0)
    assert 0 <= defaults.seconds <= time.perf_counter() - before
    assert (defaults.params, defaults.validation, defaults.trials) == (CANDIDATES["itemknn"].defaults, None, [])
    with pytest.raises(ValueError, match="^splits must be >= 1, got 0$"):
        tune(CANDIDATES["itemknn"], train, trials=1, splits=0)


def test_tuning_and_a_refit_default_to_p_at_5_a_tenth_held_out_seed_0_and_the_cpu(data):
    train, test = data
    calls = []

    def fit(fit_train, validation, params, seed, device, metric, fraction) -> irgan.protocol.Fitted:
        calls.append((fit_train, validation, params, seed, device, metric, fraction))
        return irgan.protocol.Fitted(Popularity(fit_train.matrix), dict(params), {metric: 0.5})
    candidate = dataclasses.replace(CANDIDATES["ease"], fit=fit)
    tuned = tune(candidate, train, trials=1)
    assert tuned.trials == [{"number": 0, "value": 0.5, "params": {"l2": 300.0}, "state": "COMPLETE"}]  # no variant
    [(fit_train, validation, params, *rest)] = calls  # one validation split
    assert params == {"l2": 300.0} and rest == [0, "cpu", "P@5", 0.1]
    expected = validation_split(train, 0.1, 0)
    assert (fit_train.matrix != expected[0].matrix).nnz == 0 and (validation.matrix != expected[1].matrix).nnz == 0
    calls.clear()
    tune(candidate, train, trials=1, seed=3, splits=2)  # split k is drawn with seed 3 + k
    for (fit_train, validation, *_), k in zip(calls, (3, 4), strict=True):
        expected = validation_split(train, 0.1, k)
        assert (fit_train.matrix != expected[0].matrix).nnz == 0 and (validation.matrix != expected[1].matrix).nnz == 0
    calls.clear()
    refit_and_test(candidate, {"l2": 1.0}, train, test, seed=2)
    assert calls == [(train, None, {"l2": 1.0}, 2, "cpu", "P@5", 0.1)]


def test_a_cap_bounds_every_phases_epochs_and_nothing_else():
    seen = []

    def fit(train, validation, params, *rest):
        seen.append((train, validation, params, rest))
        return "fitted"
    base = dataclasses.replace(CANDIDATES["apr"], fit=fit)
    cap = capped(base, 7)
    assert cap.epochs == 7 and dataclasses.replace(cap, fit=fit, epochs=base.epochs) == base
    params = {"pretrain_epochs": 50, "noadv_epochs": 3, "epochs": 100, "dim": 8}
    assert cap.fit("train", "validation", params, 1, "cpu", "P@5", 0.2) == "fitted"
    assert seen.pop() == ("train", "validation", {"pretrain_epochs": 7, "noadv_epochs": 3, "epochs": 7, "dim": 8},
                          (1, "cpu", "P@5", 0.2))
    cap.fit("train", None, {"dim": 8}, 1, "cpu", "P@5", 0.2)  # no epoch count given: the candidate's, capped
    assert seen.pop()[2] == {"dim": 8, "epochs": 7}
    capped(dataclasses.replace(base, epochs=5), 7).fit("train", None, {"dim": 8}, 1, "cpu", "P@5", 0.2)
    assert seen.pop()[2] == {"dim": 8, "epochs": 5}  # below the cap already
    assert capped(base, None) is base and capped(CANDIDATES["ease"], 7) is CANDIDATES["ease"]


def test_a_refit_is_tested_at_the_cut_offs_the_catalog_allows_by_raw_user_id():
    train, test = interactions(8)  # a catalog shorter than the cut-off 10
    before = time.perf_counter()
    tested = refit_and_test(CANDIDATES["pop"], {}, train, test, seed=0)
    assert 0 < tested.seconds <= time.perf_counter() - before
    assert {k.split("@")[1] for k in tested.test if "@" in k} == {"3", "5"}  # 10 is longer than the 8 items
    assert tested.per_user.index.name == "user" and set(tested.per_user.index) <= set(test.user_ids)
    expected = evaluate(tested.scorer, train, test, (3, 5), per_user=True)[1]
    expected.index = pd.Index(test.user_ids[expected.index.to_numpy()], name="user")
    pd.testing.assert_frame_equal(tested.per_user, expected)


def test_a_refit_is_tested_at_the_metrics_and_the_asked_cut_offs_and_so_is_each_scorer_beside_it():
    train, test = interactions(12)
    beside = Popularity(sp.csr_matrix(np.ones((30, 12), dtype=np.float32)))  # another ranking than train's popularity

    def fit(train, validation, params, *rest) -> irgan.protocol.Fitted:
        return irgan.protocol.Fitted(Popularity(train.matrix), {}, None, {"start": beside})
    candidate = dataclasses.replace(CANDIDATES["pop"], fit=fit)
    tested = refit_and_test(candidate, {}, train, test, seed=0, metric="NDCG@7", cutoffs=(4,))
    assert {k.split("@")[1] for k in tested.test if "@" in k} == {"3", "4", "5", "7", "10"}
    figures, per_user = tested.also["start"]
    assert set(tested.also) == {"start"} and figures == evaluate(beside, train, test, (3, 4, 5, 7, 10))
    assert list(per_user.index) == list(tested.per_user.index) and per_user.index.name == "user"


def test_variants_are_tuned_apart_with_the_whole_budget_each_and_the_best_kept(monkeypatch):
    seen = []
    real_fit = CANDIDATES["itemknn"].fit

    def fit(train, validation, params, *rest):
        seen.append(params["similarity"])
        return real_fit(train, validation, params, *rest)
    candidate = dataclasses.replace(CANDIDATES["itemknn"], fit=fit)
    train = synthetic(60, 40, 900, seed=3)
    tuned = tune(candidate, train, trials=3, metric="NDCG@10")
    assert seen == [s for s in SIMILARITIES for _ in range(3)]  # each variant its own 3 trials, the defaults first
    assert [row["variant"]["similarity"] for row in tuned.trials] == seen
    assert tuned.trials[0]["params"]["k"] == 50 and tuned.trials[0]["params"]["shrink"] == 10.0
    best = max(tuned.trials, key=lambda row: row["value"])
    assert tuned.validation == best["value"] and tuned.params["similarity"] == best["variant"]["similarity"]
    assert {k: v for k, v in tuned.params.items() if k in best["params"]} == best["params"]


@pytest.mark.parametrize("name", ["pop", "bpr", "ease"])
def test_tuning_on_a_cut_off_beyond_the_reported_ones_scores_that_cut_off(name):
    """pop's and bpr's fits score the selection metric's cut-off themselves; ease's fit reports 3, 5 and 10 only,
    so tuning scores NDCG@25 itself."""
    train = synthetic(60, 40, 900, seed=4)
    candidate = dataclasses.replace(CANDIDATES[name], first_trial={}) if name == "pop" else \
        capped(CANDIDATES[name], 5)
    tuned = tune(candidate, train, trials=1, metric="NDCG@25")
    fit_train, validation = validation_split(train, 0.1, 0)
    fitted = candidate.fit(fit_train, validation, tuned.params, 0, "cpu", "NDCG@25", 0.1)
    expected = evaluate(fitted.scorer, fit_train, validation, (25,))["NDCG@25"]
    assert tuned.validation == pytest.approx(expected)
    if name == "ease":
        assert "NDCG@25" not in fitted.validation  # the figure tuning kept is its own
    else:
        assert fitted.validation["NDCG@25"] == pytest.approx(expected)


def test_a_comparison_stops_irgans_game_after_three_stale_outer_epochs(monkeypatch):
    seen = []

    def recorded(train, test, config, **kwargs):
        seen.append(config)
        raise FloatingPointError("recorded")  # a trial that fails alone: nothing else is needed here
    monkeypatch.setattr(irgan.protocol, "run_recipe", recorded)
    with pytest.raises(FloatingPointError):
        tune(CANDIDATES["irgan"], synthetic(30, 20, 300, seed=0), trials=2)
    assert [c.patience for c in seen] == [irgan.protocol.IRGAN_PATIENCE] * 2 and irgan.protocol.IRGAN_PATIENCE == 3
