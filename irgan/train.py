"""Command line: train IRGAN (or CFGAN, APR) on a data set and write metrics, history and a checkpoint.

    python -m irgan.train --dataset ml-100k
    python -m irgan.train --dataset ml-100k --model cfgan

Every field of the model's config (``IRGANConfig``, ``CFGANConfig``, ``APRConfig``) is a flag
(``--d-lr``, ``--pretrain-epochs``...); ``--model M --help`` lists M's.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
import typing
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

import numpy as np
import torch

from irgan.checkpoint import ModelFileError, atomic_write, data_fingerprint
from irgan.config import MAX_CUTOFF, PRESETS, BPRConfig, IRGANConfig, preset
from irgan.data import DataError, load_dataset, validation_split
from irgan.data.datasets import NO_TEST, split_of
from irgan.device import keep_freed_memory, resolve_device
from irgan.distributed import current, init_from_env, local_device
from irgan.errors import one_line
from irgan.metrics import eval_ks, evaluate
from irgan.models.build import refuse_unnamed
from irgan.adversarial.irgan.recipe import run_recipe, save_irgan_model
from irgan.rundir import RunDir, absolute, absolute_if_file

log = logging.getLogger("irgan.train")
RUN_FILE = "run.json"
HISTORY_FILE = "history.jsonl"
DERIVED_PRETRAIN_FIELDS = ("negatives", "dim")  # set from --init and --dim
TABLE_METRICS = ("P@3", "P@5", "P@10", "NDCG@3", "NDCG@5", "NDCG@10")
MODELS = ("irgan", "cfgan", "apr")
MODEL_FILE = "model.pt"
VALIDATION_FRACTION = IRGANConfig().validation_fraction  # the other models carve validation as IRGAN's recipe does
# the epoch counts a refit on all of train runs: config field <- what the validation fit chose
PRODUCTION_PROTOCOL = ("production fit: selected on a validation split of all the data, refit on all of it; "
                       "no test set")
REFIT_EPOCHS = {"cfgan": {"epochs": "best_epoch_"},
                "apr": {"pretrain_epochs": "best_pretrain_epoch_", "epochs": "best_epoch_"}}


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
    read: dict | None = None,
    tensorboard: bool = False,
    test: str | None = None,
    cutoffs: Sequence[int] = (),
) -> dict:
    """Load data, pretrain G, play IRGAN, evaluate the selected G and D on test, write ``out``.

    The run directory holds ``run.json`` (what was asked, with absolute paths and the data's
    fingerprint), ``history.jsonl`` (one line per evaluation of G), ``init.pt`` (G's pretrained
    start) and ``train_state.pt`` (after each outer epoch), then ``metrics.json`` and
    ``model.pt``. ``out=None`` makes a new folder ``runs/DATASET-TIME[-N]``. The folder is
    claimed with a lock, so a second run on it refuses. ``resume=True`` continues a run whose
    directory has no ``metrics.json`` yet. ``read``: ``load_dataset`` options for a ratings file
    (``sep``, ``columns``, ``min_rating``, ``max_unpacked_mb``); ``test``: a released test file beside
    the released train file ``dataset``; ``cutoffs``: test cut-offs beside 3, 5 and 10.
    ``split="none"`` is a production fit: select on validation carved from all the data, refit on
    all of it, no test (``config.refit`` is set). Returns the dict written to ``out/metrics.json``.
    """
    start = time.perf_counter()
    read = dict(read or {})
    if split == NO_TEST:  # a production fit replays the game on all the data up to the selected point
        refuse_with_no_test(test, config.select_on)
        config = dataclasses.replace(config, refit=True)
    request = _request(dataset, data_dir, split, seed, device, read, config, test, cutoffs)
    device = resolve_device(device)
    shard = init_from_env(device)  # under torchrun: join the job; process 0 alone writes the run directory
    device = local_device(device)
    if out is None and current().world > 1:
        raise ValueError("a distributed run needs --out: its processes must agree on the run folder")
    claim, refusal = None, None
    if shard.rank == 0:
        try:
            claim = RunDir.claim(out, _default_folder(dataset), resume, RUN_FILE, "metrics.json")
        except OSError as err:  # every process must learn of the refusal, or the others would wait forever
            refusal = err
    if shard.max(int(refusal is not None)):  # every process learns of process 0's refusal
        raise refusal or FileExistsError(f"process 0 of the job refused --out {out}")
    try:
        log.info("run folder: %s", claim.path if claim else out)
        data = _load(request, data_dir, split, seed, read)
        fingerprint = split_fingerprint(data)
        if shard.rank > 0:
            _train(data, config, Path(out), dataset, request["split"], seed, device, False, writer=False, cutoffs=cutoffs)
            return {}
        if resume:
            stored = json.loads((claim.path / RUN_FILE).read_text()).get("data_fingerprint")
            if stored is not None and stored != fingerprint:
                raise ValueError(f"run {claim.path} was started on other data (its ids, shape or positives "
                                 "differ from the data read now): cannot resume; start a new run")
        else:
            claim.write(RUN_FILE, json.dumps({**request, "data_fingerprint": fingerprint}, indent=2).encode())
        report = _train(data, config, claim.path, dataset, request["split"], seed, device, show_progress,
                        tensorboard=tensorboard, cutoffs=cutoffs)
        report["seconds"] = time.perf_counter() - start
        claim.write("metrics.json", json.dumps(report, indent=2, default=float).encode())
        (claim.path / "train_state.pt").unlink(missing_ok=True)  # finished: model.pt and metrics.json supersede it
        return report
    except KeyboardInterrupt:
        if claim is None:
            raise
        if not (claim.path / RUN_FILE).exists():  # nothing to resume yet
            _abandon(claim)
            raise
        raise Interrupted(claim.path) from None
    except BaseException:
        if claim is not None:
            _abandon(claim)
        raise
    finally:
        if claim is not None:
            claim.release()


def _request(dataset: str, data_dir: str | None, split: str | None, seed: int, device: str, read: dict,
             config: Any, test: str | None, cutoffs: Sequence[int], **extra: Any) -> dict:
    """What ``run.json`` records of a run (paths absolute, the split actually used), ``extra`` after the config."""
    request = {"dataset": absolute_if_file(dataset), "data_dir": absolute(data_dir), "split": split_of(dataset, split, test),
               "seed": seed, "device": device, "read": read, "config": dataclasses.asdict(config), **extra}
    if test is not None:
        request["test"] = absolute_if_file(test)
    if cutoffs:
        request["cutoffs"] = list(cutoffs)
    return request


def _default_folder(dataset: str) -> Path:
    """``runs/DATASET-TIME``, the run folder when ``out`` is not given."""
    return Path("runs") / f"{Path(dataset).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _load(request: dict, data_dir: str | None, split: str | None, seed: int, read: dict):
    """The data set ``request`` names, split as asked."""
    return load_dataset(request["dataset"], data_dir=data_dir, split=split, seed=seed, test=request.get("test"), **read)


def refuse_with_no_test(test: str | None, select_on: str) -> None:
    """ValueError in one line when ``--split none`` (no test set) meets a released test file or selection on test."""
    if test is not None:
        raise ValueError(f"--split {NO_TEST} holds out no test set, so --test cannot apply: drop one of them")
    if select_on == "test":
        raise ValueError(f"--split {NO_TEST} holds out no test set to select on: drop --select-on test "
                         "(selection is then on a validation split of all the data)")


def _log_production(data) -> None:
    """Log what a production fit's model knows: every user, item and positive of the data."""
    log.info("production fit (no test set): the model knows %d users, %d items and all %d positives",
             data.train.n_users, data.train.n_items, data.train.nnz)


