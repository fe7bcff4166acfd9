"""irgan.plot: PNG learning curves from a history, and the command line's refusals."""
from __future__ import annotations

import json
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
