"""Learning curves of an IRGAN run as PNG files.

    python -m irgan.plot runs/ml-100k-20260101-120000            # writes RUN_DIR/plots/*.png
    python -m irgan.plot RUN_DIR --out figures --metrics P@5,NDCG@5

Reads the run's ``history.jsonl`` (written live, one line per evaluation of G) or, without it,
the ``history`` of its ``metrics.json``; ``g_epochs`` comes from the config in ``metrics.json``
or ``run.json``. From Python, ``plot_history(model.history_, "figures", g_epochs=...)`` plots
an estimator's history. Needs matplotlib (``pip install matplotlib`` or ``pip install
'irgan[plot]'``); it draws with the Agg backend and leaves pyplot's global state alone.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

log = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"  # the same name irgan.train writes
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
DEFAULT_OUT = "plots"  # under RUN_DIR
DEFAULT_METRICS = ("P@3", "P@5", "P@10", "NDCG@3", "NDCG@5", "NDCG@10")  # the paper's table
MAX_EPOCH = 10**9  # beyond any run; bounds the x axis
NUMBERS = ("d_loss", "d_acc_real", "d_acc_fake", "g_reward", "g_entropy", "g_entropy_share", "g_coverage")  # per row, when present
INSTALL_HINT = "plotting needs matplotlib: pip install matplotlib (or pip install 'irgan[plot]')"


class RunDirError(ValueError):
    """A run directory that is missing, or whose history cannot be read."""


def load_run(run_dir: str | Path) -> tuple[list[dict], int | None]:
    """The history rows of ``run_dir`` and its ``g_epochs`` (None when no config says it).

    ``history.jsonl`` wins over ``metrics.json`` (it is the live log of the same rows); a
    last line cut short by a run still writing is skipped. Raises RunDirError naming the file
    (and line) of a malformed row.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is not a directory")
    metrics = _read_json(run_dir / METRICS_FILE) if (run_dir / METRICS_FILE).is_file() else None
    request = _read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).is_file() else None
    model = request.get("model", "irgan") if isinstance(request, dict) else "irgan"
    if model != "irgan":
        raise RunDirError(f"{run_dir} is a {model} run: irgan plot draws IRGAN's learning curves only "
                          f"(its metrics.json holds the {model} run's figures)")
    if (run_dir / HISTORY_FILE).is_file():
        history = _read_jsonl(run_dir / HISTORY_FILE)
    elif metrics is not None:
        history = metrics.get("history") if isinstance(metrics, dict) else None
        if not isinstance(history, list):
            raise RunDirError(f"{run_dir / METRICS_FILE} has no 'history' list")
        for n, row in enumerate(history):
            if problem := _row_problem(row):
                raise RunDirError(f"{run_dir / METRICS_FILE}: history row {n} {problem}")
    else:
        raise RunDirError(f"{run_dir} holds neither {HISTORY_FILE} nor {METRICS_FILE}: is it an irgan run directory?")
    config = metrics.get("config") if isinstance(metrics, dict) else None
    if config is None and isinstance(request, dict):  # a run still going has no metrics.json yet
        config = request.get("config")
    g_epochs = config.get("g_epochs") if isinstance(config, dict) else None
    return history, g_epochs if isinstance(g_epochs, int) else None


@dataclass(frozen=True)
class _Panel:
    """One stacked panel: y label, series [(legend, x, y)], reference lines [(y, legend)], and
    whether its y axis starts at 0 (every figure's does, so noise is drawn at its true size)."""

    label: str
    series: list
    references: tuple = ()
    from_zero: bool = True


