"""IRGAN's adversarial training loop for item recommendation (Wang et al., SIGIR 2017).

Read top to bottom: ``fit_irgan`` alternates ``d_epoch`` (D learns to tell real positives from
G's samples) and ``g_epoch`` (G moves toward items D scores as real, by policy gradient), and
keeps the G and D that score best on the selection set. Every step is batched over users.
"""
from __future__ import annotations

import copy
import math
import dataclasses
import logging
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from irgan.baselines.bpr import fit_bpr
from irgan.checkpoint import data_fingerprint, load_train_state, save_train_state
from irgan.config import IRGANConfig
from irgan.device import resolve_device
from irgan.distributed import Shard, current
from irgan.losses import expected_items, pointwise_loss, policy_gradient_loss
from irgan.metrics import evaluate, metric_names
from irgan.model_files import load_model_file
from irgan.models import Discriminator, Generator, MatrixFactorization, sample_rows
from irgan.optim import RowOptimizer
from irgan.sampling import PositiveSet, positive_pairs

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


def eval_ks(n_items: int) -> tuple[int, ...]:
    """The cut-offs irgan reports, (3, 5, 10), less those longer than the catalog."""
    return tuple(k for k in (3, 5, 10) if k <= n_items) or (n_items,)


class KeepBest:
    """Keeps a copy of the model with the highest selection metric seen so far."""

    def __init__(self, metric: str) -> None:
        self.metric, self.score, self.model, self.info = metric, -np.inf, None, {}

    def offer(self, model: torch.nn.Module, metrics: dict[str, float], **info) -> None:
        if metrics[self.metric] > self.score:
            self.score, self.model = metrics[self.metric], copy.deepcopy(model)
            self.info = {**info, "metrics": metrics}


def initial_generator(
    config: IRGANConfig,
    train: sp.csr_matrix,
    user_ids: np.ndarray | None = None,
    item_ids: np.ndarray | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    show_progress: bool = False,
) -> MatrixFactorization | None:
    """G's starting point as ``config.init`` says: pretrained here, read from a file, or None (random)."""
    if config.init == "random":
        return None
    if config.init in ("dns", "bpr"):
        negatives = "dns" if config.init == "dns" else "uniform"
        pretrain = dataclasses.replace(config.pretrain, negatives=negatives, dim=config.dim)
        log.info("pretraining G with %s-BPR for %d epochs", config.init.upper(), pretrain.epochs)
        return fit_bpr(train, pretrain, seed=seed, device=device, show_progress=show_progress)
    if user_ids is None or item_ids is None:
        raise ValueError("loading G from a model file needs the data's user_ids and item_ids")
    return load_model_file(config.init, user_ids, item_ids).to(device)


