"""Seconds per D-epoch, G-epoch and full evaluation, and peak memory, from ml-100k to Netflix size.

Each size runs in a fresh subprocess (so its peak memory is its own): ml-100k (split u1, from
``--data-dir``) and synthetic catalogs (``irgan.data.synthetic``, 20% of each user's pairs held
out for evaluation) the size of ml-20m (138,000 x 27,000, 10M pairs) and Netflix (480,189 x
17,770, 56M pairs). Models are dim 5, the paper's; steps use IRGANConfig's defaults. In the
same run, a straightforward per-user implementation of the same steps (one user's softmax,
``torch.multinomial`` draws, D step and ranking at a time, as the authors' code does) is timed on
a sample of users and scaled to all users. The arithmetic bound of each step (FLOPs and bytes
against the peak of this device, both measured here) says how far from the hardware a step is.

    python -m benchmarks.bench_train --data-dir ../shared/data                 # all sizes
    python -m benchmarks.bench_train --sizes ml-100k --data-dir ../shared/data  # one
    python -m benchmarks.bench_train --sizes tiny --results /tmp/R.md           # a seconds-long smoke run

``tiny`` (not in the default sizes) is a synthetic 200 x 300 catalog whose device peaks are probed
with small arrays and whose pretraining is timed over 2 epochs: it checks that the script runs,
its figures mean nothing.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `irgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import RESULTS, machine, write_section  # noqa: E402
from irgan.adversarial.irgan.game import d_epoch, g_epoch  # noqa: E402
from irgan.adversarial.irgan.players import Discriminator, Generator  # noqa: E402
from irgan.config import BPRConfig, IRGANConfig  # noqa: E402
from irgan.data import load_dataset, synthetic, validation_split  # noqa: E402
from irgan.device import keep_freed_memory, resolve_device  # noqa: E402
from irgan.metrics import evaluate  # noqa: E402
from irgan.models import MatrixFactorization  # noqa: E402
from irgan.training.bpr import fit_bpr  # noqa: E402
from irgan.training.fast_mf import RowOptimizer, pointwise_loss, policy_gradient_loss  # noqa: E402
from irgan.training.sampling import PositiveSet, positive_pairs, sample_fake  # noqa: E402
from irgan.training.updates import d_update, g_update  # noqa: E402

SIZES = {"ml-100k": None, "ml-20m": (138_000, 27_000, 10_000_000), "netflix": (480_189, 17_770, 56_000_000),
         "tiny": (200, 300, 4_000)}
DEFAULT_SIZES = ("ml-100k", "ml-20m", "netflix")
DIM = 5
PRETRAIN_EPOCHS = {"ml-100k": BPRConfig().epochs, "tiny": 2}  # the sizes whose pretraining is timed
PEAK_PROBES = {"tiny": (256, 2**20)}  # (matmul side, copied floats) of device_peak; others (2048, 2**26)


def load(size: str, data_dir: str | None):
    """(train, test) csr matrices of positives for a size."""
    if SIZES[size] is None:
        split = load_dataset(size, data_dir=data_dir)
        return split.train.matrix, split.test.matrix
    train, test = validation_split(synthetic(*SIZES[size], seed=0), 0.2, seed=0)
    return train.matrix, test.matrix


def timed(step, repeats: int) -> float:
    """Median wall seconds of ``step()`` over ``repeats`` calls."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def device_peak(device: torch.device, side: int = 2048, floats: int = 2**26) -> tuple[float, float]:
    """Measured peak of this device: (FLOP/s of a large float32 matmul, bytes/s of a large copy)."""
    a = torch.randn(side, side, device=device)
    flops = 2 * side**3 / timed(lambda: _sync(a @ a, device), 5)
    src, dst = torch.empty(floats, device=device), torch.empty(floats, device=device)
    bandwidth = 2 * src.numel() * 4 / timed(lambda: _sync(dst.copy_(src), device), 5)
    return flops, bandwidth


