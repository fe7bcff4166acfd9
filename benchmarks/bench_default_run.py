"""Whole-process time of the default ``python -m irgan.train --dataset ml-100k``: this tree's code
on the fast MF path and on autograd (``--no-fast-path``), against another checkout (``--old``),
runs interleaved so that machine load hits all alike; median of ``--repeats``. Each process runs
on ``--threads`` threads (OMP_NUM_THREADS; one by default, torch's own default is the core count).

    python -m benchmarks.bench_default_run --old /path/to/old/checkout --data-dir DATA
    python -m benchmarks.bench_default_run --old . --data-dir DATA --tiny --repeats 1  # a smoke run

``--tiny`` shortens every run to one pretraining epoch and one outer epoch of one D- and one G-epoch.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
TINY = ["--pretrain-epochs", "1", "--epochs", "1", "--d-epochs", "1", "--g-epochs", "1"]


def one_run(tree: Path, data_dir: str, extra: list[str], threads: int = 1) -> tuple[float, str]:
    """Seconds of one whole CLI process run in ``tree`` on ``threads`` threads, and its table's G row."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "irgan.train", "--dataset", "ml-100k", "--data-dir", data_dir,
                               "--quiet", "--out", str(Path(tmp) / "run"), *extra], cwd=tree, capture_output=True,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(tree)})
        seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"run in {tree} failed: {done.stderr[-500:]}")
    return seconds, next(line for line in done.stdout.splitlines() if line.startswith("IRGAN G"))


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Run the variants interleaved and print each one's median; {variant: {"seconds", "row"}}."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="checkout of the code to compare with")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-autograd", action="store_true", help="skip the (several times slower) autograd runs")
    parser.add_argument("--tiny", action="store_true", help="runs of one epoch of each kind: a smoke run")
    parser.add_argument("--threads", type=int, default=1, help="threads of each run (OMP_NUM_THREADS)")
    args = parser.parse_args(argv)
    common = TINY if args.tiny else []
    variants = {"old": (Path(args.old), common), "new (fast MF path)": (HERE, common)}
    if not args.no_autograd:
        variants["new (autograd, --no-fast-path)"] = (HERE, [*common, "--no-fast-path"])
    times: dict[str, list[float]] = {name: [] for name in variants}
    rows: dict[str, str] = {}
    for _ in range(args.repeats):
        for name, (tree, extra) in variants.items():
            seconds, rows[name] = one_run(tree, args.data_dir, extra, args.threads)
            times[name].append(seconds)
            print(f"{name}: {seconds:.1f} s", flush=True)
    old = statistics.median(times["old"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {' / '.join(f'{v:.1f}' for v in values)} | {median / old:.2f} | `{rows[name]}` |")
    return {name: {"seconds": values, "row": rows[name]} for name, values in times.items()}


if __name__ == "__main__":
    main()