def _abandon(claim: RunDir) -> None:
    """Remove what a failed run wrote, unless G's pretrained start or a training state lets it resume."""
    claim.abandon(also=(HISTORY_FILE, "tensorboard"), keep_if=("train_state.pt", "init.pt"))


def split_fingerprint(data) -> str:
    """Digest of the split's id maps and positives: a resumed run must see the same data."""
    digest = hashlib.sha256(data_fingerprint(*(part.matrix for part in (data.train, data.test))).encode())
    for ids in (data.train.user_ids, data.train.item_ids):
        digest.update(repr(np.asarray(ids).dtype).encode())
        digest.update("\x1f".join(map(str, np.asarray(ids).tolist())).encode())
    return digest.hexdigest()


def _train(data, config: IRGANConfig, out: Path, dataset: str, split: str | None, seed: int,
           device: torch.device, show_progress: bool, writer: bool = True, tensorboard: bool = False,
           cutoffs: Sequence[int] = ()) -> dict:
    """Run the recipe (pretrain, play, select, test) into ``out`` and write model.pt; the report.
    Other processes of a distributed job (``writer=False``) train alongside and write nothing."""
    with ExitStack() as stack:
        on_evaluate = None
        if writer:  # one JSON line per evaluation, to follow a run live; the same scalars for TensorBoard
            live = stack.enter_context((out / HISTORY_FILE).open("a"))
            events = stack.enter_context(_event_writer(out / "tensorboard", config)) if tensorboard else None

            def record(row: dict) -> None:
                live.write(json.dumps(row) + "\n")
                live.flush()
                if events is not None:
                    _log_scalars(events, row, config)
            on_evaluate = record
        production = split == NO_TEST
        if production and writer:
            _log_production(data)
        result = run_recipe(data.train, None if production else data.test, config, seed=seed, device=device,
                            show_progress=show_progress and writer, on_evaluate=on_evaluate,
                            state_path=out / "train_state.pt", init_file=out / "init.pt" if writer else None,
                            cutoffs=cutoffs)
    if not writer:
        return {}
    # rewritten whole: a resumed run's live file also holds rows of the epoch that was cut short
    atomic_write(out / HISTORY_FILE, lambda f: f.write("".join(json.dumps(r) + "\n" for r in result.history).encode()))
    report = {
        "dataset": dataset,
        "split": split,
        "cutoffs": list(cutoffs),
        "select_on": config.select_on,
        "protocol": PRODUCTION_PROTOCOL if production else (
            "model selection on the TEST set (the IRGAN authors' protocol): test figures are optimistic"
            if config.select_on == "test" else "model selection on a validation split carved from train"
            + (", then refit on all of train" if config.refit else "")),
        "test": None if production else result.test["generator"],
        "test_discriminator": None if production else result.test["discriminator"],
        "test_init": None if production else result.test["init"],
        "validation" if config.select_on == "validation" else "selection_test": result.best_generator["metrics"],
        **({"validation_discriminator": result.best_discriminator["metrics"]} if production else {}),
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


@contextmanager
def _event_writer(folder: Path, config: IRGANConfig):
    """A TensorBoard SummaryWriter on ``folder``; ValueError in one line without the tensorboard package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("--tensorboard needs the tensorboard package: pip install 'irgan[tensorboard]'") from None
    writer = SummaryWriter(str(folder))
    try:
        yield writer
    finally:
        writer.close()


def _log_scalars(writer, row: dict, config: IRGANConfig) -> None:
    """A history row's numbers as TensorBoard scalars (selection metrics under ``selection/``), at
    step = G-epochs played so far."""
    step = row["epoch"] * config.g_epochs + row["g_epoch"] + 1
    for key, value in row.items():
        if key in ("epoch", "g_epoch"):
            continue
        if isinstance(value, dict):
            for name, number in value.items():
                writer.add_scalar(f"{key}/{name}", number, step)
        elif isinstance(value, (int, float)):
            writer.add_scalar(key, value, step)
    writer.flush()


def run_model(
    model: str,
    config: Any,
    dataset: str = "ml-100k",
    out: str | Path | None = None,
    data_dir: str | None = None,
    split: str | None = None,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool = True,
    read: dict | None = None,
    test: str | None = None,
    cutoffs: Sequence[int] = (),
    validation_fraction: float = VALIDATION_FRACTION,
    refit: bool = True,
) -> dict:
    """Train ``model`` ('cfgan' or 'apr', ``config`` its config) as IRGAN's recipe does: carve a
    validation split from train, choose the epochs on it, refit on all of train for those epochs
    (unless ``refit`` is False), test with full ranking, and write ``out``. ``split="none"``: a
    production fit (validation carved from all the data, refit on all of it, no test).

    The run folder holds ``run.json`` (what was asked, with "model"), ``model.pt`` (the estimator's
    model file) and ``metrics.json``, whose dict this returns. The other arguments are ``run``'s;
    such a run cannot be resumed, so a failure leaves nothing behind.
    """
    start = time.perf_counter()
    _, estimator = model_classes(model)
    read = dict(read or {})
    production = split == NO_TEST
    if production:
        refuse_with_no_test(test, "validation")
        if not refit:
            raise ValueError(f"--split {NO_TEST} refits on all the data: drop --no-refit")
    request = {"model": model, **_request(dataset, data_dir, split, seed, device, read, config, test, cutoffs,
                                          validation_fraction=validation_fraction, refit=refit)}
    device = resolve_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(f"--model {model} trains in one process: start it without torchrun")
    claim = RunDir.claim(out, _default_folder(dataset), False, RUN_FILE, "metrics.json")
    try:
        log.info("run folder: %s", claim.path)
        data = _load(request, data_dir, split, seed, read)
        claim.write(RUN_FILE, json.dumps({**request, "data_fingerprint": split_fingerprint(data)}, indent=2).encode())
        if production:
            _log_production(data)
        fit_train, selection = validation_split(data.train, validation_fraction, seed)  # as IRGAN's recipe carves it
        _check_cutoff(config.select_metric, data.train.n_items)
        params = {"seed": seed, "device": str(device), "show_progress": show_progress}
        if "min_rating" in read:  # the model file serves DataFrames with the run's threshold
            params["min_rating"] = read["min_rating"]
        chosen = estimator(**dataclasses.asdict(config), **params).fit(fit_train, validation=selection)
        epochs = {name: int(getattr(chosen, attr)) for name, attr in REFIT_EPOCHS[model].items()}
        final = estimator(**{**dataclasses.asdict(config), **epochs}, **params).fit(data.train) if refit else chosen
        # every train positive, validation's included, is known before test and left out of the ranking
        ks, seen = eval_ks(data.train.n_items, *cutoffs), data.train.matrix
        report = {
            "model": model,
            "dataset": dataset,
            "split": request["split"],
            "cutoffs": list(cutoffs),
            "select_on": "validation",
            "protocol": PRODUCTION_PROTOCOL if production else "model selection on a validation split carved "
                        "from train" + (", then refit on all of train" if refit else ""),
            "test": None if production else evaluate(final.model_, seen, data.test.matrix, ks),
            "validation": chosen.validation_metrics_,
            **{"best_" + name: value for name, value in epochs.items()},
            "refit": refit,
            "validation_fraction": validation_fraction,
            "config": dataclasses.asdict(config),
            "seed": seed,
            "device": str(device),
            "data": {"n_users": data.train.n_users, "n_items": data.train.n_items,
                     "train": int((data.train if refit else fit_train).nnz), "selection": int(selection.nnz),
                     "test": int(data.test.nnz)},
            "history": chosen.history_,
        }
        if model == "apr":  # the BPR-MF model APR started from, tested beside it
            report["test_start"] = None if production else evaluate(final.start_, seen, data.test.matrix, ks)
        final.save(claim.path / MODEL_FILE)
        report["seconds"] = time.perf_counter() - start
        claim.write("metrics.json", json.dumps(report, indent=2, default=float).encode())
        return report
    except BaseException:
        claim.abandon(also=(MODEL_FILE,))
        raise
    finally:
        claim.release()


def model_classes(model: str) -> tuple[type, type]:
    """The config dataclass and estimator class of ``model`` ('cfgan' or 'apr'), imported only when
    asked for, so that IRGAN's command line pays for neither (nor for scikit-learn)."""
    if model == "cfgan":
        from irgan.adversarial.cfgan import CFGANConfig, CFGANRecommender
        return CFGANConfig, CFGANRecommender
    if model == "apr":
        from irgan.adversarial.apr import APRConfig, APRRecommender
        return APRConfig, APRRecommender
    raise ValueError(f"unknown model {model!r}: choose from {', '.join(m for m in MODELS if m != 'irgan')}")


def _check_cutoff(metric: str, n_items: int) -> None:
    """ValueError when the selection metric's cut-off is longer than the catalog (as IRGAN's trainer says it)."""
    if metric != "MRR" and int(metric.split("@")[1]) > n_items:
        raise ValueError(f"select_metric {metric} needs more than the catalog's {n_items} items")


def config_flags(group: Any, cls: type, prefix: str = "", skip: Collection[str] = (), missing: Any = None) -> None:
    """Add one flag per field of the config dataclass ``cls`` to ``group`` (a parser or argument
    group): ``--PREFIX-FIELD-NAME`` into ``PREFIX_FIELD_NAME``, help from the field's metadata.

    int, float and str fields take a value, bool fields are ``--x`` / ``--no-x``, and ``int | None``
    (or float, str) fields also take 'none'. A flag not given leaves ``missing`` in the namespace:
    None, or ``argparse.SUPPRESS`` (no attribute) where None is a value a field can take.
    """
    hints = typing.get_type_hints(cls)  # the annotations are strings under `from __future__ import annotations`
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag, dest = "--" + prefix + f.name.replace("_", "-"), prefix.replace("-", "_") + f.name
        default = "none" if f.default is None else f.default
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        kind = _flag_type(hints[f.name], f"{cls.__name__}.{f.name}")
        if kind is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=missing, help=help_text)
        else:
            group.add_argument(flag, dest=dest, type=kind, default=missing, help=help_text)


