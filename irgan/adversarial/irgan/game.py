"""IRGAN's adversarial training loop for item recommendation (Wang et al., SIGIR 2017).

Read top to bottom: ``fit_irgan`` alternates ``d_epoch`` (D learns to tell real positives from
G's samples) and ``g_epoch`` (G moves toward items D scores as real, by policy gradient), and
keeps the G and D that score best on the selection set. Every step is batched over users; any
scorer can play either side (``irgan.models``).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from irgan import kernels
from irgan.checkpoint import data_fingerprint, load_train_state, save_train_state
from irgan.config import IRGANConfig
from irgan.device import resolve_device
from irgan.adversarial.irgan.diagnostics import diagnose
from irgan.distributed import Shard, current, keep_rows
from irgan.memory import check_fits
from irgan.metrics import Evaluation, KeepBest, NonFiniteScores, eval_ks, sharded_evaluation
from irgan.adversarial.irgan.players import Discriminator, Generator
from irgan.models.build import ScorerSpec, build_scorer
from irgan.training.objectives import sample_weights
from irgan.progress import bar as progress_bar
from irgan.training.sampling import PositiveSet, positive_pairs, sample_fake, sample_mixture
from irgan.training.updates import DUpdate, FastGUpdate, GUpdate, d_update, g_update

log = logging.getLogger(__name__)
SHARD_SEED_STRIDE = 104_729  # process r of a distributed run draws with seed + r * this


@dataclass
class IRGANResult:
    """The selected generator and discriminator, their selection scores, and the history."""

    generator: Generator
    discriminator: Discriminator
    best_generator: dict = field(default_factory=dict)  # {"epoch", "g_epoch", "metrics"} of the kept G
    best_discriminator: dict = field(default_factory=dict)  # {"epoch", "metrics"} of the kept D
    history: list[dict] = field(default_factory=list)  # one row per evaluation of G
    stopped: dict | None = None  # {"epoch", "reason"} when ``patience`` ended the game early


@dataclass
class _Game:
    """Everything one run of the game holds: players, their updates, the data, the kept best."""

    G: Generator
    D: Discriminator
    g_step: GUpdate
    d_step: DUpdate
    positives: PositiveSet
    real_users: torch.Tensor
    real_items: torch.Tensor
    active: torch.Tensor
    best_g: KeepBest | None
    best_d: KeepBest | None
    rng: torch.Generator
    shard: Shard
    selection: Evaluation | None = None  # this process's selection users, prepared once
    fake_items: torch.Tensor | None = None
    history: list[dict] = field(default_factory=list)
    first_epoch: int = 0
    elapsed: float = 0.0


@kernels.serial_torch
def fit_irgan(
    train: sp.csr_matrix,
    selection: sp.csr_matrix | None,
    config: IRGANConfig = IRGANConfig(),
    init: nn.Module | None = None,
    seed: int = 0,
    device: torch.device | str = "auto",
    show_progress: bool = False,
    on_evaluate: Callable[[dict], None] | None = None,
    state_path: str | Path | None = None,
    generator: ScorerSpec = None,
    discriminator: ScorerSpec = None,
    stop_at: tuple[int, int] | None = None,
) -> IRGANResult:
    """Play IRGAN's game on ``train`` (csr (n_users, n_items) of positives) and keep the G and D
    with the best ``config.select_metric`` on ``selection`` (same shape; validation or test).

    ``generator`` / ``discriminator``: each player's scorer, as a built-in name, a scorer
    instance (copied) or a callable ``(n_users, n_items) -> scorer``; None takes
    ``config.g_scorer`` / ``config.d_scorer``. ``init`` is a scorer whose parameters G starts
    from (e.g. pretrained by ``irgan.adversarial.irgan.recipe.initial_generator``); None keeps G's own start.
    With ``state_path``, the whole training state is written there (atomically) after every
    outer epoch, and a run that finds a state file there resumes from it: on CPU the result is
    bitwise the one of an uninterrupted run. With ``config.patience``, the game ends once that many
    outer epochs brought no better G on ``selection`` (recorded in ``stopped`` and on the last history
    row). With ``selection=None`` nothing is evaluated and the last G and D are returned;
    ``stop_at=(epoch, g_epoch)`` ends the game after that G-epoch.
    (Long for this docstring; the loop stays in one piece so that the game reads top to bottom.)
    """
    device = resolve_device(device)
    train = sp.csr_matrix(train)
    if train.nnz == 0:
        raise ValueError("cannot train IRGAN on a matrix with no positives")
    if selection is None and state_path is not None:
        raise ValueError("a game without a selection set keeps no best players to resume: pass no state_path")
    check_fits(train, config, device, pretraining=False)
    if selection is not None and config.eval_users is not None:
        selection = sampled_users(sp.csr_matrix(selection), config.eval_users, seed)
    game = _setup(train, selection, config, init, seed, device, generator, discriminator)
    fingerprint = data_fingerprint(train, selection) if state_path is not None else None
    if state_path is not None and Path(state_path).exists():
        _restore_checked(game, load_train_state(state_path, config, fingerprint), state_path, train.shape[1])
        log.info("resumed IRGAN from %s at outer epoch %d", state_path, game.first_epoch)
    start = time.perf_counter() - game.elapsed
    if selection is None:
        game.best_g = game.best_d = None

    def score(model: nn.Module, epoch: int) -> dict[str, float]:
        (game.g_step if model is game.G else game.d_step).gather_owned()  # a kept copy holds every user
        _check_finite(game, epoch, state_path)  # before evaluation, which would fail on NaN scores first
        try:
            return game.selection.over_processes(model, game.shard)
        except NonFiniteScores:  # finite parameters whose scores overflow
            raise _diverged(epoch, state_path, "its scores overflow to NaN or inf") from None

    steps = config.d_epochs + config.g_epochs
    bar = progress_bar(show_progress and game.shard.rank == 0, total=config.epochs * steps,
                       initial=game.first_epoch * steps, desc="IRGAN")
    warned: set[str] = set()
    stopped = None
    for epoch in range(game.first_epoch, config.epochs):
        stopped = _out_of_patience(game, config, epoch - 1)  # checked here too when resuming a game that had stopped
        if stopped is not None:
            break
        d_stats = _d_round(game, config, epoch, score, bar)
        g_stats: dict[str, float] = {}
        for g_ep in range(config.g_epochs):
            g_stats = g_epoch(game.G, game.D, game.g_step, game.positives, game.active, config, game.rng)
            bar.update()
            if stop_at == (epoch, g_ep):
                break
            if game.best_g is not None and ((g_ep + 1) % config.eval_every == 0 or g_ep == config.g_epochs - 1):
                row = {"epoch": epoch, "g_epoch": g_ep, **d_stats, **g_stats}
                _record(game, row, score(game.G, epoch), time.perf_counter() - start, warned, on_evaluate)
                bar.set_postfix({config.select_metric: f"{row['selection'][config.select_metric]:.4f}"})
        _end_epoch(game, config, epoch, state_path, time.perf_counter() - start, fingerprint)
        _log_epoch(game, config, epoch, {**d_stats, **g_stats}, time.perf_counter() - start, bar)
        if stop_at is not None and epoch >= stop_at[0]:
            break
    bar.close()
    if game.best_g is None:
        return IRGANResult(game.G, game.D, {"epoch": epoch, "stop_at": stop_at}, {}, game.history)
    return IRGANResult(game.best_g.model, game.best_d.model, game.best_g.info, game.best_d.info, game.history, stopped)


def _out_of_patience(game: _Game, config: IRGANConfig, played: int) -> dict | None:
    """After outer epoch ``played``: the record of an early stop (also set on the last history row)
    when ``config.patience`` outer epochs have passed since the kept G's, else None. The count is
    derived from the kept G, which the training state holds, so a resumed game counts on; under
    torch.distributed every process stops when any would."""
    if config.patience is None or game.best_g is None or played < 0:
        return None
    kept = game.best_g.info["epoch"]  # -1: G's start
    if not game.shard.max(int(played - kept >= config.patience)):
        return None
    reason = f"no better {config.select_on} {config.select_metric} for {config.patience} outer epochs"
    stopped = {"epoch": played, "reason": reason}
    if game.history:
        game.history[-1]["stopped"] = stopped
    if game.shard.rank == 0:
        log.info("stopping after outer epoch %d/%d: %s (best G at %s)", played + 1, config.epochs, reason,
                 "the start" if kept < 0 else f"epoch {kept + 1}")
    return stopped


def _end_epoch(game: _Game, config: IRGANConfig, epoch: int, state_path: str | Path | None, seconds: float,
               fingerprint: str | None) -> None:
    """Stop on divergence (the previous epoch's state is kept), else save the state after ``epoch``."""
    game.g_step.gather_owned()  # every process checks, and saves, whole tables
    game.d_step.gather_owned()
    _check_finite(game, epoch, state_path)
    if state_path is not None and game.shard.rank == 0:
        save_train_state(state_path, _state(game, config, epoch + 1, seconds, fingerprint))


def _check_finite(game: _Game, epoch: int, state_path: str | Path | None) -> None:
    """FloatingPointError naming the outer epoch when G or D holds NaN or inf."""
    if not _finite(game.G) or not _finite(game.D):
        raise _diverged(epoch, state_path, "NaN or inf in the parameters")


def _diverged(epoch: int, state_path: str | Path | None, what: str) -> FloatingPointError:
    kept = (f"; the last good state (after outer epoch {epoch - 1}) is kept in {state_path}"
            if state_path and epoch > 0 else "")
    return FloatingPointError(f"IRGAN diverged in outer epoch {epoch}: {what}; start again with lower learning "
                              f"rates{kept}")


def _log_epoch(game: _Game, config: IRGANConfig, epoch: int, stats: dict[str, float], seconds: float,
               bar) -> None:
    """One line per outer epoch: logged at INFO when no progress bar shows (piped output, --quiet);
    in a terminal, printed above the bar (and logged at DEBUG), so the diagnostics show where people watch."""
    if game.shard.rank > 0:
        return
    parts = [f"{name} {stats[key]:.4f}" for key, name in (
        ("d_loss", "D loss"), ("d_acc_real", "D acc real"), ("d_acc_fake", "D acc fake"), ("g_reward", "G reward"),
        ("g_entropy", "G entropy"), ("g_coverage", "G coverage")) if key in stats]
    if game.best_g is not None and game.history:
        metric, kept = config.select_metric, game.best_g.info["epoch"]
        where = "the start" if kept < 0 else f"epoch {kept + 1}"
        parts.append(f"selection {metric} {game.history[-1]['selection'][metric]:.4f} "
                     f"(best G {game.best_g.score:.4f}, at {where})")
    line = f"outer epoch {epoch + 1}/{config.epochs}, {seconds:.1f} s: {', '.join(parts) or 'no steps'}"
    if bar.disable:
        log.info("%s", line)
    else:
        bar.write(line, file=sys.stderr)
        log.debug("%s", line)


def _record(game: _Game, row: dict, metrics: dict[str, float], seconds: float, warned: set[str],
            on_evaluate: Callable[[dict], None] | None) -> None:
    """Offer G for selection and add the history row, warning once per kind of pathology it shows."""
    game.best_g.offer(game.G, metrics, epoch=row["epoch"], g_epoch=row["g_epoch"])
    row.update(selection=metrics, seconds=seconds)
    row["warnings"] = diagnose(row)
    for message in row["warnings"]:
        if message.split(":")[0] not in warned:  # once per kind, not once per G-epoch
            warned.add(message.split(":")[0])
            log.warning("outer epoch %d, G-epoch %d: %s", row["epoch"], row["g_epoch"], message)
    game.history.append(row)
    if on_evaluate is not None and game.shard.rank == 0:
        on_evaluate(row)


def _setup(train: sp.csr_matrix, selection: sp.csr_matrix, config: IRGANConfig, init: nn.Module | None, seed: int,
           device: torch.device, generator: ScorerSpec, discriminator: ScorerSpec) -> _Game:
    """Build the players (G first, then D, from one seeded generator), their updates and the data."""
    n_users, n_items = train.shape
    shard = current()  # under torchrun: this process's users; alone: all of them
    init_rng = torch.Generator().manual_seed(seed)
    G = Generator(build_scorer(generator or config.g_scorer, train, config, init_rng)).to(device)
    D = Discriminator(build_scorer(discriminator or config.d_scorer, train, config, init_rng)).to(device)
    if init is not None:
        _load_scorer(G.scorer, init)
    fast_g = config.fast_path and config.g_estimator != "exact"
    positives = PositiveSet(train, device)
    if config.d_exclude_positives and (positives.counts >= n_items).any():
        raise ValueError("d_exclude_positives: a user has interacted with every item, so no negative exists for D")
    real_users, real_items = positive_pairs(train, device)  # D's real pairs, row-major
    mine = shard.owns(real_users)
    active = torch.nonzero(positives.counts).squeeze(1)  # users with >= 1 positive
    if config.select_metric != "MRR" and int(config.select_metric.split("@")[1]) > n_items:
        raise ValueError(f"select_metric {config.select_metric} needs more than the catalog's {n_items} items")
    game = _Game(G, D, g_update(G.scorer, config.optimizer, config.g_lr, fast_g, shard),
                 d_update(D.scorer, config.optimizer, config.d_lr, config.fast_path, shard),
                 positives, real_users[mine], real_items[mine], active[shard.owns(active)],
                 KeepBest(config.select_metric), KeepBest(config.select_metric),
                 torch.Generator(device).manual_seed(seed + SHARD_SEED_STRIDE * shard.rank), shard)
    if selection is not None:
        game.selection = sharded_evaluation(train, selection, eval_ks(n_items, config.select_metric), shard)
        game.best_g.offer(G, game.selection.over_processes(G, shard), epoch=-1, g_epoch=-1)
        game.best_d.offer(D, game.selection.over_processes(D, shard), epoch=-1)
    return game


def _load_scorer(target: nn.Module, source: nn.Module) -> None:
    """Copy ``source``'s parameters into ``target`` (same kind and sizes), with a one-line error otherwise."""
    try:
        target.load_state_dict(source.state_dict())
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"cannot start G from a {type(source).__name__}: it does not fit G's "
                         f"{type(target).__name__} ({str(err).splitlines()[0][:200]})") from None


