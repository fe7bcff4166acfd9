"""Training configurations: ``BPRConfig`` (BPR / DNS pretraining) and ``IRGANConfig`` (the game).

The defaults are the IRGAN authors' protocol for MovieLens (their released ``cf_dns.py`` and
``cf_gan.py``), except model selection, which uses a validation split by default. Every field is
checked against its annotation (ints and floats as Python numbers, floats finite, counts >= 0),
then against its own range, each problem a ValueError in one line naming the field. This module
imports nothing of irgan: every other module may read a config.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
import typing
from dataclasses import dataclass, field

SCORERS = ("mf", "mlp", "itemitem", "lightgcn")
ESTIMATORS = ("reinforce", "snis", "exact")
REWARDS = ("code", "paper")
D_NEGATIVES = ("first", "refresh")
SELECT_ON = ("validation", "test")
MAX_COUNT = 10_000  # the most epochs, seeds, trials or splits any real use asks for: more is a typo


class _MetricNames:
    """The metrics a model can be selected or tuned on: P, Recall, NDCG, MAP or HR at any cut-off
    from 1 to MAX_CUTOFF, and MRR; ``name in SELECT_METRICS`` checks one."""

    pattern = re.compile(r"(?:P|Recall|NDCG|MAP|HR)@([1-9]\d{0,4})|MRR")

    def __contains__(self, name: object) -> bool:
        found = isinstance(name, str) and self.pattern.fullmatch(name)
        return bool(found) and (name == "MRR" or int(found.group(1)) <= MAX_CUTOFF)

    def __repr__(self) -> str:
        return f"P@k, Recall@k, NDCG@k, MAP@k, HR@k (k from 1 to {MAX_CUTOFF:,}) or MRR"


MAX_CUTOFF = 10_000
SELECT_METRICS = _MetricNames()


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@functools.cache
def _hints(cls: type) -> dict[str, type]:
    """The fields' annotations as types (they are strings under ``from __future__ import annotations``)."""
    return typing.get_type_hints(cls)


def _check_fields(config: typing.Any, at_least_one: tuple[str, ...] = (), counts: tuple[str, ...] = ()) -> None:
    """ValueError unless each field of ``config`` has its annotated type (a bool is no number; numpy
    numbers become Python ones), each float is finite and each int >= 0, or >= 1 if in ``at_least_one``;
    the epoch ``counts`` at most MAX_COUNT."""
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        name, value, kind = f.name, getattr(config, f.name), hints[f.name]
        number = (numbers.Integral if kind is int else numbers.Real) if kind in (int, float) else None
        if number is not None and isinstance(value, number) and not isinstance(value, bool):
            if type(value) is not kind:
                object.__setattr__(config, name, kind(value))
        elif number is not None or not isinstance(value, kind):
            names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
            raise ValueError(f"{name} must be {names.get(kind, 'a ' + kind.__name__)}, got {value!r}")
        value = getattr(config, name)
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
        if kind is int and value < (1 if name in at_least_one else 0):
            raise ValueError(f"{name} must be >= {1 if name in at_least_one else 0}, got {value}")
        if name in counts and value > MAX_COUNT:
            raise ValueError(f"{name} must be at most {MAX_COUNT:,}, got {value}")