def plot_history(
    history: list[dict],
    out_dir: str | Path,
    g_epochs: int | None = None,
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
    selected: Mapping[str, Any] | None = None,
    stopped: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write the learning curves of ``history`` (rows as in ``IRGANResult.history``) to ``out_dir``.

    Files, each written only when the history has its figures: ``d_loss.png`` and
    ``d_accuracy.png`` (one point per outer epoch, at its first G-epoch: D trains before G in
    each), ``g_reward.png``, ``g_entropy_coverage.png`` and ``selection.png`` (``metrics`` of
    the selection set; default the paper's P@k and NDCG@k, those present). Their x axis is
    the cumulative G-epoch ``epoch * g_epochs + g_epoch``; ``g_epochs`` None infers it from
    the rows (the largest ``g_epoch`` + 1). Every y axis includes 0 and its reference line (a
    coin-flip D, the uniform G's entropy, the whole catalog), so a flat curve looks flat.
    ``title`` (data set, model, seed) heads every figure; ``selected`` ({"epoch", "g_epoch"},
    as ``best_generator`` in metrics.json) marks the kept G; ``stopped`` ({"epoch", "reason"})
    an early stop; rows whose ``warnings`` fired are marked in red. Epochs are counted from 0 in
    the files and from 1 in the figures' words, as in the log. Returns the paths written.
    """
    figures = history_figures(history, g_epochs, metrics, title=title, selected=selected, stopped=stopped)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures.items():
        fig.savefig(out_dir / name, dpi=100)
        written.append(out_dir / name)
    return written


def history_figures(
    history: list[dict],
    g_epochs: int | None = None,
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
    selected: Mapping[str, Any] | None = None,
    stopped: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``plot_history``'s figures by file name, as matplotlib Figures, not yet written."""
    rows = _check_rows(history)
    if g_epochs is None:
        g_epochs = max(r["g_epoch"] for r in rows) + 1
    if g_epochs < 1:
        raise ValueError(f"g_epochs must be >= 1, got {g_epochs}")
    Figure, FigureCanvasAgg, MaxNLocator = _matplotlib()
    x = [r["epoch"] * g_epochs + r["g_epoch"] for r in rows]
    x_label = f"G-epoch (cumulative; {g_epochs} per outer epoch)"
    pad = max(0.5, 0.03 * (max(x) - min(x)))
    x_lim = (min(x) - pad, max(x) + pad)
    per_epoch = list({r["epoch"]: r for r in rows}.values())  # D's figures are set once per outer epoch
    d_x = [r["epoch"] * g_epochs for r in per_epoch]  # the G-epoch that first faced that D
    chosen = _kept_mark(selected, g_epochs, min(x))
    warned = {side: [(xi, w) for xi, r in zip(x, rows) for w in r.get("warnings") or () if _warning_side(w) == side]
              for side in ("D", "G")}
    heading_lines = [title] if title else []
    if isinstance(stopped, Mapping) and isinstance(stopped.get("epoch"), int):
        reason = f" ({stopped['reason']})" if isinstance(stopped.get("reason"), str) else ""
        heading_lines.append(f"stopped early after outer epoch {stopped['epoch'] + 1}{reason}")
    heading = "\n".join(heading_lines)
    figures: dict[str, Any] = {}

    def figure(name: str, caption: str, panels: list[_Panel], side: str) -> None:
        """One PNG of stacked panels, marked with the kept G and ``side``'s warnings; skipped when empty."""
        panels = [_Panel(p.label, [s for s in p.series if _has_values(s[2])], p.references, p.from_zero)
                  for p in panels]
        panels = [p for p in panels if p.series]
        if not panels:
            log.info("no values for %s: skipped", name)
            return
        fig = Figure(figsize=(7, 2.4 + 2.3 * len(panels) + 0.3 * max(0, len(heading_lines) - 1)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        for ax, panel in zip(axes, panels):
            values = [y for _, _, ys in panel.series for y in ys if not math.isnan(y)]
            for legend, xs, ys in panel.series:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=legend)
            for y, legend in panel.references:
                ax.axhline(y, color="0.4", linestyle=":", linewidth=1.2, label=legend)
                values.append(y)
            if chosen is not None:
                ax.axvline(chosen[0], color="tab:green", linestyle="--", linewidth=1.2, label=chosen[1])
            for n, (xi, warning) in enumerate(warned[side]):
                ax.axvline(xi, color="tab:red", alpha=0.5, linewidth=1,
                           label=f"warning: {_short(warning)}" if n == 0 else None)
            low = min([0.0, *values]) if panel.from_zero else min(values)
            high = max(values)
            span = (high - low) or 1.0
            ax.set_ylim(low - 0.04 * span if low < 0 else low, high + 0.08 * span)
            ax.set_ylabel(panel.label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small", loc="best")
        axes[0].set_title(caption, fontsize="medium")
        if heading:
            fig.suptitle(heading)
        axes[-1].set_xlabel(x_label)
        axes[-1].set_xlim(x_lim)  # the same for every figure, so D's and G's curves line up
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        figures[name] = fig

    ceiling = _uniform_entropy(rows)
    figure("d_loss.png", "Discriminator loss (mean per pair, last D-epoch of each outer epoch)",
           [_Panel("D loss", [("D loss (BCE + L2)", d_x, _column(per_epoch, "d_loss"))],
                   ((math.log(2), "ln 2: a D that cannot tell real from G's"),))], "D")
    figure("d_accuracy.png", "Discriminator accuracy after each outer epoch's D-epochs",
           [_Panel("accuracy", [("real pairs (scored > 0)", d_x, _column(per_epoch, "d_acc_real")),
                                ("generated pairs (scored < 0)", d_x, _column(per_epoch, "d_acc_fake"))],
                   ((0.5, "0.5: chance"), (1.0, "1: D always right")))], "D")
    figure("g_reward.png", "Generator: mean reward from D of its samples",
           [_Panel("reward", [("G reward", x, _column(rows, "g_reward"))])], "G")
    figure("g_entropy_coverage.png", "Generator: entropy of its softmax and catalog coverage of its samples",
           [_Panel("entropy (nats, mean per user)", [("G entropy", x, _column(rows, "g_entropy"))],
                   ((ceiling, f"uniform over the catalog: ln n_items = {ceiling:.2f}"),) if ceiling else ()),
            _Panel("catalog coverage", [("share of items sampled", x, _column(rows, "g_coverage"))],
                   ((1.0, "1: every item sampled"),))], "G")
    names = _selection_names(rows, metrics)
    figure("selection.png", "Generator on the selection set",
           [_Panel("metric", [(name, x, [_number((r.get("selection") or {}).get(name)) for r in rows])
                              for name in names])], "G")
    return figures


def run_annotations(run_dir: str | Path) -> dict[str, Any]:
    """What ``plot_history`` draws beside the curves of a run folder: ``title`` (data set, split,
    model, seed, from run.json), ``selected`` and ``stopped`` (from metrics.json); missing or
    malformed entries are left out (a run still going has no metrics.json)."""
    run_dir = Path(run_dir)
    request = _read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).is_file() else {}
    metrics = _read_json(run_dir / METRICS_FILE) if (run_dir / METRICS_FILE).is_file() else {}
    request = request if isinstance(request, dict) else {}
    metrics = metrics if isinstance(metrics, dict) else {}
    parts = [Path(str(request["dataset"])).name if request.get("dataset") else run_dir.name]
    if isinstance(request.get("split"), str):
        parts[0] += f" ({request['split']})"
    parts.append("IRGAN")
    seed = request.get("seed", metrics.get("seed"))
    if isinstance(seed, int) and not isinstance(seed, bool):
        parts.append(f"seed {seed}")
    found: dict[str, Any] = {"title": ", ".join(parts)}
    for key, name in (("best_generator", "selected"), ("stopped", "stopped")):
        if isinstance(metrics.get(key), dict):
            found[name] = metrics[key]
    return found


def main(argv: Sequence[str] | None = None, prog: str = "python -m irgan.plot") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by python -m irgan.train")
    parser.add_argument("--out", default=None, help=f"folder for the PNG files (default: RUN_DIR/{DEFAULT_OUT})")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated selection metrics to draw (default: P@3,5,10 and NDCG@3,5,10)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        history, g_epochs = load_run(args.run_dir)
        out = Path(args.out) if args.out else Path(args.run_dir) / DEFAULT_OUT
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
        paths = plot_history(history, out, g_epochs=g_epochs, metrics=metrics, **run_annotations(args.run_dir))
    except ImportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:  # RunDirError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unreadable file, an unwritable output folder
        print(f"error: {err.filename}: {err.strerror}" if err.filename and err.strerror else f"error: {err}",
              file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def _matplotlib():
    """matplotlib's Figure, Agg canvas and integer tick locator, or ImportError saying how to install it."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return Figure, FigureCanvasAgg, MaxNLocator


def _check_rows(history: Any) -> list[dict]:
    """``history`` as a non-empty list of rows that pass ``_row_problem``, else RunDirError."""
    if not isinstance(history, (list, tuple)) or not history:
        raise RunDirError("the history is empty: no evaluation of G was recorded (is the run still pretraining?)")
    for n, row in enumerate(history):
        if problem := _row_problem(row):
            raise RunDirError(f"history row {n} {problem}")
    return list(history)


def _row_problem(row: Any) -> str | None:
    """What is wrong with one history row ("is an array, not an object", ...), or None: a row is an
    object with integer ``epoch`` and ``g_epoch``, numbers (or null) for ``NUMBERS`` and a
    ``selection`` object of numbers (or null)."""
    if not isinstance(row, dict):
        return f"is {_json_kind(row)}, not an object"
    for key in ("epoch", "g_epoch"):
        value = row.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > MAX_EPOCH:
            return f"has no integer {key!r} (within +-{MAX_EPOCH:,})"
    bad = next((key for key in NUMBERS if row.get(key) is not None and not _is_number(row[key])), None)
    if bad is not None:
        kind = _json_kind(row[bad])
        return f"has {bad!r} as {kind}, not a number" if kind != "a number" else f"has {bad!r} too large to plot"
    selection = row.get("selection")
    if selection is not None and not (isinstance(selection, dict)
                                      and all(v is None or _is_number(v) for v in selection.values())):
        return "has a 'selection' that is not an object of numbers"
    return None


def _is_number(value: Any) -> bool:
    """A float, or an int that converts to one (JSON integers have no bound)."""
    return isinstance(value, float) or isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise RunDirError(f"{path} is not UTF-8 text: {err}") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except (json.JSONDecodeError, RecursionError) as err:  # RecursionError: nested too deeply
        raise RunDirError(f"{path} is not valid JSON: {err or 'nested too deeply'}") from None


def _read_jsonl(path: Path) -> list[dict]:
    """One history row (``_row_problem``) per non-blank line; a broken last line (a row being
    written) is skipped; any other bad line raises RunDirError naming the file and line."""
    lines = [(n, line) for n, line in enumerate(_read_text(path).splitlines(), 1) if line.strip()]
    rows = []
    for n, line in lines:
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as err:  # RecursionError: nested too deeply
            if n == lines[-1][0]:
                log.warning("%s: skipped line %d, cut short (a run still writing?)", path, n)
                continue
            raise RunDirError(f"{path}, line {n}: not valid JSON: {err or 'nested too deeply'}") from None
        if problem := _row_problem(row):
            raise RunDirError(f"{path}, line {n}: the row {problem}")
        rows.append(row)
    if not rows:
        raise RunDirError(f"{path} holds no rows: no evaluation of G was recorded (is the run still pretraining?)")
    return rows


def _number(value: Any) -> float:
    """``value`` as a float, NaN for a missing or non-numeric one (matplotlib leaves a gap)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _column(rows: list[dict], key: str) -> list[float]:
    return [_number(r.get(key)) for r in rows]


def _uniform_entropy(rows: list[dict]) -> float | None:
    """ln n_items, the entropy of a uniform G, from a row's ``g_entropy`` and its share of it."""
    for r in rows:
        entropy, share = _number(r.get("g_entropy")), _number(r.get("g_entropy_share"))
        if share > 0 and not math.isnan(entropy):
            return entropy / share
    return None


def _kept_mark(selected: Mapping[str, Any] | None, g_epochs: int, first: int) -> tuple[int, str] | None:
    """(x, legend) of the kept G: its cumulative G-epoch, counted from 1 in the legend as in the
    log; a G kept from before the game (epoch -1) at the first point. None when ``selected`` does not say."""
    if not isinstance(selected, Mapping):
        return None
    epoch, g_epoch = selected.get("epoch"), selected.get("g_epoch")
    if not all(isinstance(v, int) and not isinstance(v, bool) and abs(v) <= MAX_EPOCH for v in (epoch, g_epoch)):
        return None
    if epoch < 0:
        return first, "kept G: its start, before the game"
    return epoch * g_epochs + g_epoch, f"kept G: outer epoch {epoch + 1}, G-epoch {g_epoch + 1}"


def _warning_side(warning: Any) -> str:
    """"D" for a warning about the discriminator, "G" for the others (``diagnostics.diagnose``'s texts)."""
    return "D" if isinstance(warning, str) and warning.startswith("D") else "G"


def _short(warning: Any) -> str:
    """A warning's kind, its text before the first colon, for a legend."""
    return str(warning).split(":")[0][:60]


def _has_values(ys: list[float]) -> bool:
    return any(not math.isnan(y) for y in ys)


def _selection_names(rows: list[dict], metrics: Sequence[str] | None) -> list[str]:
    """The selection metrics to draw: ``metrics`` (unknown names raise ValueError) or the defaults present."""
    present: dict[str, None] = {}
    for r in rows:
        if isinstance(r.get("selection"), dict):
            present.update(dict.fromkeys(r["selection"]))
    if metrics is not None:
        unknown = [m for m in metrics if m not in present]
        if unknown:
            raise ValueError(f"unknown selection metric(s) {unknown}: the history has {', '.join(present) or 'none'}")
        return list(metrics)
    chosen = [m for m in DEFAULT_METRICS if m in present]
    return chosen or list(present)


if __name__ == "__main__":
    sys.exit(main())
