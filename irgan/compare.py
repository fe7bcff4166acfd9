"""Honest comparisons in one command: every model tuned on validation with the same budget, refit
on all of train, tested once per seed, with paired significance tests.

    python -m irgan.compare --dataset ml-100k --models pop,bpr,dns,ease,ials,itemknn,lightgcn,irgan \\
        --seeds 5 --trials 10 --out runs/compare

Writes ``OUT/results.json`` ({"models": {name: {"test": {metric: {"mean", "std", "per_seed"}},
"config", "validation", "seconds"}}, "tests": [...]}), ``OUT/per_user.csv`` (test metrics per
model, seed and raw user id), ``OUT/results.png`` (means with standard deviations over seeds) and
prints a table. Finished (model, seed) results are kept under ``OUT/parts`` (with each refit as a
model file, ``parts/MODEL.seedS.pt``), so running the same command again after an interruption
continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from numbers import Real
from typing import Mapping, Sequence

import numpy as np
import optuna
import pandas as pd
import torch

from irgan.checkpoint import ModelFileError, atomic_write, load_model, save_model
from irgan.config import MAX_COUNT, SELECT_METRICS
from irgan.data import DataError, Split, load_dataset
from irgan.data.datasets import split_of
from irgan.device import keep_freed_memory, resolve_device
from irgan.errors import first_line, one_line
from irgan.progress import bar
from irgan.protocol import CANDIDATES, Candidate, Tuned, capped, refit_and_test, tune
from irgan.rundir import RunDir, absolute, absolute_if_file
from irgan.significance import holm, paired_tests
from irgan.train import READ_FLAGS, data_flags, split_fingerprint

log = logging.getLogger("irgan.compare")
REQUEST_FILE, RESULTS_FILE = "compare.json", "results.json"
TABLE_METRICS = ("P@5", "NDCG@5", "P@10", "NDCG@10")
TESTED_METRICS = ("P@5", "NDCG@5")  # tested beside the comparison's own --metric
SPACE_DRAWS = 64  # random draws of a search space that a kept tuning record is checked against


def compare(data: Split, models: Sequence[str], seeds: int = 5, trials: int | Mapping[str, int] = 10, metric: str = "P@5",
            validation_fraction: float = 0.1, device: str | torch.device = "auto", parts: Path | None = None,
            show_progress: bool = False, splits: int = 1, cutoffs: Sequence[int] = (),
            max_epochs: int | None = None) -> dict:
    """Tune each of ``models`` on ``splits`` validation splits of ``data.train`` (``trials`` Optuna
    trials, seed 0; 0: defaults), refit it on all of train for seeds 0..``seeds``-1, test each refit on
    ``data.test`` (at cut-offs 3, 5, 10, ``metric``'s and ``cutoffs``); then paired tests over users.
    ``parts``: a folder where finished steps are kept and read back. ``max_epochs`` caps every
    model's epochs. A model without randomness is fitted once and its test figures reused for
    every seed. Returns what results.json holds, plus ``per_user`` (a DataFrame)."""
    unknown = [m for m in models if m not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}: choose from {', '.join(CANDIDATES)}")
    if not models:
        raise ValueError("no model to compare: give --models, e.g. --models pop,ease")
    per_model = _trials_per_model(trials, models)
    for name, value, low in (("seeds", seeds, 1), *(("trials", n, 0) for n in per_model.values()), ("splits", splits, 1),
                             ("max_epochs", 1 if max_epochs is None else max_epochs, 1)):
        if not low <= value <= MAX_COUNT:
            raise ValueError(f"{name} must be from {low} to {MAX_COUNT:,}, got {value}")
    if metric not in SELECT_METRICS:
        raise ValueError(f"metric must be one of {SELECT_METRICS}, got {metric!r}")
    if data.test.matrix.nnz == 0:
        raise ValueError("a comparison needs a test set: --split none (no test set) is for a production fit with "
                         "irgan train")
    longest = max((*cutoffs, int(metric.split("@")[1]) if "@" in metric else 0))
    if longest > data.train.n_items:
        raise ValueError(f"a cut-off of {longest} needs more than the catalog's {data.train.n_items} items")
    device = resolve_device(device)
    results, rows = {}, []
    progress = bar(show_progress, total=len(models) * (seeds + 1), desc="compare")
    for name in models:
        candidate = capped(CANDIDATES[name], max_epochs)
        tuned = _kept(parts, f"{name}.tuning.json", lambda: _tuning_record(tune(
            candidate, data.train, per_model[name], metric, validation_fraction, 0, device, splits)),
            check=lambda record: _check_tuning(record, candidate))
        progress.update()
        log.info("%s: refit with %s (tuning %.1f s, validation %s %s)", name, tuned["params"], tuned["seconds"],
                 metric, "n/a" if tuned["validation"] is None else f"{tuned['validation']:.4f}")
        runs = []
        for seed in range(seeds):
            if candidate.deterministic and seed > 0:  # the same fit again: reuse seed 0's
                runs.append({**runs[0], "seconds": 0.0})
                progress.update()
                continue

            def run(seed: int = seed) -> dict:
                tested = refit_and_test(candidate, tuned["params"], data.train, data.test, seed, device, metric,
                                        validation_fraction, cutoffs)
                if parts is not None:  # the refit itself, for serving or for checking the figures
                    parts.mkdir(parents=True, exist_ok=True)
                    save_model(parts / f"{name}.seed{seed}.pt", name, {"model": getattr(tested.scorer, "scorer", tested.scorer)},
                               data.train.user_ids, data.train.item_ids, data.train.matrix, tuned["params"], {"seed": seed})
                return _seed_record(tested)
            runs.append(_kept(parts, f"{name}.seed{seed}.json", run, needs=f"{name}.seed{seed}.pt",
                              check=_check_seed))
            progress.update()
            log.info("%s seed %d: test %s %.4f, NDCG@5 %.4f (%.1f s)", name, seed, metric, runs[-1]["test"][metric],
                     runs[-1]["test"]["NDCG@5"], runs[-1]["seconds"])
        results[name] = {**_summary(runs, tuned, candidate.description), "fitted_once": candidate.deterministic}
        rows += [(name, seed, run["per_user"]) for seed, run in enumerate(runs)]
        for also, what in candidate.also.items():
            if not all(also in run["also"] for run in runs):
                continue
            beside = [{"test": run["also"][also]["test"], "per_user": run["also"][also]["per_user"], "seconds": 0.0}
                      for run in runs]
            results[f"{name}-{also}"] = {**_summary(beside, {**tuned, "seconds": 0.0}, f"{what}, beside {name}"),
                                         "against": name}
            rows += [(f"{name}-{also}", seed, run["per_user"]) for seed, run in enumerate(beside)]
    progress.close()
    per_user = pd.concat([_frame(record).assign(model=name, seed=seed) for name, seed, record in rows])
    report = {"models": results, "metric": metric, "seeds": seeds, "trials": trials, "splits": splits,
              "validation_fraction": validation_fraction, "cutoffs": list(cutoffs),
              "tests": significance(per_user, results, metric, cutoffs)}
    return {**report, "per_user": per_user.reset_index()[["model", "seed", "user", *per_user.columns.drop(["model", "seed"])]]}


def _kept(parts: Path | None, name: str, compute, needs: str | None = None, check=None) -> dict:
    """``compute()``'s record, read from ``parts/name`` when an earlier run finished it (and left a
    model file ``parts/needs`` that loads beside it), else written there. A record read back is
    data: ``check(record)`` raises ValueError for one that is not what ``compute`` writes, and the
    error names the file."""
    if parts is not None and (parts / name).is_file() and (needs is None or _loads(parts / needs)):
        path = parts / name
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            if check is not None:
                check(record)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not a result this comparison wrote: {first_line(err)}; delete it to "
                             "compute it again") from None
        return record
    record = compute()
    if parts is not None:
        parts.mkdir(parents=True, exist_ok=True)
        atomic_write(parts / name, lambda f: f.write(json.dumps(record, default=float).encode()))
    return record


def _loads(path: Path) -> bool:
    """Whether ``path`` is a model file that loads: a missing or damaged one is fitted again."""
    try:
        load_model(path)
    except (OSError, ModelFileError):
        return False
    return True


def _check_tuning(record: dict, candidate: Candidate) -> None:
    """ValueError unless ``record`` is what ``_tuning_record`` writes for ``candidate``: its params
    within the candidate's search space or defaults, by name, type and range."""
    _expect(record, {"params": dict, "validation": (Real, type(None)), "trials": list, "seconds": Real})
    if record["validation"] is not None and not _number(record["validation"]):
        raise ValueError(f"its validation is {record['validation']!r}, not a finite number")
    if not all(isinstance(trial, dict) for trial in record["trials"]):
        raise ValueError("its trials are not all JSON objects")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn, distributions = [], {}
    for _ in range(SPACE_DRAWS):  # a space with branches (item k-NN's similarities) shows each over some draws
        trial = study.ask()
        drawn.append(candidate.space(trial))
        distributions.update(trial.distributions)
    epochs = {name: 1 for name in candidate.defaults if name == "epochs" or name.endswith("_epochs")}
    if candidate.epochs is not None:
        epochs["epochs"] = candidate.epochs  # a cap's
    _check_params(record["params"], [*drawn, candidate.defaults, epochs], distributions, "params")