def fit_irgan(
    train: sp.csr_matrix,
    selection: sp.csr_matrix,
    config: IRGANConfig = IRGANConfig(),
    init: MatrixFactorization | None = None,
    seed: int = 0,
    device: torch.device | str = "auto",
    show_progress: bool = False,
    on_evaluate: Callable[[dict], None] | None = None,
    state_path: str | Path | None = None,
) -> IRGANResult:
    """Play IRGAN's game on ``train`` (csr (n_users, n_items) of positives) and keep the G and D
    with the best ``config.select_metric`` on ``selection`` (same shape; validation or test).

    ``init`` is G's starting model (see ``initial_generator``); None starts G at random.
    With ``state_path``, the whole training state is written there (atomically) after every
    outer epoch, and a run that finds a state file there resumes from it: on CPU the result is
    bitwise the one of an uninterrupted run.
    """
    device = resolve_device(device)
    train = sp.csr_matrix(train)
    n_users, n_items = train.shape
    if train.nnz == 0:
        raise ValueError("cannot train IRGAN on a matrix with no positives")
    shard = current()  # under torchrun: this process's users; alone: all of them
    rng = torch.Generator(device).manual_seed(seed + SHARD_SEED_STRIDE * shard.rank)
    init_rng = torch.Generator().manual_seed(seed)
    G = Generator(n_users, n_items, config.dim, config.init_scale, generator=init_rng).to(device)
    D = Discriminator(n_users, n_items, config.dim, config.init_scale, generator=init_rng).to(device)
    if init is not None:
        G.copy_from(init.to(device))
    g_opt = RowOptimizer(config.optimizer, list(G.parameters()), config.g_lr, shard)
    d_opt = RowOptimizer(config.optimizer, list(D.parameters()), config.d_lr, shard)

    positives = PositiveSet(train, device)
    if config.d_exclude_positives and (positives.counts >= n_items).any():
        raise ValueError("d_exclude_positives: a user has interacted with every item, so no negative exists for D")
    real_users, real_items = positive_pairs(train, device)  # D's real pairs, row-major
    mine = shard.owns(real_users)
    real_users, real_items = real_users[mine], real_items[mine]
    active = torch.nonzero(positives.counts).squeeze(1)  # users with >= 1 positive
    active = active[shard.owns(active)]
    best_g, best_d = KeepBest(config.select_metric), KeepBest(config.select_metric)
    ks = eval_ks(n_items)
    if config.select_metric != "MRR" and int(config.select_metric.split("@")[1]) not in ks:
        raise ValueError(f"select_metric {config.select_metric} needs more than the catalog's {n_items} items")
    score = lambda model: evaluate_sharded(model, train, selection, ks, shard)  # noqa: E731
    best_g.offer(G, score(G), epoch=-1, g_epoch=-1)
    best_d.offer(D, score(D), epoch=-1)
    history, fake_items, first_epoch, elapsed = [], None, 0, 0.0
    fingerprint = data_fingerprint(train, selection)
    if state_path is not None and Path(state_path).exists():
        saved = load_train_state(state_path, config, fingerprint)
        for model, key in ((G, "generator"), (D, "discriminator")):
            model.load_state_dict(saved[key])
        g_opt.load_state_dict(saved["g_opt"])
        d_opt.load_state_dict(saved["d_opt"])
        for best, key in ((best_g, "best_generator"), (best_d, "best_discriminator")):
            best.model.load_state_dict(saved[key]["state"])
            best.score, best.info = saved[key]["score"], saved[key]["info"]
        rng.set_state(saved["rng"])
        fake_items, history = saved["fake_items"], saved["history"]
        first_epoch, elapsed = saved["epoch"], saved["seconds"]
        log.info("resumed IRGAN from %s at outer epoch %d", state_path, first_epoch)
    start = time.perf_counter() - elapsed

    steps = config.d_epochs + config.g_epochs
    bar = tqdm(total=config.epochs * steps, initial=first_epoch * steps, desc="IRGAN",
               disable=not show_progress or shard.rank > 0)
    warned: set[str] = set()
    for epoch in range(first_epoch, config.epochs):
        d_stats: dict[str, float] = {}
        for d_ep in range(config.d_epochs):
            if d_ep % config.d_sample_every == 0 and (fake_items is None or config.d_negatives == "refresh"):
                fake_items = sample_fake(G, positives, active, config, rng)
            d_stats = d_epoch(D, d_opt, real_users, real_items, fake_items, config, rng)
            bar.update()
        if config.d_epochs:
            d_stats.update(d_accuracy(D, real_users, real_items, fake_items, shard))
            best_d.offer(D, score(D), epoch=epoch)

        for g_ep in range(config.g_epochs):
            g_stats = g_epoch(G, D, g_opt, positives, active, config, rng)
            bar.update()
            if (g_ep + 1) % config.eval_every == 0 or g_ep == config.g_epochs - 1:
                metrics = score(G)
                best_g.offer(G, metrics, epoch=epoch, g_epoch=g_ep)
                row = {"epoch": epoch, "g_epoch": g_ep, **d_stats, **g_stats,
                       "selection": metrics, "seconds": time.perf_counter() - start}
                row["warnings"] = diagnose(row)
                for message in row["warnings"]:
                    if message.split(":")[0] not in warned:  # once per kind, not once per G-epoch
                        warned.add(message.split(":")[0])
                        log.warning("outer epoch %d, G-epoch %d: %s", epoch, g_ep, message)
                history.append(row)
                if on_evaluate is not None and shard.rank == 0:
                    on_evaluate(row)
                bar.set_postfix({config.select_metric: f"{metrics[config.select_metric]:.4f}"})
        if not _finite(G) or not _finite(D):
            raise FloatingPointError(
                f"IRGAN diverged in outer epoch {epoch}: NaN or inf in the embeddings; lower the learning "
                "rates. The last good state (previous epoch) is kept" + (f" in {state_path}" if state_path else ""))
        if state_path is not None and shard.rank == 0:
            save_train_state(state_path, {
                "epoch": epoch + 1, "seconds": time.perf_counter() - start, "config": dataclasses.asdict(config),
                "fingerprint": fingerprint, "generator": G.state_dict(), "discriminator": D.state_dict(),
                "g_opt": g_opt.state_dict(), "d_opt": d_opt.state_dict(), "rng": rng.get_state(),
                "fake_items": fake_items, "history": history,
                "best_generator": {"state": best_g.model.state_dict(), "score": best_g.score, "info": best_g.info},
                "best_discriminator": {"state": best_d.model.state_dict(), "score": best_d.score, "info": best_d.info},
            })
    bar.close()
    return IRGANResult(best_g.model, best_d.model, best_g.info, best_d.info, history)