def _sync(value, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    return value


def per_user_g_epoch(G: Generator, D: Discriminator, optimizer: RowOptimizer, positives: PositiveSet,
                     users: torch.Tensor, config: IRGANConfig, rng: torch.Generator) -> None:
    """The G step one user at a time, as the authors' code does it."""
    for u in users.tolist():
        user = torch.tensor([u], device=users.device)
        p = torch.softmax(G.score_users(user)[0] / config.g_temperature, 0)
        liked = positives.mask(user)[0]
        n = int(liked.sum())
        proposal = (1 - config.g_mix) * p + config.g_mix * liked / n
        items = torch.multinomial(proposal, 2 * n, replacement=True, generator=rng)
        reward = D.reward(user.expand(2 * n), items, config.reward)
        weights = reward * p[items] / proposal[items] / (2 * n)
        rows = torch.zeros(2 * n, dtype=torch.long, device=users.device)
        optimizer.step(policy_gradient_loss(G.scorer, user, rows, items, weights, config.g_temperature, p=p[None])[1])


def per_user_d_epoch(D: Discriminator, optimizer: RowOptimizer, pair_users: torch.Tensor, real: torch.Tensor,
                     fake: torch.Tensor, users: torch.Tensor, config: IRGANConfig) -> None:
    """The D step one user's pairs at a time."""
    starts = torch.searchsorted(pair_users, users)
    ends = torch.searchsorted(pair_users, users, right=True)
    for s, e in zip(starts.tolist(), ends.tolist()):
        u = pair_users[s:e].repeat(2)
        labels = torch.cat([torch.ones(e - s, device=u.device), torch.zeros(e - s, device=u.device)])
        items = torch.cat([real[s:e], fake[s:e]])
        optimizer.step(pointwise_loss(D.scorer, u, items, labels, config.d_l2, optimizer.lr)[1])


def per_user_evaluate(model: torch.nn.Module, train, test, users: np.ndarray, k: int = 10) -> float:
    """Mean P@k ranking one user at a time."""
    hits = []
    for u in users.tolist():
        scores = model.score_users(torch.tensor([u], device=next(model.parameters()).device))[0]
        scores[torch.as_tensor(train.indices[train.indptr[u]:train.indptr[u + 1]], device=scores.device)] = -torch.inf
        top = scores.topk(k).indices.cpu().numpy()
        hits.append(np.isin(top, test.indices[test.indptr[u]:test.indptr[u + 1]]).sum() / k)
    return float(np.mean(hits))


@torch.no_grad()
def measure(size: str, data_dir: str | None, device: torch.device, sample: int) -> dict:
    """All figures of one size (run in its own process)."""
    keep_freed_memory()
    start = time.perf_counter()
    train, test = load(size, data_dir)
    n_users, n_items = train.shape
    load_s = time.perf_counter() - start
    config = IRGANConfig()
    gen = torch.Generator().manual_seed(0)
    G = Generator(MatrixFactorization(n_users, n_items, DIM, config.init_scale, generator=gen)).to(device)
    D = Discriminator(MatrixFactorization(n_users, n_items, DIM, config.init_scale, generator=gen)).to(device)
    # the game's updates (the MF fast path with IRGANConfig's defaults); the per-user steps share their optimizers
    g_step = g_update(G.scorer, config.optimizer, config.g_lr, config.fast_path and config.g_estimator != "exact")
    d_step = d_update(D.scorer, config.optimizer, config.d_lr, config.fast_path)
    g_opt, d_opt = g_step.optimizer, d_step.optimizer
    positives = PositiveSet(train, device)
    pair_users, real = positive_pairs(train, device)
    active = torch.nonzero(positives.counts).squeeze(1)
    rng = torch.Generator(device).manual_seed(0)
    repeats = 5 if n_users * n_items < 10**8 else 1
    sync = lambda f: (lambda: _sync(f(), device))  # noqa: E731

    def draw() -> torch.Tensor:  # G's samples for D, as the game draws them
        return sample_fake(G, positives, active, config.d_temperature, config.d_exclude_positives, rng)
    fake = draw()
    out = {"size": size, "n_users": n_users, "n_items": n_items, "train": int(train.nnz), "test": int(test.nnz),
           "load_s": load_s, "device": str(device), "data_dir": data_dir, "threads": torch.get_num_threads()}
    out["fake_s"] = timed(sync(draw), repeats)
    out["d_epoch_s"] = timed(sync(lambda: d_epoch(d_step, pair_users, real, fake, config, rng)), repeats)
    out["g_epoch_s"] = timed(sync(lambda: g_epoch(G, D, g_step, positives, active, config, rng)), repeats)
    out["eval_s"] = timed(lambda: evaluate(G, train, test, (3, 5, 10), device=device), repeats)
    out["eval_users"] = int((np.diff(test.indptr) > 0).sum())
    # the training steps' own peak, before the per-user timings and the device probes below
    out["peak_rss_steps_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if size in PRETRAIN_EPOCHS:  # the default CLI run also pretrains G: time that too
        out["pretrain_epochs"] = PRETRAIN_EPOCHS[size]
        pretrain = BPRConfig(epochs=PRETRAIN_EPOCHS[size])
        out["pretrain_s"] = timed(lambda: fit_bpr(train, pretrain, seed=0, device=device), 1)

    # the same steps one user at a time, on a sample of users, scaled to all of them
    picked = active[torch.randperm(len(active), generator=torch.Generator().manual_seed(1))[:sample].to(device)]
    picked = picked.sort().values
    scale = len(active) / len(picked)
    out["per_user_sample"] = len(picked)
    out["per_user_g_epoch_s"] = scale * timed(sync(lambda: per_user_g_epoch(G, D, g_opt, positives, picked, config, rng)), 1)
    out["per_user_d_epoch_s"] = scale * timed(sync(lambda: per_user_d_epoch(D, d_opt, pair_users, real, fake, picked, config)), 1)
    tested = np.flatnonzero(np.diff(test.indptr))
    tested = np.sort(np.random.default_rng(1).permutation(tested)[:sample])
    out["per_user_eval_s"] = len(np.flatnonzero(np.diff(test.indptr))) / len(tested) * timed(
        lambda: per_user_evaluate(G, train, test, tested), 1)

    cells, n_eval, samples = n_users * n_items, out["eval_users"] * n_items, 2 * int(train.nnz)
    flops, bandwidth = device_peak(device, *PEAK_PROBES.get(size, (2048, 2**26)))
    # G: three products with the users x items matrix; bytes: write scores, softmax read+write,
    # cumsum read+write, two reads for the products (float32). Eval: one product, write + mask +
    # top-k read. D: each of the 2 x nnz samples reads and writes a user and an item row (dim + 1).
    work = {"g": (6 * cells * (DIM + 1), 28 * cells), "eval": (2 * n_eval * (DIM + 1), 12 * n_eval),
            "d": (10 * samples * (DIM + 1), 4 * samples * 4 * (DIM + 1))}
    out["peak_gflops"], out["peak_gbps"] = flops / 1e9, bandwidth / 1e9
    for step, (f, b) in work.items():
        out[f"{step}_bound_s"] = max(f / flops, b / bandwidth)
    out["outer_epoch_s"] = (out["fake_s"] + config.d_epochs * out["d_epoch_s"]
                            + config.g_epochs * (out["g_epoch_s"] + out["eval_s"]))
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if device.type == "cuda":
        out["peak_cuda_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def report(rows: list[dict], command: str) -> str:
    lines = [
        f"## Training steps by catalog size\n\n`{command}` on {machine()}.\n",
        "Seconds of one step on all users (median of 5 at ml-100k, 1 above). Per-user: the same "
        "step one user at a time, timed on a sample and scaled. Bound: max(FLOPs / peak FLOP/s, "
        "bytes / peak bandwidth), both peaks measured in the run. Outer epoch: the paper's "
        "protocol, 100 D-epochs + 50 x (G-epoch + evaluation), from these figures.\n",
        "| size | users x items | train pairs | D-epoch s | per-user | bound | G-epoch s | per-user | bound "
        "| eval s | per-user | bound | outer epoch s | peak RSS GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['n_users']:,} x {r['n_items']:,} | {r['train']:,} "
            f"| {r['d_epoch_s']:.3g} | {r['per_user_d_epoch_s']:.3g} | {r['d_bound_s']:.2g} "
            f"| {r['g_epoch_s']:.3g} | {r['per_user_g_epoch_s']:.3g} | {r['g_bound_s']:.2g} "
            f"| {r['eval_s']:.3g} | {r['per_user_eval_s']:.3g} | {r['eval_bound_s']:.2g} "
            f"| {r['outer_epoch_s']:,.0f} | {r['peak_rss_gib']:.2f} |")
    lines.append("")
    lines.append("Speed-up over the per-user implementation (same run): " + "; ".join(
        f"{r['size']}: D {r['per_user_d_epoch_s'] / r['d_epoch_s']:.0f}x, G {r['per_user_g_epoch_s'] / r['g_epoch_s']:.0f}x, "
        f"eval {r['per_user_eval_s'] / r['eval_s']:.0f}x" for r in rows) + ".")
    lines.append("Peak RSS after the steps, before the per-user timings and the device probes: " + "; ".join(
        f"{r['size']} {r['peak_rss_steps_gib']:.2f} GiB" for r in rows if "peak_rss_steps_gib" in r) + ".")
    r = rows[0]
    lines.append(f"Device peaks measured: {r['peak_gflops']:.0f} GFLOP/s (float32 matmul), {r['peak_gbps']:.1f} GB/s (copy).")
    for r in rows:
        epochs = r.get("pretrain_epochs", BPRConfig().epochs)  # rows saved before it was recorded: the default
        if "pretrain_s" in r and epochs == BPRConfig().epochs:
            lines.append(f"{r['size']}: DNS pretraining ({epochs} epochs) {r['pretrain_s']:.1f} s, so the default "
                         f"`python -m irgan.train` run is about {r['pretrain_s'] + 15 * r['outer_epoch_s']:.0f} s "
                         f"(pretraining + 15 outer epochs) at {r['threads']} thread(s).")
        elif "pretrain_s" in r:
            lines.append(f"{r['size']}: DNS pretraining ({epochs} epochs) {r['pretrain_s']:.1f} s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure the sizes (or report saved rows), print the rows and the report, write its section."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(DEFAULT_SIZES), help=f"comma list of {', '.join(SIZES)}")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--sample", type=int, default=200, help="users the per-user implementation is timed on")
    parser.add_argument("--one", metavar="SIZE", choices=list(SIZES),
                        help="measure one size in this process and print its JSON row")
    parser.add_argument("--rows", nargs="+", metavar="JSON", help="report rows saved from --one runs instead of measuring")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the markdown file whose section is written")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    if args.one:
        row = measure(args.one, args.data_dir, device, args.sample)
        print(json.dumps(row))
        return [row]
    command = "python -m benchmarks.bench_train " + " ".join(argv)
    if args.rows:
        rows = [json.loads(Path(f).read_text().strip().splitlines()[-1]) for f in args.rows]
        command = "; ".join(f"python -m benchmarks.bench_train --one {r['size']} --threads {r['threads']}"
                            + (f" --data-dir {r['data_dir']}" if r.get("data_dir") else "") + f" > {f}"
                            for r, f in zip(rows, args.rows)) + f"; {command}"
        _write(rows, command, args.results)
        return rows
    rows = []
    for size in args.sizes.split(","):
        if size not in SIZES:
            parser.error(f"unknown size {size!r}: choose from {list(SIZES)}")
        cmd = [sys.executable, "-m", "benchmarks.bench_train", "--one", size, "--device", str(device),
               "--sample", str(args.sample), "--threads", str(args.threads)] + (["--data-dir", args.data_dir] if args.data_dir else [])
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if done.returncode:
            sys.exit(f"{size} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    _write(rows, command, args.results)
    return rows


def _write(rows: list[dict], command: str, path: Path = RESULTS) -> None:
    text = report(rows, command)
    print(text)
    write_section("bench_train_" + rows[0]["device"].split(":")[0], text, path)


if __name__ == "__main__":
    main()