def _check_params(params: dict, references: list[dict], distributions: dict, where: str) -> None:
    """ValueError unless every value of ``params`` has a key and the type of some reference's value
    (nested dicts alike), within the search distribution of that name where there is one."""
    for key, value in params.items():
        found = [ref[key] for ref in references if isinstance(ref, dict) and key in ref]
        if not found:
            raise ValueError(f"{where} holds {key!r}, which is not a parameter of this model's search")
        if isinstance(value, dict):  # nested parameters are drawn by flat names: pretrain.l2 as pretrain_l2
            inner = {name[len(key) + 1:]: d for name, d in distributions.items() if name.startswith(f"{key}_")}
            _check_params(value, [f for f in found if isinstance(f, dict)], inner, f"{where}.{key}")
            continue
        if not any(_same_kind(value, f) for f in found):
            raise ValueError(f"{where}.{key} is {value!r}, not of the type of {found[0]!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}.{key} is {value!r}, not a finite number")
        if (key == "epochs" or key.endswith("_epochs")) and not 0 <= value <= MAX_COUNT:
            raise ValueError(f"{where}.{key} is {value!r}, not from 0 to {MAX_COUNT:,}")
        if isinstance(value, str) and value not in found and not (key in distributions
                                                                  and _within(distributions[key], value)):
            raise ValueError(f"{where}.{key} is {value!r}, not one of {sorted(set(found))}")
        if key in distributions and not _within(distributions[key], value) and value not in found:
            raise ValueError(f"{where}.{key} is {value!r}, outside its search space {distributions[key]}")