def _d_round(game: _Game, config: IRGANConfig, epoch: int, score, bar) -> dict[str, float]:
    """One outer epoch's D-epochs (with G's samples redrawn as ``d_negatives`` says); D's stats."""
    d_stats: dict[str, float] = {}
    for d_ep in range(config.d_epochs):
        if d_ep % config.d_sample_every == 0 and (game.fake_items is None or config.d_negatives == "refresh"):
            game.fake_items = sample_fake(game.G, game.positives, game.active, config.d_temperature,
                                          config.d_exclude_positives, game.rng)
        d_stats = d_epoch(game.d_step, game.real_users, game.real_items, game.fake_items, config, game.rng)
        bar.update()
    if config.d_epochs:
        d_stats.update(d_accuracy(game.D, game.real_users, game.real_items, game.fake_items, game.shard))
        if game.best_d is not None:
            game.best_d.offer(game.D, score(game.D, epoch), epoch=epoch)
    return d_stats


def d_epoch(
    step: DUpdate, users: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, config: IRGANConfig,
    rng: torch.Generator,
) -> dict[str, float]:
    """One pass of D over (user, real item, G's item) triples: real labelled 1, G's labelled 0."""
    shard, n = step.shard, len(users)
    if config.d_batch_size >= shard.max(n):  # one step on every pair: the order does not matter, keep users sorted
        return {"d_loss": _mean(step.triples(users, real, fake, None, config.d_l2), 2 * n, shard)}
    total = 0.0
    # int32 where it fits: the same permutation from the same generator, in half the memory
    index = torch.int32 if n < 2**31 else torch.long
    perm, steps = torch.randperm(n, generator=rng, device=users.device, dtype=index), n_steps(n, config.d_batch_size, shard)
    batches = kernels.sorted_batches(perm, steps) if kernels.enabled(perm) else perm.tensor_split(steps)
    del perm
    for batch in batches:
        total += step.triples(users, real, fake, batch, config.d_l2)
    return {"d_loss": _mean(total, 2 * n, shard)}