def check_count(name: str, value: typing.Any, optional: bool = False) -> None:
    """ValueError in one line unless ``value`` is an integer >= 1 (a bool is no number; a numpy
    integer is one), or None where ``optional``: the configs' and the estimators' counts."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1{' or None' if optional else ''}, got {value!r}")


def _check_optional_counts(config: typing.Any, names: tuple[str, ...]) -> None:
    """``check_count`` for each of ``names``, None allowed (``_check_fields`` knows plain types only);
    a numpy integer from a grid becomes an int."""
    for name in names:
        value = getattr(config, name)
        check_count(name, value, optional=True)
        if value is not None:
            object.__setattr__(config, name, int(value))


def _positive(config: typing.Any, names: tuple[str, ...], note: str = "") -> None:
    for name in names:
        if not getattr(config, name) > 0:
            raise ValueError(f"{name} must be positive, got {getattr(config, name)}{note}")


def _not_negative(config: typing.Any, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")


@dataclass(frozen=True)
class BPRConfig:
    """Pairwise training of a scorer (BPR, Rendle et al. UAI 2009; DNS, Zhang et al. SIGIR 2013);
    the defaults are the IRGAN authors' DNS pretraining of G."""

    negatives: str = _f("dns", "negative sampling: 'uniform' (BPR) or 'dns' (best of dns_candidates)")
    dns_candidates: int = _f(5, "DNS: uniform non-positive candidates per pair; the highest-scored is the negative")
    dim: int = _f(5, "embedding size")
    init_scale: float = _f(0.05, "embeddings start uniform(-init_scale, init_scale)")
    epochs: int = _f(80, "passes over the training positives")
    lr: float = _f(0.05, "learning rate per (user, pos, neg) triple")
    l2: float = _f(0.1, "L2 on the rows a triple touches, per occurrence")
    optimizer: str = _f("sgd", "'sgd' (the authors') or 'adam'")
    batch_size: int = _f(64, "triples per update, losses summed (the authors: 1; see RESULTS.md)")

    def __post_init__(self) -> None:
        _check_fields(self, at_least_one=("dns_candidates", "dim", "batch_size"), counts=("epochs",))  # epochs 0: G keeps its random start
        if self.negatives not in ("uniform", "dns"):
            raise ValueError(f"negatives must be 'uniform' or 'dns', got {self.negatives!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        _positive(self, ("lr",))
        _not_negative(self, ("init_scale", "l2"))


@dataclass(frozen=True)
class IRGANConfig:
    """Every choice of IRGAN's item-recommendation game; the CLI's flags map 1:1 onto these fields."""

    g_scorer: str = _f("mf", "G's scorer: 'mf' (the paper's), 'mlp' (two-tower), 'itemitem' (x_u . B[:, i]), 'lightgcn' (3 layers over train's graph), or 'module:Class' of your own, built as Class(n_users, n_items)")
    d_scorer: str = _f("mf", "D's scorer, as for g_scorer")
    dim: int = _f(5, "embedding size of G and D (MF, MLP, LightGCN)")
    hidden: int = _f(64, "MLP scorers: width of the towers' hidden layer")
    itemitem_init: str = _f("ease", "item-item scorers start from 'ease' (its closed form on train) or 'zero'")
    ease_l2: float = _f(300.0, "EASE's L2 when an item-item scorer starts from it")
    init_scale: float = _f(0.05, "random embeddings start uniform(-init_scale, init_scale), biases at 0")
    init: str = _f("dns", "G's start: 'dns' or 'bpr' (pretrained here), 'random', or the path of a model file (.pkl as the authors ship, or .npz)")
    pretrain: BPRConfig = field(default_factory=BPRConfig, metadata={"help": "the pretraining of G when init is 'dns' or 'bpr'"})
    pretrain_select: bool = _f(False, "start G from the pretraining epoch that scores best on the selection set (select_metric), not the last")

    epochs: int = _f(15, "outer epochs, each d_epochs of D then g_epochs of G")
    d_epochs: int = _f(100, "D-epochs per outer epoch (one pass over the positives and as many G samples)")
    g_epochs: int = _f(50, "G-epochs per outer epoch (one policy-gradient step per user)")
    optimizer: str = _f("sgd", "'sgd' (the authors') or 'adam', for both players")

    d_lr: float = _f(0.001, "D's learning rate per sample")
    d_l2: float = _f(0.2, "D's L2 per sample on the rows it touches (the authors' lamda 0.1/16 on a 32-sample summed batch)")
    d_batch_size: int = _f(65536, "(pos, neg) pairs per D update; the authors used 16, equivalent at this learning rate (RESULTS.md)")
    d_sample_every: int = _f(5, "D-epochs between new draws of G samples")
    d_temperature: float = _f(0.2, "temperature of G's softmax when it proposes negatives to D")
    d_negatives: str = _f("first", "'first': D keeps the first draw all run, as the authors' code does (its linecache never re-reads the file); 'refresh': new draws every d_sample_every D-epochs, as the paper describes")
    d_exclude_positives: bool = _f(False, "draw D's negatives only from items the user has not interacted with (the authors' code can draw positives)")

    g_lr: float = _f(0.001, "G's learning rate (per user: each user's loss is a mean over its samples)")
    g_l2: float = _f(0.0, "G's L2 on the user rows of a step")
    g_temperature: float = _f(1.0, "temperature of G's softmax in the policy-gradient step")
    g_sample_factor: int = _f(2, "G samples per training positive of the user, per G-epoch")
    g_mix: float = _f(0.2, "importance sampling: propose from (1 - g_mix) G + g_mix uniform over the user's positives")
    g_batch_users: int = _f(1024, "users per G update; the authors used 1, equivalent at this learning rate (RESULTS.md)")
    g_estimator: str = _f("reinforce", "G's gradient: 'reinforce' (importance-sampled, the paper's), 'snis' (self-normalised weights, SD-GAR) or 'exact' (the expectation over the catalog)")
    fast_path: bool = _f(True, "hand-derived gradients when a player is MF (same result as autograd, faster); off: autograd for every scorer")
    reward: str = _f("code", "'code': 2 (sigmoid(f) - 1/2), the authors' code; 'paper': log(1 + exp(f)), the paper's")

    select_on: str = _f("validation", "choose the best G/D on 'validation' (carved from train) or on 'test' (the authors' protocol: optimistic)")
    select_metric: str = _f("P@5", "metric that picks the best G and D (the authors: P@5)")
    validation_fraction: float = _f(0.1, "share of each user's train positives held out for selection")
    eval_every: int = _f(1, "G-epochs between evaluations of G for selection (the authors: 1)")
    eval_users: int | None = _f(None, "evaluate G and D for selection on this many selection users, drawn once with the seed (a large catalog's evaluation costs its users); None: all (the authors)")
    refit: bool = _f(False, "after selection on validation, pretrain and play again on all of train up to the selected G-epoch (the honest protocol's refit, as irgan compare does)")
    patience: int | None = _f(None, "stop the game after this many outer epochs without a better G on select_metric (RecBole's stopping_step); None: never (the paper's protocol). Pretraining runs all its epochs whatever this says: on ml-100k its validation curve stalls up to 22 epochs before its best")

    def __post_init__(self) -> None:
        if isinstance(self.pretrain, dict):
            unknown = sorted(set(self.pretrain) - {f.name for f in dataclasses.fields(BPRConfig)}, key=str)
            if unknown:
                raise ValueError(f"pretrain has unknown field(s) {unknown}")
            try:
                object.__setattr__(self, "pretrain", BPRConfig(**self.pretrain))
            except ValueError as err:
                raise ValueError(f"pretrain.{err}") from None
        _check_optional_counts(self, ("patience", "eval_users"))
        _check_fields(self, at_least_one=("dim", "hidden", "epochs", "d_batch_size", "d_sample_every",
                                          "g_sample_factor", "g_batch_users", "eval_every"),
                      counts=("epochs", "d_epochs", "g_epochs"))
        for name in ("g_scorer", "d_scorer"):
            if getattr(self, name) not in SCORERS and not re.fullmatch(r"[\w.]+:\w+", str(getattr(self, name))):
                raise ValueError(f"{name} must be one of {SCORERS} or 'module:Class', got {getattr(self, name)!r}")
        choices = {"g_estimator": ESTIMATORS,
                   "itemitem_init": ("ease", "zero"), "reward": REWARDS, "d_negatives": D_NEGATIVES, "select_on": SELECT_ON, "optimizer": ("sgd", "adam"),
                   "select_metric": SELECT_METRICS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0 <= self.g_mix < 1:
            raise ValueError(f"g_mix must be in [0, 1), got {self.g_mix}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        _positive(self, ("d_temperature", "g_temperature", "d_lr", "g_lr", "ease_l2"),
                  " (temperatures, learning rates and ease_l2 must be positive numbers)")
        _not_negative(self, ("init_scale", "d_l2", "g_l2"))
        if self.refit and self.select_on != "validation":
            raise ValueError("refit needs select_on='validation': selecting on test leaves nothing to refit on")


# Named starting points for IRGANConfig: field values over the defaults (``pretrain`` as BPRConfig fields).
# "strong": the configuration the honest protocol chose for IRGAN (benchmarks/RESULTS.md, "What helps
# adversarial training"): 32 dimensions, a DNS start selected on validation, refit on all of train.
PRESETS: dict[str, dict] = {
    "paper": {},
    "strong": {"dim": 32, "g_lr": 0.00474, "d_lr": 0.000156, "d_l2": 0.897, "pretrain": {"l2": 0.0625},
               "pretrain_select": True, "refit": True},
}


def preset(name: str, **overrides: typing.Any) -> IRGANConfig:
    """The IRGANConfig of preset ``name`` with ``overrides`` on top; a ``pretrain`` dict of
    overrides updates the preset's pretraining fields one by one."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    values = {**PRESETS[name], **overrides}
    pretrain = overrides.get("pretrain")
    if pretrain is None or isinstance(pretrain, dict):
        values["pretrain"] = {**PRESETS[name].get("pretrain", {}), **(pretrain or {})}
    return IRGANConfig(**values)