def _same_kind(value: object, reference: object) -> bool:
    if isinstance(reference, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(reference, bool)
    if isinstance(reference, float):
        return isinstance(value, (int, float))
    if isinstance(reference, int):
        return isinstance(value, int)
    return reference is None and value is None or isinstance(value, type(reference))


def _within(distribution: optuna.distributions.BaseDistribution, value: object) -> bool:
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def _check_seed(record: dict) -> None:
    """ValueError unless ``record`` is what ``_seed_record`` writes: finite metrics, per-user columns
    of one length, seconds."""
    _expect(record, {"test": dict, "per_user": dict, "seconds": Real, "also": dict})
    _check_tested(record, "")
    for name, also in record["also"].items():
        _expect(also, {"test": dict, "per_user": dict}, f"also.{name}.")
        _check_tested(also, f"also.{name}.")


def _check_tested(record: dict, where: str) -> None:
    for metric, value in record["test"].items():
        if not _number(value):
            raise ValueError(f"its {where}test.{metric} is {value!r}, not a number")
    columns = record["per_user"]
    if not isinstance(columns.get("index"), list):
        raise ValueError(f"its {where}per_user has no index list")
    for column, values in columns.items():
        if not isinstance(values, list) or len(values) != len(columns["index"]):
            raise ValueError(f"its {where}per_user.{column} is not a list as long as its index")
        if column != "index" and not all(_number(v) for v in values):
            raise ValueError(f"its {where}per_user.{column} holds a value that is not a number")
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in columns["index"]):
        raise ValueError(f"its {where}per_user.index holds a user id that is not a string or a number")


def _expect(record: dict, layout: dict, where: str = "") -> None:
    for key, kind in layout.items():
        if key not in record:
            raise ValueError(f"it has no {where}{key}")
        if not isinstance(record[key], kind) or isinstance(record[key], bool) and kind is Real:
            raise ValueError(f"its {where}{key} is {type(record[key]).__name__}, not what it should be")
    if "seconds" in layout and not (_number(record["seconds"]) and record["seconds"] >= 0):
        raise ValueError(f"its {where}seconds is {record['seconds']!r}")


def _number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _request(path: Path) -> dict:
    """The settings a comparison folder was started with (its compare.json); ValueError naming it."""
    try:
        stored = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not the compare.json of a comparison: {first_line(err)}") from None
    if not isinstance(stored, dict):
        raise ValueError(f"{path} is not the compare.json of a comparison: not a JSON object")
    return stored


