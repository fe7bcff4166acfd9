"""The strong baselines with their defaults on MovieLens 100K, split u1: fitted on all of u1.base
(ratings >= 4 are positives), full-ranking test on u1.test; prints a markdown table.

    python -m benchmarks.bench_baselines               # EASE, item k-NN, iALS, LightGCN
    python -m benchmarks.bench_baselines --implicit    # also the `implicit` library's ALS, same settings
    python -m benchmarks.bench_baselines --only --implicit --als-scale   # both ALS on ml-1m-size data too

``--implicit`` (needs ``pip install -e '.[implicit]'``) fits implicit's CPU ALS with our iALS defaults
(its alpha is our 1 + alpha: it takes the confidence as alpha r, not 1 + alpha r) and times both
ALS fits as the median of ``--repeats`` runs after a warm-up, one thread each. ``--als-scale``
times both on synthetic data the size of ml-1m (6,040 users, 3,706 items, 575,000 positives)
with 16 and 64 factors.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `irgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import machine  # noqa: E402
from irgan.baselines import EASERecommender, IALSRecommender, ItemKNNRecommender, LightGCNRecommender  # noqa: E402
from irgan.data import load_dataset, synthetic  # noqa: E402
from irgan.metrics import evaluate  # noqa: E402
from irgan.models import MatrixFactorization  # noqa: E402

METRICS = ("P@3", "P@5", "P@10", "NDCG@3", "NDCG@5", "NDCG@10")
BASELINES = {"EASE": EASERecommender, "ItemKNN": ItemKNNRecommender, "iALS": IALSRecommender,
             "LightGCN": LightGCNRecommender}


def data_dir() -> Path | None:
    """None (load_dataset's own search: $IRGAN_DATA, else ~/.cache/irgan) when $IRGAN_DATA is set,
    else ../shared/data beside the repository if it holds ml-100k."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    return shared if not os.environ.get("IRGAN_DATA") and (shared / "ml-100k" / "u.data").is_file() else None


def implicit_als(train, model: IALSRecommender) -> MatrixFactorization:
    """implicit's CPU ALS with ``model``'s hyperparameters, as a MatrixFactorization."""
    from implicit.cpu.als import AlternatingLeastSquares
    als = AlternatingLeastSquares(factors=model.factors, regularization=model.regularization, alpha=1 + model.alpha,
                                  iterations=model.iterations, random_state=model.seed, num_threads=1,
                                  calculate_training_loss=False)
    als.fit(train, show_progress=False)
    return MatrixFactorization.from_arrays(als.user_factors, als.item_factors, np.zeros(train.shape[1]))


def timed(fit, repeats: int) -> tuple[object, float]:
    """The last result of ``fit()`` and the median seconds of ``repeats`` calls after one warm-up."""
    fit()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit()
        seconds.append(time.perf_counter() - start)
    return result, statistics.median(seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(BASELINES), help="run these baselines only (none: --only alone)")
    parser.add_argument("--implicit", action="store_true", help="also run the implicit library's ALS")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each ALS with --implicit")
    parser.add_argument("--als-scale", action="store_true", help="with --implicit: time both ALS on ml-1m-size data")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    if args.implicit and importlib.util.find_spec("implicit") is None:
        parser.error("--implicit needs the implicit library: pip install -e '.[implicit]'")
    torch.set_num_threads(args.threads)
    data = load_dataset("ml-100k", data_dir=data_dir(), split="u1")
    train, test = data.train.matrix, data.test.matrix
    rows, notes = [], []
    for name in BASELINES if args.only is None else args.only:
        start = time.perf_counter()
        model = BASELINES[name](device="cpu").fit(data.train)
        seconds = time.perf_counter() - start
        rows.append((name, evaluate(model.model_, train, test), seconds))
    if args.implicit:
        ours = IALSRecommender(device="cpu")
        model, seconds = timed(lambda: ours.fit(data.train).model_, args.repeats)
        rows.append((f"iALS (irgan, median of {args.repeats})", evaluate(model, train, test), seconds))
        model, seconds = timed(lambda: implicit_als(train, ours), args.repeats)
        rows.append((f"iALS (implicit, median of {args.repeats})", evaluate(model, train, test), seconds))
    if args.implicit and args.als_scale:
        big = synthetic(6040, 3706, 575_000, seed=0)
        for factors in (16, 64):
            ours = IALSRecommender(factors=factors, device="cpu")
            mine = timed(lambda: ours.fit(big), args.repeats)[1]
            theirs = timed(lambda: implicit_als(big.matrix, ours), args.repeats)[1]
            notes.append(f"ml-1m-size synthetic data, {factors} factors: irgan {mine:.2f} s, implicit {theirs:.2f} s "
                         f"(median of {args.repeats})")
    print(f"ml-100k u1, refit on u1.base, tested on u1.test; {machine()}")
    print("| model | " + " | ".join(METRICS) + " | seconds |")
    print("|---" * (len(METRICS) + 2) + "|")
    for name, metrics, seconds in rows:
        print(f"| {name} | " + " | ".join(f"{metrics[m]:.4f}" for m in METRICS) + f" | {seconds:.2f} |")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