def sampled_users(selection: sp.csr_matrix, n: int, seed: int) -> sp.csr_matrix:
    """``selection`` keeping the positives of ``n`` of its users that have any (all, if fewer),
    drawn without replacement by a generator seeded with ``seed``; the other rows emptied, so
    evaluation skips them."""
    users = np.flatnonzero(np.diff(selection.indptr))
    if n >= len(users):
        return selection
    kept = np.zeros(selection.shape[0], dtype=bool)
    kept[np.random.default_rng(seed).choice(users, n, replace=False)] = True
    return keep_rows(selection, kept)


def n_steps(n: int, batch_size: int, shard: Shard = Shard()) -> int:
    """Updates in a pass over n samples in batches of at most batch_size; under torch.distributed,
    the most any process needs, so that all step together (a process may get empty batches)."""
    return shard.max(max(1, math.ceil(n / batch_size)))


def _mean(total: float, count: int, shard: Shard) -> float:
    """total / count over all processes."""
    both = shard.sum(torch.tensor([total, count], dtype=torch.float64))
    return (both[0] / both[1].clamp(min=1)).item()


@torch.no_grad()
def d_accuracy(D: Discriminator, users: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
               shard: Shard = Shard()) -> dict[str, float]:
    """Share of real pairs D scores as real and of G's pairs it scores as fake."""
    return {"d_acc_real": _mean((D.score(users, real) > 0).sum().item(), len(users), shard),
            "d_acc_fake": _mean((D.score(users, fake) < 0).sum().item(), len(users), shard)}


