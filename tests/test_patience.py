"""``IRGANConfig.patience``: the game stops after N outer epochs without a better G on selection,
resumes with its count, keeps the unpatient run's selection when the best comes first, records the
stop, stops every process of a distributed run together, and leaves pretraining alone.

Most tests script the selection figures (a patched ``Evaluation.over_processes``), so that the epoch a right
count stops at differs from the ones an off-by-one, a tie counted as a gain or a reset count give;
the others play a small real game whose best outer epoch is checked before it is relied on.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import irgan.adversarial.irgan.game as game
import irgan.adversarial.irgan.recipe as recipe
from helpers import planted
from irgan.adversarial.irgan.game import fit_irgan
from irgan.adversarial.irgan.players import Generator
from irgan.config import BPRConfig, IRGANConfig
from irgan.data import Interactions
from irgan.metrics import Evaluation
from irgan.train import config_from_args, config_parser, main

# Adam at a high G rate on planted groups: G's best is in outer epoch 0 (G-epoch 1) and stays the best.
REAL = IRGANConfig(init="random", epochs=8, d_epochs=2, g_epochs=2, optimizer="adam", g_lr=0.2, d_lr=0.05,
                   d_l2=0.01, d_batch_size=64, g_batch_users=8, init_scale=0.1, dim=4)
# One G-epoch per outer epoch, so that scripted figures are one per outer epoch.
SCRIPTED = IRGANConfig(init="random", epochs=10, d_epochs=1, g_epochs=1, dim=3, d_batch_size=64, g_batch_users=16)
# The selection figure G gets at its start, then after each outer epoch 0, 1, ...: best at epoch 1 (0.5),
# a tie at epoch 3 (no gain), a new best at epoch 5 (0.9), nothing better after it.
FIGURES = [0.1, 0.2, 0.5, 0.3, 0.5, 0.4, 0.9, 0.1, 0.1, 0.1, 0.1]
STOP_AFTER_2 = {"epoch": 2, "reason": "no better validation P@5 for 2 outer epochs"}  # REAL with patience 2


@pytest.fixture(scope="module")
def data() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    return planted(0, n_groups=3, users_per_group=10, items_per_group=10)


def script(monkeypatch, figures: list[float]) -> list[int]:
    """Give G the ``figures`` in turn as its selection P@5 (D always 0.5); the count of G's evaluations."""
    calls = [0]

    def over_processes(evaluation, model, shard):
        if not isinstance(model, Generator):
            return {"P@5": 0.5}
        calls[0] += 1
        return {"P@5": figures[min(calls[0], len(figures)) - 1]}

    monkeypatch.setattr(Evaluation, "over_processes", over_processes)
    return calls


def count_g_epochs(monkeypatch, interrupt_at: int | None = None) -> list[int]:
    """Count the G-epochs played; with ``interrupt_at``, the n-th raises KeyboardInterrupt as Ctrl-C would."""
    real, calls = game.g_epoch, [0]

    def g_epoch(*args, **kwargs):
        calls[0] += 1
        if calls[0] == interrupt_at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(game, "g_epoch", g_epoch)
    return calls


def strip(history: list[dict]) -> list[dict]:
    """History rows without wall-clock seconds and without the stop record."""
    return [{k: v for k, v in row.items() if k not in ("seconds", "stopped")} for row in history]


def same_parameters(a: nn.Module, b: nn.Module) -> bool:
    x, y = a.state_dict(), b.state_dict()
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


# --- when the game stops -----------------------------------------------------------------------

@pytest.mark.parametrize("patience, last_epoch, best_epoch", [
    (1, 2, 1),     # best at 1, epoch 2 no better
    (2, 3, 1),     # epochs 2 and 3 (a tie is no gain)
    (3, 4, 1),     # epochs 2, 3, 4: epoch 5's 0.9 is never played
    (4, 9, 5),     # epoch 5 beats epoch 1 within 4; epochs 6-9 then run out the game, no stop
    (None, 9, 5),  # never stops
])
def test_the_game_stops_after_patience_stale_outer_epochs_and_not_before(data, monkeypatch, patience, last_epoch,
                                                                         best_epoch):
    g_evaluations = script(monkeypatch, FIGURES)
    result = fit_irgan(*data, dataclasses.replace(SCRIPTED, patience=patience), seed=0, device="cpu")
    assert [row["epoch"] for row in result.history] == list(range(last_epoch + 1))  # no G-epoch after the stop
    assert g_evaluations[0] == last_epoch + 2  # the start, then one per outer epoch played
    assert result.best_generator["epoch"] == best_epoch
    stops = last_epoch < SCRIPTED.epochs - 1
    reason = f"no better validation P@5 for {patience} outer epochs"
    expected = {"epoch": last_epoch, "reason": reason} if stops else None
    assert result.stopped == expected
    assert [row.get("stopped") for row in result.history] == [None] * last_epoch + [expected]


