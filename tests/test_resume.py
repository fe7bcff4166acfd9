"""Interrupted runs resume to the bitwise result of an uninterrupted one; bad states are refused.

The first tests send real signals to ``python -m irgan.train`` subprocesses (SIGINT, which the
CLI turns into exit code 130, and SIGKILL, which nothing can catch) and resume them; the others
run the CLI in-process, interrupting it with a KeyboardInterrupt raised from inside the loop.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import irgan.adversarial.irgan.game
from helpers import WAIT_S, Evil, start, wait_for
from irgan.checkpoint import STATE_FORMAT, load_model
from irgan.config import IRGANConfig
from irgan.train import main
from irgan.adversarial.irgan.game import fit_irgan

SLOW = ["--split", "random", "--epochs", "6", "--d-epochs", "200", "--g-epochs", "100", "--pretrain-epochs", "2",
        "--device", "cpu", "--quiet"]
FAST = ["--split", "random", "--epochs", "3", "--d-epochs", "2", "--g-epochs", "2", "--pretrain-epochs", "1",
        "--device", "cpu", "--quiet"]


def write_ratings(path: Path, n_users: int, n_items: int, seed: int, per_user: int | None = None) -> Path:
    """Ratings 1-5 with timestamps; every user and item appears whatever the seed (same shape)."""
    rng = np.random.default_rng(seed)
    lines = ["user,item,rating,timestamp"]
    for u in range(n_users):
        items = np.arange(n_items) if per_user is None else rng.choice(n_items, per_user, replace=False)
        lines += [f"{u},{i},{rng.integers(1, 6)},{rng.integers(10**6)}" for i in items]
    lines += [f"0,{i},1,0" for i in range(n_items) if per_user is not None]  # every item seen (as a non-positive)
    path.write_text("\n".join(dict.fromkeys(lines)) + "\n")  # no repeated line
    return path


def comparable(report: dict) -> dict:
    """metrics.json without wall-clock times."""
    out = {k: v for k, v in report.items() if k != "seconds"}
    out["history"] = [{k: v for k, v in row.items() if k != "seconds"} for row in report["history"]]
    return out


def read_report(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def same_models(a: Path, b: Path) -> None:
    x, y = load_model(a / "model.pt"), load_model(b / "model.pt")
    assert set(x.scorers) == set(y.scorers) == {"generator", "discriminator"}
    for role in x.scorers:
        p, q = x.scorers[role].state_dict(), y.scorers[role].state_dict()
        assert p.keys() == q.keys()
        for key, value in p.items():
            assert torch.equal(value, q[key]), (role, key)


# --- real signals, real processes -----------------------------------------------------------


def finish(proc: subprocess.Popen) -> int:
    try:
        return proc.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{proc.args} still running after {WAIT_S} s")


@pytest.fixture(scope="module")
def signalled(tmp_path_factory) -> dict:
    """One uninterrupted run and two interrupted ones (SIGINT, SIGKILL) of the same command, then
    both resumed. The three first runs share the machine, as do the two resumes."""
    if os.name == "nt":
        pytest.skip("POSIX signals")
    root = tmp_path_factory.mktemp("signals")
    data = write_ratings(root / "ratings.csv", 80, 50, seed=0, per_user=15)
    runs = {name: root / name for name in ("whole", "sigint", "sigkill")}
    procs = {name: start(["--dataset", str(data), *SLOW, "--out", str(run)], root, root / f"{name}.log")
             for name, run in runs.items()}
    info = {"root": root, "runs": runs}
    for name, sig in (("sigint", signal.SIGINT), ("sigkill", signal.SIGKILL)):
        wait_for(runs[name] / "train_state.pt", procs[name])
        procs[name].send_signal(sig)
    info["codes"] = {name: finish(proc) for name, proc in procs.items()}
    info["logs"] = {name: (root / f"{name}.log").read_text() for name in procs}
    info["states"] = {name: torch.load(runs[name] / "train_state.pt", weights_only=True) for name in ("sigint", "sigkill")
                      if (runs[name] / "train_state.pt").exists()}
    info["left"] = {name: sorted(p.name for p in runs[name].iterdir()) for name in ("sigint", "sigkill")}
    resumes = {name: start(["--resume", str(runs[name]), "--quiet"], root, root / f"{name}-resume.log")
               for name in ("sigint", "sigkill")}
    info["resume_codes"] = {name: finish(proc) for name, proc in resumes.items()}
    info["resume_logs"] = {name: (root / f"{name}-resume.log").read_text() for name in resumes}
    return info


def test_sigint_exits_130_with_a_resume_hint(signalled):
    assert signalled["codes"]["whole"] == 0, signalled["logs"]["whole"]
    assert signalled["codes"]["sigint"] == 130, signalled["logs"]["sigint"]
    log = signalled["logs"]["sigint"]
    assert f"interrupted: resume with  python -m irgan.train --resume {signalled['runs']['sigint']}" in log
    assert "Traceback" not in log


def test_sigint_leaves_a_clean_resumable_run(signalled):
    left = signalled["left"]["sigint"]
    assert "metrics.json" not in left and "model.pt" not in left and "train_state.pt" in left
    assert not [name for name in left if name.endswith(".tmp")]  # atomic_write cleans up on KeyboardInterrupt
    assert 1 <= signalled["states"]["sigint"]["epoch"] < 6  # cut mid-run


def test_sigkill_never_leaves_a_torn_state(signalled):
    assert signalled["codes"]["sigkill"] == -signal.SIGKILL
    assert "metrics.json" not in signalled["left"]["sigkill"]
    state = signalled["states"]["sigkill"]  # torch.load(weights_only=True) above read it whole
    assert state["format"] == STATE_FORMAT and 1 <= state["epoch"] < 6


@pytest.mark.parametrize("name", ["sigint", "sigkill"])
def test_resumed_run_is_bitwise_the_uninterrupted_one(signalled, name):
    assert signalled["resume_codes"][name] == 0, signalled["resume_logs"][name]
    run, whole = signalled["runs"][name], signalled["runs"]["whole"]
    got, expected = comparable(read_report(run)), comparable(read_report(whole))
    assert got["test"] == expected["test"]
    assert [row["selection"] for row in got["history"]] == [row["selection"] for row in expected["history"]]
    assert got == expected  # every other figure too: D's and the start's test metrics, losses, rewards
    same_models(run, whole)
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in rows] == expected["history"]
    assert not (run / "train_state.pt").exists()  # finished: the state is superseded


# --- in-process interruptions, refusals -------------------------------------------------------


def call(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    return code, err


def interrupt_at(monkeypatch, n_calls: int) -> None:
    """Make the n-th G-epoch raise KeyboardInterrupt, as Ctrl-C there would."""
    real, count = irgan.adversarial.irgan.game.g_epoch, [0]

    def g_epoch(*args, **kwargs):
        count[0] += 1
        if count[0] == n_calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(irgan.adversarial.irgan.game, "g_epoch", g_epoch)


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {"a": write_ratings(root / "a.csv", 20, 15, seed=1), "b": write_ratings(root / "b.csv", 20, 15, seed=2),
            "c": write_ratings(root / "c.csv", 24, 17, seed=3)}


def interrupted(monkeypatch, capsys, data: Path, out: Path, *extra: str) -> Path:
    """A run cut in its third outer epoch (G-epoch 5 of 6): its state holds two finished epochs."""
    with monkeypatch.context() as m:
        interrupt_at(m, 5)
        code, err = call(["--dataset", str(data), *FAST, *extra, "--out", str(out)], capsys)
    assert code == 130 and "--resume" in err
    assert torch.load(out / "train_state.pt", weights_only=True)["epoch"] == 2
    return out


def test_in_process_resume_matches(tmp_path, monkeypatch, capsys, data_files):
    run = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "run")
    assert call(["--resume", str(run), "--quiet"], capsys)[0] == 0
    assert call(["--dataset", str(data_files["a"]), *FAST, "--out", str(tmp_path / "whole")], capsys)[0] == 0
    assert comparable(read_report(run)) == comparable(read_report(tmp_path / "whole"))


def test_resume_refuses_a_state_of_another_config(tmp_path, monkeypatch, capsys, data_files):
    run = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "run")
    other = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "other", "--d-lr", "0.01")
    shutil.copy(other / "train_state.pt", run / "train_state.pt")
    code, err = call(["--resume", str(run), "--quiet"], capsys)
    assert code == 2 and "another config" in err and "d_lr" in err and "train_state.pt" in err
    assert not (run / "metrics.json").exists()


def test_resume_refuses_a_state_of_other_data(tmp_path, monkeypatch, capsys, data_files):
    run = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "run")
    other = interrupted(monkeypatch, capsys, data_files["b"], tmp_path / "other")  # same shape, other positives
    shutil.copy(other / "train_state.pt", run / "train_state.pt")
    code, err = call(["--resume", str(run), "--quiet"], capsys)
    assert code == 2 and "other data" in err
    assert not (run / "metrics.json").exists()


@pytest.mark.parametrize("edit, words", [
    pytest.param(lambda r, files: {**r, "config": {**r["config"], "g_lr": 0.5}}, "another config", id="config"),
    pytest.param(lambda r, files: {**r, "seed": 7}, "other data", id="seed"),  # another validation split
    pytest.param(lambda r, files: {**r, "dataset": str(files["b"])}, "other data", id="same-shape-data"),
    pytest.param(lambda r, files: {**r, "dataset": str(files["c"])}, "", id="other-shape-data"),  # by init.pt
])
def test_resume_refuses_an_edited_run_json(tmp_path, monkeypatch, capsys, data_files, edit, words):
    run = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "run")
    request = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(edit(request, data_files)))
    code, err = call(["--resume", str(run), "--quiet"], capsys)
    assert code == 2 and words in err
    assert not (run / "metrics.json").exists()


def test_resume_of_a_finished_run_exits_2(tmp_path, capsys, data_files):
    run = tmp_path / "run"
    assert call(["--dataset", str(data_files["a"]), *FAST, "--out", str(run)], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, err = call(["--resume", str(run), "--quiet"], capsys)
    assert code == 2 and "already finished" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resume_of_something_that_is_not_a_run(tmp_path, capsys):
    for target in (tmp_path, tmp_path / "missing"):
        code, err = call(["--resume", str(target), "--quiet"], capsys)
        assert code == 2 and "not an irgan run directory" in err


@pytest.mark.parametrize("damage, words", [
    pytest.param(lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
                 "not a loadable irgan training state", id="torn"),
    pytest.param(lambda p: p.write_bytes(b"\x00" * 64), "not a loadable irgan training state", id="zeros"),
    pytest.param(lambda p: torch.save([1, 2], p), "not an irgan training state", id="a-list"),
])
def test_resume_refuses_a_damaged_state(tmp_path, monkeypatch, capsys, data_files, damage, words):
    run = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "run")
    damage(run / "train_state.pt")
    code, err = call(["--resume", str(run), "--quiet"], capsys)
    assert code == 2 and words in err


@pytest.mark.parametrize("damage", [pytest.param(lambda p: p.write_bytes(b""), id="empty"),
                                    pytest.param(lambda p: torch.save({"format": STATE_FORMAT}, p), id="hollow")])
def test_resume_refuses_an_empty_or_hollow_state(tmp_path, monkeypatch, capsys, data_files, damage):
    run = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "run")
    damage(run / "train_state.pt")
    assert call(["--resume", str(run), "--quiet"], capsys)[0] == 2


@pytest.mark.parametrize("text", ["[1]", "{}", '{"dataset": "x"}'])
def test_resume_refuses_a_malformed_run_json(tmp_path, monkeypatch, capsys, data_files, text):
    run = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "run")
    (run / "run.json").write_text(text)
    assert call(["--resume", str(run), "--quiet"], capsys)[0] == 2


def test_resume_refuses_a_run_json_that_is_not_json(tmp_path, monkeypatch, capsys, data_files):
    run = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "run")
    (run / "run.json").write_text("{")
    code, err = call(["--resume", str(run), "--quiet"], capsys)
    assert code == 2 and "run.json is not valid JSON" in err


def test_fit_irgan_refuses_another_config_or_other_data(tmp_path):
    def matrices(seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        draw = np.random.default_rng(seed).random((12, 15))
        return sp.csr_matrix((draw < 0.3).astype(np.float32)), sp.csr_matrix(((draw >= 0.3) & (draw < 0.4)).astype(np.float32))

    train, selection = matrices(0)
    config = IRGANConfig(epochs=1, d_epochs=1, g_epochs=1, init="random")
    state = tmp_path / "state.pt"
    fit_irgan(train, selection, config, seed=0, device="cpu", state_path=state)
    with pytest.raises(ValueError, match=r"another config \(differs in \['epochs'\]\)"):
        fit_irgan(train, selection, dataclasses.replace(config, epochs=2), seed=0, device="cpu", state_path=state)
    with pytest.raises(ValueError, match="other data"):
        fit_irgan(*matrices(1), config, seed=0, device="cpu", state_path=state)


# --- files crafted to run code on load --------------------------------------------------------


def test_fit_irgan_refuses_a_crafted_state(tmp_path):
    marker = tmp_path / "PWNED"
    state = tmp_path / "train_state.pt"
    torch.save({"format": STATE_FORMAT, "config": Evil(marker)}, state)
    train = sp.csr_matrix(np.eye(6, 12, dtype=np.float32))
    with pytest.raises(ValueError, match="not a loadable irgan training state"):
        fit_irgan(train, sp.csr_matrix(np.eye(6, 12, 1, dtype=np.float32)), IRGANConfig(epochs=1, init="random"),
                  device="cpu", state_path=state)
    assert not marker.exists()


def test_resume_refuses_a_crafted_state(tmp_path, monkeypatch, capsys, data_files):
    marker = tmp_path / "PWNED"
    run = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "run")
    torch.save({"format": STATE_FORMAT, "generator": Evil(marker)}, run / "train_state.pt")
    code, err = call(["--resume", str(run), "--quiet"], capsys)
    assert code == 2 and "not a loadable irgan training state" in err
    assert not marker.exists()


def test_resume_refuses_a_crafted_init_without_running_it(tmp_path, monkeypatch, capsys, data_files):
    marker = tmp_path / "PWNED"
    run = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "run")
    torch.save({"user_emb": Evil(marker)}, run / "init.pt")
    code, err = call(["--resume", str(run), "--quiet"], capsys)
    assert code == 2 and f"cannot resume from the pretrained start: {run / 'init.pt'} is not a loadable irgan model file" in err
    assert not marker.exists() and not (run / "metrics.json").exists()


def test_resume_refuses_a_preset_the_run_was_not_started_with(tmp_path, monkeypatch, capsys, data_files):
    run = interrupted(monkeypatch, capsys, data_files["a"], tmp_path / "run")
    code, err = call(["--resume", str(run), "--preset", "strong", "--quiet"], capsys)
    assert code == 2 and "these differ" in err and "--dim 32 (the run has 5)" in err
    assert not (run / "metrics.json").exists()