def g_epoch(
    G: Generator, D: Discriminator, step: GUpdate, positives: PositiveSet, users: torch.Tensor,
    config: IRGANConfig, rng: torch.Generator,
) -> dict[str, float]:
    """One policy-gradient pass of G over the users, in batches of ``g_batch_users``.

    For user u: p = softmax(G / g_temperature); draw g_sample_factor |pos_u| items from the
    proposal q = (1 - g_mix) p + g_mix uniform(pos_u); reward each with D, reweight by p / q
    (importance sampling; ``g_estimator`` 'snis' normalises the weights per user) and step along
    sum_k w_k grad log p(i_k). 'exact' steps along the expectation over the whole catalog instead.
    """
    n_items = positives.n_items
    rewards, entropy, sampled = [], 0.0, torch.zeros(n_items, dtype=torch.bool, device=users.device)
    shard = step.shard
    order = users[torch.randperm(len(users), generator=rng, device=users.device)]
    fused = config.g_estimator != "exact" and isinstance(step, FastGUpdate) and step.fuses(D)
    for batch in order.tensor_split(n_steps(len(users), config.g_batch_users, shard)):
        if config.g_estimator == "exact":
            with torch.no_grad():
                reward = D.reward_users(batch, config.reward)
            row_entropy, expected_reward = step.exact(batch, config.g_temperature, config.g_l2, reward)
            rewards.append(expected_reward)
        elif fused:
            row_entropy, reward, items = step.fused(batch, D, positives, config, rng)
            rewards.append(reward)
            sampled[items] = True
        else:
            policy, rows, items, reward, weights = _g_draws(step, D, batch, positives, config, rng)
            row_entropy = step(batch, config.g_temperature, config.g_l2, rows, items, weights, policy)
            rewards.append(reward)
            sampled[items] = True
        entropy += row_entropy.sum().item()
    rewards = torch.cat(rewards)
    entropy = _mean(entropy, len(users), shard)
    stats = {"g_reward": _mean(rewards.sum().item(), len(rewards), shard), "g_entropy": entropy,
             "g_entropy_share": entropy / math.log(n_items) if n_items > 1 else 1.0}
    if config.g_estimator != "exact":
        stats["g_coverage"] = (shard.sum(sampled.float()) > 0).float().mean().item()
    return stats


