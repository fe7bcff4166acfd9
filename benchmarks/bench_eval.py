"""Time and peak memory of full-ranking evaluation (irgan.metrics.evaluate).

Cases: the IRGAN authors' ml-100k model and split (943 x 1683; synthetic of that size when the
files are absent), scored densely; and a synthetic catalog the size of ml-20m (138,000 users x
27,000 items, 64-dim random embeddings, ~10M train and ~2.5M test positives) scored in user
batches through a callable, so no dense score matrix exists. Every case runs in a fresh
subprocess, whose peak resident memory (VmHWM) is read from /proc.

    python -m benchmarks.bench_eval            # full sizes, writes benchmarks/RESULTS.md
    python -m benchmarks.bench_eval --quick    # 20,000 of the 138,000 users
    python -m benchmarks.bench_eval --tiny --results /tmp/R.md  # 500 users: a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `irgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import RESULTS, machine, write_section  # noqa: E402
from irgan.metrics import BATCH_ELEMENTS, evaluate  # noqa: E402
from irgan.model_files import load_arrays  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTES = (
    "Eval s: wall time of one `evaluate` call (ks 3, 5, 10; after a warm-up call on 64 users; "
    "median of the repeats, at least 3 for ml-100k); eval CPU s: the process CPU time of that "
    "call, all threads. Scoring alone: the same user batches "
    "through the scoring callable and nothing else, i.e. the part any evaluator pays. Peak RSS: "
    "the process's VmHWM over the timed calls, restarted just before them via "
    "/proc/self/clear_refs (* where that failed: the whole process's peak), so it holds the data "
    "(RSS before, in brackets) plus evaluation's own memory; each case runs in a fresh process. "
    "ml-20m-size data: uniformly random positives and embeddings, so nearly every user has test "
    "items and almost none is hit in the top 10 (the slowest case for the first-hit rank). "
    "Load avg: the 1-minute load average when the case ended; this machine is shared, and a "
    "load above the core count slows every figure."
)
ML20M = dict(n_users=138_000, n_items=27_000, dim=64, n_train=10_000_000, n_test=2_500_000)
TINY_USERS = 500  # --tiny: users of the ml-20m-size case


def authors_folder() -> Path | None:
    roots = [Path(os.environ["IRGAN_DATA"])] if os.environ.get("IRGAN_DATA") else []
    roots.append(REPO.parent / "shared" / "data")
    for root in roots:
        if (root / "irgan-ml100k" / "model_dns_ori.pkl").is_file():
            return root / "irgan-ml100k"
    return None


def ml100k() -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix, str]:
    """Scores (943, 1683), train, test: the authors' files, else random data of that shape."""
    folder = authors_folder()
    if folder is None:
        rng = np.random.default_rng(0)
        cell = rng.random((943, 1683))
        scores = rng.normal(size=(943, 1683)).astype(np.float32)
        return scores, sp.csr_matrix(cell < 0.047), sp.csr_matrix(cell > 0.988), "synthetic"
    model = load_arrays(folder / "model_dns_ori.pkl")  # no code runs: only numpy arrays are unpickled

    def positives(name: str) -> sp.csr_matrix:
        user, item, rating = np.loadtxt(folder / name, dtype=np.int64).T
        keep = rating >= 4
        return sp.csr_matrix((np.ones(keep.sum()), (user[keep], item[keep])), shape=(943, 1683))

    train, test = positives("movielens-100k-train.txt"), positives("movielens-100k-test.txt")
    scores = model["user_emb"] @ model["item_emb"].T + model["item_bias"]
    return scores, train, test, "authors' model_dns_ori + split"