def _flag_type(hint: Any, where: str) -> Callable[[str], Any] | type:
    """The argparse ``type`` of a field annotated ``hint``: int, float, str, bool, or X | None."""
    if hint in (int, float, str, bool):
        return hint
    args = typing.get_args(hint)
    if len(args) == 2 and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        if inner in (int, float, str):
            return _or_none(inner)
    raise TypeError(f"{where}: a flag takes int, float, str, bool or one of them | None, not {hint}")


def _or_none(kind: type) -> Callable[[str], Any]:
    """An argparse ``type``: 'none' (any case) is None, anything else a ``kind``."""
    names = {int: "an integer", float: "a number", str: "a string"}

    def parse(text: str) -> Any:
        if text.strip().lower() == "none":
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {names[kind]} or 'none', got {text!r}") from None
    return parse


def config_parser(parser: argparse.ArgumentParser) -> None:
    """Add one flag per IRGANConfig field (and --pretrain-* per BPRConfig field), help from the field."""
    config_flags(parser.add_argument_group("IRGAN (IRGANConfig)"), IRGANConfig, skip=("pretrain",))
    pretrain = parser.add_argument_group("pretraining of G (BPRConfig; its negatives and dim follow --init and --dim)")
    config_flags(pretrain, BPRConfig, "pretrain-", skip=DERIVED_PRETRAIN_FIELDS)


