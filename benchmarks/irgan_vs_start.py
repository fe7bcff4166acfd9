"""Does IRGAN's game add anything to its start? One configuration, refit per seed, G against its start.

Refits the given IRGAN parameters (as ``irgan compare`` chose them) on all of train for each seed
through the honest protocol's ``refit_and_test`` and tests G and its pretrained start on the same
users, with paired tests over users (each user's value averaged over seeds).

    python -m benchmarks.irgan_vs_start --data-dir DATA --split u1 --seeds 5,6,7,8,9 \\
        --params '{"dim": 32, "g_lr": 0.0047, "d_lr": 0.00016, "d_l2": 0.90, "pretrain": {"l2": 0.063}}'
    python -m benchmarks.irgan_vs_start --data-dir DATA --seeds 0 \\
        --params '{"epochs": 1, "d_epochs": 1, "g_epochs": 1, "pretrain": {"epochs": 2}}'  # a smoke run
"""
from __future__ import annotations

import argparse
import json
import logging

import pandas as pd

from irgan.data import load_dataset
from irgan.device import keep_freed_memory
from irgan.protocol import CANDIDATES, refit_and_test
from irgan.significance import paired_tests


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Refit and test per seed, print each seed's figures and the paired tests; {metric: paired test}."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="u1")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--params", required=True, help="IRGAN parameters as JSON")
    args = parser.parse_args(argv)
    keep_freed_memory()
    logging.basicConfig(level=logging.ERROR)
    data = load_dataset("ml-100k", data_dir=args.data_dir, split=args.split, seed=0)
    params = json.loads(args.params)
    games, starts = [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        tested = refit_and_test(CANDIDATES["irgan"], params, data.train, data.test, seed, "cpu")
        start_figures, start_users = tested.also["start"]
        print(json.dumps({"seed": seed, "G": {m: round(tested.test[m], 4) for m in ("P@5", "NDCG@5")},
                          "start": {m: round(start_figures[m], 4) for m in ("P@5", "NDCG@5")},
                          "seconds": round(tested.seconds, 1)}), flush=True)
        games.append(tested.per_user)
        starts.append(start_users)
    game, start = (pd.concat(frames).groupby(level=0).mean() for frames in (games, starts))
    tests = {}
    for metric in ("P@5", "NDCG@5"):
        tests[metric] = paired_tests(game[metric], start[metric])
        print(json.dumps({"metric": metric, **{k: round(v, 6) for k, v in tests[metric].items()}}))
    return tests


if __name__ == "__main__":
    main()
