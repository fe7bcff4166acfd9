"""Reproduce CFGAN's ML-100K figures (Chae et al., CIKM 2018) on the split its authors released.

    IRGAN_DATA=../shared/data python -m benchmarks.reproduce_cfgan --seeds 5
    python -m benchmarks.reproduce_cfgan --tiny            # a seconds-long smoke run

The authors' protocol: iCFGAN with ZP and their ML100K settings (``CFGANConfig``'s defaults), every
observed rating a positive, trained on all of ``ML100K.train`` and tested at its last epoch (no
selection) on ``ML100K.test``: full ranking, train items excluded, every user with a test item,
cut-offs 5 and 20. Each seed's figures are printed, then the mean ± std beside the paper's row and
the ECIR 2022 study's replication (the authors' code, 30 runs, last epoch). ``--authors-epochs``
draws each seed's epochs as the authors' ``parameters.py`` does (750 to 1,000 G passes, i.e. 187 to
250 outer epochs) instead of running 250. ``--tiny`` runs one seed for two epochs, on synthetic data
when the split is not found.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.results import machine, write_section
from irgan.adversarial.cfgan import CFGANConfig, CFGANRecommender
from irgan.data import Split, load_dataset, synthetic
from irgan.data.splits import random_holdout
from irgan.device import keep_freed_memory
from irgan.metrics import evaluate

METRICS = ("P@5", "NDCG@5", "P@20", "NDCG@20")
PAPER = {"CFGAN paper (iZP)": (0.444, 0.476, 0.294, 0.433),
         "ECIR 2022 replication (authors' code, 30 runs)": (0.4244, 0.4588, 0.2851, 0.4207)}
TARGET = dict(zip(METRICS, PAPER["ECIR 2022 replication (authors' code, 30 runs)"]))
TOLERANCE = {"P@5": 0.02, "NDCG@5": None, "P@20": 0.01, "NDCG@20": 0.01}  # the targets
AUTHORS_G_PASSES = (750, 800, 850, 900, 950, 1000)  # parameters.py's choices for ML100K


def load_split(data_dir: Path | None, tiny: bool) -> tuple[Split, str]:
    """The released ML-100K pair (every rating a positive), or, for ``tiny`` when it is absent, a
    small synthetic split; with a line naming which."""
    folder = (data_dir or Path(os.environ.get("IRGAN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))) \
        / "cfgan-ml100k"
    train, test = folder / "ML100K.train", folder / "ML100K.test"
    if train.is_file() and test.is_file():
        return load_dataset(train, test=test, min_rating=None), f"{folder} (CFGAN's released ML-100K split)"
    if not tiny:
        raise SystemExit(f"{folder} holds no ML100K.train / ML100K.test: pass --data or set IRGAN_DATA")
    data = synthetic(120, 200, 3000, seed=0)
    split = random_holdout(data.to_dataframe(), 0.2, 0, user_ids=data.user_ids, item_ids=data.item_ids)
    return split, "synthetic data (120 users x 200 items; the split was not found)"


def run_seed(split: Split, config: CFGANConfig, seed: int) -> dict[str, float]:
    """Test metrics at the last epoch, and wall and CPU seconds, of one seed."""
    wall, cpu = time.perf_counter(), time.process_time()
    model = CFGANRecommender(**dataclasses.asdict(config), seed=seed, device="cpu", min_rating=None).fit(split.train)
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    metrics = evaluate(model.model_, split.train.matrix, split.test.matrix, ks=(5, 20))
    return {**{m: metrics[m] for m in METRICS}, "epochs": config.epochs, "seconds": seconds,
            "cpu_seconds": cpu_seconds}


def table(rows: dict[int, dict[str, float]]) -> str:
    """Markdown: one line per seed, the mean ± std, the published rows and the gap to the replication."""
    lines = ["| run | epochs | " + " | ".join(METRICS) + " | seconds |", "|---" * (len(METRICS) + 3) + "|"]
    for seed, row in rows.items():
        lines.append(f"| seed {seed} | {row['epochs']} | " + " | ".join(f"{row[m]:.4f}" for m in METRICS)
                     + f" | {row['seconds']:.0f} |")
    values = {m: np.array([row[m] for row in rows.values()]) for m in (*METRICS, "seconds")}
    lines.append(f"| **mean ± std ({len(rows)} seeds)** | | "
                 + " | ".join(f"**{values[m].mean():.4f}** ± {values[m].std():.4f}" for m in METRICS)
                 + f" | {values['seconds'].mean():.0f} |")
    for name, figures in PAPER.items():
        lines.append(f"| {name} | | " + " | ".join(f"{v:.4f}" for v in figures) + " | |")
    lines.append("| mean - replication | | " + " | ".join(f"{values[m].mean() - TARGET[m]:+.4f}" for m in METRICS)
                 + " | |")
    return "\n".join(lines)


def verdict(rows: dict[int, dict[str, float]]) -> list[str]:
    """One line per target of the issue: the mean's gap to the replication against its tolerance."""
    out = []
    for metric, tolerance in TOLERANCE.items():
        if tolerance is None:
            continue
        gap = float(np.mean([row[metric] for row in rows.values()])) - TARGET[metric]
        out.append(f"{metric}: {gap:+.4f} from the replication's {TARGET[metric]:.4f} "
                   f"({'within' if abs(gap) <= tolerance else 'OUTSIDE'} ±{tolerance})")
    return out