def model_parser(parser: argparse.ArgumentParser, model: str) -> None:
    """Add the flags of ``model`` ('cfgan' or 'apr'): one per field of its config, then how its
    epochs are chosen and whether it is refit. A flag not given is absent from the namespace."""
    config = model_classes(model)[0]
    config_flags(parser.add_argument_group(f"{model.upper()} ({config.__name__})"), config,
                 missing=argparse.SUPPRESS)
    selection = parser.add_argument_group("selection and refit")
    selection.add_argument("--validation-fraction", type=fraction_arg, default=VALIDATION_FRACTION,
                           help="share of each user's train positives held out to choose the epochs on "
                                f"select_metric, as IRGAN's recipe does (default: {VALIDATION_FRACTION})")
    selection.add_argument("--refit", action=argparse.BooleanOptionalAction, default=None,  # None: on
                           help="after choosing the epochs on validation, fit again on all of train for that many "
                                "(the honest protocol's refit, IRGAN's --refit); --no-refit tests the model fitted "
                                "on train less validation (default: on)")


def model_config_from_args(model: str, args: argparse.Namespace) -> Any:
    """The config of ``model`` the flags describe: its defaults for every flag not given."""
    config = model_classes(model)[0]
    values = vars(args)
    return config(**{f.name: values[f.name] for f in dataclasses.fields(config) if f.name in values})


