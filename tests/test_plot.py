"""irgan.plot: PNG learning curves from a history, and the command line's refusals; irgan compare's results.png."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from irgan.plot import RunDirError, load_run, main, plot_history  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
ALL = ["d_loss.png", "d_accuracy.png", "g_reward.png", "g_entropy_coverage.png", "selection.png"]


def history(epochs: int = 2, g_epochs: int = 3, d_stats: bool = True) -> list[dict]:
    """Rows shaped as IRGANResult.history: one per evaluation of G."""
    rows = []
    for e in range(epochs):
        for g in range(g_epochs):
            t = e * g_epochs + g
            row = {"epoch": e, "g_epoch": g, "g_reward": -0.1 + 0.01 * t, "g_entropy": 7.0 - 0.1 * t,
                   "g_coverage": 0.9 - 0.01 * t, "seconds": float(t), "warnings": [],
                   "selection": {"P@3": 0.30 + 0.01 * t, "P@5": 0.28, "NDCG@5": 0.31, "MRR": 0.5}}
            if d_stats:
                row.update(d_loss=0.69 - 0.05 * e, d_acc_real=0.6 + 0.1 * e, d_acc_fake=0.55)
            rows.append(row)
    return rows


def assert_pngs(paths: list[Path], names: list[str]) -> None:
    assert [p.name for p in paths] == names
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 1000, path


def test_plot_history_writes_every_figure(tmp_path):
    paths = plot_history(history(), tmp_path / "out", g_epochs=3)
    assert_pngs(paths, ALL)


def test_plot_history_skips_figures_without_values(tmp_path):
    """d_epochs=0: the rows have no D statistics, so no D figures (and no error)."""
    paths = plot_history(history(d_stats=False), tmp_path)
    assert_pngs(paths, ALL[2:])


def test_plot_history_refuses_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plot_history([], tmp_path)
    with pytest.raises(ValueError, match="g_epoch"):
        plot_history([{"epoch": 0}], tmp_path)
    with pytest.raises(ValueError, match="unknown selection metric"):
        plot_history(history(), tmp_path, metrics=["P@7"])


def test_cli_reads_metrics_json(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"config": {"g_epochs": 3}, "history": history()}))
    assert main([str(run)]) == 0
    assert_pngs([Path(line) for line in capsys.readouterr().out.split()], ALL)
    assert (run / "plots" / "selection.png").is_file()


def test_cli_prefers_history_jsonl_and_run_json_config(tmp_path):
    """A run still going: history.jsonl (last line cut short) and run.json, no metrics.json."""
    run = tmp_path / "run"
    run.mkdir()
    lines = [json.dumps(r) for r in history(epochs=1, g_epochs=4)]
    (run / "history.jsonl").write_text("\n".join(lines) + '\n{"epoch": 1, "g_ep')
    (run / "run.json").write_text(json.dumps({"config": {"g_epochs": 50}}))
    rows, g_epochs = load_run(run)
    assert len(rows) == 4 and g_epochs == 50
    assert main([str(run), "--out", str(tmp_path / "figs"), "--metrics", "P@5,MRR"]) == 0
    assert_pngs(sorted((tmp_path / "figs").iterdir()), sorted(ALL))


@pytest.mark.parametrize("setup, message", [
    (None, "does not exist"),
    (lambda d: d.mkdir(), "neither history.jsonl nor metrics.json"),
    (lambda d: (d.mkdir(), (d / "metrics.json").write_text("{not json")), "not valid JSON"),
    (lambda d: (d.mkdir(), (d / "metrics.json").write_text('{"history": 3}')), "no 'history' list"),
    (lambda d: (d.mkdir(), (d / "metrics.json").write_text('{"history": []}')), "empty"),
    (lambda d: (d.mkdir(), (d / "history.jsonl").write_text('[1]\n{"epoch": 0}\n')), "not an object"),
    (lambda d: (d.mkdir(), (d / "history.jsonl").write_text('{bad\n{"epoch": 0}\n')), "line 1"),
])
def test_cli_missing_or_malformed_run_dir_exits_2(tmp_path, capsys, setup, message):
    run = tmp_path / "run"
    if setup is not None:
        setup(run)
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_load_run_error_type(tmp_path):
    with pytest.raises(RunDirError):
        load_run(tmp_path / "nope")


def test_missing_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import of it now raises ImportError
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_history(history(), tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"history": history()}))
    assert main([str(run)]) == 1


def lines(fig, label_start: str) -> list:
    """The lines of every axis of ``fig`` whose legend label starts with ``label_start``."""
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_label().startswith(label_start)]


def test_every_figure_starts_at_zero_and_draws_its_reference_line():
    """A healthy run must look flat: each y axis holds 0 and the line a reader judges against."""
    from irgan.plot import history_figures

    rows = history()
    for r in rows:
        r["g_entropy_share"] = r["g_entropy"] / 7.43
    figures = history_figures(rows, g_epochs=3)
    expected = {"d_loss.png": [math.log(2)], "d_accuracy.png": [0.5, 1.0], "g_entropy_coverage.png": [7.43, 1.0]}
    for name, fig in figures.items():
        for ax in fig.axes:
            assert ax.get_ylim()[0] <= 0.0, (name, ax.get_ylabel())
        references = [line.get_ydata()[0] for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert references == pytest.approx(expected.get(name, [])), name
        for ax in fig.axes:
            assert all(ax.get_ylim()[1] > y for line in ax.get_lines() if line.get_linestyle() == ":"
                       for y in line.get_ydata())
    entropy = lines(figures["g_entropy_coverage.png"], "uniform")
    assert "7.43" in entropy[0].get_label()


def test_without_the_entropy_share_no_uniform_line_is_guessed():
    from irgan.plot import history_figures

    figures = history_figures(history(), g_epochs=3)
    assert not lines(figures["g_entropy_coverage.png"], "uniform")


def test_the_kept_generator_and_the_warnings_are_marked_where_they_happened():
    from irgan.plot import history_figures

    rows = history(epochs=3, g_epochs=4)
    rows[5]["warnings"] = ["G collapsed: it sampled only 3.0% of the catalog in a G-epoch"]
    rows[9]["warnings"] = ["D's accuracy on real pairs is pinned: 0.995"]
    figures = history_figures(rows, g_epochs=4, selected={"epoch": 1, "g_epoch": 2})
    for name, fig in figures.items():
        kept = lines(fig, "kept G")
        assert kept and all(list(line.get_xdata()) == [6, 6] for line in kept), name  # 1 * 4 + 2
        assert kept[0].get_label() == "kept G: outer epoch 2, G-epoch 3"  # counted from 1, as in the log
        warned = [line for ax in fig.axes for line in ax.get_lines() if line.get_color() == "tab:red"]
        where = {line.get_xdata()[0] for line in warned}
        assert where == ({9} if name.startswith("d_") else {5}), name
    assert lines(figures["d_accuracy.png"], "warning: D's accuracy on real pairs is pinned")
    assert lines(figures["g_reward.png"], "warning: G collapsed")
    start = history_figures(rows, g_epochs=4, selected={"epoch": -1, "g_epoch": -1})["selection.png"]
    assert [(list(line.get_xdata()), line.get_label()) for line in lines(start, "kept G")] == [
        ([0, 0], "kept G: its start, before the game")]
    unmarked = history_figures(history(), g_epochs=3)
    assert not any(lines(fig, "kept G") or lines(fig, "warning") for fig in unmarked.values())


def test_figures_are_titled_with_the_run_and_its_early_stop(tmp_path):
    from irgan.plot import history_figures, run_annotations

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"dataset": "/data/my ratings.csv", "split": "random", "seed": 7}))
    (run / "metrics.json").write_text(json.dumps({
        "history": history(), "best_generator": {"epoch": 1, "g_epoch": 0},
        "stopped": {"epoch": 1, "reason": "no better validation P@5 for 3 outer epochs"}}))
    found = run_annotations(run)
    assert found == {"title": "my ratings.csv (random), IRGAN, seed 7", "selected": {"epoch": 1, "g_epoch": 0},
                     "stopped": {"epoch": 1, "reason": "no better validation P@5 for 3 outer epochs"}}
    for fig in history_figures(history(), g_epochs=3, **found).values():
        heading = fig.get_suptitle()
        assert heading.startswith("my ratings.csv (random), IRGAN, seed 7\n")
        assert "stopped early after outer epoch 2 (no better validation P@5 for 3 outer epochs)" in heading
    assert main([str(run)]) == 0
    assert run_annotations(tmp_path) == {"title": f"{tmp_path.name}, IRGAN"}  # no run.json: the folder's name


def report(p_values: dict[str, tuple[float, float]]) -> dict:
    """A comparison report of three models on P@5 and NDCG@5: "ease" best; ``p_values`` maps
    "model metric" to its Holm-corrected (t, Wilcoxon) p-values against ease."""
    means = {"ease": 0.40, "bpr": 0.35, "bpr-start": 0.30}
    models = {name: {"test": {m: {"mean": mean + (0.02 if m == "NDCG@5" else 0.0), "std": 0.01}
                              for m in ("P@5", "NDCG@5")}} for name, mean in means.items()}
    models["bpr-start"]["against"] = "bpr"
    tests = [{"metric": key.split()[1], "a": "ease", "b": key.split()[0], "t_pvalue_holm": t,
              "wilcoxon_pvalue_holm": w} for key, (t, w) in p_values.items()]
    return {"models": models, "metric": "P@5", "cutoffs": [], "seeds": 3, "trials": 10, "tests": tests}


def test_results_figure_stars_only_the_models_significantly_below_the_best(tmp_path):
    from irgan.compare import plot, results_figure

    fig = results_figure(report({"bpr P@5": (0.01, 0.02), "bpr NDCG@5": (0.01, 0.2)}), title="ml-100k (u1)")
    ax = fig.axes[0]
    stars = [text for text in ax.texts if text.get_text() == "*"]
    assert len(stars) == 1  # NDCG@5: the Wilcoxon test does not agree, so no star
    x, y = stars[0].xy
    under = [p.get_height() for p in ax.patches if p.get_x() + p.get_width() / 2 == pytest.approx(x)]
    assert under == [pytest.approx(0.35)] and y == pytest.approx(0.35 + 0.01)  # bpr's P@5 bar, over its error bar
    labels = [tick.get_text() for tick in ax.get_xticklabels()]
    assert labels == ["ease (best)", "bpr", "bpr-start"]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["NDCG@5", "P@5"]
    assert fig.get_suptitle().startswith("ml-100k (u1): 3 models, tuned on validation, selected on P@5")
    assert "significantly below ease" in ax.get_title()
    assert not [t for t in results_figure(report({"bpr P@5": (0.2, 0.01)})).axes[0].texts if t.get_text() == "*"]
    assert plot(report({}), tmp_path / "results.png") and (tmp_path / "results.png").read_bytes().startswith(PNG)


def test_results_figure_draws_every_tested_metric_at_the_chosen_cut_offs():
    from irgan.compare import results_figure

    chosen = report({})
    for model in chosen["models"].values():
        model["test"].update({m: {"mean": 0.2, "std": 0.0} for m in ("P@20", "NDCG@20", "NDCG@10")})
    chosen.update(metric="NDCG@10", cutoffs=[5, 20])
    legend = results_figure(chosen).axes[0].get_legend().get_texts()
    assert [t.get_text() for t in legend] == ["NDCG@5", "NDCG@10", "NDCG@20", "P@5", "P@20"]
