"""Command line: train IRGAN on a data set and write metrics, history and a checkpoint.

    python -m irgan.train --dataset ml-100k

Every field of ``IRGANConfig`` is a flag (``--d-lr``, ``--pretrain-epochs``...).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

import torch

from irgan.checkpoint import ModelFileError, atomic_write
from irgan.config import BPRConfig, IRGANConfig
from irgan.data import DataError, load_dataset
from irgan.device import keep_freed_memory, resolve_device
from irgan.distributed import current, init_from_env, local_device
from irgan.pipeline import run_recipe, save_irgan_model

log = logging.getLogger("irgan.train")
RUN_FILE = "run.json"
HISTORY_FILE = "history.jsonl"
DERIVED_PRETRAIN_FIELDS = ("negatives", "dim")  # set from --init and --dim
TABLE_METRICS = ("P@3", "P@5", "P@10", "NDCG@3", "NDCG@5", "NDCG@10")


def run(
    dataset: str = "ml-100k",
    config: IRGANConfig = IRGANConfig(),
    out: str | Path | None = None,
    data_dir: str | None = None,
    split: str | None = None,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool = True,
    resume: bool = False,
) -> dict:
    """Load data, pretrain G, play IRGAN, evaluate the selected G and D on test, write ``out``.

    The run directory holds ``run.json`` (what was asked), ``history.jsonl`` (one line per
    evaluation of G), ``train_state.pt`` (written after each outer epoch), then ``metrics.json``
    and ``model.pt``. ``resume=True`` continues a run whose
    directory has no ``metrics.json`` yet. Returns the dict written to ``out/metrics.json``.
    """
    start = time.perf_counter()
    out = Path(out) if out is not None else Path("runs") / f"{Path(dataset).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    request = {"dataset": dataset, "data_dir": data_dir, "split": split, "seed": seed, "device": device,
               "config": dataclasses.asdict(config)}
    device = resolve_device(device)
    shard = init_from_env(device)  # under torchrun: join the job; process 0 alone writes the run directory
    device = local_device(device)
    try:
        refusal = None
        _check_out(out, resume)
    except FileExistsError as err:
        refusal = err
    if shard.max(int(refusal is not None)):  # every process checked before process 0 creates anything
        raise refusal or FileExistsError(f"another process of the job refused --out {out}")
    data = load_dataset(dataset, data_dir=data_dir, split=split, seed=seed)
    if shard.rank > 0:
        _train(data, config, out, dataset, split, seed, device, False, writer=False)
        return {}
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)  # only once the data loaded: a typo leaves nothing behind
    if not resume:
        atomic_write(out / RUN_FILE, lambda f: f.write(json.dumps(request, indent=2).encode()))
    try:
        report = _train(data, config, out, dataset, split, seed, device, show_progress)
    except Exception:
        if not resume and not (out / "train_state.pt").exists():  # nothing resumable: leave --out as it was
            for name in (RUN_FILE, HISTORY_FILE, "init.pt"):
                (out / name).unlink(missing_ok=True)
            if created and not any(out.iterdir()):
                out.rmdir()
        raise
    report["seconds"] = time.perf_counter() - start
    atomic_write(out / "metrics.json", lambda f: f.write(json.dumps(report, indent=2, default=float).encode()))
    (out / "train_state.pt").unlink(missing_ok=True)  # finished: model.pt and metrics.json supersede it
    return report


def _check_out(out: Path, resume: bool) -> None:
    """Refuse a run directory that would lose or mix results."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a directory")
    if resume and (out / "metrics.json").exists():
        raise FileExistsError(f"run {out} has already finished: nothing to resume")
    if not resume and out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output directory {out} is not empty: choose another --out (nothing was overwritten)")


def _train(data, config: IRGANConfig, out: Path, dataset: str, split: str | None, seed: int,
           device: torch.device, show_progress: bool, writer: bool = True) -> dict:
    """Run the recipe (pretrain, play, select, test) into ``out`` and write model.pt; the report.
    Other processes of a distributed job (``writer=False``) train alongside and write nothing."""
    with ExitStack() as stack:
        on_evaluate = None
        if writer:  # one JSON line per evaluation, to follow a run live
            live = stack.enter_context((out / HISTORY_FILE).open("a"))
            on_evaluate = lambda row: (live.write(json.dumps(row) + "\n"), live.flush())  # noqa: E731
        result = run_recipe(data.train, data.test, config, seed=seed, device=device,
                            show_progress=show_progress and writer, on_evaluate=on_evaluate,
                            state_path=out / "train_state.pt", init_file=out / "init.pt" if writer else None)
    if not writer:
        return {}
    # rewritten whole: a resumed run's live file also holds rows of the epoch that was cut short
    atomic_write(out / HISTORY_FILE, lambda f: f.write("".join(json.dumps(r) + "\n" for r in result.history).encode()))
    report = {
        "dataset": dataset,
        "split": split,
        "select_on": config.select_on,
        "protocol": ("model selection on a validation split carved from train" if config.select_on == "validation"
                     else "model selection on the TEST set (the IRGAN authors' protocol): test figures are optimistic"),
        "test": result.test["generator"],
        "test_discriminator": result.test["discriminator"],
        "test_init": result.test["init"],
        "validation" if config.select_on == "validation" else "selection_test": result.best_generator["metrics"],
        "best_generator": {k: v for k, v in result.best_generator.items() if k != "metrics"},
        "best_discriminator": {k: v for k, v in result.best_discriminator.items() if k != "metrics"},
        "config": dataclasses.asdict(config),
        "seed": seed,
        "device": str(device),
        "processes": current().world,
        "data": result.sizes,
        "history": result.history,
    }
    save_irgan_model(out / "model.pt", result, config, data.train, seed=seed, dataset=dataset)
    return report


