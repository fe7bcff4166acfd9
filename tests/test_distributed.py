"""Data-parallel training on torch.distributed (gloo, 2 CPU processes) against a single process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from irgan.config import IRGANConfig
from irgan.distributed import Shard, current
from irgan.metrics import evaluate, evaluate_sharded
from irgan.models import Discriminator, MatrixFactorization, Popularity
from irgan.training.sampling import positive_pairs
from irgan.adversarial.irgan.game import d_epoch, fit_irgan
from irgan.training.updates import DUpdate, FastDUpdate, d_update

WORLD = 2
# Adam at 0.05 learns planted groups in a few rounds (as in test_trainer.py); users are split
# into batches of 8, so the two processes' shards (uneven on purpose) take several G steps.
LEARNS = IRGANConfig(init="random", epochs=3, d_epochs=4, g_epochs=3, optimizer="adam", g_lr=0.05, d_lr=0.05,
                     d_l2=0.01, d_batch_size=64, g_batch_users=8, init_scale=0.1, d_sample_every=1,
                     d_negatives="refresh", select_on="test")


def planted(seed: int = 0, n_groups: int = 3, users_per_group: int = 15, items_per_group: int = 16):
    """Users in groups, each liking half of its group's item block in train and the rest in test."""
    rng = np.random.default_rng(seed)
    n_users, n_items = n_groups * users_per_group + 1, n_groups * items_per_group  # odd: uneven shards
    train, test = np.zeros((n_users, n_items), np.float32), np.zeros((n_users, n_items), np.float32)
    for u in range(n_users):
        block = rng.permutation(items_per_group) + (u % n_groups) * items_per_group
        train[u, block[: items_per_group // 2]] = 1
        test[u, block[items_per_group // 2:]] = 1
    return sp.csr_matrix(train), sp.csr_matrix(test)


def _worker(rank: int, store: str, out: str, task) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        torch.save(task(), f"{out}.{rank}")
        dist.barrier()  # no process tears the group down while another still reads its last collective
    finally:
        dist.destroy_process_group()
    # A finished worker leaves without C++ static destructors: gloo's threads can otherwise abort it at
    # exit ("terminate called without an active exception", SIGABRT) after its work is saved. A worker
    # that raised never gets here, so spawn still reports its error.
    os._exit(0)


def run_distributed(task, tmp_path: Path) -> list:
    """``task()`` in each of WORLD gloo processes; their return values, by rank."""
    out = str(tmp_path / "result")
    mp.spawn(_worker, args=(str(tmp_path / "store"), out, task), nprocs=WORLD, join=True)
    return [torch.load(f"{out}.{rank}", weights_only=False) for rank in range(WORLD)]


def d_epochs_task(batch_size: int = 10_000, fast_path: bool = True, optimizer: str = "sgd", gather: bool = True):
    """Three D-epochs on this process's share of the pairs; D's parameters after them (user rows
    gathered from their owners, unless ``gather`` is False), the epochs' statistics and Adam's moments."""
    train, _ = planted()
    users, real = positive_pairs(train)
    fake = torch.randint(train.shape[1], real.shape, generator=torch.Generator().manual_seed(1))
    shard = current()
    mine = shard.owns(users)
    D = Discriminator(MatrixFactorization(*train.shape, 4, 0.1, generator=torch.Generator().manual_seed(0)))
    step = d_update(D.scorer, optimizer, 0.01, fast_path=fast_path, shard=shard)
    assert type(step) is (FastDUpdate if fast_path else DUpdate)
    config = IRGANConfig(d_batch_size=batch_size, d_l2=0.1)
    rng = torch.Generator().manual_seed(shard.rank)
    stats = [d_epoch(step, users[mine], real[mine], fake[mine], config, rng) for _ in range(3)]
    if gather:
        step.gather_owned()
    adam = getattr(step.optimizer, "adam", None)
    moments = {} if adam is None else {f"{name}.{key}": value.clone() for name, p in D.named_parameters()
                                       for key, value in adam.state[p].items() if key.startswith("exp_avg")}
    return {name: p.detach().clone() for name, p in D.named_parameters()}, stats, moments


def fit_task():
    """A short IRGAN game; the selected G's test metrics and parameters."""
    train, test = planted()
    result = fit_irgan(train, test, LEARNS, seed=0, device="cpu")
    ks = (3, 5)
    return (evaluate(result.generator, train, test, ks), evaluate_sharded(result.generator, train, test, ks, current()),
            {name: p.detach().clone() for name, p in result.generator.named_parameters()})


def _autograd_full_batch():
    return d_epochs_task(fast_path=False)


@pytest.mark.parametrize("task", [d_epochs_task, _autograd_full_batch], ids=["fast_path", "autograd"])
def test_full_batch_d_epochs_equal_a_single_process(tmp_path, task):
    """Full-batch D steps sum the same per-pair gradients however the users are sharded, on
    both paths (the SGD shrink of L2 counts every process's pairs)."""
    single, single_stats, _ = task()
    ranks = run_distributed(task, tmp_path)
    for params, stats, _ in ranks:
        for name, value in single.items():
            assert torch.allclose(params[name], value, atol=1e-6), name
        assert stats[-1]["d_loss"] == pytest.approx(single_stats[-1]["d_loss"], rel=1e-6)


def test_minibatch_d_epochs_keep_processes_in_step(tmp_path):
    """Uneven shards in small batches: every process takes the same steps and ends identical."""
    ranks = run_distributed(_small_batches, tmp_path)
    for name, value in ranks[0][0].items():
        assert torch.equal(ranks[1][0][name], value), name
    assert ranks[0][1] == ranks[1][1]


def _small_batches():
    return d_epochs_task(batch_size=7)


def _adam_ungathered():
    return d_epochs_task(optimizer="adam", gather=False)


def _adam_gathered():
    return d_epochs_task(optimizer="adam")


def test_user_rows_change_only_in_the_owners_process_until_gathered(tmp_path):
    """On the fast path only item gradients cross processes: before the gather each process has
    stepped its own users' rows alone (the others' still hold the start); after it, every table and
    Adam moment equals the single process's."""
    start = MatrixFactorization(*planted()[0].shape, 4, 0.1, generator=torch.Generator().manual_seed(0)).user_emb
    single, _, single_moments = _adam_gathered()
    (tmp_path / "ungathered").mkdir()
    (tmp_path / "gathered").mkdir()
    for rank, (params, _, _) in enumerate(run_distributed(_adam_ungathered, tmp_path / "ungathered")):
        own = Shard(rank, WORLD).owns(torch.arange(len(start)))
        assert torch.equal(params["scorer.user_emb"][~own], start[~own].detach())
        assert torch.allclose(params["scorer.user_emb"][own], single["scorer.user_emb"][own], atol=1e-6)
        assert not torch.equal(params["scorer.user_emb"][own], start[own].detach())
        assert torch.allclose(params["scorer.item_emb"], single["scorer.item_emb"], atol=1e-6)  # summed every step
    for params, _, moments in run_distributed(_adam_gathered, tmp_path / "gathered"):
        for name, value in {**single, **single_moments}.items():
            assert torch.allclose({**params, **moments}[name], value, atol=1e-6), name
    assert any(name.startswith("scorer.user_emb.exp_avg") for name in single_moments)


def test_two_processes_match_one_within_noise(tmp_path):
    train, test = planted()
    single = fit_task()
    ranks = run_distributed(fit_task, tmp_path)
    for name, value in ranks[0][2].items():  # the processes hold the same G
        assert torch.equal(ranks[1][2][name], value), name
    full, sharded, _ = ranks[0]
    assert sharded == pytest.approx(full, abs=1e-9)  # gathered evaluation is the whole evaluation
    popularity = evaluate(Popularity(train), train, test, (5,))["P@5"]
    for metrics in (single[0], full):
        assert metrics["P@5"] > popularity + 0.2
    assert abs(full["P@5"] - single[0]["P@5"]) < 0.15


def test_shard_owns_every_user_once():
    users = torch.arange(11)
    owned = torch.stack([Shard(r, 3).owns(users) for r in range(3)])
    assert torch.equal(owned.sum(0), torch.ones(11, dtype=torch.long))
    m = sp.csr_matrix(np.ones((5, 2)))
    assert sum(Shard(r, 2).rows(m).nnz for r in range(2)) == m.nnz
    assert Shard().max(4) == 4 and not Shard().active


def test_torchrun_cli_writes_one_run(tmp_path):
    train, test = planted()
    u, i = train.nonzero()
    tu, ti = test.nonzero()
    ratings = tmp_path / "ratings.csv"
    rows = [f"{a},{b},5" for a, b in zip(u, i)] + [f"{a},{b},5" for a, b in zip(tu, ti)]
    ratings.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           "-m", "irgan.train", "--dataset", str(ratings), "--split", "random", "--out", str(out), "--quiet",
           "--device", "cpu", "--init", "random", "--epochs", "1", "--d-epochs", "2", "--g-epochs", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "metrics.json").read_text())
    assert report["processes"] == WORLD
    assert done.stdout.count("IRGAN G") == 1  # one table, from process 0
    assert sorted(p.name for p in out.iterdir()) == ["history.jsonl", "metrics.json", "model.pt", "run.json"]