@torch.no_grad()
def _g_draws(step: GUpdate, D: Discriminator, batch: torch.Tensor, positives: PositiveSet, config: IRGANConfig,
             rng: torch.Generator) -> tuple:
    """G's softmax for ``batch`` (a ``Policy``), its importance-sampled draws (rows, items), D's
    rewards for them and their policy-gradient weights."""
    policy = step.policy(batch, config.g_temperature)
    n_pos = positives.counts.index_select(0, batch)
    counts = config.g_sample_factor * n_pos
    rows, items = sample_mixture(policy, positives, batch, counts, config.g_mix, rng)
    drawn_users = batch.index_select(0, rows)
    p_items = policy.at(rows, items)
    is_pos = positives.contains(drawn_users, items)
    proposal = (1 - config.g_mix) * p_items + config.g_mix * is_pos / n_pos.index_select(0, rows)
    reward = D.reward(drawn_users, items, config.reward)
    weights = sample_weights(config.g_estimator, reward, p_items, proposal, rows, counts)
    return policy, rows, items, reward, weights


def _state(game: _Game, config: IRGANConfig, epoch: int, seconds: float, fingerprint: str) -> dict:
    """The whole training state after ``epoch`` outer epochs, for ``save_train_state``."""
    return {
        "epoch": epoch, "seconds": seconds, "config": dataclasses.asdict(config), "fingerprint": fingerprint,
        "generator": game.G.state_dict(), "discriminator": game.D.state_dict(),
        "g_opt": game.g_step.state_dict(), "d_opt": game.d_step.state_dict(), "rng": game.rng.get_state(),
        "fake_items": game.fake_items, "history": game.history,
        "best_generator": {"state": game.best_g.model.state_dict(), "score": game.best_g.score, "info": game.best_g.info},
        "best_discriminator": {"state": game.best_d.model.state_dict(), "score": game.best_d.score,
                               "info": game.best_d.info},
    }