def config_from_args(args: argparse.Namespace) -> IRGANConfig:
    """The IRGANConfig the flags describe: the preset's values (--preset, else the paper's
    defaults) for every flag not given."""
    values = vars(args)
    pretrain = {f.name: values[f"pretrain_{f.name}"] for f in dataclasses.fields(BPRConfig)
                if f.name not in DERIVED_PRETRAIN_FIELDS and values.get(f"pretrain_{f.name}") is not None}
    top = {f.name: values[f.name] for f in dataclasses.fields(IRGANConfig)
           if f.name != "pretrain" and values.get(f.name) is not None}
    return preset(values.get("preset") or "paper", **top, pretrain=pretrain)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run, carrying the run folder to resume."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


RUN_FLAGS = {"dataset": "ml-100k", "test": None, "data_dir": None, "split": None, "seed": 0, "device": "auto",
             "cutoffs": ()}
READ_FLAGS = ("sep", "columns", "header", "min_rating", "max_unpacked_mb")


def main(argv: Sequence[str] | None = None, prog: str = "python -m irgan.train") -> int:
    """The command line: train the --model (IRGAN by default) that ``argv`` asks for and print its test
    table; the exit status (2 with one ``error:`` line for bad input, 130 after Ctrl-C)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    model = chosen_model(argv, prog)
    parser = build_parser(model, prog)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse's own refusal, naming the model a flag belongs to when it is another's
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{_other_models_flags(unknown, model, prog)}")
    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if model != "irgan" and args.resume:
            raise ValueError(f"--resume continues IRGAN runs only: a {model} run cannot be resumed; start it again")
        if args.resume and args.out:
            raise ValueError("give --resume RUN_DIR or --out, not both: a resumed run writes to its own folder")
        read = {k: (None if v == "none" else v) for k in READ_FLAGS if (v := getattr(args, k)) is not None}
        if model != "irgan":
            given = {k: default if getattr(args, k) is None else getattr(args, k) for k, default in RUN_FLAGS.items()}
            report = run_model(model, model_config_from_args(model, args), out=args.out, show_progress=not args.quiet,
                               read=read, validation_fraction=args.validation_fraction,
                               refit=args.refit is not False, **given)
        elif args.resume:
            request = read_request(Path(args.resume))
            _refuse_unnamed_scorers(args, request["config"])
            _refuse_other_flags(args, request, read)
            report = run(request["dataset"], request["config"], args.resume, request["data_dir"],
                         request["split"], request["seed"], request["device"], not args.quiet, resume=True,
                         read=request.get("read"), tensorboard=args.tensorboard, test=request.get("test"),
                         cutoffs=request.get("cutoffs", ()))
        else:
            given = {k: default if getattr(args, k) is None else getattr(args, k) for k, default in RUN_FLAGS.items()}
            report = run(config=config_from_args(args), out=args.out, show_progress=not args.quiet, read=read,
                         tensorboard=args.tensorboard, **given)
    except (DataError, ValueError, ModelFileError, OSError, FloatingPointError, MemoryError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except torch.cuda.OutOfMemoryError as err:
        print(f"error: out of memory: {one_line(err)}; lower dim or the batch sizes", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        where = getattr(err, "run_dir", args.resume)
        hint = f"resume with  python -m irgan.train --resume {where}" if where else "nothing to resume"
        print(f"\ninterrupted: {hint}", file=sys.stderr)
        return 130
    if report:  # the other processes of a distributed job report nothing
        print(format_table(report))
    return 0


def chosen_model(argv: Sequence[str], prog: str) -> str:
    """The --model of ``argv`` (irgan when absent), read before the full parser, whose config flags depend on it."""
    first = argparse.ArgumentParser(prog=prog, add_help=False)
    first.add_argument("--model", choices=MODELS, default="irgan")
    return first.parse_known_args(argv)[0].model


def _other_models_flags(unknown: Sequence[str], model: str, prog: str) -> str:
    """A note naming, for each flag of ``unknown`` that another model defines, that model ('' if none)."""
    flags = list(dict.fromkeys(arg.split("=", 1)[0] for arg in unknown if arg.startswith("--")))
    if not flags:
        return ""
    defined = {other: build_parser(other, prog)._option_string_actions for other in MODELS if other != model}
    notes = [f"{flag} is a flag of --model {', '.join(owners)}" for flag in flags
             if (owners := [other for other, options in defined.items() if flag in options])]
    return f" ({'; '.join(notes)})" if notes else ""


def build_parser(model: str, prog: str = "python -m irgan.train") -> argparse.ArgumentParser:
    """The command line of ``model``: the data and run flags, then its config's flags (IRGAN's as
    ``config_parser`` makes them, with --preset and --tensorboard; the others' as ``model_parser``)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=MODELS, default="irgan",
                        help="irgan (default; Wang et al. 2017), cfgan (Chae et al. 2018) or apr (He et al. 2018); "
                             "--model M --help lists M's flags")
    parser.add_argument("--dataset", default=None, help="ml-100k (default), ml-1m, ml-20m, netflix, or the path of a ratings file (CSV/TSV, optionally gzip/zip, parquet, RecBole .inter)")
    parser.add_argument("--data-dir", default=None, help="folder holding the data sets (default: $IRGAN_DATA or ~/.cache/irgan)")
    data_flags(parser)
    parser.add_argument("--seed", type=int, default=None, help="seed of every random draw (default: 0)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--out", default=None, help="run directory to create (default: a new runs/DATASET-TIME)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (one log line per outer epoch remains)")
    if model == "irgan":
        parser.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files to RUN/tensorboard")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue an interrupted run from its last finished outer epoch, with its own flags"
                             + (" (IRGAN runs only)" if model != "irgan" else ""))
    if model == "irgan":
        parser.add_argument("--preset", default=None, choices=list(PRESETS),
                            help="start from a named configuration, flags given on top: 'paper' (the default: the "
                                 "authors' settings) or 'strong' (32 dimensions, tuned learning rates, refit; see README)")
        config_parser(parser)
    else:
        model_parser(parser, model)
    return parser