def synthetic_csr(n_users: int, seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """~10M train and ~2.5M test positives (scaled to n_users), disjoint, built as CSR directly."""
    n_items = ML20M["n_items"]
    n_pairs = (ML20M["n_train"] + ML20M["n_test"]) * n_users // ML20M["n_users"]
    rng = np.random.default_rng(seed)
    keys = np.sort(rng.integers(0, n_users * n_items, n_pairs, dtype=np.int64))
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]  # distinct (user, item) pairs, still sorted
    in_train = rng.random(keys.size) < ML20M["n_train"] / (ML20M["n_train"] + ML20M["n_test"])

    def csr(k: np.ndarray) -> sp.csr_matrix:
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(k // n_items, minlength=n_users), out=indptr[1:])
        data = np.ones(k.size, dtype=np.float32)
        return sp.csr_matrix(((data, (k % n_items).astype(np.int32), indptr)), (n_users, n_items))

    return csr(keys[in_train]), csr(keys[~in_train])


def rss_mib(field: str) -> float:
    """This process's resident memory now ("VmRSS") or at its peak ("VmHWM"), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    """Restart VmHWM from the current RSS, so it measures what follows (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run_case(case: str, device: str, batch_size: int | None, n_users: int, repeats: int) -> dict:
    """One measurement (median of ``repeats`` calls), meant to run alone in a fresh process."""
    dev = torch.device(device)
    if case == "ml-100k":
        scores, train, test, source = ml100k()
        scores = torch.as_tensor(scores, device=dev)
        score_all = None
    else:
        train, test = synthetic_csr(n_users)
        gen = torch.Generator(device=dev).manual_seed(0)
        user_emb = torch.randn(n_users, ML20M["dim"], generator=gen, device=dev) / 8
        item_emb = torch.randn(ML20M["n_items"], ML20M["dim"], generator=gen, device=dev) / 8
        scores = lambda users: user_emb[users] @ item_emb.T  # noqa: E731
        source = "random 64-dim embeddings, scored by callable"

        def score_all() -> None:  # the scoring alone, as evaluate batches it
            users = torch.from_numpy(np.flatnonzero(np.diff(test.indptr))).to(dev)
            size = batch_size or BATCH_ELEMENTS // train.shape[1]
            for start in range(0, len(users), size):
                scores(users[start : start + size])

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    warm = scores[:64] if score_all is None else scores
    evaluate(warm, train[:64], test[:64], batch_size=batch_size, device=dev)  # warm-up
    sync()
    rss_before = rss_mib("VmRSS")
    peak_is_eval_only = reset_peak_rss()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds, cpu_seconds, score_seconds = [], [], [float("nan")]
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        result = evaluate(scores, train, test, batch_size=batch_size, device=dev)
        sync()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    rss_peak = rss_mib("VmHWM")
    if score_all is not None:
        score_seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            with torch.no_grad():
                score_all()
            sync()
            score_seconds.append(time.perf_counter() - start)
    return {
        "case": case,
        "source": source,
        "device": device,
        "users": int(train.shape[0]),
        "items": int(train.shape[1]),
        "evaluated": int((np.diff(test.indptr) > 0).sum()),
        "train_nnz": int(train.nnz),
        "test_nnz": int(test.nnz),
        "batch_size": batch_size or min(4096, BATCH_ELEMENTS // train.shape[1]),
        "threads": torch.get_num_threads(),
        "seconds": float(np.median(seconds)),
        "cpu_seconds": float(np.median(cpu_seconds)),
        "score_seconds": float(np.median(score_seconds)),
        "load": os.getloadavg()[0],
        "rss_before_mib": rss_before,
        "rss_peak_mib": rss_peak,
        "peak_is_eval_only": peak_is_eval_only,
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
        "P@10": result["P@10"],
        "NDCG@10": result["NDCG@10"],
    }


def measure(
    case: str, device: str, batch_size: str, n_users: int, repeats: int, threads: str
) -> dict:
    """``run_case`` in a fresh interpreter, so its peak memory is its own."""
    args = ["--case", case, "--device", device, "--batch-size", batch_size]
    args += ["--n-users", str(n_users), "--repeats", str(repeats), "--threads", threads]
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_eval", *args],
        cwd=REPO, capture_output=True, text=True,
    )
    if out.returncode:
        raise RuntimeError(f"{case} on {device} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = (
        "| case | device | threads | users x items | evaluated users | batch | eval s | eval CPU s "
        "| scoring alone s "
        "| peak RSS MiB during eval (RSS before) | GPU peak MiB | load avg | P@10 | NDCG@10 |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        gpu = f"{r['gpu_peak_mib']:.0f}" if r["gpu_peak_mib"] is not None else "-"
        alone = f"{r['score_seconds']:.1f}" if r["score_seconds"] == r["score_seconds"] else "-"
        lines.append(
            f"| {r['case']} | {r['device']} | {r['threads']} | {r['users']:,} x {r['items']:,} | "
            f"{r['evaluated']:,} | {r['batch_size']} | {r['seconds']:.2f} | "
            f"{r['cpu_seconds']:.2f} | {alone} | "
            f"{r['rss_peak_mib']:.0f}{'' if r['peak_is_eval_only'] else '*'} "
            f"({r['rss_before_mib']:.0f}) | {gpu} | {r['load']:.1f} | "
            f"{r['P@10']:.4f} | {r['NDCG@10']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure every case in its own process (or, with --case, one here), print and write the table; the rows."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 users in the ml-20m case")
    parser.add_argument("--tiny", action="store_true", help=f"{TINY_USERS} users in the ml-20m case: a smoke run")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the markdown file whose section is written")
    parser.add_argument(
        "--batch-sizes", default="auto", help="comma list for the ml-20m case; auto = default"
    )
    parser.add_argument("--repeats", type=int, default=1, help="median of this many calls")
    parser.add_argument(
        "--threads", default="default", help="comma list of torch thread counts (CPU cases)"
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one measurement
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--n-users", type=int, default=ML20M["n_users"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        if args.threads != "default":
            torch.set_num_threads(int(args.threads))
        size = None if args.batch_size == "auto" else int(args.batch_size)
        row = run_case(args.case, args.device, size, args.n_users, args.repeats)
        print(json.dumps(row))
        return [row]

    n_users = TINY_USERS if args.tiny else 20_000 if args.quick else ML20M["n_users"]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    print(table([]))
    for device in devices:
        threads = args.threads.split(",") if device == "cpu" else ["default"]
        for case, sizes in [("ml-100k", ["auto"]), ("ml-20m-size", args.batch_sizes.split(","))]:
            for size in sizes:
                for n_threads in threads:
                    repeats = max(3, args.repeats) if case == "ml-100k" else args.repeats
                    rows.append(measure(case, device, size, n_users, repeats, n_threads))
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
    command = "python -m benchmarks.bench_eval " + " ".join(argv)
    markdown = "\n\n".join(
        [
            "## Full-ranking evaluation (`irgan.metrics.evaluate`)",
            f"Command: `{command.strip()}`  \nMachine: {machine()}",
            table(rows),
            "Scores: " + "; ".join(sorted({f"{r['case']}: {r['source']}" for r in rows})) + ".",
            NOTES,
        ]
    )
    write_section("bench_eval", markdown, args.results)
    print(f"\nwritten to {args.results}")
    return rows


if __name__ == "__main__":
    main()
