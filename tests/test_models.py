"""Models: the MF scorer's shapes, agreement and penalty, the players wrapping it (G's sampling,
D's rewards), inverse-CDF sampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from irgan.models import Discriminator, Generator, MatrixFactorization
from irgan.training.sampling import sample_rows


# chi2.ppf(1 - 1e-4, df) for df = 1..7 (scipy.stats would cost seconds to import)
CHI2_CRITICAL = {1: 15.137, 2: 18.421, 3: 21.108, 4: 23.513, 5: 25.745, 6: 27.856, 7: 29.878}


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def model() -> MatrixFactorization:
    m = MatrixFactorization(7, 11, dim=4, init_scale=0.5, generator=seeded())
    with torch.no_grad():
        m.item_bias.copy_(torch.randn(11, generator=seeded(1)))  # biases start at 0: make them matter
    return m


# --- MatrixFactorization ---------------------------------------------------------------------

def test_shapes(model):
    users = torch.tensor([0, 3, 3, 6])
    assert model.score(users, torch.tensor([1, 2, 2, 10])).shape == (4,)
    assert model.score(users[:, None].expand(-1, 5), torch.arange(5).repeat(4, 1)).shape == (4, 5)
    assert model.score_users(users).shape == (4, 11)
    assert model(users).shape == (4, 11)  # forward is score_users
    g = Generator(MatrixFactorization(7, 11, dim=4, generator=seeded()))
    assert g.log_probs(users).shape == (4, 11)
    assert torch.allclose(g.log_probs(users).exp().sum(1), torch.ones(4))


def test_parameters_have_documented_shapes_and_init():
    m = MatrixFactorization(3, 5, dim=2, init_scale=0.1, generator=seeded())
    assert m.user_emb.shape == (3, 2) and m.item_emb.shape == (5, 2) and m.item_bias.shape == (5,)
    assert m.user_emb.abs().max() <= 0.1 and m.item_emb.abs().max() <= 0.1
    assert torch.equal(m.item_bias, torch.zeros(5))


def test_same_generator_seed_same_parameters():
    a = MatrixFactorization(4, 6, generator=seeded(3))
    b = MatrixFactorization(4, 6, generator=seeded(3))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("sizes", [(0, 5, 2), (3, 0, 2), (3, 5, 0)])
def test_non_positive_sizes_raise(sizes):
    with pytest.raises(ValueError):
        MatrixFactorization(*sizes)


def test_score_users_agrees_with_score_on_all_pairs(model):
    users, items = torch.meshgrid(torch.arange(7), torch.arange(11), indexing="ij")
    pairwise = model.score(users.flatten(), items.flatten()).view(7, 11)
    expected = model.user_emb.detach() @ model.item_emb.detach().T + model.item_bias.detach()
    with torch.no_grad():
        assert torch.allclose(model.score_users(torch.arange(7)), pairwise, atol=1e-6)
        assert torch.allclose(pairwise, expected, atol=1e-6)


def test_log_probs_temperature_and_exclude():
    g = Generator(MatrixFactorization(2, 6, dim=3, init_scale=1.0, generator=seeded()))
    users = torch.tensor([0, 1])
    with torch.no_grad():
        expected = torch.log_softmax(g.score_users(users) / 0.3, 1)
        assert torch.allclose(g.log_probs(users, temperature=0.3), expected, atol=1e-6)
        exclude = torch.zeros(2, 6, dtype=torch.bool)
        exclude[0, [1, 4]] = True
        p = g.log_probs(users, exclude=exclude).exp()
    assert torch.equal(p[exclude], torch.zeros(2))
    assert torch.allclose(p.sum(1), torch.ones(2))


def test_from_arrays_round_trip(model):
    arrays = [t.detach().numpy() for t in (model.user_emb, model.item_emb, model.item_bias)]
    copy = MatrixFactorization.from_arrays(*arrays)
    assert (copy.n_users, copy.n_items, copy.dim) == (7, 11, 4)
    assert all(torch.equal(a, b) for a, b in zip(copy.parameters(), model.parameters()))
    assert copy.user_emb.dtype == torch.float32
    g = Generator(MatrixFactorization.from_arrays(*(a.astype(np.float64) for a in arrays)))  # any float dtype
    assert isinstance(g.scorer, MatrixFactorization) and g.scorer.user_emb.dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(g.parameters(), model.parameters()))


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 2), (5, 3), (5,)),  # dims differ
        ((3,), (5, 2), (5,)),  # 1-d user embeddings
        ((3, 2), (5, 2), (4,)),  # bias length
        ((3, 2), (5, 2), (5, 1)),  # bias 2-d
        ((3, 2, 1), (5, 2), (5,)),  # 3-d
    ],
)
def test_from_arrays_validates_shapes(shapes):
    with pytest.raises(ValueError):
        MatrixFactorization.from_arrays(*(np.zeros(s) for s in shapes))


def test_load_state_dict_copies(model):
    target = Discriminator(MatrixFactorization(7, 11, dim=4))
    target.scorer.load_state_dict(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), model.parameters()))
    with torch.no_grad():
        model.user_emb.add_(1)  # a copy, not shared storage
    assert not torch.equal(target.scorer.user_emb, model.user_emb)


@pytest.mark.parametrize("sizes", [(8, 11, 4), (7, 12, 4), (7, 11, 5)])
def test_load_state_dict_refuses_mismatched_sizes(model, sizes):
    other = MatrixFactorization(*sizes)
    mismatched = [name for name, p in other.state_dict().items() if p.shape != model.state_dict()[name].shape]
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_state_dict(other.state_dict())
    # (torch copies the tensors whose sizes fit before it raises; those that do not are untouched)
    assert mismatched and all(torch.equal(model.state_dict()[name], before[name]) for name in mismatched)


def test_penalty_counts_each_occurrence(model):
    users, items = torch.tensor([0, 0, 2]), torch.tensor([1, 1, 4])
    user_part, item_part = model.penalty(users, items)
    assert user_part.shape == (3,) and item_part.shape == (3,)  # one entry per occurrence
    assert torch.allclose(user_part, model.user_emb[users].square().sum(1) / 2)
    assert torch.allclose(item_part, (model.item_emb[items].square().sum(1) + model.item_bias[items].square()) / 2)
    expected = (model.user_emb[users].square().sum() + model.item_emb[items].square().sum()
                + model.item_bias[items].square().sum()) / 2
    assert torch.allclose(user_part.sum() + item_part.sum(), expected)
    assert user_part[0] == user_part[1] and item_part[0] == item_part[1]  # a repeated row counts each time
    no_items = model.penalty(users, items[:0])[1]
    assert no_items.shape == (0,)


# --- Discriminator.reward --------------------------------------------------------------------

def test_reward_kinds():
    d = Discriminator(MatrixFactorization(3, 4, dim=2, init_scale=2.0, generator=seeded()))
    users, items = torch.tensor([0, 1, 2, 2]), torch.tensor([3, 0, 1, 3])
    with torch.no_grad():
        f = d.score(users, items)
        code = d.reward(users, items)  # default is the authors' code
        assert torch.allclose(code, 2 * (torch.sigmoid(f) - 0.5))
        assert torch.allclose(d.reward(users, items, "code"), code)
        assert torch.allclose(d.reward(users, items, "paper"), F.softplus(f))
        assert torch.allclose(d.reward(users, items, "paper"), torch.log1p(torch.exp(f)))
    assert ((code > -1) & (code < 1)).all()


def test_unknown_reward_raises():
    d = Discriminator(MatrixFactorization(2, 3))
    with pytest.raises(ValueError, match="unknown reward"):
        d.reward(torch.tensor([0]), torch.tensor([1]), "log")


# --- sample_rows / Generator.sample -----------------------------------------------------------

def test_sample_rows_frequencies_match_probs():
    probs = torch.tensor([[0.1, 0.0, 0.3, 0.6, 0.0, 0.0],
                          [0.0, 0.25, 0.25, 0.25, 0.25, 0.0],
                          [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    counts = torch.tensor([20000, 30000, 500])
    draws = sample_rows(probs, counts, seeded(0))
    assert draws.dtype == torch.long and draws.shape == (50500,)
    for row, part in zip(probs, draws.split(counts.tolist())):
        observed = torch.bincount(part, minlength=6).numpy()
        support = row.numpy() > 0
        assert observed[~support].sum() == 0  # never a zero-probability column
        expected = row.numpy()[support] * len(part)
        if support.sum() > 1:
            chi2 = ((observed[support] - expected) ** 2 / expected).sum()
            assert chi2 < CHI2_CRITICAL[int(support.sum()) - 1]


def test_sample_rows_unnormalised_rows():
    probs = torch.tensor([[2.0, 0.0, 6.0]])  # the row total is 8: sampled as [0.25, 0, 0.75]
    draws = sample_rows(probs, torch.tensor([40000]), seeded(1))
    share = (draws == 2).float().mean().item()
    assert (draws != 1).all() and abs(share - 0.75) < 0.01


def test_sample_rows_zero_probability_edges():
    # zero mass at both ends and in the middle, for many rows and draws
    probs = torch.zeros(50, 9)
    probs[:, 4] = 1e-3
    probs[:, 5] = 1.0
    draws = sample_rows(probs, torch.full((50,), 2000), seeded(2))
    assert set(draws.unique().tolist()) <= {4, 5}
    assert (draws == 4).any()


def test_sample_rows_counts_and_row_order():
    # rows with disjoint supports show which row each draw came from
    probs = torch.zeros(4, 8)
    probs[0, :2] = 0.5
    probs[1, 2:4] = 0.5
    probs[2, 4:6] = 0.5
    probs[3, 6:] = 0.5
    counts = torch.tensor([3, 0, 5, 1])
    draws = sample_rows(probs, counts, seeded(3))
    assert draws.shape == (9,)
    rows = torch.repeat_interleave(torch.arange(4), counts)
    assert torch.equal(draws // 2, rows)


def test_sample_rows_many_rows_keep_their_order():
    # more rows than one chunk of work, with uneven counts: row r can only draw column r
    counts = torch.randint(0, 9, (300,), generator=seeded(6))
    draws = sample_rows(torch.eye(300), counts, seeded(7))
    assert torch.equal(draws, torch.repeat_interleave(torch.arange(300), counts))


def test_sample_rows_seeded_determinism():
    probs = torch.softmax(torch.randn(5, 20, generator=seeded(0)), 1)
    counts = torch.tensor([4, 7, 1, 0, 9])
    a = sample_rows(probs, counts, seeded(42))
    b = sample_rows(probs, counts, seeded(42))
    c = sample_rows(probs, counts, seeded(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sample_rows_zero_counts():
    probs = torch.full((3, 4), 0.25)
    assert sample_rows(probs, torch.zeros(3, dtype=torch.long), seeded()).shape == (0,)


def test_generator_sample_never_returns_excluded_items():
    g = Generator(MatrixFactorization(5, 12, dim=3, init_scale=1.0, generator=seeded(0)))
    with torch.no_grad():
        g.scorer.item_bias[:6] = 8.0  # G strongly prefers items 0-5 ...
    users = torch.arange(5)
    exclude = torch.zeros(5, 12, dtype=torch.bool)
    exclude[:, :6] = True  # ... which are all excluded
    exclude[2, 6:11] = True  # user 2 may only get item 11
    counts = torch.full((5,), 400)
    draws = g.sample(users, counts, temperature=0.5, exclude=exclude, generator=seeded(1))
    rows = torch.repeat_interleave(users, counts)
    assert not exclude[rows, draws].any()
    assert (draws[rows == 2] == 11).all()
    unmasked = g.sample(users, counts, temperature=0.5, generator=seeded(1))
    assert exclude[rows, unmasked].any()  # the mask is what kept them out


def test_generator_sample_follows_log_probs():
    g = Generator(MatrixFactorization(1, 5, dim=2, init_scale=1.0, generator=seeded(4)))
    p = g.log_probs(torch.tensor([0]), temperature=0.7).exp()[0].detach()
    draws = g.sample(torch.tensor([0]), torch.tensor([30000]), temperature=0.7, generator=seeded(5))
    observed = torch.bincount(draws, minlength=5).numpy()
    expected = p.double().numpy() * 30000
    assert ((observed - expected) ** 2 / expected).sum() < CHI2_CRITICAL[4]
