"""Reproduce the IRGAN paper's MovieLens 100K table (split u1) under both model-selection protocols.

    python -m benchmarks.reproduce_paper --seeds 5
    python -m benchmarks.reproduce_paper --seeds 1 --epochs 1 --d-epochs 1 --g-epochs 1 --bpr-epochs 1 \\
        --json /tmp/r.json --results /tmp/R.md  # a smoke run

For each seed and protocol ("test": pick the best epoch on the test set, as the authors did;
"validation": pick it on 10% of train held out) it trains popularity, BPR, DNS-BPR and IRGAN
(G started from that DNS model) and reports test P@k / NDCG@k as mean ± std, with wall time.
It also runs IRGAN from the authors' own pretrained file under their protocol.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.results import RESULTS, machine, write_section
from irgan.config import IRGANConfig
from irgan.data import load_dataset, validation_split
from irgan.data.datasets import data_home
from irgan.device import keep_freed_memory
from irgan.metrics import evaluate
from irgan.models import Popularity
from irgan.adversarial.irgan.recipe import initial_generator, run_recipe

METRICS = ("P@3", "P@5", "P@10", "NDCG@3", "NDCG@5", "NDCG@10")
PAPER = {  # the IRGAN paper's Table (MovieLens), as quoted in our issue tracker
    "paper: LambdaFM (DNS)": (0.3845, 0.3474, 0.2967, 0.3986, 0.3749, 0.3518),
    "paper: IRGAN": (0.4072, 0.3750, 0.3140, 0.4222, 0.4009, 0.3723),
    "authors' saved generator": (0.4057, 0.3785, 0.3184, 0.4228, 0.4053, 0.3775),
}


def run_seed(data, protocol: str, seed: int, config: IRGANConfig, bpr_epochs: int) -> dict[str, dict]:
    """Test metrics and seconds of each method for one seed under one selection protocol: the
    baselines, then the recipe (``run_recipe``), whose pretrained start is the DNS-BPR row."""
    train, test = data.train, data.test
    irgan_config = dataclasses.replace(config, select_on=protocol, pretrain_select=True,
                                       pretrain=dataclasses.replace(config.pretrain, epochs=bpr_epochs))
    fit_train = validation_split(train, config.validation_fraction, seed)[0] if protocol == "validation" else train
    rows: dict[str, dict] = {}
    start = time.perf_counter()
    rows["popularity"] = {**evaluate(Popularity(fit_train.matrix), train.matrix, test.matrix),
                          "seconds": time.perf_counter() - start}
    bpr = dataclasses.replace(irgan_config, init="bpr")
    start = time.perf_counter()
    init = initial_generator(bpr, fit_train.matrix, seed=seed, selection=_selection(data, bpr, seed).matrix)
    rows["BPR"] = {**evaluate(init, train.matrix, test.matrix), "seconds": time.perf_counter() - start}
    result = run_recipe(train, test, irgan_config, seed=seed, device="cpu")
    rows["DNS-BPR"] = {**result.test["init"], "seconds": result.seconds["pretrain"]}
    rows["IRGAN G"] = {**result.test["generator"], "seconds": result.seconds["play"]}
    rows["IRGAN D"] = {**result.test["discriminator"], "seconds": result.seconds["play"]}
    return rows


def _selection(data, config: IRGANConfig, seed: int):
    """The set that selects models under ``config.select_on``, as the recipe carves it."""
    return validation_split(data.train, config.validation_fraction, seed)[1] if config.select_on == "validation" \
        else data.test


def run_authors_init(data, seed: int, config: IRGANConfig, model_file: Path) -> dict:
    """IRGAN under the authors' protocol, G started from their pretrained file."""
    result = run_recipe(data.train, data.test, dataclasses.replace(config, select_on="test", init=str(model_file)),
                        seed=seed, device="cpu")
    return {**result.test["generator"], "seconds": result.seconds["play"]}