def main(argv: list[str] | None = None) -> dict[int, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds, from --first-seed on")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (to split a run across processes)")
    parser.add_argument("--epochs", type=int, default=None, help="outer epochs (default: CFGANConfig's 250)")
    parser.add_argument("--authors-epochs", action="store_true",
                        help="each seed draws its G passes from parameters.py's 750-1,000 (epochs = passes // 4)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--data", type=Path, default=None, help="folder holding cfgan-ml100k/ (default: $IRGAN_DATA)")
    parser.add_argument("--tiny", action="store_true", help="one seed, two epochs: a smoke run")
    parser.add_argument("--json", type=Path, default=None, help="also write the per-seed figures here")
    parser.add_argument("--write-results", action="store_true", help="replace this benchmark's section of RESULTS.md")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    split, source = load_split(args.data, args.tiny)
    seeds = range(args.first_seed, args.first_seed + (1 if args.tiny else args.seeds))
    print(f"data: {source}: {split.train!r}, {split.test!r}; {machine()}", flush=True)
    rows = {}
    for seed in seeds:
        config = CFGANConfig()
        if args.tiny:
            config = dataclasses.replace(config, epochs=2)
        elif args.authors_epochs:
            passes = int(np.random.default_rng(seed).choice(AUTHORS_G_PASSES))
            config = dataclasses.replace(config, epochs=passes // config.g_steps)
        elif args.epochs is not None:
            config = dataclasses.replace(config, epochs=args.epochs)
        rows[seed] = run_seed(split, config, seed)
        print(f"seed {seed}: " + ", ".join(f"{m} {rows[seed][m]:.4f}" for m in METRICS)
              + f"; {rows[seed]['epochs']} epochs in {rows[seed]['seconds']:.0f} s "
              f"({rows[seed]['cpu_seconds']:.0f} s of CPU)", flush=True)
    markdown = table(rows)
    print(markdown)
    if not args.tiny:
        for line in verdict(rows):
            print(line)
    if args.json is not None:
        args.json.write_text(json.dumps({str(k): v for k, v in rows.items()}, indent=1))
    if args.write_results and not args.tiny:
        command = "python -m benchmarks.reproduce_cfgan --seeds " + str(args.seeds) + \
            (" --authors-epochs" if args.authors_epochs else "")
        write_section("reproduce_cfgan", f"## CFGAN on its released ML-100K split\n\n`{command}` ({machine()})\n\n"
                      + markdown + "\n\n" + "\n".join(f"- {line}" for line in verdict(rows)))
    return rows


if __name__ == "__main__":
    main()
