"""``IRGANConfig.eval_users``: G and D are selected on a seeded sample of the selection users,
the same sample every evaluation, so that a large catalog's evaluation costs what its sample does."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from helpers import planted
from irgan.adversarial.irgan.game import fit_irgan, sampled_users
from irgan.config import IRGANConfig
from irgan.metrics import Evaluation, evaluate
from irgan.train import config_from_args, config_parser

TINY = IRGANConfig(init="random", epochs=2, d_epochs=1, g_epochs=2, dim=3, d_batch_size=64, g_batch_users=8)


@pytest.fixture(scope="module")
def data() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    return planted(0, n_groups=3, users_per_group=10, items_per_group=10)


def test_a_sample_keeps_whole_rows_of_that_many_users_drawn_by_the_seed(data):
    _, selection = data
    selection = selection.astype(np.float32).tolil()
    selection[[0, 5]] = 0  # users with no selection positive are never drawn
    selection = selection.tocsr()
    sample = sampled_users(selection, 7, seed=3)
    kept = np.flatnonzero(np.diff(sample.indptr))
    assert len(kept) == 7 and not {0, 5} & set(kept) and sample.dtype == np.float32
    for u in range(selection.shape[0]):
        expected = selection[u].toarray() if u in kept else np.zeros((1, selection.shape[1]))
        np.testing.assert_array_equal(sample[u].toarray(), expected)
    assert (sampled_users(selection, 7, seed=3) != sample).nnz == 0  # the seed fixes the draw
    others = [set(np.flatnonzero(np.diff(sampled_users(selection, 7, seed=s).indptr))) for s in range(4, 8)]
    assert any(o != set(kept) for o in others)
    assert sampled_users(selection, 28, seed=3) is selection  # all 28 users with positives: nothing dropped


def test_the_game_selects_on_its_sample_at_every_evaluation(data, monkeypatch):
    train, selection = data
    seen = []
    real = Evaluation.over_processes

    def over_processes(evaluation, model, shard):
        seen.append(evaluation.test)
        return real(evaluation, model, shard)

    monkeypatch.setattr(Evaluation, "over_processes", over_processes)
    result = fit_irgan(train, selection, IRGANConfig(**{**TINY.__dict__, "eval_users": 12}), seed=5)
    expected = sampled_users(selection, 12, seed=5)
    assert len(seen) == 2 + 2 * 2 + 2  # G and D at the start, G after each G-epoch, D after each outer epoch
    assert all((s != expected).nnz == 0 for s in seen)
    assert result.best_generator["metrics"] == pytest.approx(evaluate(result.generator, train, expected))
    full = fit_irgan(train, selection, TINY, seed=5)
    assert full.best_generator["metrics"] == pytest.approx(evaluate(full.generator, train, selection))


@pytest.mark.parametrize("value", [0, -3, True, 2.5])
def test_eval_users_must_be_a_positive_count(value):
    with pytest.raises(ValueError, match=f"eval_users must be an integer >= 1 or None, got {value!r}"):
        IRGANConfig(eval_users=value)


def test_the_flag_takes_a_count_or_none():
    import argparse

    parser = argparse.ArgumentParser()
    config_parser(parser)
    assert config_from_args(parser.parse_args(["--eval-users", "500"])).eval_users == 500
    assert config_from_args(parser.parse_args(["--eval-users", "none"])).eval_users is None
    assert config_from_args(parser.parse_args([])).eval_users is None
