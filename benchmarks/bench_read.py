"""Time and peak memory of read_ratings on a 5-million-row ratings file, as text and as parquet.

The file is made in a temporary folder like ml-20m's ratings: ``user \\t item \\t rating \\t
timestamp``, integer ids (138,493 users, 131,262 items), half-star ratings, no header; the same
table is also written as parquet. Every measurement runs in a fresh subprocess that imports
``irgan.data.readers`` from the checkout given, times one ``read_ratings`` call and reports the
process's peak resident memory (``ru_maxrss``) before and after it, and its CPU time (all threads).

    python -m benchmarks.bench_read                                 # this checkout
    python -m benchmarks.bench_read --old /tmp/oldread --repeats 3  # against another checkout
    python -m benchmarks.bench_read --rows 1000                     # a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from irgan.data.readers import read_ratings
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start, start_cpu = time.perf_counter(), cpu()
try:
    df = read_ratings(sys.argv[2])
    result = {"rows": len(df), "dtypes": [str(t) for t in df.dtypes]}
except Exception as err:
    result = {"error": f"{type(err).__name__}: {str(err)[:120]}"}
result["seconds"], result["cpu_seconds"] = time.perf_counter() - start, cpu() - start_cpu
result["rss_before_mib"] = before / 1024
result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def make_files(folder: Path, rows: int, seed: int = 0) -> dict[str, Path]:
    """The ratings table as tab-separated text and as parquet; {format: path}."""
    rng = np.random.default_rng(seed)
    table = pa.table({
        "user": rng.integers(1, 138_494, rows), "item": rng.integers(1, 131_263, rows),
        "rating": rng.integers(1, 11, rows) / 2, "timestamp": rng.integers(789_652_009, 1_427_784_002, rows),
    })
    text, parquet = folder / "ratings.tsv", folder / "ratings.parquet"
    pa_csv.write_csv(table, text, pa_csv.WriteOptions(include_header=False, delimiter="\t"))
    pq.write_table(table.rename_columns(["userId", "movieId", "rating", "timestamp"]), parquet)
    return {"tsv": text, "parquet": parquet}


def measure(checkout: Path, path: Path) -> dict:
    """One read_ratings call in a fresh process importing irgan from ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(checkout), str(path)], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> dict[tuple[str, str], list[dict]]:
    """Time every (checkout, format) case, print the table; each case's measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--old", type=Path, help="another checkout to compare with (e.g. a `git archive` of HEAD)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per case, interleaved; the median is shown")
    args = parser.parse_args(argv)
    checkouts = {"new": REPO} | ({"old": args.old.resolve()} if args.old else {})
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.rows)
        sizes = {fmt: path.stat().st_size / 2**20 for fmt, path in files.items()}
        runs: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.repeats):
            for fmt, path in files.items():
                for name, checkout in checkouts.items():
                    runs.setdefault((name, fmt), []).append(measure(checkout, path))
    load = os.getloadavg()[0]
    print(f"{args.rows:,} rows; tsv {sizes['tsv']:.0f} MiB, parquet {sizes['parquet']:.0f} MiB; "
          f"median of {args.repeats}; 1-min load avg at the end {load:.1f} on {os.cpu_count()} CPUs")
    print("| code | format | seconds | CPU seconds | peak RSS MiB (before the call) | result |")
    print("|---|---|---|---|---|---|")
    for (name, fmt), results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        cpu = statistics.median(r["cpu_seconds"] for r in results)
        peak = statistics.median(r["peak_rss_mib"] for r in results)
        before = statistics.median(r["rss_before_mib"] for r in results)
        outcome = results[0].get("error") or f"{results[0]['rows']:,} rows, {', '.join(results[0]['dtypes'])}"
        print(f"| {name} | {fmt} | {seconds:.2f} | {cpu:.2f} | {peak:.0f} ({before:.0f}) | {outcome} |")
    return runs


if __name__ == "__main__":
    main()
