"""The one recipe: split -> pretrain -> play -> select -> (refit) -> test.

The CLI (``irgan.train``), the estimator (``irgan.estimator.IRGAN``) and the benchmarks all call
``run_recipe``; nothing else repeats these steps.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from irgan.checkpoint import ModelFileError, data_fingerprint, load_model, save_model
from irgan.config import IRGANConfig
from irgan.data import Interactions, validation_split
from irgan.device import resolve_device
from irgan.memory import check_fits
from irgan.metrics import KeepBest, eval_ks, evaluate
from irgan.model_files import load_model_file
from irgan.adversarial.irgan.players import Discriminator, Generator
from irgan.models.build import ScorerSpec, build_scorer
from irgan.training.bpr import fit_bpr
from irgan.adversarial.irgan.game import fit_irgan

log = logging.getLogger(__name__)


@dataclass
class RecipeResult:
    """What the recipe ends with: the selected (or refit) players, G's pretrained start, the
    selection record and history, the test figures (when a test set was given) and data sizes."""

    generator: Generator
    discriminator: Discriminator
    init: nn.Module | None
    best_generator: dict
    best_discriminator: dict
    history: list[dict]
    test: dict[str, dict[str, float] | None] | None = None  # {"generator", "discriminator", "init"}
    sizes: dict[str, int] = field(default_factory=dict)
    refit: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of "pretrain", "play", "refit", "test"
    stopped: dict | None = None  # {"epoch", "reason"} when ``config.patience`` ended the selection game early


def initial_generator(
    config: IRGANConfig,
    train: sp.csr_matrix,
    user_ids: np.ndarray | None = None,
    item_ids: np.ndarray | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    show_progress: bool = False,
    generator: ScorerSpec = None,
    selection: sp.csr_matrix | None = None,
) -> nn.Module | None:
    """G's starting scorer as ``config.init`` says: pretrained here by BPR or DNS-BPR (the last
    epoch, or with ``config.pretrain_select`` the best on ``selection``), read from a model file
    (MF), or None (G keeps its random start)."""
    if config.init == "random":
        return None
    if config.init in ("dns", "bpr"):
        return pretrain_generator(config, train, seed, device, show_progress, generator, selection)[0]
    if user_ids is None or item_ids is None:
        raise ValueError("loading G from a model file needs the data's user_ids and item_ids")
    return load_model_file(config.init, user_ids, item_ids).to(device)


def pretrain_generator(
    config: IRGANConfig, train: sp.csr_matrix, seed: int = 0, device: torch.device | str = "cpu",
    show_progress: bool = False, generator: ScorerSpec = None, selection: sp.csr_matrix | None = None,
) -> tuple[nn.Module, int]:
    """G's scorer pretrained by BPR (``config.init == 'bpr'``) or DNS-BPR, and the number of epochs
    it was trained for: all of them, or with ``config.pretrain_select`` those up to the best on ``selection``."""
    pretrain = dataclasses.replace(config.pretrain, negatives="dns" if config.init == "dns" else "uniform",
                                   dim=config.dim)
    spec = generator or config.g_scorer
    scorer = None if spec == "mf" else build_scorer(spec, train, config, torch.Generator().manual_seed(seed))
    log.info("pretraining G with %s-BPR for %d epochs", config.init.upper(), pretrain.epochs)
    best, on_epoch = None, None
    if config.pretrain_select and selection is not None:
        best = KeepBest(config.select_metric)
        ks = eval_ks(train.shape[1], config.select_metric)
        on_epoch = lambda epoch, model: best.offer(model, evaluate(model, train, selection, ks), epoch=epoch)  # noqa: E731
    last = fit_bpr(train, pretrain, seed=seed, device=device, show_progress=show_progress, on_epoch=on_epoch,
                   scorer=scorer, fast_path=config.fast_path)
    return (best.model, best.info["epoch"] + 1) if best is not None else (last, pretrain.epochs)


def run_recipe(
    train: Interactions,
    test: Interactions | None = None,
    config: IRGANConfig = IRGANConfig(),
    *,
    validation: Interactions | None = None,
    seed: int = 0,
    device: torch.device | str = "auto",
    show_progress: bool = False,
    generator: ScorerSpec = None,
    discriminator: ScorerSpec = None,
    on_evaluate: Callable[[dict], None] | None = None,
    state_path: str | Path | None = None,
    init_file: str | Path | None = None,
    cutoffs: Sequence[int] = (),
) -> RecipeResult:
    """Split ``train`` (``validation`` given, else carved with ``config.validation_fraction``; or
    the test set when ``config.select_on == 'test'``), pretrain G, play, keep the best G and D on
    the selection set, with ``config.refit`` play again on all of ``train`` for the selected number
    of steps, and evaluate on ``test`` (its ranking excludes every train positive).

    ``init_file`` caches G's pretrained start as a model file, so that a resumed run reuses it;
    ``state_path`` and ``on_evaluate`` go to ``fit_irgan``. Test figures are at cut-offs 3, 5, 10
    and ``cutoffs``.
    """
    device = resolve_device(device)
    clock = [time.perf_counter()]
    seconds = {}

    def lap(name: str) -> None:
        clock.append(time.perf_counter())
        seconds[name] = clock[-1] - clock[-2]

    fit_train, selection = _split(train, test, validation, config, seed)
    pretraining = config.init in ("dns", "bpr") and not (init_file is not None and Path(init_file).is_file())
    check_fits(train.matrix, config, device, pretraining=pretraining)  # a resumed run reuses init.pt
    init, pretrain_epochs = _pretrained(config, fit_train, selection, seed, device, show_progress, generator, init_file)
    lap("pretrain")
    players = dict(generator=generator, discriminator=discriminator)
    result = fit_irgan(fit_train.matrix, selection.matrix, config, init=init, seed=seed, device=device,
                       show_progress=show_progress, on_evaluate=on_evaluate, state_path=state_path, **players)
    G, D = result.generator, result.discriminator
    lap("play")
    if config.refit:
        refit_config = dataclasses.replace(config, pretrain_select=False, pretrain=dataclasses.replace(
            config.pretrain, epochs=pretrain_epochs)) if config.pretrain_select else config
        G, D, init = _refit(train, refit_config, result.best_generator, seed, device, show_progress, players)
        lap("refit")
    sizes = {"n_users": train.n_users, "n_items": train.n_items, "train": int((train if config.refit else fit_train).nnz),
             "selection": int(selection.nnz), "test": int(test.nnz) if test is not None else 0}
    figures = None
    if test is not None:
        ks, seen = eval_ks(train.n_items, *cutoffs), train.matrix  # train + validation: every pair known before test
        figures = {"generator": evaluate(G, seen, test.matrix, ks), "discriminator": evaluate(D, seen, test.matrix, ks),
                   "init": evaluate(init, seen, test.matrix, ks) if init is not None else None}
        lap("test")
    return RecipeResult(G, D, init, result.best_generator, result.best_discriminator, result.history, figures,
                        sizes, config.refit, seconds, result.stopped)


def _split(train: Interactions, test: Interactions | None, validation: Interactions | None, config: IRGANConfig,
           seed: int) -> tuple[Interactions, Interactions]:
    """(the data G and D train on, the data that selects them)."""
    if config.select_on == "test":
        if test is None:
            raise ValueError("select_on='test' needs a test set")
        log.warning("selecting G and D on the TEST set, as the IRGAN authors did: test figures are optimistic")
        return train, test
    if validation is not None:
        return train, validation
    return validation_split(train, config.validation_fraction, seed)


def _pretrained(config: IRGANConfig, fit_train: Interactions, selection: Interactions, seed: int, device: torch.device,
                show_progress: bool, generator: ScorerSpec, init_file: str | Path | None) -> tuple[nn.Module | None, int]:
    """G's start and its pretraining epochs, read from ``init_file`` when a previous (interrupted)
    run left one there, pretrained on the same data with the same settings."""
    start = {"init": config.init, "dim": config.dim, "hidden": config.hidden, "init_scale": config.init_scale,
             "itemitem_init": config.itemitem_init, "ease_l2": config.ease_l2,
             "g_scorer": _spec_name(generator or config.g_scorer),
             "pretrain": dataclasses.asdict(config.pretrain), "pretrain_select": config.pretrain_select,
             "select_metric": config.select_metric, "seed": seed,
             "data": data_fingerprint(fit_train.matrix, selection.matrix) if init_file is not None else None}
    if init_file is not None and Path(init_file).exists():
        try:
            custom = generator if isinstance(generator, nn.Module) else \
                generator(*fit_train.shape) if callable(generator) and not isinstance(generator, str) else None
            saved = load_model(init_file, scorers=[type(custom)] if custom is not None else [])
        except ModelFileError as err:
            raise ValueError(f"cannot resume from the pretrained start: {err}") from None
        if saved.user_items.shape != fit_train.shape or (saved.user_items != fit_train.matrix).nnz:
            raise ValueError(f"{init_file} was pretrained on other data: cannot resume")
        stored = saved.fitted.get("start")
        if stored != start:
            differ = sorted(k for k in start if not isinstance(stored, dict) or stored.get(k) != start[k])
            raise ValueError(f"{init_file} was pretrained with other settings (differs in {differ}): cannot resume")
        return saved.scorers["model"].to(device), saved.fitted.get("pretrain_epochs", config.pretrain.epochs)
    if config.init in ("dns", "bpr"):
        init, epochs = pretrain_generator(config, fit_train.matrix, seed, device, show_progress, generator,
                                          selection.matrix)
    else:
        init, epochs = initial_generator(config, fit_train.matrix, fit_train.user_ids, fit_train.item_ids, seed,
                                         device), 0
    if init is not None and init_file is not None:
        save_model(init_file, "BPRRecommender", {"model": init}, fit_train.user_ids, fit_train.item_ids,
                   fit_train.matrix, params=dataclasses.asdict(config.pretrain),
                   fitted={"seed": seed, "pretrain_epochs": epochs, "start": start})
    return init, epochs


def _spec_name(spec: ScorerSpec) -> str:
    """A scorer spec as a name that is the same in every process: the name, or the class's qualified name."""
    if isinstance(spec, str):
        return spec
    cls = type(spec) if isinstance(spec, nn.Module) else spec
    return f"{getattr(cls, '__module__', '')}:{getattr(cls, '__qualname__', type(cls).__name__)}"


