"""Is batching IRGAN's updates faithful? The authors update D on 16 pairs and G on 1 user at a
time; irgan batches thousands. Same start (the authors' DNS file), same schedule, both ways.

    python -m benchmarks.bench_batching
    python -m benchmarks.bench_batching --epochs 1 --d-epochs 1 --g-epochs 1 --results /tmp/R.md  # a smoke run
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from benchmarks.results import RESULTS, machine, write_section
from irgan.config import IRGANConfig
from irgan.device import keep_freed_memory
from irgan.data import load_dataset
from irgan.data.datasets import data_home
from irgan.metrics import evaluate
from irgan.model_files import load_model_file
from irgan.adversarial.irgan.game import fit_irgan

METRICS = ("P@3", "P@5", "P@10", "NDCG@3", "NDCG@5", "NDCG@10")


def main(argv: list[str] | None = None) -> list[str]:
    """Fit the three cases, print their rows and write the section; the table's lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--d-epochs", type=int, default=20)
    parser.add_argument("--g-epochs", type=int, default=10)
    parser.add_argument("--results", type=Path, default=RESULTS, help="the markdown file whose section is written")
    args = parser.parse_args(argv)
    keep_freed_memory()
    data = load_dataset("ml-100k", data_dir=args.data_dir, split="u1")
    train, test = data.train, data.test
    init = load_model_file(data_home(args.data_dir) / "irgan-ml100k" / "model_dns_ori.pkl", train.user_ids, train.item_ids)
    base = IRGANConfig(epochs=args.epochs, d_epochs=args.d_epochs, g_epochs=args.g_epochs, select_on="test")
    cases = [
        ("authors' batching: D 16 pairs, G 1 user; seed 0", dataclasses.replace(base, d_batch_size=16, g_batch_users=1), 0),
        ("irgan defaults; seed 0", base, 0),
        ("irgan defaults; seed 1 (run-to-run noise)", base, 1),
    ]
    lines = ["| case | " + " | ".join(METRICS) + " | final D P@5 | seconds |", "|---" * (len(METRICS) + 3) + "|"]
    for name, config, seed in cases:
        start = time.perf_counter()
        result = fit_irgan(train.matrix, test.matrix, config, init=init, seed=seed, device="cpu")
        seconds = time.perf_counter() - start
        metrics = evaluate(result.generator, train.matrix, test.matrix)
        d_metrics = evaluate(result.discriminator, train.matrix, test.matrix)
        lines.append(f"| {name} | " + " | ".join(f"{metrics[m]:.4f}" for m in METRICS)
                     + f" | {d_metrics['P@5']:.4f} | {seconds:.1f} |")
        print(lines[-1], flush=True)
    body = (f"## Batched updates against the authors' one-at-a-time updates\n\n"
            f"`python -m benchmarks.bench_batching --epochs {args.epochs} --d-epochs {args.d_epochs} --g-epochs {args.g_epochs}` "
            f"on {machine()}. G starts from the authors' DNS file; G/D selected on test as the authors did.\n\n" + "\n".join(lines))
    write_section("bench_batching", body, args.results)
    return lines


if __name__ == "__main__":
    main()
