"""Where one D-epoch, G's draws for D and one G-epoch spend their time: cProfile, one thread.

The game is built as ``fit_irgan`` builds it (``_setup``, IRGANConfig's defaults, MF dim 5) on the
catalogs of ``bench_train`` (synthetic beyond ml-100k); each step runs once under cProfile and
its functions are printed by their own time.

    python -m benchmarks.profile_steps --size ml-20m
    python -m benchmarks.profile_steps --size tiny --top 5
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `irgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_train import SIZES, load  # noqa: E402
from irgan.adversarial.irgan.game import _setup, d_epoch, g_epoch  # noqa: E402
from irgan.config import IRGANConfig  # noqa: E402
from irgan.training.sampling import sample_fake  # noqa: E402


@torch.no_grad()
def profile(size: str, data_dir: str | None = None, top: int = 14) -> dict[str, tuple[float, str]]:
    """Per step ("d_epoch", "fake", "g_epoch"): its wall seconds and the top of its profile as text."""
    torch.set_num_threads(1)
    train, _ = load(size, data_dir)
    config = IRGANConfig()
    game = _setup(train, None, config, None, 0, torch.device("cpu"), None, None)
    fake = {}

    def draw():
        fake["items"] = sample_fake(game.G, game.positives, game.active, config.d_temperature,
                                    config.d_exclude_positives, game.rng)
    steps = {"fake": draw,
             "d_epoch": lambda: d_epoch(game.d_step, game.real_users, game.real_items, fake["items"], config, game.rng),
             "g_epoch": lambda: g_epoch(game.G, game.D, game.g_step, game.positives, game.active, config, game.rng)}
    found = {}
    for name, step in steps.items():
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        step()
        profiler.disable()
        seconds = time.perf_counter() - start
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
        found[name] = (seconds, text.getvalue())
    return found


def main(argv: list[str] | None = None) -> dict[str, tuple[float, str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="ml-20m", choices=list(SIZES))
    parser.add_argument("--data-dir", default=None, help="for ml-100k: the folder holding it")
    parser.add_argument("--top", type=int, default=14, help="functions listed per step")
    args = parser.parse_args(argv)
    found = profile(args.size, args.data_dir, args.top)
    for name, (seconds, text) in found.items():
        print(f"== {name}: {seconds:.2f} s\n{text}")
    return found


if __name__ == "__main__":
    main()
