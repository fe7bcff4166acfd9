"""The compiled kernels (irgan.kernels) against the torch path they replace, which stays the reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from irgan import kernels
from irgan.config import IRGANConfig
from irgan.metrics import evaluate
from irgan.models import MatrixFactorization
from irgan.training.fast_mf import packed_items, packed_users
from irgan.training.policy import Policy
from irgan.training.sampling import sample_rows
from irgan.training.updates import d_update

pytestmark = pytest.mark.skipif(kernels.numba is None, reason="numba is not installed")


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tables(n_users: int = 40, n_items: int = 300, dim: int = 5, scale: float = 1.0, seed: int = 0):
    g = seeded(seed)
    users_ext = torch.cat([torch.randn(n_users, dim, generator=g) * scale, torch.ones(n_users, 1)], 1)
    return users_ext, torch.randn(n_items, dim + 1, generator=g) * scale


def test_use_switches_the_kernels_off_and_back():
    x = torch.zeros(3)
    assert kernels.enabled(x)
    with kernels.use(False):
        assert not kernels.enabled(x)
        assert type(Policy.of_mf(*tables(), 1.0)) is Policy
    assert kernels.enabled(x)
    assert not kernels.enabled(x.to(torch.float16))


@pytest.mark.parametrize("x", [0.0, -1e-6, -0.5, -1.0, -10.0, -40.0, -87.0, -87.2])
def test_exp_is_within_two_ulp_of_torch(x):
    values = torch.linspace(x - 0.7, x, 1001, dtype=torch.float32).clamp(max=0)
    out = values.clone()
    kernels._exp_shifted(out.numpy(), np.float32(0), np.empty(len(out), np.int32), np.empty(-(-len(out) // kernels.BLOCK), np.float32))
    exact = torch.exp(values.double())
    flushed = values < kernels._EXP_LOW  # there the kernel gives 0, torch values below exp(-87.3) ~ 1.2e-38
    error = (out.double() - exact).abs()
    assert (error <= 2.5 * torch.finfo(torch.float32).eps * exact + np.exp(kernels._EXP_LOW) * flushed).all()
    assert (out[values < kernels._EXP_LOW] == 0).all()


def test_exp_is_zero_far_below_and_one_at_the_max():
    values = torch.tensor([0.0, -87.4, -100.0, -float("inf"), -3.0], dtype=torch.float32)
    out, blocks = values.clone(), np.empty(1, np.float32)
    total = kernels._exp_shifted(out.numpy(), np.float32(0), np.empty(5, np.int32), blocks)
    assert out[:4].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert out[4].item() == pytest.approx(np.exp(-3.0), rel=3e-7)
    assert total == pytest.approx(1 + np.exp(-3.0), rel=1e-6) and blocks[0] == total


@pytest.mark.parametrize("temperature, scale, dim", [(1.0, 1.0, 5), (0.2, 1.0, 5), (1.0, 30.0, 5), (3.0, 0.01, 5),
                                                     (1.0, 0.5, 7), (0.5, 0.5, 11), (1.0, 0.5, 1)])
def test_mf_softmax_is_torchs_softmax_with_its_max_sum_and_expected_item(temperature, scale, dim):
    users_ext, items_ext = tables(scale=scale, dim=dim)
    e, m, z, expected, draws, picked = kernels.mf_softmax(users_ext, items_ext, temperature)
    logits = users_ext @ items_ext.T / temperature
    p = torch.softmax(logits.double(), 1)
    assert draws.numel() == picked.numel() == 0
    torch.testing.assert_close(m, logits.amax(1), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close((e / z[:, None]).double(), p, rtol=2e-5, atol=1e-12)
    torch.testing.assert_close(expected.double(), p @ items_ext.double(), rtol=1e-4, atol=1e-5)
    reference = Policy.of_logits(logits.clone())
    torch.testing.assert_close(reference.p, (e / z[:, None]), rtol=2e-5, atol=1e-12)


def test_policy_on_the_kernel_matches_the_torch_policy():
    users_ext, items_ext = tables(n_items=257)  # not a multiple of the block
    fast = Policy.of_mf(users_ext, items_ext, 0.7)
    with kernels.use(False):
        slow = Policy.of_mf(users_ext, items_ext, 0.7)
    assert type(fast) is not Policy and type(slow) is Policy
    rows, items = torch.tensor([0, 0, 5, 39]), torch.tensor([0, 256, 17, 100])
    torch.testing.assert_close(fast.at(rows, items), slow.at(rows, items), rtol=2e-5, atol=0)
    torch.testing.assert_close(fast.expected(items_ext), slow.expected(items_ext), rtol=1e-4, atol=1e-5)
    expected_logit = (users_ext * slow.expected(items_ext)).sum(1) / 0.7
    torch.testing.assert_close(fast.entropy(expected_logit), slow.entropy(expected_logit), rtol=1e-5, atol=1e-5)
    w = torch.randn(40, 6, generator=seeded(3))
    torch.testing.assert_close(fast.item_sum(w), slow.item_sum(w), rtol=1e-4, atol=1e-5)


def integer_weights(n_rows: int = 30, n_cols: int = 200, seed: int = 0) -> torch.Tensor:
    """Rows of small whole numbers with zeros among them: their sums are exact in any order."""
    g = seeded(seed)
    w = torch.randint(0, 5, (n_rows, n_cols), generator=g).float()
    w[:, :3] = 0  # leading zeros: never drawn
    w[:, -2:] = 0  # nor trailing ones
    return w


def test_draws_are_sample_rows_draws_for_the_same_uniforms():
    w = integer_weights()
    counts = torch.randint(0, 60, (30,), generator=seeded(1))
    counts[4] = 0
    fast = kernels.draw(w, w.sum(1), counts, seeded(7))
    assert torch.equal(fast, sample_rows(w, counts, seeded(7)))
    assert not (w.view(-1)[torch.repeat_interleave(torch.arange(30), counts) * 200 + fast] == 0).any()


def test_a_threshold_on_a_running_sum_takes_the_next_column():
    row = np.ones(64, np.float32)  # four blocks: thresholds 0..63 fall on every running sum and cell start
    blocks = np.full(4, 16, np.float32)
    u = np.arange(64) / 64
    out, picked = np.empty(64, np.int64), np.empty(64, np.float32)
    kernels._draw_row(row, blocks, 64.0, u, out, picked, np.empty(5), np.empty(4, np.int64))
    assert out.tolist() == list(range(64))  # the first column whose running sum exceeds u total


@pytest.mark.parametrize("shape", ["peaked", "sparse", "last"])
def test_draws_from_uneven_rows_are_sample_rows_draws(shape):
    g = seeded(3)
    w = torch.zeros(8, 1000)
    if shape == "peaked":  # a few heavy columns among many light ones: cells of the guide hold many blocks
        w += torch.rand(8, 1000, generator=g) * 1e-3
        w[:, torch.randint(0, 1000, (5,), generator=g)] = 50.0
    elif shape == "sparse":  # whole blocks without weight between the columns that have some
        w.view(-1)[torch.randint(0, 8000, (60,), generator=g)] = torch.randint(1, 4, (60,), generator=g).float()
        w[:, 997] = 1.0
    else:  # all the weight in the last column
        w[:, -1] = 2.0
    counts = torch.randint(1, 300, (8,), generator=g)
    fast = kernels.draw(w, w.sum(1), counts, seeded(11))
    assert torch.equal(fast, sample_rows(w, counts, seeded(11)))
    assert (w.view(-1)[torch.repeat_interleave(torch.arange(8), counts) * 1000 + fast] > 0).all()


def test_draws_made_with_the_softmax_are_the_draws_made_from_it_after():
    users_ext, items_ext = tables(n_items=1000)
    counts = torch.randint(0, 50, (40,), generator=seeded(2))
    e, _, z, _, fused, picked = kernels.mf_softmax(users_ext, items_ext, 0.5, counts, seeded(9))
    assert torch.equal(fused, kernels.draw(e, z, counts, seeded(9)))
    rows = torch.repeat_interleave(torch.arange(40), counts)
    assert torch.equal(picked, e[rows, fused])
    lazy = Policy.of_mf(users_ext, items_ext, 0.5)
    assert torch.equal(lazy.sample(counts, seeded(9)), fused)  # drawn first: in the softmax's pass
    read_first = Policy.of_mf(users_ext, items_ext, 0.5)
    read_first.e
    assert torch.equal(read_first.sample(counts, seeded(9)), fused)  # read first: drawn after


def test_draw_frequencies_follow_the_softmax():
    users_ext, items_ext = tables(n_users=2, n_items=50, scale=0.5)
    counts = torch.tensor([200_000, 0])
    e, _, z, _, draws, _ = kernels.mf_softmax(users_ext, items_ext, 1.0, counts, seeded(4))
    freq = torch.bincount(draws, minlength=50).double() / 200_000
    p = (e[0] / z[0]).double()
    assert (freq - p).abs().max() < 5 * (p * (1 - p) / 200_000).sqrt().max()


def test_a_threshold_left_at_the_total_takes_the_last_column_with_weight():
    row = np.array([0, 1, 2, 0, 0], np.float32)
    blocks = np.array([3], np.float32)
    out, picked = np.empty(2, np.int64), np.empty(2, np.float32)
    kernels._draw_row(row, blocks, 3.5, np.array([0.999999, 0.1]), out, picked, np.empty(2), np.empty(1, np.int64))  # a total overstated by rounding
    assert out.tolist() == [2, 1] and picked.tolist() == [2, 1]


@pytest.mark.parametrize("d_batch_size, l2, lr", [(65536, 0.2, 0.05), (37, 0.2, 0.05), (37, 0.0, 0.5), (65536, 0.5, 1.5)])
def test_d_kernel_step_is_the_torch_fast_step(d_batch_size, l2, lr):
    from irgan.adversarial.irgan.game import d_epoch

    g = seeded(0)
    users = torch.sort(torch.randint(0, 30, (400,), generator=g)).values
    real, fake = torch.randint(0, 50, (400,), generator=g), torch.randint(0, 50, (400,), generator=g)
    config = IRGANConfig(d_batch_size=d_batch_size)
    out = {}
    for on in (True, False):
        D = MatrixFactorization(30, 50, 5, 0.5, generator=seeded(1))
        with kernels.use(on):
            step = d_update(D, "sgd", lr, True)
            losses = [d_epoch(step, users, real, fake, config, seeded(2))["d_loss"] for _ in range(3)]
        out[on] = (losses, {n: p.detach().clone() for n, p in D.named_parameters()})
    start = MatrixFactorization(30, 50, 5, 0.5, generator=seeded(1))
    assert out[True][0] == pytest.approx(out[False][0], rel=1e-5)
    for name, value in out[True][1].items():
        reference = out[False][1][name]
        moved = (reference - dict(start.named_parameters())[name].detach()).abs().max()
        assert moved > 1e-2
        assert (value - reference).abs().max() <= 1e-5 * max(1.0, reference.abs().max().item()), name


def test_ranks_with_ties_match_the_torch_path():
    import scipy.sparse as sp

    g = seeded(5)
    scores = torch.randint(0, 6, (60, 80), generator=g).float()  # many ties
    train = sp.random(60, 80, density=0.1, format="csr", random_state=1)
    test = sp.random(60, 80, density=0.05, format="csr", random_state=2)
    test = test - test.multiply(train.astype(bool))
    test.eliminate_zeros()

    class Fixed(torch.nn.Module):
        def score_users(self, users):
            return scores[users].clone()

    fast = evaluate(Fixed(), train, test, (1, 3), per_user=True)[1]
    with kernels.use(False):
        slow = evaluate(Fixed(), train, test, (1, 3), per_user=True)[1]
    assert fast.equals(slow)
    assert (fast["MRR"] < 1).any()  # rows ranked outside the top k were counted


def test_packed_rows_give_the_models_softmax():
    model = MatrixFactorization(7, 20, 4, 0.3, generator=seeded(0))
    users = torch.tensor([0, 3, 6])
    policy = Policy.of_mf(packed_users(model, users), packed_items(model), 1.0)
    torch.testing.assert_close(policy.p, torch.softmax(model.score_users(users).detach(), 1), rtol=2e-5, atol=1e-9)


@pytest.mark.parametrize("n, batches", [(1000, 7), (5, 5), (3, 5), (0, 1)])
def test_sorted_batches_are_the_permutations_batches_each_in_order(n, batches):
    perm = torch.randperm(n, generator=seeded(n), dtype=torch.int32)
    got = kernels.sorted_batches(perm, batches)
    assert all(part.dtype == torch.int32 for part in got)
    want = [part.sort().values for part in perm.tensor_split(batches)]
    assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want))


def test_row_kernels_give_the_same_rows_on_one_thread_and_on_two():
    import scipy.sparse as sp

    users_ext, items_ext = tables(n_users=50, n_items=700)
    train = sp.random(50, 700, density=0.05, format="csr", random_state=1)
    test = sp.random(50, 700, density=0.01, format="csr", random_state=2)
    test = sp.csr_matrix(test - test.multiply(train.astype(bool)))
    counts = torch.randint(0, 40, (50,), generator=seeded(3))
    before = torch.get_num_threads()
    out = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out[threads] = kernels.mf_softmax(users_ext, items_ext, 0.8, counts, seeded(4))
            out[threads] += kernels.rank_rows(out[threads][0], train, test, 5)[:3]
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(out[1], out[2]))


def test_the_kernels_leave_torchs_thread_count_as_set():
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(1)\n"
            "from irgan import kernels\n"
            "kernels.mf_softmax(torch.randn(10, 6), torch.randn(50, 6), 1.0, torch.ones(10, dtype=torch.long))\n"
            "import scipy.sparse as sp\n"
            "kernels.rank_rows(torch.randn(4, 9), sp.csr_matrix((4, 9)), sp.csr_matrix((4, 9)), 3)\n"
            "print(torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]


def test_p_at_the_draws_and_at_other_items_is_the_softmax_there():
    from irgan.training.sampling import PositiveSet, sample_mixture
    import scipy.sparse as sp

    users_ext, items_ext = tables(n_users=30, n_items=400)
    positives = PositiveSet(sp.random(30, 400, density=0.05, format="csr", random_state=0))
    counts = 2 * positives.counts
    for on in (True, False):
        with kernels.use(on):
            policy = Policy.of_mf(users_ext, items_ext, 0.9)
            rows, items = sample_mixture(policy, positives, torch.arange(30), counts, 0.5, seeded(1))
            p = torch.softmax(users_ext @ items_ext.T / 0.9, 1)
            got = policy.at(rows, items)
            torch.testing.assert_close(got, p[rows, items], rtol=2e-5, atol=0)
            assert policy.at(rows, items) is got  # the step's second read
            torch.testing.assert_close(policy.at(rows[:5], items[:5]), p[rows[:5], items[:5]], rtol=2e-5, atol=0)


def test_contains_is_the_lockstep_search():
    import scipy.sparse as sp
    from irgan.training import sampling

    keep = np.ones(50)
    keep[7] = 0  # a user without positives
    matrix = sp.csr_matrix(sp.diags(keep) @ sp.random(50, 3000, density=0.02, format="csr", random_state=3))
    matrix.eliminate_zeros()
    before, sampling.DENSE_BYTES = sampling.DENSE_BYTES, 0  # the sparse search, not the dense table
    try:
        positives = sampling.PositiveSet(matrix)
    finally:
        sampling.DENSE_BYTES = before
    users = torch.randint(0, 50, (20000,), generator=seeded(2))
    items = torch.randint(0, 3000, (20000,), generator=seeded(3))
    rows, columns = matrix.nonzero()
    users[:100], items[:100] = torch.tensor(rows[:100]), torch.tensor(columns[:100])
    fast = positives.contains(users, items)
    with kernels.use(False):
        slow = positives.contains(users, items)
    pairs = set(zip(rows.tolist(), columns.tolist()))
    truth = [(u, i) in pairs for u, i in zip(users.tolist(), items.tolist())]
    assert torch.equal(fast, slow) and fast[:100].all() and torch.equal(fast, torch.tensor(truth))


@pytest.mark.parametrize("values, density", [(6, 0.1), (1000, 0.3), (2, 0.0)])
def test_evaluation_on_the_kernel_ranks_as_the_torch_path(values, density):
    import scipy.sparse as sp

    scores = torch.randint(0, values, (70, 90), generator=seeded(values)).float()  # ties, many or few
    train = sp.random(70, 90, density=density, format="csr", random_state=1) if density else sp.csr_matrix((70, 90))
    test = sp.random(70, 90, density=0.06, format="csr", random_state=2)
    test = sp.csr_matrix(test - test.multiply(train.astype(bool)))
    test.eliminate_zeros()
    for k in ((1, 3), (5, 10, 90)):
        fast = evaluate(scores, train, test, k, per_user=True)[1]
        with kernels.use(False):
            slow = evaluate(scores, train, test, k, per_user=True)[1]
        assert fast.equals(slow), k


def test_rank_rows_puts_train_items_last_and_ties_by_lower_column():
    import scipy.sparse as sp

    scores = torch.tensor([[1.0, 5.0, 3.0, 5.0, 0.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    train = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]))
    test = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 0, 0, 1, 0]]))
    top, hit, rank, bad = kernels.rank_rows(scores, train, test, 4)
    assert top.tolist() == [[3, 2, 0, 4], [0, 1, 2, 3]] and rank.tolist() == [3, 4] and not bad
    assert hit.tolist() == [[False, False, True, False], [False, False, False, True]]
    top, hit, rank, _ = kernels.rank_rows(scores, train, test, 2)
    assert top.tolist() == [[3, 2], [0, 1]] and rank.tolist() == [3, 4]  # ranked past the top k
    assert not hit.any()
    assert kernels.rank_rows(scores.index_fill(1, torch.tensor([2]), float("nan")), train, test, 2)[3]
    assert kernels.rank_rows(scores.index_fill(1, torch.tensor([4]), -float("inf")), train, test, 2)[3]


@pytest.mark.parametrize("k", [1, 5, 10, 200])
def test_ranking_a_large_catalog_walks_only_the_blocks_it_needs_and_leaves_the_scores_as_found(k):
    import scipy.sparse as sp

    g = seeded(k)
    scores = torch.randn(50, 2000, generator=g) + torch.linspace(0, 3, 2000)  # the best items cluster at the end
    scores[:, 1500:1510] = scores[:, 1500:1502].amax()  # ties across blocks
    train = sp.random(50, 2000, density=0.02, format="csr", random_state=3)
    train = train.tolil()
    train[:, 1960:] = 1  # the best-scored items are train items
    train[7] = 1  # a row with every item in train
    train = sp.csr_matrix(train)
    test = sp.random(50, 2000, density=0.01, format="csr", random_state=4)
    test = sp.csr_matrix(test - test.multiply(train.astype(bool)))
    test.eliminate_zeros()
    before = scores.clone()
    fast = evaluate(scores, train, test, (k,), per_user=True)[1]
    top, hit, rank, bad = kernels.rank_rows(scores, train, test, k)
    assert torch.equal(scores, before) and not bad
    in_test = torch.tensor([[bool(test[r, c]) if c < 2000 else False for c in row] for r, row in enumerate(top.tolist())])
    assert torch.equal(hit, in_test)  # every hit marked, not only the first
    assert int(hit.sum()) == round(float(fast[f"P@{k}"].sum()) * k)
    with kernels.use(False):
        slow = evaluate(scores, train, test, (k,), per_user=True)[1]
    assert fast.equals(slow)
    assert (top[7] == torch.arange(k)).all()  # all train, ranked last in column order
    scores[3, train[3].indices[0]] = float("nan")  # a NaN at a train item is still a NaN
    assert kernels.rank_rows(scores, train, test, k)[3]
    assert torch.isnan(scores[3, train[3].indices[0]])


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_bpr_pass_is_the_torch_steps(batch_size):
    from irgan.training.fast_mf import bpr_sgd_step

    g = seeded(batch_size)
    users_ext, items_ext = tables(n_users=30, n_items=50, scale=0.3)
    users = torch.randint(0, 30, (500,), generator=g)
    pos, neg = torch.randint(0, 50, (500,), generator=g), torch.randint(0, 50, (500,), generator=g)
    neg[:20] = pos[:20]  # an item on both sides of a triple
    slow_users, slow_items = users_ext.clone(), items_ext.clone()
    for u, i, j in zip(users.split(batch_size), pos.split(batch_size), neg.split(batch_size)):
        bpr_sgd_step(slow_users, slow_items, u, i, j, 0.05, 0.1)
    kernels.bpr_sgd(users_ext, items_ext, users, pos, neg, batch_size, 0.05, 0.1)
    torch.testing.assert_close(users_ext, slow_users, rtol=0, atol=2e-6)
    torch.testing.assert_close(items_ext, slow_items, rtol=0, atol=2e-6)
    assert (users_ext[:, -1] == 1).all()


@pytest.mark.parametrize("extra, dense", [
    ({}, True), ({}, False), (dict(g_estimator="snis", reward="paper", g_temperature=0.5), True),
    (dict(g_mix=0.0, g_l2=0.1, optimizer="adam"), False), (dict(g_mix=0.6, g_sample_factor=3), True),
])
def test_the_fused_g_step_is_the_draws_then_the_step(extra, dense):
    import copy

    from irgan.adversarial.irgan.game import _g_draws
    from irgan.adversarial.irgan.players import Discriminator
    from irgan.training.sampling import PositiveSet
    from irgan.training.updates import g_update
    from helpers import planted

    train, _ = planted(1, n_groups=4, users_per_group=12, items_per_group=40)
    config = IRGANConfig(**{"g_lr": 0.5, **extra})
    positives = PositiveSet(train)
    if not dense:
        positives.dense = None  # a catalog too large for the dense mask: a search per draw
    G = MatrixFactorization(*train.shape, 5, 0.5, generator=seeded(1))
    D = Discriminator(MatrixFactorization(*train.shape, 5, 0.5, generator=seeded(2)))
    users = torch.tensor([5, 0, 17, 40, 33, 2])
    before = copy.deepcopy(G)
    fused_step, plain_step = g_update(G, config.optimizer, config.g_lr, True), g_update(copy.deepcopy(G), config.optimizer, config.g_lr, True)
    assert fused_step.fuses(D)
    entropy, rewards, items = fused_step.fused(users, D, positives, config, seeded(3))
    rng = seeded(3)
    policy, rows, plain_items, plain_rewards, weights = _g_draws(plain_step, D, users, positives, config, rng)
    plain_entropy = plain_step(users, config.g_temperature, config.g_l2, rows, plain_items, weights, policy)
    assert torch.equal(items, plain_items)  # the same uniforms give the same draws
    torch.testing.assert_close(rewards, plain_rewards, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(entropy, plain_entropy, rtol=1e-5, atol=1e-6)
    for name, fast in G.named_parameters():
        slow, start = plain_step.scorer.get_parameter(name), before.get_parameter(name)
        tol = 1e-5 * slow.abs().max().item()
        assert (slow - start).abs().max() > 100 * tol, name  # the step moved it, far beyond the tolerance
        assert (fast - slow).abs().max() <= tol, name


def test_g_fuses_its_step_only_against_an_mf_discriminator_on_the_kernels():
    from irgan.adversarial.irgan.players import Discriminator
    from irgan.models.itemitem import ItemItemScorer
    from irgan.training.updates import g_update

    step = g_update(MatrixFactorization(6, 9, 3), "sgd", 0.1, True)
    assert step.fuses(Discriminator(MatrixFactorization(6, 9, 3)))
    assert not step.fuses(Discriminator(ItemItemScorer(6, 9)))
    assert not step.fuses(Discriminator(MatrixFactorization(6, 9, 3).double()))
    with kernels.use(False):
        assert not step.fuses(Discriminator(MatrixFactorization(6, 9, 3)))


@pytest.mark.parametrize("batch", [None, "int32", "int64"])
def test_d_steps_on_triples_are_the_steps_on_their_pairs(batch):
    from irgan.training.updates import DUpdate

    g = seeded(4)
    users = torch.sort(torch.randint(0, 25, (300,), generator=g)).values
    real, fake = torch.randint(0, 40, (300,), generator=g), torch.randint(0, 40, (300,), generator=g)
    index = None if batch is None else torch.sort(torch.randperm(300, generator=g)[:120]).values.to(getattr(torch, batch))
    steps = [d_update(MatrixFactorization(25, 40, 5, 0.5, generator=seeded(1)), "sgd", 0.05, True) for _ in range(3)]
    losses = [steps[0].triples(users, real, fake, index, 0.2),  # the kernel reads the triples where they are
              DUpdate.triples(steps[1], users, real, fake, index, 0.2)]  # the pairs built, then the kernel
    with kernels.use(False):
        losses.append(steps[2].triples(users, real, fake, index, 0.2))  # the torch fast path
    first, second, reference = (dict(step.scorer.named_parameters()) for step in steps)
    assert losses[0] == losses[1] and losses[0] == pytest.approx(losses[2], rel=1e-5)
    for name, value in first.items():
        assert torch.equal(value, second[name]), name
        torch.testing.assert_close(value, reference[name], rtol=0, atol=1e-6)


def test_a_kernel_policys_expected_item_is_of_the_table_it_was_built_from():
    users_ext, items_ext = tables(n_items=60)
    fast = Policy.of_mf(users_ext, items_ext, 0.7)
    with kernels.use(False):
        slow = Policy.of_mf(users_ext, items_ext, 0.7)
    torch.testing.assert_close(fast.expected(items_ext), slow.expected(items_ext), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="built from an item table of shape"):
        fast.expected(items_ext[:10])


def test_serial_torch_runs_torch_on_one_thread_and_the_kernels_on_the_threads_it_had():
    import os

    seen = []

    @kernels.serial_torch
    def inner(fail: bool = False):
        seen.append((torch.get_num_threads(), kernels.threads(), kernels.row_runs(100)))
        if fail:
            raise RuntimeError("inner failed")

    @kernels.serial_torch
    def outer():
        inner()
        seen.append((torch.get_num_threads(), kernels.threads()))

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        outer()
        runs = 1 if min(2, os.cpu_count() or 1) == 1 else 8
        assert seen == [(1, 2, runs), (1, 2)]
        assert torch.get_num_threads() == 2 and kernels.threads() == 2
        with pytest.raises(RuntimeError, match="inner failed"):
            inner(fail=True)
        assert torch.get_num_threads() == 2 and kernels.threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_game_plays_the_same_on_one_thread_and_on_two_and_puts_the_count_back():
    """fit_irgan and fit_bpr run torch's operations on one thread (the kernels on the count given):
    the same players and history for any count, and the count as the caller set it after."""
    from helpers import planted
    from irgan.adversarial.irgan.game import fit_irgan
    from irgan.training.bpr import fit_bpr
    from irgan.config import BPRConfig

    train, selection = planted(0, n_groups=3, users_per_group=10, items_per_group=40)
    config = IRGANConfig(epochs=2, d_epochs=2, g_epochs=2, dim=4)
    before, out = torch.get_num_threads(), {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            inside = []
            init = fit_bpr(train, BPRConfig(epochs=3, dim=4), seed=1)
            result = fit_irgan(train, selection, config, init=init, seed=1, device="cpu",
                               on_evaluate=lambda row: inside.append((torch.get_num_threads(), kernels.threads())))
            assert torch.get_num_threads() == threads
            assert set(inside) == {(1, threads)}
            out[threads] = result
    finally:
        torch.set_num_threads(before)
    for player in ("generator", "discriminator"):
        one, two = getattr(out[1], player).scorer, getattr(out[2], player).scorer
        assert all(torch.equal(a, b) for a, b in zip(one.parameters(), two.parameters()))
    untimed = [[{k: v for k, v in row.items() if k != "seconds"} for row in out[t].history] for t in (1, 2)]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 2 * 2  # a row per G-epoch
    assert out[1].best_generator == out[2].best_generator


@pytest.mark.parametrize("triples", [True, False])
def test_d_kernel_step_is_the_same_on_one_thread_and_on_two(triples):
    """The same tables, item sums and loss on one thread and on two, for pairs given with labels and
    as triples (a split of the pairs over threads must keep each sum's order)."""
    g = seeded(0)
    n = 3 * kernels.CHUNK + 17  # several chunks, the last one short
    users = torch.sort(torch.randint(0, 60, (n,), generator=g)).values
    real, fake = torch.randint(0, 90, (n,), generator=g), torch.randint(0, 90, (n,), generator=g)
    out = {}
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            D = MatrixFactorization(60, 90, 5, 0.5, generator=seeded(1))
            tables = [D.user_emb.detach(), D.item_emb.detach(), D.item_bias.detach()]
            if triples:
                loss, sums = kernels.pointwise_sgd(*tables, users, real, None, 0.3, 0.1, {}, fake)
            else:
                labels = (torch.rand(n, generator=seeded(3)) < 0.5).float()
                loss, sums = kernels.pointwise_sgd(*tables, users, real, labels, 0.3, 0.1, {})
            out[threads] = (loss, sums, D.user_emb.detach().clone())
    finally:
        torch.set_num_threads(before)
    assert out[1][0] == out[2][0] and torch.equal(out[1][1], out[2][1]) and torch.equal(out[1][2], out[2][2])
    assert out[1][1][:, -1].sum() == (2 * n if triples else n)  # every pair counted once


def test_run_all_calls_every_task_once_and_raises_what_one_raised():
    calls = []
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        kernels._run_all([lambda i=i: calls.append(i) for i in range(50)])
        assert sorted(calls) == list(range(50))

        def fails():
            raise ValueError("task failed")
        with pytest.raises(ValueError, match="task failed"):
            kernels._run_all([fails, lambda: calls.append("after")])
    finally:
        torch.set_num_threads(before)
