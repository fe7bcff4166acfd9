"""Seconds of one D-epoch and one G-epoch in one process against several (gloo, one thread each),
and the bytes each process all-reduces per epoch.

Each process builds the game as ``fit_irgan`` does under torchrun (``_setup``: its own users'
pairs and rows, IRGANConfig's defaults, MF dim 5), draws G's samples for D, then times one
D-epoch (the median of ``--d-repeats``: one D-epoch's time varies by a third from run to run
here) and one G-epoch, with the seconds spent in all-reduce calls. Three set-ups in the same run: one process; N processes as irgan runs
them (only item gradients summed, user rows kept by their owners); and N processes summing every
gradient, user tables included (irgan before issue 22), so that the change is measured against
what it replaced. Each process reports its own seconds; the table gives the slowest process's.

    python -m benchmarks.bench_processes --size ml-20m          # synthetic, ml-20m's size
    python -m benchmarks.bench_processes --size tiny --results /tmp/R.md
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `irgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_train import SIZES, load  # noqa: E402
from benchmarks.results import RESULTS, machine, write_section  # noqa: E402
from irgan.adversarial.irgan.game import _setup, d_epoch, g_epoch  # noqa: E402
from irgan.config import IRGANConfig  # noqa: E402
from irgan.training.sampling import sample_fake  # noqa: E402

SETUPS = ("one process", "processes, item gradients summed", "processes, every gradient summed (before)")


def _count_traffic(counter: dict) -> None:
    """Make ``dist.all_reduce`` add the bytes of every tensor it sums to ``counter['bytes']``, and the
    seconds it takes (waiting for the other processes included) to ``counter['seconds']``."""
    reduce = dist.all_reduce

    def counted(tensor, *args, **kwargs):
        counter["bytes"] += tensor.numel() * tensor.element_size()
        start = time.perf_counter()
        try:
            return reduce(tensor, *args, **kwargs)
        finally:
            counter["seconds"] += time.perf_counter() - start
    dist.all_reduce = counted


def _worker(rank: int, world: int, size: str, store: str, every_gradient: bool, out: str, d_repeats: int) -> None:
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    traffic = {"bytes": 0, "seconds": 0.0}
    try:
        if world > 1:
            _count_traffic(traffic)
        row = _measure(size, every_gradient, traffic, d_repeats)
        Path(f"{out}.{rank}").write_text(json.dumps(row))
        if world > 1:
            dist.barrier()
    finally:
        if world > 1:
            dist.destroy_process_group()


@torch.no_grad()
def _measure(size: str, every_gradient: bool, traffic: dict, d_repeats: int = 1) -> dict:
    train, _ = load(size, None)
    config = IRGANConfig()
    game = _setup(train, None, config, None, 0, torch.device("cpu"), None, None)
    if every_gradient:  # irgan before issue 22: the user tables summed with the rest
        game.g_step.optimizer.local = set()
        game.d_step.optimizer.local = set()
        game.d_step.kernel = False  # D's compiled step keeps its user rows local
    fake = sample_fake(game.G, game.positives, game.active, config.d_temperature, config.d_exclude_positives, game.rng)
    # one untimed D-epoch: the first also loads the compiled kernels and touches D's buffers
    d_epoch(game.d_step, game.real_users, game.real_items, fake, config, game.rng)
    row = {}
    for name, step, repeats in (
            ("d", lambda: d_epoch(game.d_step, game.real_users, game.real_items, fake, config, game.rng), d_repeats),
            ("g", lambda: g_epoch(game.G, game.D, game.g_step, game.positives, game.active, config, game.rng), 1)):
        seconds, reducing = [], []
        for _ in range(repeats):
            before, waited, start = traffic["bytes"], traffic["seconds"], time.perf_counter()
            step()
            seconds.append(time.perf_counter() - start)
            reducing.append(traffic["seconds"] - waited)
            row[f"{name}_bytes"] = traffic["bytes"] - before  # the same for every epoch
        row[f"{name}_epoch_s"], row[f"{name}_epochs_s"] = statistics.median(seconds), seconds
        row[f"{name}_reduce_s"] = statistics.median(reducing)
    game.g_step.gather_owned()
    game.d_step.gather_owned()
    row.update(n_users=train.shape[0], n_items=train.shape[1], train=int(train.nnz))
    return row


def run(size: str, world: int, every_gradient: bool, d_repeats: int = 1) -> dict:
    """One set-up: every process's figures, then the slowest process's seconds."""
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "row")
        if world == 1:
            _worker(0, 1, size, "", every_gradient, out, d_repeats)
        else:
            mp.spawn(_worker, args=(world, size, str(Path(folder) / "store"), every_gradient, out, d_repeats),
                     nprocs=world)
        rows = [json.loads(Path(f"{out}.{rank}").read_text()) for rank in range(world)]
    slowest = {key: max(r[key] for r in rows) for key in ("d_bytes", "g_bytes")}
    for name in ("d", "g"):  # the slowest process's seconds, and its repeats with them
        worst = max(rows, key=lambda r: r[f"{name}_epoch_s"])
        slowest.update({key: worst[key] for key in (f"{name}_epoch_s", f"{name}_epochs_s", f"{name}_reduce_s")})
    return {**rows[0], **slowest, "processes": world}


def report(size: str, rows: dict[str, dict], command: str) -> str:
    one = rows[SETUPS[0]]
    lines = [f"## Several processes (issue 22)\n\n`{command}` on {machine()}; "
             f"{one['n_users']:,} users x {one['n_items']:,} items, {one['train']:,} train pairs, "
             "IRGANConfig's defaults, one thread per process. Seconds of the slowest process (a D-epoch: "
             "the median of its repeats); bytes that process all-reduced in the epoch, and the seconds its "
             "all-reduce calls took, waiting for the other processes included.\n",
             "| set-up | processes | D-epoch s | speed-up | D bytes | D all-reduce s | G-epoch s | speed-up | G bytes "
             "| G all-reduce s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['processes']} | {r['d_epoch_s']:.3g} | {one['d_epoch_s'] / r['d_epoch_s']:.2f}x "
                     f"| {r['d_bytes']:,} | {r['d_reduce_s']:.3g} | {r['g_epoch_s']:.3g} "
                     f"| {one['g_epoch_s'] / r['g_epoch_s']:.2f}x | {r['g_bytes']:,} | {r['g_reduce_s']:.3g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="ml-20m", choices=[s for s in SIZES if SIZES[s] is not None])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--d-repeats", type=int, default=5, help="D-epochs timed in each set-up (their median is reported)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the markdown file whose section is written")
    args = parser.parse_args(argv)
    rows = {SETUPS[0]: run(args.size, 1, False, args.d_repeats),
            SETUPS[1]: run(args.size, args.processes, False, args.d_repeats),
            SETUPS[2]: run(args.size, args.processes, True, args.d_repeats)}
    command = (f"python -m benchmarks.bench_processes --size {args.size} --processes {args.processes} "
               f"--d-repeats {args.d_repeats}")
    text = report(args.size, rows, command)
    print(text)
    write_section("bench_processes", text, args.results)
    return rows


if __name__ == "__main__":
    main()