def test_a_start_that_stays_best_stops_after_patience_outer_epochs(data, monkeypatch, caplog):
    script(monkeypatch, [0.9] + [0.1] * 20)
    with caplog.at_level(logging.INFO, logger="irgan.adversarial.irgan.game"):
        result = fit_irgan(*data, dataclasses.replace(SCRIPTED, patience=2), seed=0, device="cpu")
    assert result.best_generator["epoch"] == -1 and len(result.history) == 2 and result.stopped["epoch"] == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopping")]
    assert lines == ["stopping after outer epoch 2/10: no better validation P@5 for 2 outer epochs "
                     "(best G at the start)"]


def test_patience_keeps_the_unpatient_selection_when_the_best_comes_first(data):
    whole = fit_irgan(*data, REAL, seed=0, device="cpu")
    best = whole.best_generator["epoch"]
    assert best == 0 and whole.best_generator["g_epoch"] == 1  # the fixture: a best that later epochs never beat
    patient = fit_irgan(*data, dataclasses.replace(REAL, patience=2), seed=0, device="cpu")
    assert patient.stopped["epoch"] == best + 2 < REAL.epochs - 1  # it did stop early
    assert whole.stopped is None and len(patient.history) < len(whole.history)
    assert strip(patient.history) == strip(whole.history)[:len(patient.history)]
    assert patient.best_generator == whole.best_generator
    assert same_parameters(patient.generator, whole.generator)


def test_refit_plays_up_to_the_point_a_patient_selection_kept(data):
    train, selection = (Interactions(m, np.arange(m.shape[0]), np.arange(m.shape[1])) for m in data)
    plain = recipe.run_recipe(train, None, dataclasses.replace(REAL, refit=True), validation=selection, seed=0,
                              device="cpu")
    patient = recipe.run_recipe(train, None, dataclasses.replace(REAL, refit=True, patience=2), validation=selection,
                                seed=0, device="cpu")
    assert plain.stopped is None and patient.stopped == STOP_AFTER_2
    assert patient.best_generator == plain.best_generator and plain.best_generator["epoch"] == 0
    assert same_parameters(patient.generator, plain.generator)
    # validation given apart, the refit trains on the same data: it replays the game to the kept G exactly
    assert same_parameters(patient.generator, fit_irgan(*data, REAL, seed=0, device="cpu").generator)


# --- resuming --------------------------------------------------------------------------------

def test_a_resumed_patient_game_continues_its_count(data, tmp_path, monkeypatch):
    """Cut in outer epoch 2, after the stale epoch 1: the resumed game stops where an uninterrupted one
    does (after epoch 2), not two epochs later as a count started again would."""
    config = dataclasses.replace(REAL, patience=2)
    whole = fit_irgan(*data, config, seed=0, device="cpu")
    assert whole.best_generator["epoch"] == 0 and whole.stopped["epoch"] == 2
    state = tmp_path / "state.pt"
    with monkeypatch.context() as m:
        count_g_epochs(m, interrupt_at=5)  # the first G-epoch of outer epoch 2
        with pytest.raises(KeyboardInterrupt):
            fit_irgan(*data, config, seed=0, device="cpu", state_path=state)
    assert torch.load(state, weights_only=True)["epoch"] == 2
    resumed = fit_irgan(*data, config, seed=0, device="cpu", state_path=state)
    assert resumed.stopped == whole.stopped
    assert strip(resumed.history) == strip(whole.history) and resumed.history[-1]["stopped"] == whole.stopped
    assert resumed.best_generator == whole.best_generator and same_parameters(resumed.generator, whole.generator)


def test_resuming_a_game_that_had_stopped_plays_nothing_more(data, tmp_path, monkeypatch):
    config = dataclasses.replace(REAL, patience=2)
    state = tmp_path / "state.pt"
    first = fit_irgan(*data, config, seed=0, device="cpu", state_path=state)  # the state of its last epoch stays
    played = count_g_epochs(monkeypatch)
    again = fit_irgan(*data, config, seed=0, device="cpu", state_path=state)
    assert played[0] == 0 and again.stopped == first.stopped == STOP_AFTER_2
    assert strip(again.history) == strip(first.history) and again.history[-1]["stopped"] == first.stopped
    assert same_parameters(again.generator, first.generator)


def test_a_state_written_before_patience_existed_resumes_as_before(data, tmp_path, monkeypatch):
    whole = fit_irgan(*data, REAL, seed=0, device="cpu")
    state = tmp_path / "state.pt"
    with monkeypatch.context() as m:
        count_g_epochs(m, interrupt_at=5)
        with pytest.raises(KeyboardInterrupt):
            fit_irgan(*data, REAL, seed=0, device="cpu", state_path=state)
    old = torch.load(state, weights_only=True)
    del old["config"]["patience"]  # as an older irgan wrote it
    torch.save(old, state)
    with pytest.raises(ValueError, match=r"another config \(differs in \['patience'\]\)"):
        fit_irgan(*data, dataclasses.replace(REAL, patience=3), seed=0, device="cpu", state_path=state)
    resumed = fit_irgan(*data, REAL, seed=0, device="cpu", state_path=state)
    assert strip(resumed.history) == strip(whole.history) and resumed.stopped is None
    assert same_parameters(resumed.generator, whole.generator)
    assert torch.load(state, weights_only=True)["config"]["patience"] is None  # each save writes today's config


