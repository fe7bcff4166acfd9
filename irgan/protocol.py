"""The honest protocol: tune on a validation split carved from train, refit on all of train, test once.

Every model of a comparison is a ``Candidate``: its documented defaults, an Optuna search space,
and a ``fit(train, validation, params, seed, device)`` that returns a scorer and what a refit
must repeat (an epoch count chosen on validation, say). ``tune`` searches once per model (TPE,
seeded, a fixed budget of trials); ``refit_and_test`` then fits the chosen configuration on all
of train for each seed and evaluates it on test, user by user, so that models can be compared
with paired tests (``irgan.significance``).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import optuna
import pandas as pd
import torch
from torch import nn

from irgan.adversarial.apr import APRConfig, APRRecommender
from irgan.adversarial.cfgan import CFGANConfig, CFGANRecommender
from irgan.baselines import (EASERecommender, IALSRecommender, ItemKNNRecommender, LightGCNRecommender,
                             PureSVDRecommender, RP3betaRecommender, SLIMRecommender)
from irgan.config import PRESETS, BPRConfig, IRGANConfig, preset
from irgan.data import Interactions, validation_split
from irgan.metrics import KeepBest, eval_ks, evaluate
from irgan.models import Popularity
from irgan.models.itemknn import FEATURE_WEIGHTINGS, SIMILARITIES
from irgan.adversarial.irgan.recipe import run_recipe
from irgan.training.bpr import fit_bpr

log = logging.getLogger(__name__)
EVAL_EVERY = 5  # epochs between validation checks of BPR / DNS-BPR


@dataclass
class Fitted:
    """A fitted model: its scorer (``score_users``), the parameters a refit on all of train must
    use (the tuned ones plus e.g. the epoch count validation chose), its validation figures, and
    other scorers worth testing beside it (IRGAN's pretrained start)."""

    scorer: nn.Module
    refit_params: dict
    validation: dict[str, float] | None = None
    also: dict[str, nn.Module] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """One model of a comparison."""

    name: str
    description: str
    defaults: dict
    space: Callable[[optuna.Trial], dict]
    fit: Callable[..., Fitted]  # (train, validation | None, params, seed, device, metric, fraction) -> Fitted
    first_trial: dict = field(default_factory=dict)  # the defaults as the space's values: tuning tries them first
    epochs: int | None = None  # its default epoch count (None: it has none), which --max-epochs caps
    deterministic: bool = False  # no randomness: a comparison fits it once and reuses the fit for every seed
    also: dict[str, str] = field(default_factory=dict)  # Fitted.also's scorers: name -> what each is (a row MODEL-name)
    variants: tuple[dict, ...] = ()  # tuned apart, each with the trial budget, the best on validation kept (item k-NN's similarities)


def _selecting(metric: str, validation: Interactions | None) -> dict:
    """An epoch-based estimator's selection parameters: ``metric`` picks its epochs on validation;
    a refit (no validation) runs the epochs it is given, never stopping early."""
    return {"select_metric": metric} if validation is not None else {"select_metric": metric, "patience": None}


def _estimator(cls, epochs_param: str | None = None):
    """``fit`` for a baseline estimator; with ``epochs_param``, a validation fit fixes the refit's epoch count."""
    def fit(train, validation, params, seed, device, metric, fraction) -> Fitted:
        extra = _selecting(metric, validation) if epochs_param else {}
        model = cls(**params, **extra, seed=seed, device=device).fit(train, validation)
        refit = dict(params)
        if epochs_param and validation is not None:
            refit[epochs_param] = int(model.best_epoch_)
        return Fitted(model.model_, refit, model.validation_metrics_)
    return fit


def _bpr(negatives: str):
    """``fit`` for BPR or DNS-BPR: with validation, the best epoch (checked every EVAL_EVERY) is kept."""
    def fit(train, validation, params, seed, device, metric, fraction) -> Fitted:
        config = BPRConfig(negatives=negatives, **params)
        best = KeepBest(metric)

        def on_epoch(epoch: int, model: nn.Module) -> None:
            if validation is not None and ((epoch + 1) % EVAL_EVERY == 0 or epoch + 1 == config.epochs):
                best.offer(model, evaluate(model, train, validation, eval_ks(train.n_items, metric)), epoch=epoch + 1)

        last = fit_bpr(train.matrix, config, seed=seed, device=device, on_epoch=on_epoch)
        if best.model is None:
            return Fitted(last, dict(params))
        return Fitted(best.model, {**params, "epochs": best.info["epoch"]}, best.info["metrics"])
    return fit


def _popularity(train, validation, params, seed, device, metric, fraction) -> Fitted:
    model = Popularity(train.matrix).to(device)
    return Fitted(model, {}, None if validation is None else
                  evaluate(model, train, validation, eval_ks(train.n_items, metric)))


def _cfgan(train, validation, params, seed, device, metric, fraction) -> Fitted:
    """CFGAN, and the same G trained without the adversary (``noadv``): with validation, each
    chooses its own epochs on it (the refit's ``epochs`` and ``noadv_epochs``); without, each runs
    its epochs."""
    params = dict(params)
    noadv_epochs = params.pop("noadv_epochs", params.get("epochs", CFGANConfig().epochs))
    own = {**_selecting(metric, validation), "seed": seed, "device": device}
    model = CFGANRecommender(**params, **own).fit(train, validation)
    plain = CFGANRecommender(**{**params, "epochs": noadv_epochs, "adversary": False}, **own).fit(train, validation)
    refit = dict(params, noadv_epochs=noadv_epochs)
    if validation is not None:
        refit.update(epochs=int(model.best_epoch_), noadv_epochs=int(plain.best_epoch_))
    return Fitted(model.model_, refit, model.validation_metrics_, {"noadv": plain.model_})


def _apr(train, validation, params, seed, device, metric, fraction) -> Fitted:
    """APR and the BPR-MF it started from (``start``): with validation, both phases' epochs are
    chosen on it (the refit's ``pretrain_epochs`` and ``epochs``)."""
    own = {**_selecting(metric, validation), "seed": seed, "device": device}
    model = APRRecommender(**params, **own).fit(train, validation)
    refit = dict(params)
    if validation is not None:
        refit.update(pretrain_epochs=int(model.best_pretrain_epoch_), epochs=int(model.best_epoch_))
    return Fitted(model.model_, refit, model.validation_metrics_, {"start": model.start_})


def _irgan(train, validation, params, seed, device, metric, fraction) -> Fitted:
    """IRGAN by the one recipe: with validation, select on it (the tuning fit); without, carve a
    validation split (``fraction``) from train, select on it and refit on all of train at the selected point."""
    config = preset("paper", **{"patience": IRGAN_PATIENCE, **params, "pretrain_select": True,
                                "select_metric": metric, "validation_fraction": fraction, "refit": validation is None})
    result = run_recipe(train, None, config, validation=validation, seed=seed, device=device)
    scorer = result.generator
    figures = result.best_generator.get("metrics") if validation is not None else None
    return Fitted(scorer, dict(params), figures, {"start": result.init} if result.init is not None else {})


def _log_uniform(trial: optuna.Trial, name: str, low: float, high: float) -> float:
    return trial.suggest_float(name, low, high, log=True)


STRONG = {k: v for k, v in PRESETS["strong"].items() if k not in ("pretrain_select", "refit")}  # _irgan sets those
STRONG_TUNED = {"g_lr": STRONG["g_lr"], "d_lr": STRONG["d_lr"], "d_l2": STRONG["d_l2"], "pretrain_l2": STRONG["pretrain"]["l2"]}


def _strong_space(trial: optuna.Trial) -> dict:
    """Around the strong preset: its dimension, each rate and L2 within a factor of 3 of the preset's."""
    value = {name: _log_uniform(trial, name, x / 3, x * 3) for name, x in STRONG_TUNED.items()}
    return {"dim": STRONG["dim"], "g_lr": value["g_lr"], "d_lr": value["d_lr"], "d_l2": value["d_l2"],
            "pretrain": {"l2": value["pretrain_l2"]}}


CFGAN_TUNED = {name: getattr(CFGANConfig(), name) for name in ("g_hidden", "d_hidden", "g_lr", "d_lr", "g_l2",
                                                               "zr_coefficient", "zr_ratio", "pm_ratio")}
APR_TUNED = {name: getattr(APRConfig(), name) for name in ("dim", "lr", "eps", "adv_reg")}
IRGAN_START = "the DNS-pretrained start of its G (same refit)"
IRGAN_PATIENCE = 3  # outer epochs without a better validation figure before a comparison stops IRGAN's game


def _cfgan_space(trial: optuna.Trial) -> dict:
    """CFGAN's search space: network widths, learning rates, G's L2 and the ZR/PM settings (iCFGAN, ZP)."""
    return {"g_hidden": trial.suggest_categorical("g_hidden", [100, 200, 400, 800]),
            "d_hidden": trial.suggest_categorical("d_hidden", [50, 125, 250, 500]),
            "g_lr": _log_uniform(trial, "g_lr", 1e-5, 1e-3), "d_lr": _log_uniform(trial, "d_lr", 1e-5, 1e-3),
            "g_l2": _log_uniform(trial, "g_l2", 1e-5, 1e-1), "zr_coefficient": _log_uniform(trial, "zr_coefficient", 1e-3, 1.0),
            "zr_ratio": trial.suggest_float("zr_ratio", 0.1, 0.9), "pm_ratio": trial.suggest_float("pm_ratio", 0.1, 0.9),
            "epochs": CFGANConfig().epochs}


def _apr_space(trial: optuna.Trial) -> dict:
    """APR's search space: size, learning rate, the perturbation's norm and weight."""
    return {"dim": trial.suggest_categorical("dim", [16, 32, 64, 128]), "lr": _log_uniform(trial, "lr", 0.005, 0.2),
            "eps": _log_uniform(trial, "eps", 0.01, 5.0), "adv_reg": _log_uniform(trial, "adv_reg", 0.01, 10.0),
            "pretrain_epochs": APRConfig().pretrain_epochs, "epochs": APRConfig().epochs}


ITEMKNN_DEFAULTS = {name: ItemKNNRecommender._own_params[name] for name in (
    "similarity", "k", "shrink", "normalize", "feature_weighting", "asymmetric_alpha", "tversky_alpha", "tversky_beta")}
ITEMKNN_FIRST = {name: ITEMKNN_DEFAULTS[name] for name in ("similarity", "k", "shrink", "normalize", "feature_weighting")}


def _itemknn_space(trial: optuna.Trial) -> dict:
    """Item k-NN's search space: Ferrari Dacrema et al.'s framework tunes each similarity as its own
    variant (k 5-1000, log-uniform here; shrink 0-1000; asymmetric alpha and Tversky's alpha and
    beta 0-2; the cosine's normalize; BM25 / TF-IDF for the cosine and asymmetric cosine), as the
    candidate's ``variants`` do: each similarity fixed in turn, the others drawn for the one that uses them."""
    similarity = trial.suggest_categorical("similarity", list(SIMILARITIES))
    params = {"similarity": similarity, "k": trial.suggest_int("k", 5, 1000, log=True),
              "shrink": trial.suggest_float("shrink", 0.0, 1000.0)}
    if similarity == "cosine":
        params["normalize"] = trial.suggest_categorical("normalize", [True, False])
    if similarity in ("cosine", "asymmetric"):
        params["feature_weighting"] = trial.suggest_categorical("feature_weighting", list(FEATURE_WEIGHTINGS))
    if similarity == "asymmetric":
        params["asymmetric_alpha"] = trial.suggest_float("asymmetric_alpha", 0.0, 2.0)
    if similarity == "tversky":
        params["tversky_alpha"] = trial.suggest_float("tversky_alpha", 0.0, 2.0)
        params["tversky_beta"] = trial.suggest_float("tversky_beta", 0.0, 2.0)
    return params


CANDIDATES: dict[str, Candidate] = {c.name: c for c in (
    Candidate("pop", "most popular items", {}, lambda t: {}, _popularity, deterministic=True),
    Candidate("bpr", "BPR-MF, uniform negatives (Rendle et al. 2009)",
              {"dim": 64, "lr": 0.05, "l2": 0.05, "epochs": 100},
              lambda t: {"dim": t.suggest_categorical("dim", [16, 32, 64, 128]), "lr": _log_uniform(t, "lr", 0.005, 0.2),
                         "l2": _log_uniform(t, "l2", 0.001, 0.5), "epochs": 100},
              _bpr("uniform"), {"dim": 64, "lr": 0.05, "l2": 0.05}, epochs=100),
    Candidate("dns", "BPR-MF, dynamic negatives (Zhang et al. 2013; IRGAN's pretraining)",
              {"dim": 64, "lr": 0.05, "l2": 0.05, "epochs": 100},
              lambda t: {"dim": t.suggest_categorical("dim", [16, 32, 64, 128]), "lr": _log_uniform(t, "lr", 0.005, 0.2),
                         "l2": _log_uniform(t, "l2", 0.001, 0.5), "epochs": 100},
              _bpr("dns"), {"dim": 64, "lr": 0.05, "l2": 0.05}, epochs=100),
    Candidate("ease", "EASE (Steck 2019)", {"l2": 300.0},
              lambda t: {"l2": _log_uniform(t, "l2", 10.0, 5000.0)}, _estimator(EASERecommender), {"l2": 300.0},
              deterministic=True),
    Candidate("ials", "implicit ALS (Hu et al. 2008)", {"factors": 16, "regularization": 30.0, "alpha": 4.0},
              lambda t: {"factors": t.suggest_categorical("factors", [8, 16, 32, 64, 128]),
                         "regularization": _log_uniform(t, "regularization", 0.1, 200.0),
                         "alpha": _log_uniform(t, "alpha", 0.3, 30.0)},
              _estimator(IALSRecommender), {"factors": 16, "regularization": 30.0, "alpha": 4.0}),
    Candidate("itemknn", "item k-NN, the best on validation of cosine, asymmetric cosine, Jaccard, Dice and Tversky, "
              "each tuned apart (Ferrari Dacrema et al.'s variants)", ITEMKNN_DEFAULTS, _itemknn_space,
              _estimator(ItemKNNRecommender), ITEMKNN_FIRST, deterministic=True,
              variants=tuple({"similarity": name} for name in SIMILARITIES)),
    Candidate("slim", "SLIM ElasticNet (Ning and Karypis 2011; the reproducibility studies' version)",
              {name: SLIMRecommender._own_params[name] for name in ("alpha", "l1_ratio", "k")},
              lambda t: {"alpha": t.suggest_float("alpha", 1e-3, 1.0), "l1_ratio": _log_uniform(t, "l1_ratio", 1e-5, 1.0),
                         "k": t.suggest_int("k", 5, 1000)},
              _estimator(SLIMRecommender), {name: SLIMRecommender._own_params[name] for name in ("alpha", "l1_ratio", "k")},
              deterministic=True),
    Candidate("puresvd", "PureSVD (Cremonesi et al. 2010)", {"factors": PureSVDRecommender._own_params["factors"]},
              lambda t: {"factors": t.suggest_int("factors", 1, 350)},
              _estimator(PureSVDRecommender), {"factors": PureSVDRecommender._own_params["factors"]}, deterministic=True),
    Candidate("rp3beta", "RP3beta (Paudel et al. 2017)",
              {name: RP3betaRecommender._own_params[name] for name in ("alpha", "beta", "k", "normalize_similarity")},
              lambda t: {"alpha": t.suggest_float("alpha", 0.0, 2.0), "beta": t.suggest_float("beta", 0.0, 2.0),
                         "k": t.suggest_int("k", 5, 1000),
                         "normalize_similarity": t.suggest_categorical("normalize_similarity", [True, False])},
              _estimator(RP3betaRecommender),
              {name: RP3betaRecommender._own_params[name] for name in ("alpha", "beta", "k", "normalize_similarity")},
              deterministic=True),
    Candidate("lightgcn", "LightGCN (He et al. 2020)", {"dim": 64, "layers": 3, "lr": 0.01, "l2": 1e-3, "epochs": 150},
              lambda t: {"dim": 64, "layers": t.suggest_int("layers", 1, 4), "lr": _log_uniform(t, "lr", 1e-3, 3e-2),
                         "l2": _log_uniform(t, "l2", 1e-5, 1e-2), "epochs": 150},
              _estimator(LightGCNRecommender, "epochs"), {"layers": 3, "lr": 0.01, "l2": 1e-3}, epochs=150),
    Candidate("cfgan", "CFGAN (Chae et al. 2018), iCFGAN with ZP, the authors' ML100K settings, epochs chosen on validation",
              dict(CFGAN_TUNED, epochs=CFGANConfig().epochs, noadv_epochs=CFGANConfig().epochs), _cfgan_space, _cfgan, CFGAN_TUNED,
              epochs=CFGANConfig().epochs,
              also={"noadv": "the same G trained without D (reconstruction and ZR terms alone), its own epochs on validation"}),
    Candidate("apr", "APR-MF (He et al. 2018), the authors' settings, both phases' epochs chosen on validation",
              dict(APR_TUNED, pretrain_epochs=APRConfig().pretrain_epochs, epochs=APRConfig().epochs),
              _apr_space, _apr, APR_TUNED, epochs=APRConfig().epochs,
              also={"start": "the BPR-MF APR started from (its pretraining, epochs on validation; same refit)"}),
    Candidate("irgan", "IRGAN's G (Wang et al. 2017), the paper's settings, DNS start chosen on validation", {},
              lambda t: {"dim": t.suggest_categorical("dim", [5, 16, 32, 64]), "g_lr": _log_uniform(t, "g_lr", 1e-4, 1e-2),
                         "d_lr": _log_uniform(t, "d_lr", 1e-4, 1e-2), "d_l2": _log_uniform(t, "d_l2", 0.01, 1.0),
                         "pretrain": {"l2": _log_uniform(t, "pretrain_l2", 0.01, 0.5)}},
              _irgan, {"dim": 5, "g_lr": 0.001, "d_lr": 0.001, "d_l2": 0.2, "pretrain_l2": 0.1},
              epochs=IRGANConfig().epochs, also={"start": IRGAN_START}),
    Candidate("irgan-strong", "IRGAN, the 'strong' preset (32 dimensions, tuned learning rates), DNS start chosen on validation",
              STRONG, _strong_space, _irgan, STRONG_TUNED, epochs=IRGANConfig().epochs, also={"start": IRGAN_START}),
)}


@dataclass
class Tuned:
    """What tuning found for one model: the parameters a refit uses, the validation figure, the trials."""

    params: dict
    validation: float | None
    trials: list[dict]
    seconds: float


def tune(candidate: Candidate, train: Interactions, trials: int, metric: str = "P@5", validation_fraction: float = 0.1,
         seed: int = 0, device: torch.device | str = "cpu", splits: int = 1) -> Tuned:
    """Choose ``candidate``'s configuration on validation splits carved from ``train``: ``trials``
    Optuna TPE trials (seeded; the first tries the documented defaults), each scored by its
    ``metric`` averaged over ``splits`` validation splits (seeds ``seed``, ``seed + 1``...: more
    splits, less selection noise); then the best trial's parameters, with the epoch count its fits
    chose on validation (their mean, when it chose one). ``trials=0``: the documented defaults,
    no search and no validation fit (IRGAN's recipe still selects on its own validation split)."""
    start = time.perf_counter()
    if trials == 0:
        return Tuned(dict(candidate.defaults), None, [], time.perf_counter() - start)
    if splits < 1:
        raise ValueError(f"splits must be >= 1, got {splits}")
    folds = [validation_split(train, validation_fraction, seed + k) for k in range(splits)]
    found: dict[tuple[int, int], dict] = {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    history, best = [], None
    variants = candidate.variants or ({},)
    for v, fixed in enumerate(variants):
        def objective(trial: optuna.Trial, v: int = v) -> float:
            params = candidate.space(trial)
            values, refits = [], []
            for fit_train, validation in folds:
                fitted = candidate.fit(fit_train, validation, params, seed, device, metric, validation_fraction)
                figures = fitted.validation if fitted.validation and metric in fitted.validation else \
                    evaluate(fitted.scorer, fit_train, validation, eval_ks(fit_train.n_items, metric))
                values.append(figures[metric])
                refits.append(fitted.refit_params)
            found[v, trial.number] = _mean_epochs(refits)
            value = float(np.mean(values))
            log.info("%s trial %d/%d%s: validation %s %.4f with %s", candidate.name, trial.number + 1, trials,
                     f" of {fixed}" if fixed else "", metric, value, params)
            return value

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        first = candidate.first_trial
        if first and all(first.get(name) == value for name, value in fixed.items()):
            study.enqueue_trial(first)  # the documented defaults: tuning can only do better on validation
        if fixed:  # every trial holds the variant's own values; the rest is searched
            for _ in range(trials - len(study.trials)):
                study.enqueue_trial(fixed)
        study.optimize(objective, n_trials=trials, catch=(FloatingPointError,))  # a diverging trial fails alone
        history += [{"number": t.number, "value": t.value, "params": t.params, "state": t.state.name,
                     **({"variant": fixed} if fixed else {})} for t in study.trials]
        if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) and \
                (best is None or study.best_trial.value > best[1].value):
            best = (v, study.best_trial)
    if best is None:
        raise FloatingPointError(f"{candidate.name}: every one of the {trials} tuning trials diverged")
    return Tuned(found[best[0], best[1].number], float(best[1].value), history, time.perf_counter() - start)


def capped(candidate: Candidate, max_epochs: int | None) -> Candidate:
    """``candidate`` whose fits train at most ``max_epochs`` epochs in each phase (``epochs`` and
    every ``*_epochs`` parameter; None: as it is); a model without epochs is returned unchanged."""
    if max_epochs is None or candidate.epochs is None:
        return candidate
    fit = candidate.fit

    def fit_capped(train, validation, params, *rest) -> Fitted:
        counts = {name: min(value, max_epochs) for name, value in params.items() if _is_epochs(name)}
        return fit(train, validation, {**params, "epochs": min(params.get("epochs", candidate.epochs), max_epochs),
                                       **counts}, *rest)
    return dataclasses.replace(candidate, fit=fit_capped, epochs=min(candidate.epochs, max_epochs))


def _mean_epochs(refits: list[dict]) -> dict:
    """The refit parameters of one trial's fits, each epoch count (``epochs``, ``*_epochs``, where
    they chose one) averaged and rounded."""
    chosen = dict(refits[0])
    for name in chosen:
        if _is_epochs(name):
            chosen[name] = int(round(np.mean([r[name] for r in refits])))
    return chosen


def _is_epochs(name: str) -> bool:
    return name == "epochs" or name.endswith("_epochs")


@dataclass
class Tested:
    """One refit on all of train, tested: mean figures, per-user figures (index: raw user id), seconds,
    and the same for scorers tested beside it (by name)."""

    test: dict[str, float]
    per_user: pd.DataFrame
    seconds: float
    also: dict[str, tuple[dict[str, float], pd.DataFrame]] = field(default_factory=dict)
    scorer: nn.Module | None = None


def refit_and_test(candidate: Candidate, params: dict, train: Interactions, test: Interactions, seed: int,
                   device: torch.device | str = "cpu", metric: str = "P@5", validation_fraction: float = 0.1,
                   cutoffs: Sequence[int] = ()) -> Tested:
    """Fit ``candidate`` with ``params`` on all of ``train`` (seed ``seed``) and evaluate it once
    on ``test`` at cut-offs 3, 5, 10, ``metric``'s and ``cutoffs``, ranking every item the user has
    no train positive for. (IRGAN's recipe selects its epochs on a ``validation_fraction`` split of
    train before it refits.)"""
    start = time.perf_counter()
    fitted = candidate.fit(train, None, params, seed, device, metric, validation_fraction)
    seconds = time.perf_counter() - start
    ks = eval_ks(train.n_items, metric, *cutoffs)

    def tested(scorer: nn.Module) -> tuple[dict[str, float], pd.DataFrame]:
        figures, per_user = evaluate(scorer, train, test, ks, per_user=True)
        per_user.index = pd.Index(test.user_ids[per_user.index.to_numpy()], name="user")
        return figures, per_user

    figures, per_user = tested(fitted.scorer)
    return Tested(figures, per_user, seconds, {name: tested(s) for name, s in fitted.also.items()}, fitted.scorer)


__all__ = ["CANDIDATES", "Candidate", "capped", "Fitted", "Tested", "Tuned", "refit_and_test", "tune"]