def config_parser(parser: argparse.ArgumentParser) -> None:
    """Add one flag per IRGANConfig field (and --pretrain-* per BPRConfig field), help from the field."""
    def add(group, f: dataclasses.Field, prefix: str = "") -> None:
        flag = "--" + prefix + f.name.replace("_", "-")
        kind = {"int": int, "float": float, "str": str, "bool": bool}[str(f.type)]
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
        if kind is bool:
            group.add_argument(flag, dest=prefix.replace("-", "_") + f.name, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        else:
            group.add_argument(flag, dest=prefix.replace("-", "_") + f.name, type=kind, default=None, help=help_text)

    irgan = parser.add_argument_group("IRGAN (IRGANConfig)")
    for f in dataclasses.fields(IRGANConfig):
        if f.name != "pretrain":
            add(irgan, f)
    pretrain = parser.add_argument_group("pretraining of G (BPRConfig; its negatives and dim follow --init and --dim)")
    for f in dataclasses.fields(BPRConfig):
        if f.name not in DERIVED_PRETRAIN_FIELDS:
            add(pretrain, f, "pretrain-")


def config_from_args(args: argparse.Namespace) -> IRGANConfig:
    """The IRGANConfig the flags describe: defaults for every flag not given."""
    values = vars(args)
    pretrain = {f.name: values[f"pretrain_{f.name}"] for f in dataclasses.fields(BPRConfig)
                if f.name not in DERIVED_PRETRAIN_FIELDS and values.get(f"pretrain_{f.name}") is not None}
    top = {f.name: values[f.name] for f in dataclasses.fields(IRGANConfig)
           if f.name != "pretrain" and values.get(f.name) is not None}
    return IRGANConfig(**top, pretrain=BPRConfig(**pretrain))


def main(argv: Sequence[str] | None = None, prog: str = "python -m irgan.train") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k", help="ml-100k, ml-1m, ml-20m, or the path of a ratings file (user, item, rating[, timestamp])")
    parser.add_argument("--data-dir", default=None, help="folder holding the data sets (default: $IRGAN_DATA or ~/.cache/irgan)")
    parser.add_argument("--split", default=None, help="u1 (ml-100k default, the paper's), random, loo, temporal")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default=None, help="run directory to create (default: runs/DATASET-TIME)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue an interrupted run from its last finished outer epoch (its other flags are reused)")
    config_parser(parser)
    args = parser.parse_args(argv)
    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = args.resume or args.out
    try:
        if args.resume:
            request = read_request(Path(args.resume))
            report = run(request["dataset"], request["config"], args.resume, request["data_dir"],
                         request["split"], request["seed"], request["device"], not args.quiet, resume=True)
        else:
            config = config_from_args(args)
            out = args.out or Path("runs") / f"{Path(args.dataset).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
            report = run(args.dataset, config, out, args.data_dir, args.split, args.seed, args.device,
                         show_progress=not args.quiet)
    except (DataError, ValueError, ModelFileError, FileNotFoundError, FileExistsError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: resume with  python -m irgan.train --resume {out}", file=sys.stderr)
        return 130
    if report:  # the other processes of a distributed job report nothing
        print(format_table(report))
    return 0


def read_request(run_dir: Path) -> dict:
    """The arguments an earlier run was started with (its run.json)."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not an irgan run directory (no {RUN_FILE})")
    try:
        request = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    keys = {"dataset", "data_dir", "split", "seed", "device", "config"}
    if not isinstance(request, dict) or not keys <= request.keys() or not isinstance(request["config"], dict):
        raise ValueError(f"{path} is not the run.json of an irgan run (expected keys {sorted(keys)})")
    try:
        request["config"] = IRGANConfig(**request["config"])
    except TypeError as err:
        raise ValueError(f"{path} holds a config irgan does not know: {err}") from None
    return request


def format_table(report: dict) -> str:
    """The final test metrics of the run's models as a fixed-width table."""
    rows = [("IRGAN G", report["test"]), ("IRGAN D", report["test_discriminator"])]
    if report.get("test_init"):
        rows.insert(0, (f"init ({report['config']['init']})", report["test_init"]))
    lines = [f"{'test (' + report['select_on'] + '-selected)':28s}" + "".join(f"{m:>9s}" for m in TABLE_METRICS)]
    lines += [f"{name:28s}" + "".join(f"{metrics.get(m, float('nan')):9.4f}" for m in TABLE_METRICS)
              for name, metrics in rows]
    lines.append(f"{report['seconds']:.1f} s; {report['protocol']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