# --- pretraining ----------------------------------------------------------------------------------

def test_patience_leaves_pretraining_alone(data, monkeypatch):
    """DNS-BPR's validation curve stalls for many epochs before its best (up to 22 on ml-100k): a patience
    in outer epochs would cut it short, so pretrain_select still evaluates every pretraining epoch."""
    calls = [0]

    def evaluate(model, train, selection, ks):
        calls[0] += 1
        return {"P@5": [0.3, 0.1, 0.1, 0.1, 0.1, 0.5, 0.1, 0.1][calls[0] - 1]}  # stale 4 epochs, then the best

    monkeypatch.setattr(recipe, "evaluate", evaluate)
    config = IRGANConfig(dim=3, pretrain=BPRConfig(epochs=8), pretrain_select=True, patience=1)
    _, epochs = recipe.pretrain_generator(config, data[0], seed=0, device="cpu", selection=data[1])
    assert (calls[0], epochs) == (8, 6)


# --- the config and the command line -------------------------------------------------------------

@pytest.mark.parametrize("value", [0, -1, 2.5, True, "3", 3.0])
def test_a_bad_patience_is_one_line_at_config_time(value):
    with pytest.raises(ValueError) as err:
        IRGANConfig(patience=value)
    assert str(err.value) == f"patience must be an integer >= 1 or None, got {value!r}"


def test_patience_takes_none_or_a_positive_integer():
    assert IRGANConfig().patience is None  # the paper's protocol: never stop
    assert IRGANConfig(patience=1).patience == 1
    assert type(IRGANConfig(patience=np.int64(4)).patience) is int  # from a grid of numpy values
    parser = argparse.ArgumentParser()
    config_parser(parser)
    assert config_from_args(parser.parse_args(["--patience", "3"])).patience == 3
    assert config_from_args(parser.parse_args(["--patience", "none"])).patience is None


def test_the_cli_refuses_a_bad_patience_in_one_line(capsys):
    assert main(["--patience", "0", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "error: patience must be an integer >= 1 or None, got 0"


def test_metrics_json_and_the_log_record_the_stop(tmp_path, monkeypatch, caplog):
    ratings = tmp_path / "ratings.csv"
    rng = np.random.default_rng(0)
    ratings.write_text("user,item,rating\n" + "".join(f"{u},{i},5\n" for u in range(20) for i in range(15)
                                                      if rng.random() < 0.5))
    script(monkeypatch, [0.1, 0.3, 0.2, 0.2, 0.9, 0.9])  # best after outer epoch 0, then two without a gain
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        code = main(["--dataset", str(ratings), "--split", "random", "--epochs", "6", "--d-epochs", "1", "--g-epochs",
                     "1", "--pretrain-epochs", "1", "--device", "cpu", "--quiet", "--patience", "2", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    stopped = {"epoch": 2, "reason": "no better validation P@5 for 2 outer epochs"}
    assert report["config"]["patience"] == 2 and report["best_generator"]["epoch"] == 0
    assert [row["epoch"] for row in report["history"]] == [0, 1, 2] and report["history"][-1]["stopped"] == stopped
    lines = (out / "history.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["stopped"] == stopped
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopping")] == [
        "stopping after outer epoch 3/6: no better validation P@5 for 2 outer epochs (best G at epoch 1)"]


# --- torch.distributed ------------------------------------------------------------------------

WORLD = 2


def _worker(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))  # a process left behind fails, not hangs
    try:
        torch.save(_patient_game(rank), f"{out}.{rank}")
        dist.barrier()
    finally:
        dist.destroy_process_group()
    os._exit(0)  # as tests/test_distributed.py: gloo's threads can abort a finished process at exit


def _patient_game(rank: int) -> tuple[dict | None, int]:
    """A patient game in which only process 0's figures say stop (best at epoch 1, then stale); process 1's
    keep rising. The stop record and the outer epochs played."""
    figures = iter(FIGURES if rank == 0 else [0.1 * (k + 1) for k in range(20)])

    def over_processes(evaluation, model, shard):
        return {"P@5": next(figures) if isinstance(model, Generator) else 0.5}

    Evaluation.over_processes = over_processes  # this process is the test's own
    train, selection = planted(0, n_groups=3, users_per_group=10, items_per_group=10)
    result = fit_irgan(train, selection, dataclasses.replace(SCRIPTED, patience=2), seed=0, device="cpu")
    return result.stopped, len(result.history)


def test_every_process_stops_when_any_would(tmp_path):
    out = str(tmp_path / "result")
    mp.spawn(_worker, args=(str(tmp_path / "store"), out), nprocs=WORLD, join=True)
    ranks = [torch.load(f"{out}.{rank}", weights_only=False) for rank in range(WORLD)]
    stopped = {"epoch": 3, "reason": "no better validation P@5 for 2 outer epochs"}
    assert ranks == [(stopped, 4), (stopped, 4)]