def _tuning_record(tuned: Tuned) -> dict:
    return {"params": tuned.params, "validation": tuned.validation, "trials": tuned.trials,
            "seconds": tuned.seconds}


def _seed_record(tested) -> dict:
    def per_user(frame: pd.DataFrame) -> dict:
        return {"index": [v.item() if hasattr(v, "item") else v for v in frame.index],
                **{col: frame[col].tolist() for col in frame.columns}}
    return {"test": tested.test, "per_user": per_user(tested.per_user), "seconds": tested.seconds,
            "also": {k: {"test": t, "per_user": per_user(f)} for k, (t, f) in tested.also.items()}}


def _frame(record: dict) -> pd.DataFrame:
    """A per-user record of ``_seed_record`` back as a DataFrame indexed by raw user id."""
    columns = {k: v for k, v in record.items() if k != "index"}
    return pd.DataFrame(columns, index=pd.Index(record["index"], name="user"))


def _summary(runs: list[dict], tuned: dict, description: str) -> dict:
    """Mean, standard deviation (ddof 1; 0 for one seed) and per-seed values of every test metric."""
    test = {}
    for metric in runs[0]["test"]:
        values = np.array([run["test"][metric] for run in runs])
        test[metric] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                        "per_seed": values.tolist()}
    return {"description": description, "test": test, "config": tuned["params"], "validation": tuned["validation"],
            "trials": tuned["trials"], "seconds": {"tuning": tuned["seconds"], "refit_and_test": [r["seconds"] for r in runs],
                                                   "total": tuned["seconds"] + sum(r["seconds"] for r in runs)}}


def significance(per_user: pd.DataFrame, results: dict, metric: str, cutoffs: Sequence[int] = ()) -> list[dict]:
    """Paired tests over users (each user's value averaged over seeds): every model against the best
    one on ``metric``, and each model against the scorers tested beside it (its ``Candidate.also``:
    IRGAN's and APR's starts, CFGAN's G without D); on ``metric``, NDCG at its
    cut-off and ``tested_metrics(cutoffs)``; p-values Holm-corrected within each (metric, test) family."""
    models = [m for m in results if "against" not in results[m]]
    best = _best_model(results, metric)
    pairs = [(best, m) for m in models if m != best] + [(r["against"], m) for m, r in results.items() if "against" in r]
    tests = []
    for name in _tested_names(metric, cutoffs):
        means = per_user.groupby(["model", per_user.index])[name].mean()
        family = [{"metric": name, "a": a, "b": b, **paired_tests(means[a], means[b])} for a, b in pairs]
        for kind in ("t_pvalue", "wilcoxon_pvalue"):
            adjusted = holm([row[kind] for row in family]) if family else []
            for row, p in zip(family, adjusted):
                row[f"{kind}_holm"] = float(p)
        tests += family
    return tests


def _best_model(results: dict, metric: str) -> str:
    """The model with the highest mean test ``metric``, among those not tested beside another."""
    return max((m for m in results if "against" not in results[m]), key=lambda m: results[m]["test"][metric]["mean"])


def _tested_names(metric: str, cutoffs: Sequence[int]) -> tuple[str, ...]:
    """The metrics the paired tests cover and results.png draws: ``metric``, NDCG at its cut-off
    (HR@10 comes with NDCG@10) and ``tested_metrics(cutoffs)``."""
    same_cut = (f"NDCG@{metric.split('@')[1]}",) if "@" in metric else ()
    return tuple(dict.fromkeys((metric, *tested_metrics(cutoffs), *same_cut)))