def data_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say how to read the data, shared by ``irgan train`` and ``irgan compare``."""
    parser.add_argument("--test", default=None, help="a released test file: --dataset is then its released train file, "
                                                     "both read alike with ids mapped jointly (no --split)")
    parser.add_argument("--split", default=None, help="u1 (ml-100k default, the paper's), random, loo, temporal, "
                                                      "or none: a production fit on all the data, no test set")
    parser.add_argument("--sep", default=None, help="field separator of a ratings file (default: detected; '\\t' for tab)")
    parser.add_argument("--columns", default=None, help="the file's fields in order, e.g. user,item,-,rating ('-' skips a field; default: from the header, else user,item[,rating[,timestamp]])")
    parser.add_argument("--header", default=None, action=argparse.BooleanOptionalAction,
                        help="the file's first line is a header (--header) or data (--no-header) (default: detected)")
    parser.add_argument("--min-rating", default=None, type=min_rating_arg, help="ratings >= this are positives; 'none': every row is a positive (default: 4)")
    parser.add_argument("--max-unpacked-mb", default=None, type=float,
                        help="the most MiB a compressed ratings file may unpack to (default: 512)")
    parser.add_argument("--cutoffs", default=None, type=cutoffs_arg,
                        help="test cut-offs to report, e.g. 5,10,20 (default: 3,5,10)")


def cutoffs_arg(text: str) -> tuple[int, ...]:
    """--cutoffs: comma-separated whole numbers from 1 to MAX_CUTOFF, e.g. 5,10,20."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None
    if not values or not all(1 <= k <= MAX_CUTOFF for k in values):
        raise argparse.ArgumentTypeError(f"expected cut-offs from 1 to {MAX_CUTOFF:,}, got {text!r}")
    return tuple(dict.fromkeys(values))