@torch.no_grad()
def sample_fake(
    G: Generator, positives: PositiveSet, users: torch.Tensor, config: IRGANConfig, rng: torch.Generator,
    batch_users: int = 1024,
) -> torch.Tensor:
    """G's proposals for D: |pos_u| items per user from softmax(G / d_temperature), aligned with
    the row-major order of the positive pairs."""
    if config.d_exclude_positives and (positives.counts[users] >= G.n_items).any():
        raise ValueError("d_exclude_positives: a user has interacted with every item, so no negative exists for D")
    out = []
    for batch in users.split(batch_users):
        exclude = positives.mask(batch) if config.d_exclude_positives else None
        out.append(G.sample(batch, positives.counts[batch], config.d_temperature, exclude, rng))
    return torch.cat(out)


def d_epoch(
    D: Discriminator, optimizer: RowOptimizer, users: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
    config: IRGANConfig, rng: torch.Generator,
) -> dict[str, float]:
    """One pass of D over (user, real item, G's item) triples: real labelled 1, G's labelled 0."""
    shard, n = optimizer.shard, len(users)
    if config.d_batch_size >= shard.max(n):  # one step on every pair: the order does not matter, keep users sorted
        labels = torch.tensor([1.0, 0.0], device=users.device).repeat(n)
        loss, grads = pointwise_loss(D, users.repeat_interleave(2), torch.stack([real, fake], 1).view(-1), labels,
                                     config.d_l2, _sgd_lr(optimizer), shard)
        optimizer.step(grads)
        return {"d_loss": _mean(loss, 2 * n, shard)}
    total = 0.0
    for batch in torch.randperm(n, generator=rng, device=users.device).tensor_split(n_steps(n, config.d_batch_size, shard)):
        u = users[batch].repeat(2)
        items = torch.cat([real[batch], fake[batch]])
        labels = torch.cat([torch.ones(len(batch), device=u.device), torch.zeros(len(batch), device=u.device)])
        loss, grads = pointwise_loss(D, u, items, labels, config.d_l2, _sgd_lr(optimizer), shard)
        optimizer.step(grads)
        total += loss
    return {"d_loss": _mean(total, 2 * n, shard)}


def _sgd_lr(optimizer: RowOptimizer) -> float | None:
    """The learning rate, for losses that adapt their L2 pull to plain SGD; None for Adam."""
    return optimizer.lr if optimizer.name == "sgd" else None


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
    G: Generator, D: Discriminator, optimizer: RowOptimizer, positives: PositiveSet, users: torch.Tensor,
    config: IRGANConfig, rng: torch.Generator,
) -> dict[str, float]:
    """One policy-gradient pass of G over the users, in batches of ``g_batch_users``.

    For user u: p = softmax(G / g_temperature); draw g_sample_factor |pos_u| items from the
    proposal q = (1 - g_mix) p + g_mix uniform(pos_u); reward each with D, reweight by p / q
    (importance sampling) and step along mean_k w_k grad log p(i_k).
    """
    rewards, entropy, sampled = [], 0.0, torch.zeros(G.n_items, dtype=torch.bool, device=users.device)
    shard = optimizer.shard
    order = users[torch.randperm(len(users), generator=rng, device=users.device)]
    for batch in order.tensor_split(n_steps(len(users), config.g_batch_users, shard)):
        with torch.no_grad():
            logits = G.score_users(batch)
            if config.g_temperature != 1:
                logits /= config.g_temperature
            p = torch.softmax(logits, 1)
            n_pos = positives.counts.index_select(0, batch)
            counts = config.g_sample_factor * n_pos
            rows, items = sample_mixture(p, positives, batch, counts, config.g_mix, rng)
            at = rows * G.n_items + items  # the draws' positions in the flattened batch
            p_items = p.view(-1).index_select(0, at)
            is_pos = positives.mask(batch).view(-1).index_select(0, at)
            proposal = (1 - config.g_mix) * p_items + config.g_mix * is_pos / n_pos.index_select(0, rows)
            reward = D.reward(batch.index_select(0, rows), items, config.reward)
            weights = reward * p_items / proposal / counts.index_select(0, rows)
        expected = expected_items(G, p)
        _, grads = policy_gradient_loss(G, batch, rows, items, weights, config.g_temperature, p, expected)
        if config.g_l2 > 0:
            grads.append((G.user_emb, batch, config.g_l2 * G.user_emb[batch].detach()))
        entropy += _entropy(G, batch, logits, p, expected, config.g_temperature).sum().item()
        optimizer.step(grads)
        rewards.append(reward)
        sampled[items] = True
    rewards = torch.cat(rewards)
    entropy = _mean(entropy, len(users), shard)
    return {"g_reward": _mean(rewards.sum().item(), len(rewards), shard), "g_entropy": entropy,
            "g_entropy_share": entropy / math.log(G.n_items) if G.n_items > 1 else 1.0,
            "g_coverage": (shard.sum(sampled.float()) > 0).float().mean().item()}