def trials_arg(text: str) -> int | dict[str, int]:
    """``--trials``: N, or N followed by MODEL=N pairs (``50,cfgan=5``): a mapping with '*' for the rest."""
    first, *pairs = [part.strip() for part in text.split(",")]
    try:
        count = int(first)
        named = {name.strip(): int(value) for name, value in (pair.split("=") for pair in pairs)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N,MODEL=N,... (e.g. 50,cfgan=5), got {text!r}") from None
    return {"*": count, **named} if named else count


def _trials_per_model(trials: int | Mapping[str, int], models: Sequence[str]) -> dict[str, int]:
    """Each model's trial count: ``trials`` itself, or its entry in the mapping ('*' for the others)."""
    if isinstance(trials, Mapping):
        stray = [name for name in trials if name != "*" and name not in models]
        if stray:
            raise ValueError(f"--trials names model(s) not compared: {stray}")
        return {name: trials.get(name, trials.get("*", 10)) for name in models}
    return {name: trials for name in models}


def tested_metrics(cutoffs: Sequence[int] = ()) -> tuple[str, ...]:
    """The metrics tested and drawn beside the comparison's own: P and NDCG at each of ``cutoffs``,
    or at 5 without them."""
    return tuple(f"{m}@{k}" for k in cutoffs for m in ("P", "NDCG")) if cutoffs else TESTED_METRICS


def format_table(report: dict) -> str:
    """Mean ± std per metric over seeds and seconds per model, then the paired tests."""
    cutoffs = report.get("cutoffs")
    columns = list(dict.fromkeys((report["metric"], *(tested_metrics(cutoffs) if cutoffs else TABLE_METRICS))))
    lines = [f"{'model':14s}" + "".join(f"{m:>18s}" for m in columns) + f"{'tuning s':>10s}{'refit s':>9s}"]
    for name, result in report["models"].items():
        cells = "".join(f"{result['test'][m]['mean']:9.4f} ± {result['test'][m]['std']:.4f}" for m in columns)
        seconds = result["seconds"]
        lines.append(f"{name:14s}{cells}{seconds['tuning']:10.1f}{sum(seconds['refit_and_test']):9.1f}")
    trials = report["trials"]
    counts = trials if isinstance(trials, int) else ", ".join(f"{name} {n}" for name, n in trials.items())
    tuning = (f"tuned with {counts} trials per model on {report['metric']} averaged over "
              f"{report['splits']} validation split(s)" if trials else "documented defaults, no tuning")
    lines.append(f"{report['seeds']} seeds; {tuning}; refit on all of train, tested once per seed")
    for row in report["tests"]:
        verdict = "significant" if max(row["t_pvalue_holm"], row["wilcoxon_pvalue_holm"]) < 0.05 else "not significant"
        lines.append(f"{row['metric']}: {row['a']} - {row['b']} = {row['mean_diff']:+.4f}; paired t p = "
                     f"{row['t_pvalue_holm']:.2g}, Wilcoxon p = {row['wilcoxon_pvalue_holm']:.2g} (Holm): {verdict}")
    return "\n".join(lines)


def plot(report: dict, path: Path, title: str | None = None) -> bool:
    """Bars of every tested metric's mean over seeds, standard deviations as error bars; a model
    significantly below the best one on a metric (both Holm-corrected paired tests, p < 0.05, as
    in ``format_table``) gets a star over its bar. ``title`` names the data set. False without matplotlib."""
    try:
        fig = results_figure(report, title)
    except ImportError:
        log.warning("matplotlib is not installed: no %s (pip install 'irgan[plot]')", path.name)
        return False
    fig.savefig(path, dpi=100)
    return True


def results_figure(report: dict, title: str | None = None):
    """``plot``'s figure, a matplotlib Figure not yet written; ImportError without matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(report["models"])
    drawn = sorted(_tested_names(report["metric"], report.get("cutoffs") or ()),
                   key=lambda m: (m.split("@")[0], int(m.split("@")[1]) if "@" in m else 0))
    best = _best_model(report["models"], report["metric"])
    below = {(row["metric"], row["b"]) for row in report["tests"] if row["a"] == best
             and max(row["t_pvalue_holm"], row["wilcoxon_pvalue_holm"]) < 0.05}
    x = np.arange(len(names))
    fig = Figure(figsize=(min(13.0, max(6.5, 0.25 * len(names) * len(drawn) + 1.5)), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / len(drawn)
    for k, metric in enumerate(drawn):
        means = np.array([report["models"][n]["test"][metric]["mean"] for n in names])
        stds = np.array([report["models"][n]["test"][metric]["std"] for n in names])
        offsets = x + (k - (len(drawn) - 1) / 2) * width
        ax.bar(offsets, means, width, yerr=stds, capsize=3, label=metric)
        for offset, name, top in zip(offsets, names, means + stds):
            if (metric, name) in below:
                ax.annotate("*", (offset, top), ha="center", va="bottom", fontsize=13)
    ax.set_xticks(x, [f"{n} (best)" if n == best else n for n in names], rotation=30, ha="right")
    ax.set_ylabel(f"test, mean ± std over {report['seeds']} seeds")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.08)  # room for the stars
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    tuning = "tuned on validation" if report["trials"] else "documented defaults"
    fig.suptitle(f"{title + ': ' if title else ''}{len(names)} models, {tuning}, selected on {report['metric']}")
    ax.set_title(f"* significantly below {best} on that metric (paired t and Wilcoxon over users, Holm, p < 0.05)",
                 fontsize="small")
    return fig


def main(argv: Sequence[str] | None = None, prog: str = "python -m irgan.compare") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k", help="ml-100k (default), ml-1m, ml-20m, netflix, or a ratings file")
    parser.add_argument("--data-dir", default=None, help="folder holding the data sets (default: $IRGAN_DATA or ~/.cache/irgan)")
    data_flags(parser)
    parser.add_argument("--models", default=",".join(CANDIDATES), help=f"comma-separated, from {', '.join(CANDIDATES)}")
    parser.add_argument("--seeds", type=int, default=5, help="refits per model, seeds 0..N-1 (default 5)")
    parser.add_argument("--trials", type=trials_arg, default=10,
                        help="Optuna trials per model on validation (0: documented defaults); N,MODEL=N,... sets some "
                             "models apart, e.g. 50,cfgan=5")
    parser.add_argument("--metric", default="P@5", help="the validation metric tuning maximises; it picks the best model, and is tested beside P@5 and NDCG@5")
    parser.add_argument("--validation-fraction", type=float, default=0.1, help="share of each user's train positives for tuning")
    parser.add_argument("--splits", type=int, default=1, help="validation splits a trial's figure is averaged over (default 1)")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="cap every model's epochs (BPR, DNS, LightGCN, IRGAN's outer epochs...) at N")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--out", default=None, help="folder for the results (default: a new runs/compare-DATASET-TIME)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (log lines remain)")
    args = parser.parse_args(argv)
    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    read = {k: (None if v == "none" else v) for k in READ_FLAGS if (v := getattr(args, k)) is not None}
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    request = {"dataset": absolute_if_file(args.dataset), "test": absolute_if_file(args.test) if args.test else None,
               "data_dir": absolute(args.data_dir), "split": args.split,
               "read": read, "trials": args.trials, "metric": args.metric, "splits": args.splits,
               "validation_fraction": args.validation_fraction, "device": args.device}
    if args.cutoffs:
        request["cutoffs"] = list(args.cutoffs)
    if args.max_epochs is not None:
        request["max_epochs"] = args.max_epochs
    claim = None
    try:
        default = Path("runs") / f"compare-{Path(args.dataset).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        resume = args.out is not None and (Path(args.out) / REQUEST_FILE).is_file()
        claim = RunDir.claim(args.out, default, resume, REQUEST_FILE, "never-done")
        log.info("comparison folder: %s", claim.path)
        for leftover in (claim.path / "parts").glob(".*.tmp"):  # a write cut short
            leftover.unlink(missing_ok=True)
        data = load_dataset(request["dataset"], data_dir=args.data_dir, split=args.split, test=request["test"], **read)
        request["data_fingerprint"] = split_fingerprint(data)
        if resume:
            stored = _request(claim.path / REQUEST_FILE)
            differ = sorted(k for k in request if stored.get(k) != request[k])
            if differ:
                raise ValueError(f"{claim.path} holds a comparison with other settings or data ({', '.join(differ)}): "
                                 "choose another --out, or repeat its settings to continue it")
        else:
            claim.write(REQUEST_FILE, json.dumps(request, indent=2).encode())
        report = compare(data, models, args.seeds, args.trials, args.metric, args.validation_fraction, args.device,
                         parts=claim.path / "parts", show_progress=not args.quiet, splits=args.splits,
                         cutoffs=args.cutoffs or (), max_epochs=args.max_epochs)
        per_user = report.pop("per_user")
        claim.write("per_user.csv", per_user.to_csv(index=False).encode())
        claim.write(RESULTS_FILE, json.dumps({**request, **report}, indent=2, default=float).encode())
        plot(report, claim.path / "results.png", title=f"{Path(args.dataset).name} ({split_of(args.dataset, args.split, args.test)})")
    except (DataError, ValueError, OSError, MemoryError, FloatingPointError, torch.cuda.OutOfMemoryError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        if claim is not None:
            claim.abandon(keep_if=("parts",))
        return 2
    except KeyboardInterrupt:
        hint = (f"run the same command with --out {claim.path} to continue" if claim is not None
                and (claim.path / REQUEST_FILE).exists() else "nothing to continue")
        print(f"\ninterrupted: {hint}", file=sys.stderr)
        return 130
    finally:
        if claim is not None:
            claim.release()
    print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