def fraction_arg(text: str) -> float:
    """--validation-fraction: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def min_rating_arg(text: str) -> float | str:
    """--min-rating: a number, or 'none' (every row is a positive)."""
    if text.strip().lower() == "none":
        return "none"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number or 'none', got {text!r}")
    return value


def _refuse_unnamed_scorers(args: argparse.Namespace, config: IRGANConfig) -> None:
    """ValueError unless each scorer run.json names is built-in or given again on this command line."""
    for name, role in (("g_scorer", "G"), ("d_scorer", "D")):
        spec, flag = getattr(config, name), "--" + name.replace("_", "-")
        refuse_unnamed(spec, str(Path(args.resume) / RUN_FILE), role, [getattr(args, name)],
                       f"to resume with it, run --resume {args.resume} {flag} {spec}")


def _refuse_other_flags(args: argparse.Namespace, request: dict, read: dict) -> None:
    """ValueError listing the flags given with --resume that differ from the run being resumed."""
    differ = []
    for key in RUN_FLAGS:
        value = getattr(args, key)
        stored = request.get(key)
        if value is not None and key in ("dataset", "test"):
            value = absolute_if_file(value)
        if key == "data_dir" and value is not None:
            value = absolute(value)
        if key == "cutoffs" and value is not None:
            value, stored = list(value), stored or []
        if value is not None and value != stored:
            differ.append(f"--{key.replace('_', '-')} {value} (the run has {stored})")
    stored_read = request.get("read") or {}
    for key, value in read.items():
        if key not in stored_read or stored_read[key] != value:
            stored = stored_read.get(key, "its default")
            differ.append(f"--{key.replace('_', '-')} {value} (the run has {stored})")
    config = dataclasses.asdict(request["config"])
    asked = dataclasses.asdict(config_from_args(args))
    values = vars(args)
    every = args.preset is not None  # a preset sets every field
    for f in dataclasses.fields(IRGANConfig):
        if f.name != "pretrain" and (every or values.get(f.name) is not None) and asked[f.name] != config[f.name]:
            differ.append(f"--{f.name.replace('_', '-')} {asked[f.name]} (the run has {config[f.name]})")
    for f in dataclasses.fields(BPRConfig):
        key = f"pretrain_{f.name}"
        if f.name in DERIVED_PRETRAIN_FIELDS:
            continue
        if (every or values.get(key) is not None) and asked["pretrain"][f.name] != config["pretrain"][f.name]:
            differ.append(f"--pretrain-{f.name.replace('_', '-')} {asked['pretrain'][f.name]} "
                          f"(the run has {config['pretrain'][f.name]})")
    if differ:
        raise ValueError(f"--resume continues a run with its own flags; these differ: {'; '.join(differ)}")


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
    if isinstance(request, dict) and request.get("model", "irgan") != "irgan":
        raise ValueError(f"{run_dir} is a run of --model {request['model']}: --resume continues IRGAN runs only")
    if not isinstance(request, dict) or not keys <= request.keys() or not isinstance(request["config"], dict):
        raise ValueError(f"{path} is not the run.json of an irgan run (expected keys {sorted(keys)})")
    try:
        request["config"] = IRGANConfig(**request["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path} holds a config irgan does not know: {err}") from None
    return request


def format_table(report: dict) -> str:
    """The final test metrics of the run's models as a fixed-width table (a production fit: its
    validation figures, so labelled)."""
    production = report["test"] is None
    rows = _validation_rows(report) if production else _table_rows(report)
    cutoffs = report.get("cutoffs")
    columns = [f"{m}@{k}" for m in ("P", "NDCG") for k in cutoffs] if cutoffs else TABLE_METRICS
    title = "validation (production fit)" if production else f"test ({report['select_on']}-selected)"
    lines = [f"{title:28s}" + "".join(f"{m:>9s}" for m in columns)]
    lines += [f"{name:28s}" + "".join(f"{metrics.get(m, float('nan')):9.4f}" for m in columns)
              for name, metrics in rows]
    lines.append(f"{report['seconds']:.1f} s; {report['protocol']}")
    return "\n".join(lines)


def _validation_rows(report: dict) -> list[tuple[str, dict]]:
    """(label, validation metrics at selection) of each model a production fit selected: IRGAN's G and D, or the model."""
    model = report.get("model", "irgan")
    if model != "irgan":
        return [(model.upper(), report["validation"])]
    return [("IRGAN G", report["validation"]), ("IRGAN D", report["validation_discriminator"])]


def _table_rows(report: dict) -> list[tuple[str, dict]]:
    """(label, test metrics) of each model a run tested: IRGAN's start, G and D; CFGAN's G; APR and its BPR start."""
    model = report.get("model", "irgan")
    if model == "cfgan":
        return [("CFGAN G", report["test"])]
    if model == "apr":
        return [(f"BPR start ({report['best_pretrain_epochs']} epochs)", report["test_start"]), ("APR", report["test"])]
    rows = [("IRGAN G", report["test"]), ("IRGAN D", report["test_discriminator"])]
    if report.get("test_init"):
        config = report["config"]
        label = f"init ({config['init']})"
        if config["init"] in ("dns", "bpr") and config["pretrain"]["epochs"] == 0:
            label = "init (random: 0 pretraining epochs)"
        rows.insert(0, (label, report["test_init"]))
    return rows


if __name__ == "__main__":
    sys.exit(main())