def _entropy(G: Generator, users: torch.Tensor, logits: torch.Tensor, p: torch.Tensor, expected: torch.Tensor,
             temperature: float) -> torch.Tensor:
    """Entropy of each row of p = softmax(logits): log-sum-exp minus the expected logit, which is
    the user's vector dotted with the expected item vector; the log-sum-exp is read off the most
    probable item (p >= 1/n there, so its log is safe)."""
    log_sum_exp = logits.amax(1) - p.amax(1).log()
    return log_sum_exp - ((G.user_emb.index_select(0, users) * expected[:, :-1]).sum(1) + expected[:, -1]) / temperature


def evaluate_sharded(model: torch.nn.Module, train: sp.csr_matrix, test: sp.csr_matrix, ks: tuple[int, ...],
                     shard: Shard = Shard()) -> dict[str, float]:
    """``evaluate`` over all users, each process ranking only its own users' items."""
    if not shard.active:
        return evaluate(model, train, test, ks)
    mine = shard.rows(test)
    names = metric_names(ks)
    if mine.nnz:
        _, per_user = evaluate(model, train, mine, ks, per_user=True)
        sums = per_user[names].to_numpy().sum(0).tolist() + [len(per_user)]
    else:
        sums = [0.0] * (len(names) + 1)
    sums = shard.sum(torch.tensor(sums, dtype=torch.float64))
    return dict(zip(names, (sums[:-1] / sums[-1]).tolist()))


COLLAPSE_COVERAGE = 0.05  # G sampling under 5% of the catalog in a G-epoch counts as collapse
COLLAPSE_ENTROPY = 0.1  # G's softmax entropy under 10% of the uniform's log(n_items): mass on a few items
PINNED_ACCURACY = 0.99  # D right (or wrong) on more than 99% of pairs has stopped giving G a signal


def diagnose(row: dict) -> list[str]:
    """The GAN pathologies visible in one history row: G's mode collapse, D's accuracy pinned."""
    found = []
    if row.get("g_entropy_share", 1.0) < COLLAPSE_ENTROPY:
        found.append(f"G's softmax collapsed onto a few items per user: entropy {row['g_entropy']:.2f} nats, "
                     f"{row['g_entropy_share']:.0%} of a uniform's")
    if row.get("g_coverage", 1.0) < COLLAPSE_COVERAGE:
        found.append(f"G collapsed: it sampled only {row['g_coverage']:.1%} of the catalog in a G-epoch")
    for side in ("real", "fake"):
        acc = row.get(f"d_acc_{side}")
        if acc is not None and (acc > PINNED_ACCURACY or acc < 1 - PINNED_ACCURACY):
            found.append(f"D's accuracy on {side} pairs is pinned: {acc:.3f}")
    return found


@torch.no_grad()
def sample_mixture(
    p: torch.Tensor, positives: PositiveSet, users: torch.Tensor, counts: torch.Tensor, mix: float,
    rng: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``counts[r]`` draws for ``users[r]`` from (1 - mix) p[r] + mix uniform(positives of users[r]).

    Each draw picks its component by a coin flip, so the dense mixture is never built. Returns
    (rows, items), both (counts.sum(),), grouped by row in order.
    """
    rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
    items = sample_rows(p, counts, rng)
    if mix > 0:  # drawing both components for every draw is cheaper than splitting the draws
        from_positives = torch.rand(rows.shape, generator=rng, device=rows.device) < mix
        items = torch.where(from_positives, positives.random_positives(users.index_select(0, rows), rng), items)
    return rows, items


def _finite(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())