def _refit(train: Interactions, config: IRGANConfig, best: dict, seed: int, device: torch.device,
           show_progress: bool, players: dict) -> tuple[Generator, Discriminator, nn.Module | None]:
    """Pretrain and play again on all of ``train``, stopping where selection kept G: after G-epoch
    ``best['g_epoch']`` of outer epoch ``best['epoch']`` (before any step when it kept G's start).
    D is the one at that point too: a refit has no selection set to pick D's own best epoch with."""
    init = initial_generator(config, train.matrix, train.user_ids, train.item_ids, seed, device, show_progress,
                             players["generator"])
    stop = (best["epoch"], best["g_epoch"])
    if stop[0] < 0:
        config = dataclasses.replace(config, epochs=1, d_epochs=0, g_epochs=0)
    else:
        config = dataclasses.replace(config, epochs=stop[0] + 1)
    result = fit_irgan(train.matrix, None, config, init=init, seed=seed, device=device, show_progress=show_progress,
                       stop_at=stop, **players)
    return result.generator, result.discriminator, init


def save_irgan_model(path: str | Path, result: RecipeResult, config: IRGANConfig, train: Interactions,
                     seed: int = 0, **extra: Any) -> None:
    """Write a recipe's result as the model file ``IRGAN.load`` reads (what the CLI's model.pt is)."""
    params = {**dataclasses.asdict(config), "seed": seed}
    fitted = {"history": result.history, "best": {"generator": result.best_generator,
                                                  "discriminator": result.best_discriminator},
              "test": result.test, "refit": result.refit, **extra}
    save_model(path, "IRGAN", {"generator": result.generator.scorer, "discriminator": result.discriminator.scorer},
               train.user_ids, train.item_ids, train.matrix, params, fitted)