def _restore_checked(game: _Game, saved: dict, state_path: str | Path, n_items: int) -> None:
    """``_restore``, a state that does not fit the game reported as one ValueError line."""
    fake = saved["fake_items"]
    if fake is not None and (fake.shape != game.real_items.shape or fake.dtype != game.real_items.dtype
                             or bool(((fake < 0) | (fake >= n_items)).any())):
        raise ValueError(f"{state_path} is a damaged irgan training state: its fake_items do not fit the data")
    try:
        _restore(game, saved)
    except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as err:
        first = (str(err).splitlines() or [""])[0]
        raise ValueError(f"{state_path} is a damaged irgan training state: {type(err).__name__}: {first}") from None


def _restore(game: _Game, saved: dict) -> None:
    """Put a saved training state (``_state``) back into ``game``."""
    game.G.load_state_dict(saved["generator"])
    game.D.load_state_dict(saved["discriminator"])
    game.g_step.load_state_dict(saved["g_opt"])
    game.d_step.load_state_dict(saved["d_opt"])
    for best, key in ((game.best_g, "best_generator"), (game.best_d, "best_discriminator")):
        best.model.load_state_dict(saved[key]["state"])
        best.score, best.info = saved[key]["score"], saved[key]["info"]
    game.rng.set_state(saved["rng"])
    game.fake_items, game.history = saved["fake_items"], saved["history"]
    game.first_epoch, game.elapsed = saved["epoch"], saved["seconds"]


def _finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())
