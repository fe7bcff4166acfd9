"""Fold-in against training: do users folded in from their histories get what training with them gives?

On ml-100k u1 (ratings >= 4), ``--users`` users with u1.base and u1.test positives are drawn
(``--seed``) and removed from u1.base. Each model is fitted twice: on all of u1.base (trained-in:
``recommend`` for those users) and without them (folded-in: ``recommend_new`` from their own u1.base
items). Both exclude the users' u1.base items; P@5 counts their u1.test items in the top 5, and
overlap@10 is the share of the trained-in top 10 that the folded-in top 10 holds. The two fits
differ by the held-out users' data and by the training's randomness, so part of any gap is the
refit's, not the fold-in's. Fold-in ms: one ``recommend_new`` call for one user (k=10, the
fold-in's preparation included; median over ``--repeats`` users); recommend ms: ``recommend`` for
one trained user, the same way. Prints a table; ``--json PATH`` also writes the rows.

    OMP_NUM_THREADS=1 IRGAN_DATA=/work/shared/data python -m benchmarks.bench_foldin
    python -m benchmarks.bench_foldin --tiny      # synthetic data, small models: seconds
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `irgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irgan import (IRGAN, BPRRecommender, EASERecommender, IALSRecommender, PureSVDRecommender,  # noqa: E402
                   SLIMRecommender)
from irgan.config import BPRConfig  # noqa: E402
from irgan.data import Interactions, load_dataset, random_holdout, synthetic  # noqa: E402
from irgan.recommender import Recommender  # noqa: E402

#: Each model's estimator at its defaults, and a small one for --tiny.
MODELS: dict[str, tuple[Callable[[], Recommender], Callable[[], Recommender]]] = {
    "ease": (lambda: EASERecommender(device="cpu"), lambda: EASERecommender(l2=10.0, device="cpu")),
    "ials": (lambda: IALSRecommender(device="cpu"),
             lambda: IALSRecommender(factors=8, regularization=1.0, device="cpu")),
    "bpr": (lambda: BPRRecommender(device="cpu"), lambda: BPRRecommender(epochs=20, device="cpu")),
    "irgan": (lambda: IRGAN(device="cpu"),
              lambda: IRGAN(epochs=1, d_epochs=2, g_epochs=2, pretrain=BPRConfig(epochs=20), device="cpu")),
    "puresvd": (lambda: PureSVDRecommender(device="cpu"), lambda: PureSVDRecommender(factors=5, device="cpu")),
    "slim": (lambda: SLIMRecommender(device="cpu"), lambda: SLIMRecommender(device="cpu")),
}
DEFAULT_MODELS = "ease,ials,bpr,irgan,puresvd"


def split(tiny: bool) -> tuple[Interactions, Interactions]:
    """(train, test) Interactions over the same id maps: ml-100k u1, or for ``tiny`` 150 synthetic
    users x 80 items in 5 taste clusters, 20% of each user's positives held out."""
    if not tiny:
        data = load_dataset("ml-100k")
        return data.train, data.test
    data = synthetic(150, 80, 3000, seed=0, n_clusters=5).to_dataframe()
    data = random_holdout(data, 0.2, seed=0)
    return data.train, data.test


def held_out_users(train: Interactions, test: Interactions, n: int, seed: int) -> np.ndarray:
    """Row indices (n,) of users with train and test positives, drawn without replacement."""
    candidates = np.flatnonzero((np.diff(train.matrix.indptr) > 0) & (np.diff(test.matrix.indptr) > 0))
    if n > len(candidates):
        raise SystemExit(f"error: --users {n}: only {len(candidates)} users have train and test positives")
    return np.sort(np.random.default_rng(seed).choice(candidates, n, replace=False))


def precision(recs: pd.DataFrame, truth: dict, k: int) -> float:
    """Mean over ``truth``'s users of |top k ∩ their test items| / k (recs: user, item, rank)."""
    top = recs[recs["rank"] <= k].groupby("user")["item"].apply(set)
    return float(np.mean([len(top.get(user, set()) & items) / k for user, items in truth.items()]))


def overlap(a: pd.DataFrame, b: pd.DataFrame, k: int) -> float:
    """Mean over a's users of |a's top k ∩ b's top k| / k."""
    top_a = a[a["rank"] <= k].groupby("user")["item"].apply(set)
    top_b = b[b["rank"] <= k].groupby("user")["item"].apply(set)
    return float(np.mean([len(items & top_b.get(user, set())) / k for user, items in top_a.items()]))


def median_ms(call: Callable[[int], object], users: np.ndarray) -> float:
    """Median wall time of ``call(user)`` over ``users``, in milliseconds (after one warm-up call)."""
    call(users[0])
    times = []
    for user in users:
        start = time.perf_counter()
        call(user)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def measure(name: str, tiny: bool, train: Interactions, test: Interactions, held: np.ndarray,
            repeats: int) -> dict:
    """One model's row: P@5 trained-in and folded-in, overlap@10, fit and serving times."""
    make = MODELS[name][1 if tiny else 0]
    keep = np.setdiff1d(np.arange(train.n_users), held)
    without = Interactions(train.matrix[keep], train.user_ids[keep], train.item_ids)
    start = time.perf_counter()
    trained = make().fit(train)
    folded = make().fit(without)
    fit_s = time.perf_counter() - start
    users = train.user_ids[held]
    histories = {user: train.item_ids[train.matrix[row].indices].tolist() for user, row in zip(users, held)}
    truth = {user: set(test.item_ids[test.matrix[row].indices]) for user, row in zip(users, held)}
    state = {key: value.clone() for key, value in folded.model_.state_dict().items()}
    trained_in = trained.recommend(users, k=10)
    folded_in = folded.recommend_new(histories, k=10)
    unchanged = all(torch.equal(state[key], value) for key, value in folded.model_.state_dict().items())
    timed = users[:repeats]
    return {
        "model": name, "users": len(held),
        "P@5 trained-in": precision(trained_in, truth, 5), "P@5 folded-in": precision(folded_in, truth, 5),
        "overlap@10": overlap(trained_in, folded_in, 10),
        "fold-in ms": median_ms(lambda user: folded.recommend_new({user: histories[user]}, k=10), timed),
        "recommend ms": median_ms(lambda user: trained.recommend([user], k=10), timed),
        "fits s": fit_s, "model unchanged": unchanged,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="synthetic data and small models: a smoke run")
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--users", type=int, default=50, help="users held out of training and folded in")
    parser.add_argument("--seed", type=int, default=0, help="which users are held out")
    parser.add_argument("--repeats", type=int, default=20, help="users timed (one call each)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    names = [name for name in args.models.split(",") if name]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    train, test = split(args.tiny)
    held = held_out_users(train, test, args.users, args.seed)
    rows = [measure(name, args.tiny, train, test, held, args.repeats) for name in names]
    table = pd.DataFrame(rows).set_index("model")
    print(f"fold-in vs trained-in, {'synthetic (--tiny)' if args.tiny else 'ml-100k u1'}, {args.users} held-out "
          f"users (seed {args.seed}), torch threads {torch.get_num_threads()}")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
