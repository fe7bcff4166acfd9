"""Compare budgets: models without randomness fitted once, epochs capped, tuning and refit timed apart."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from irgan import compare as compare_cli
from irgan import protocol


@pytest.fixture(scope="module")
def ratings(tmp_path_factory) -> Path:
    rng = np.random.default_rng(2)
    rows = [f"{u},{i},5" for u in range(40) for i in rng.choice(30, 12, replace=False)]
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_model_without_randomness_is_fitted_once(ratings, tmp_path, monkeypatch):
    fits = []
    real = protocol.refit_and_test

    def counted(candidate, *args, **kwargs):
        fits.append(candidate.name)
        return real(candidate, *args, **kwargs)
    monkeypatch.setattr(compare_cli, "refit_and_test", counted)
    out = tmp_path / "c"
    assert compare_cli.main(["--dataset", str(ratings), "--split", "random", "--models", "ease,bpr", "--seeds", "3",
                             "--trials", "0", "--max-epochs", "5", "--quiet", "--out", str(out)]) == 0
    assert fits.count("ease") == 1 and fits.count("bpr") == 3
    results = json.loads((out / "results.json").read_text())
    ease, bpr = results["models"]["ease"], results["models"]["bpr"]
    assert ease["fitted_once"] and not bpr["fitted_once"]
    assert len(set(ease["test"]["P@5"]["per_seed"])) == 1 and ease["test"]["P@5"]["std"] == pytest.approx(0, abs=1e-12)
    assert len(set(bpr["test"]["P@5"]["per_seed"])) > 1  # seeds differ where there is randomness
    assert sorted(p.name for p in (out / "parts").glob("ease.seed*.pt")) == ["ease.seed0.pt"]


def test_max_epochs_caps_every_model_with_epochs(ratings, tmp_path):
    seen = []
    base = protocol.CANDIDATES["bpr"]

    def fit(train, validation, params, *rest):
        seen.append(params["epochs"])
        return base.fit(train, validation, params, *rest)
    spy = protocol.Candidate("spy", "", base.defaults, base.space, fit, base.first_trial, epochs=base.epochs)
    capped = protocol.capped(spy, 7)
    assert capped.epochs == 7
    from irgan.data import load_dataset
    data = load_dataset(str(ratings))
    protocol.refit_and_test(capped, {"dim": 8, "lr": 0.05, "l2": 0.05, "epochs": 100}, data.train, data.test, 0)
    protocol.refit_and_test(capped, {"dim": 8, "lr": 0.05, "l2": 0.05}, data.train, data.test, 0)
    assert seen == [7, 7]
    assert protocol.capped(protocol.CANDIDATES["ease"], 7) is protocol.CANDIDATES["ease"]
    assert protocol.capped(spy, None) is spy


def test_irgan_outer_epochs_are_capped_and_its_tuning_file_reads_back(ratings, tmp_path):
    out = tmp_path / "c"
    args = ["--dataset", str(ratings), "--split", "random", "--models", "irgan", "--seeds", "1", "--trials", "1",
            "--max-epochs", "1", "--quiet", "--out", str(out)]
    assert compare_cli.main(args) == 0
    tuning = json.loads((out / "parts" / "irgan.tuning.json").read_text())
    assert tuning["params"]["epochs"] == 1
    (out / "results.json").unlink()
    assert compare_cli.main(args) == 0  # the capped epochs pass the tuning file's check


def test_the_table_times_tuning_and_refit_apart(ratings, tmp_path, capsys):
    assert compare_cli.main(["--dataset", str(ratings), "--split", "random", "--models", "pop,ease", "--seeds", "2",
                             "--trials", "2", "--quiet", "--out", str(tmp_path / "c")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("tuning s  refit s")
    results = json.loads((tmp_path / "c" / "results.json").read_text())
    ease = next(line for line in lines if line.startswith("ease")).split()
    assert float(ease[-2]) == pytest.approx(results["models"]["ease"]["seconds"]["tuning"], abs=0.06)
    assert float(ease[-1]) == pytest.approx(sum(results["models"]["ease"]["seconds"]["refit_and_test"]), abs=0.06)


def test_max_epochs_is_bounded(ratings, tmp_path, capsys):
    assert compare_cli.main(["--dataset", str(ratings), "--models", "pop", "--max-epochs", "0", "--quiet",
                             "--out", str(tmp_path / "c")]) == 2
    assert "max_epochs must be from 1" in capsys.readouterr().err


def test_adversarial_models_are_tested_beside_themselves_without_the_adversary(ratings, tmp_path):
    out = tmp_path / "c"
    argv = ["--dataset", str(ratings), "--split", "random", "--models", "cfgan,apr", "--seeds", "2", "--trials", "1",
            "--max-epochs", "3", "--quiet", "--out", str(out)]
    assert compare_cli.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"cfgan", "cfgan-noadv", "apr", "apr-start"}
    assert results["models"]["cfgan-noadv"]["against"] == "cfgan" and results["models"]["apr-start"]["against"] == "apr"
    pairs = {(t["a"], t["b"]) for t in results["tests"] if t["metric"] == "P@5"}
    assert {("cfgan", "cfgan-noadv"), ("apr", "apr-start")} <= pairs
    assert all(not b.endswith(("-noadv", "-start")) or (a, b) in {("cfgan", "cfgan-noadv"), ("apr", "apr-start")}
               for a, b in pairs)
    tuned = json.loads((out / "parts" / "cfgan.tuning.json").read_text())["params"]
    assert 0 <= tuned["epochs"] <= 3 and 0 <= tuned["noadv_epochs"] <= 3  # each chose its own epochs, capped
    apr = json.loads((out / "parts" / "apr.tuning.json").read_text())["params"]
    assert 0 <= apr["pretrain_epochs"] <= 3 and 0 <= apr["epochs"] <= 3
    (out / "results.json").unlink()
    assert compare_cli.main(argv) == 0  # resumed: the parts files (with each model's epoch fields) are accepted
    assert json.loads((out / "results.json").read_text())["models"]["cfgan"]["test"] == results["models"]["cfgan"]["test"]


def test_trials_per_model(ratings, tmp_path, monkeypatch):
    asked = {}
    real = compare_cli.tune

    def counted(candidate, train, trials, *args, **kwargs):
        asked[candidate.name] = trials
        return real(candidate, train, trials, *args, **kwargs)
    monkeypatch.setattr(compare_cli, "tune", counted)
    out = tmp_path / "c"
    assert compare_cli.main(["--dataset", str(ratings), "--split", "random", "--models", "pop,ease,itemknn",
                             "--seeds", "1", "--trials", "3,ease=2,pop=0", "--quiet", "--out", str(out)]) == 0
    assert asked == {"pop": 0, "ease": 2, "itemknn": 3}
    assert json.loads((out / "results.json").read_text())["trials"] == {"*": 3, "ease": 2, "pop": 0}


@pytest.mark.parametrize("flag, message", [("3,ease", "expected N or N,MODEL=N"), ("x", "expected N or N,MODEL=N"),
                                           ("3,bpr=2", "--trials names model(s) not compared: ['bpr']"),
                                           ("3,ease=-1", "trials must be from 0")])
def test_bad_trials_are_one_line(ratings, tmp_path, capsys, flag, message):
    try:
        code = compare_cli.main(["--dataset", str(ratings), "--split", "random", "--models", "pop,ease", "--seeds", "1",
                                 "--trials", flag, "--quiet", "--out", str(tmp_path / "c")])
    except SystemExit as exit:  # argparse's own refusal
        code = exit.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and "Traceback" not in "".join(err)