def summarize(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """Mean and std over seeds of each method's metrics."""
    out = {}
    for method in runs[0]:
        values = {m: np.array([r[method][m] for r in runs]) for m in (*METRICS, "seconds")}
        out[method] = {m: (float(v.mean()), float(v.std())) for m, v in values.items()}
    return out


def table(summary: dict[str, dict], paper: bool) -> str:
    lines = ["| method | " + " | ".join(METRICS) + " | seconds |", "|---" * (len(METRICS) + 2) + "|"]
    for method, stats in summary.items():
        cells = [f"{stats[m][0]:.4f} ± {stats[m][1]:.4f}" for m in METRICS]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {stats['seconds'][0]:.1f} |")
    if paper:
        for name, values in PAPER.items():
            lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + " | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, list]:
    """Run every seed and protocol, writing the figures after each seed; {protocol: one row set per seed}."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--section", default=None, help="name of the RESULTS.md section (default: from --protocols)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=15, help="IRGAN outer epochs (15 as the paper)")
    parser.add_argument("--d-epochs", type=int, default=IRGANConfig().d_epochs, help="D-epochs per outer epoch")
    parser.add_argument("--g-epochs", type=int, default=IRGANConfig().g_epochs, help="G-epochs per outer epoch")
    parser.add_argument("--bpr-epochs", type=int, default=80)
    parser.add_argument("--protocols", default="test,validation")
    parser.add_argument("--authors-model", default=None, help="model_dns_ori.pkl of the authors (default: DATA/irgan-ml100k/)")
    parser.add_argument("--no-authors", action="store_true", help="skip the runs from the authors' pretrained file")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", default=str(Path(__file__).with_name("reproduce_paper.json")))
    parser.add_argument("--results", type=Path, default=RESULTS, help="the markdown file whose section is written")
    args = parser.parse_args(argv)
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    data = load_dataset("ml-100k", data_dir=args.data_dir, split="u1")
    config = IRGANConfig(epochs=args.epochs, d_epochs=args.d_epochs, g_epochs=args.g_epochs)
    protocols = [p for p in args.protocols.split(",") if p]  # "" runs only the authors'-file rows
    model_file = Path(args.authors_model) if args.authors_model else data_home(args.data_dir) / "irgan-ml100k" / "model_dns_ori.pkl"
    with_authors = model_file.is_file() and not args.no_authors
    runs: dict[str, list] = {p: [] for p in protocols + (["authors_init"] if with_authors else [])}
    for seed in range(args.seeds):  # seeds outermost, so the figures written so far always cover every row
        for protocol in protocols:
            runs[protocol].append(run_seed(data, protocol, seed, config, args.bpr_epochs))
            print(protocol, seed, {k: round(v["P@5"], 4) for k, v in runs[protocol][-1].items()}, flush=True)
        if with_authors:
            runs["authors_init"].append({"IRGAN G from the authors' DNS file": run_authors_init(data, seed, config, model_file)})
            print("authors-init", seed, round(runs["authors_init"][-1]["IRGAN G from the authors' DNS file"]["P@5"], 4), flush=True)
        report(args, config, runs, seed + 1)
    return runs


def report(args: argparse.Namespace, config: IRGANConfig, runs: dict[str, list], n_seeds: int) -> None:
    """Write the JSON and the RESULTS.md section for the seeds finished so far."""
    titles = {"test": "selected on the TEST set (the authors' protocol; optimistic)",
              "validation": "selected on a validation split (10% of train)",
              "authors_init": "IRGAN started from the authors' pretrained file, their protocol"}
    sections = [f"### {titles[name]}\n\n{table(summarize(rows), paper=name != 'validation')}" for name, rows in runs.items()]
    Path(args.json).write_text(json.dumps({"config": dataclasses.asdict(config), "bpr_epochs": args.bpr_epochs,
                                           "seeds": n_seeds, **runs}, indent=1))
    shorter = "".join(f" --{flag} {value}" for flag, value, default in (
        ("d-epochs", args.d_epochs, IRGANConfig().d_epochs), ("g-epochs", args.g_epochs, IRGANConfig().g_epochs),
        ("bpr-epochs", args.bpr_epochs, 80)) if value != default)
    command = (f"python -m benchmarks.reproduce_paper --seeds {args.seeds} --epochs {args.epochs}{shorter} "
               f"--protocols '{args.protocols}'" + (" --no-authors" if args.no_authors else ""))
    body = (f"## Paper reproduction: MovieLens 100K, split u1 ({args.protocols or 'authors_init'})\n\n`{command}` on {machine()}, "
            f"{args.threads} threads; mean ± std over {n_seeds} seed(s) finished of {args.seeds}; "
            "seconds = mean wall time per run.\n\n" + "\n\n".join(sections))
    print(body)
    write_section(args.section or "reproduce_paper_" + (args.protocols.replace(",", "_") or "authors_init"), body,
                  args.results)

if __name__ == "__main__":
    main()
