"""Full-ranking metrics: hand-computed cases, a slow reference, properties, the authors' model."""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from irgan.distributed import Shard
from irgan.model_files import load_arrays
import irgan.metrics
from irgan.metrics import (METRICS, Evaluation, KeepBest, NonFiniteScores, eval_ks, evaluate, evaluate_sharded,
                           metric_names)

KS = (1, 3, 5, 10)


def csr(rows: dict[int, list[int]], shape: tuple[int, int]) -> sp.csr_matrix:
    """A binary CSR matrix holding ``rows[user]`` as that user's items."""
    pairs = [(u, i) for u, items in rows.items() for i in items]
    r, c = zip(*pairs) if pairs else ((), ())
    return sp.csr_matrix((np.ones(len(pairs)), (r, c)), shape=shape)


def reference(scores: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix, ks) -> pd.DataFrame:
    """The protocol spelled out the slow way: sort every user's full ranking in Python."""
    rows = {}
    for u in range(scores.shape[0]):
        relevant = set(test[u].indices.tolist())
        if not relevant:
            continue
        seen = set(train[u].indices.tolist())
        ranking = sorted(
            (i for i in range(scores.shape[1]) if i not in seen), key=lambda i: (-scores[u, i], i)
        )
        hit = [i in relevant for i in ranking]
        n = len(relevant)
        row = {}
        for k in ks:
            top = hit[:k]
            row[f"P@{k}"] = sum(top) / k
            row[f"Recall@{k}"] = sum(top) / n
            dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(top) if h)
            idcg = sum(1 / math.log2(r + 2) for r in range(min(k, n)))
            row[f"NDCG@{k}"] = dcg / idcg
            row[f"MAP@{k}"] = sum(
                sum(top[: r + 1]) / (r + 1) for r, h in enumerate(top) if h
            ) / min(k, n)
            row[f"HR@{k}"] = float(any(top))
        row["MRR"] = 1 / (hit.index(True) + 1)
        rows[u] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def random_case(seed: int, n_users=40, n_items=30, tied=True):
    """Scores (integer-valued when ``tied``), disjoint train/test, some users without test items."""
    rng = np.random.default_rng(seed)
    if tied:
        scores = rng.integers(0, 4, (n_users, n_items)).astype(float)
    else:
        scores = rng.normal(size=(n_users, n_items))
    cell = rng.random((n_users, n_items))
    train = sp.csr_matrix(cell < 0.3, dtype=np.float32)
    test = sp.csr_matrix((cell > 0.85) & (rng.random(n_users) < 0.8)[:, None], dtype=np.float32)
    return scores, train, test


# ---- hand-computed cases -------------------------------------------------------------------


def test_perfect_ranking_scores_one_everywhere():
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    test = csr({0: [0, 1, 2]}, (1, 6))
    result = evaluate(scores, csr({}, (1, 6)), test, ks=(3,))
    assert result == pytest.approx({f"{m}@3": 1.0 for m in METRICS} | {"MRR": 1.0})


def test_no_hit_in_top_k_scores_zero():
    scores = np.arange(20.0)[::-1][None, :]  # item 0 first, item 19 last
    result = evaluate(scores, csr({}, (1, 20)), csr({0: [19]}, (1, 20)))
    assert all(v == 0.0 for name, v in result.items() if name != "MRR")
    assert result["MRR"] == pytest.approx(1 / 20)


@pytest.mark.parametrize("r", [1, 2, 3, 5, 8])
def test_one_hit_at_rank_r(r):
    scores = np.arange(10.0)[::-1][None, :]  # rank of item i is i + 1
    result = evaluate(scores, csr({}, (1, 10)), csr({0: [r - 1]}, (1, 10)), ks=KS)
    for k in KS:
        inside = r <= k
        assert result[f"P@{k}"] == pytest.approx(inside / k)
        assert result[f"Recall@{k}"] == inside
        assert result[f"HR@{k}"] == inside
        assert result[f"NDCG@{k}"] == pytest.approx(inside / math.log2(r + 1))
        assert result[f"MAP@{k}"] == pytest.approx(inside / r)
    assert result["MRR"] == pytest.approx(1 / r)


def test_ndcg_ideal_list_holds_only_the_test_items():
    # two test items, at ranks 1 and 3: the ideal list for k=5 has two hits, not five
    scores = np.arange(10.0)[::-1][None, :]
    result = evaluate(scores, csr({}, (1, 10)), csr({0: [0, 2]}, (1, 10)), ks=(5,))
    assert result["NDCG@5"] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3)))
    assert result["MAP@5"] == pytest.approx((1 + 2 / 3) / 2)
    assert result["P@5"] == pytest.approx(2 / 5)
    assert result["Recall@5"] == 1.0


def test_train_items_are_removed_from_the_ranking():
    scores = np.array([[9.0, 8.0, 7.0, 1.0]])
    test = csr({0: [2]}, (1, 4))
    without = evaluate(scores, csr({}, (1, 4)), test, ks=(1,))
    masked = evaluate(scores, csr({0: [0, 1]}, (1, 4)), test, ks=(1,))
    assert without["MRR"] == pytest.approx(1 / 3) and without["HR@1"] == 0.0
    assert masked["MRR"] == 1.0 and masked["HR@1"] == 1.0


def test_ties_go_to_the_lower_item_index():
    empty = csr({}, (1, 10))
    flat = np.zeros((1, 10))
    result = evaluate(flat, empty, csr({0: [4]}, (1, 10)), ks=(3, 5))
    assert result["HR@3"] == 0.0 and result["HR@5"] == 1.0 and result["MRR"] == pytest.approx(1 / 5)
    # a tie straddling the cut-off: items 1..9 tie behind item 0; the top 3 must be 0, 1, 2
    scores = np.array([[2.0] + [1.0] * 9])
    assert evaluate(scores, empty, csr({0: [2]}, (1, 10)), ks=(3,))["HR@3"] == 1.0
    assert evaluate(scores, empty, csr({0: [3]}, (1, 10)), ks=(3,))["HR@3"] == 0.0
    # the first hit among tied test items is the lower-indexed one
    assert evaluate(flat, empty, csr({0: [7, 3]}, (1, 10)))["MRR"] == pytest.approx(1 / 4)


def test_users_without_test_items_are_skipped():
    scores = np.arange(12.0).reshape(3, 4)[:, ::-1].copy()  # every user ranks item 0 first
    test = csr({0: [0], 2: [3]}, (3, 4))
    summary, per_user = evaluate(scores, csr({}, (3, 4)), test, ks=(1,), per_user=True)
    assert per_user.index.tolist() == [0, 2] and per_user.index.name == "user"
    assert per_user["HR@1"].tolist() == [1.0, 0.0]
    assert summary["HR@1"] == 0.5  # not 1/3: user 1 is not counted as a miss


# ---- against the reference -----------------------------------------------------------------


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference(seed, tied):
    scores, train, test = random_case(seed, tied=tied)
    ks = (1, 3, 5, 10, 30)
    summary, per_user = evaluate(scores, train, test, ks=ks, batch_size=7, per_user=True)
    expected = reference(scores, train, test, ks)
    assert 0 < len(per_user) < len(scores)  # some users have no test items
    pd.testing.assert_frame_equal(
        per_user, expected[per_user.columns], check_names=False, check_index_type=False, atol=1e-6
    )
    assert summary == pytest.approx(expected.mean().to_dict(), abs=1e-6)


@pytest.mark.parametrize("levels", [50, 1000])
def test_matches_reference_on_a_larger_catalog(levels):
    # wide enough rows for the chunked top-k, a ragged last chunk, ties at the cut-off
    rng = np.random.default_rng(levels)
    scores = rng.integers(0, levels, (30, 403)).astype(np.float32)
    cell = rng.random((30, 403))
    train, test = sp.csr_matrix(cell < 0.2), sp.csr_matrix(cell > 0.97)
    ks = (1, 5, 10, 20)
    summary, per_user = evaluate(scores, train, test, ks=ks, batch_size=8, per_user=True)
    expected = reference(scores, train, test, ks)
    np.testing.assert_allclose(per_user, expected[per_user.columns], atol=1e-6)


def test_padding_chunks_do_not_repeat_tail_items():
    # Regression: in the chunked top-k, rows reaching fewer chunks than the batch's longest
    # row were padded with a chunk id whose items overlapped the ragged tail, so a tail item
    # could be listed (and counted as a hit) twice.
    scores = np.zeros((2, 403))
    scores[0, :12 * 9 : 9] = 1.0  # 12 chunks tie at the bound: the tied-maxima path
    scores[1, :10 * 9 : 9] = 1.0  # 10 chunks reach it: this row gets padded
    scores[1, 400] = 5.0  # a tail item, best of its row
    test = csr({0: [0], 1: [400]}, (2, 403))
    per_user = evaluate(scores, csr({}, (2, 403)), test, ks=(10,), per_user=True)[1]
    assert per_user.loc[1, "P@10"] == pytest.approx(0.1)
    expected = reference(scores, csr({}, (2, 403)), test, (10,))
    np.testing.assert_allclose(per_user.to_numpy(), expected[per_user.columns].to_numpy())


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_users=st.integers(1, 12),
    n_items=st.integers(2, 15),
    levels=st.integers(1, 5),
    train_rate=st.floats(0.0, 0.6),
)
def test_property_in_unit_interval_and_equal_to_reference(
    seed, n_users, n_items, levels, train_rate
):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, (n_users, n_items)).astype(np.float32)
    cell = rng.random((n_users, n_items))
    cell[0, -1] = 1.0  # at least one user to evaluate
    train, test = sp.csr_matrix(cell < train_rate), sp.csr_matrix(cell > 0.7)
    ks = sorted({1, min(3, n_items), n_items})
    summary, per_user = evaluate(scores, train, test, ks=ks, batch_size=5, per_user=True)
    assert ((per_user >= 0) & (per_user <= 1 + 1e-12)).all().all()
    expected = reference(scores, train, test, ks)
    np.testing.assert_allclose(per_user, expected[per_user.columns], atol=1e-6)


# ---- inputs ---------------------------------------------------------------------------------


def test_callable_model_and_dense_scores_agree():
    scores, train, test = random_case(3, n_users=50, n_items=25, tied=False)
    dense = evaluate(scores, train, test, ks=KS)
    table = torch.tensor(scores, dtype=torch.float64)
    model = SimpleNamespace(score_users=lambda users: table[users])
    assert evaluate(lambda users: table[users], train, test, ks=KS) == dense
    assert evaluate(model, train, test, ks=KS) == dense
    assert evaluate(table, train, test, ks=KS) == dense
    wrapped = SimpleNamespace(matrix=train), SimpleNamespace(matrix=test)  # like Interactions
    assert evaluate(scores, *wrapped, ks=KS) == dense


def test_batch_size_does_not_change_results():
    scores, train, test = random_case(4, n_users=33)
    results = [evaluate(scores, train, test, ks=KS, batch_size=b) for b in (1, 4, 32, 1000)]
    for other in results[1:]:
        assert other == pytest.approx(results[0], abs=1e-12)


def test_scores_are_left_as_found():
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(20, 30))
    cell = rng.random((20, 30))
    cell[np.arange(20), np.arange(20)] = 1.0  # every user's test item u stays out of train
    train, test = sp.csr_matrix(cell < 0.3), csr({u: [u] for u in range(20)}, (20, 30))
    before = scores.copy()
    table = torch.tensor(scores)
    evaluate(scores, train, test)
    evaluate(lambda users: table[users[0] : users[-1] + 1], train, test, batch_size=7)  # a view
    evaluate(lambda users: table, train, test, batch_size=100)  # the callable's own tensor
    np.testing.assert_array_equal(scores, before)
    np.testing.assert_array_equal(table.numpy(), before)


def test_broadcast_and_integer_scores_are_accepted():
    popularity = torch.arange(10, 0, -1)  # integer, expanded over users: item 0 most popular
    test = csr({0: [0], 1: [2]}, (2, 10))
    result = evaluate(lambda users: popularity.expand(len(users), -1), csr({}, (2, 10)), test)
    assert result["MRR"] == pytest.approx((1 + 1 / 3) / 2)


def test_other_score_layouts_agree():
    scores, train, test = random_case(8, tied=False)
    expected = evaluate(scores, train, test, ks=KS)
    frozen = scores.copy()
    frozen.flags.writeable = False
    transposed = torch.tensor(scores.T.copy()).T  # not contiguous
    assert evaluate(frozen, train, test, ks=KS) == expected
    assert evaluate(transposed, train, test, ks=KS) == expected
    assert evaluate(scores, train, test, ks=KS, device="auto") == pytest.approx(expected)


@pytest.mark.parametrize("tied", [False, True])
def test_half_precision_scores_rank_as_their_float64_values(tied):
    """Small integers are exact in float16, so its ranking, ties included, is the float64 one."""
    scores, train, test = random_case(10, tied=tied)
    if not tied:
        scores = np.argsort(scores, axis=1).astype(float)  # distinct integers 0..n_items-1 per user
    half = torch.tensor(scores, dtype=torch.float16)
    assert np.array_equal(half.double().numpy(), scores)
    expected = evaluate(scores, train, test, ks=KS, per_user=True)
    got = evaluate(half, train, test, ks=KS, per_user=True)
    assert got[0] == pytest.approx(expected[0], abs=1e-12)
    pd.testing.assert_frame_equal(got[1], expected[1])
    pd.testing.assert_frame_equal(expected[1], reference(scores, train, test, KS).rename_axis("user")[expected[1].columns],
                                  check_dtype=False, check_index_type=False)


def test_float64_scores_are_ranked_at_full_precision():
    # 1 + 1e-12 and 1 are one float32 value: ranked in float32, the tie would put item 0 first
    scores = np.array([[1.0, 1.0 + 1e-12, 0.5, 0.0]])
    table = torch.tensor(scores)
    for given in (scores, lambda users: table[users]):
        assert evaluate(given, csr({}, (1, 4)), csr({0: [0]}, (1, 4)), ks=(1,))["MRR"] == 0.5


def test_read_only_memory_mapped_scores_are_never_written(tmp_path):
    """Masking train items writes into the scores in place: never into read-only memory (a
    scorer's np.load(mmap_mode="r") rows), which would crash the process with SIGSEGV."""
    rng = np.random.default_rng(13)
    scores, cell = rng.normal(size=(40, 30)), rng.random((40, 30))
    cell[:, 0] = 1.0  # every user has a test item: a batch of users is a range of rows
    train, test = sp.csr_matrix(cell < 0.3), sp.csr_matrix(cell > 0.85)
    np.save(tmp_path / "scores.npy", scores)
    mapped = np.load(tmp_path / "scores.npy", mmap_mode="r")
    rows = lambda users: mapped[int(users[0]) : int(users[-1]) + 1]  # a view: every user is tested
    expected = evaluate(scores, train, test, ks=KS)
    assert evaluate(rows, train, test, ks=KS, batch_size=16) == expected
    assert evaluate(mapped, train, test, ks=KS) == expected


def test_evaluation_reuses_its_buffers_without_torch_warnings():
    """Each reused buffer has the shape torch writes into it: a wrong one is resized, with a warning."""
    scores, train, test = random_case(14, n_users=60)
    table = torch.tensor(scores)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for batch_size in (1, 7, 25, 100):
            for given in (scores, lambda users: table[users]):
                evaluate(given, train, test, ks=KS, batch_size=batch_size)
    assert [str(w.message) for w in caught] == []


def test_default_batch_size_is_batch_elements_over_n_items_within_1_to_4096(monkeypatch):
    def batches(n_users: int, n_items: int) -> list[int]:
        sizes = []
        def score(users):
            sizes.append(len(users))
            return torch.zeros(len(users), n_items)
        evaluate(score, csr({}, (n_users, n_items)), csr({u: [0] for u in range(n_users)}, (n_users, n_items)), ks=(1,))
        return sizes

    assert batches(5000, 10) == [4096, 904]  # 2**22 // 10 users would be too many
    monkeypatch.setattr(irgan.metrics, "BATCH_ELEMENTS", 25)
    assert batches(5, 10) == [2, 2, 1]
    monkeypatch.setattr(irgan.metrics, "BATCH_ELEMENTS", 9)
    assert batches(3, 10) == [1, 1, 1]  # fewer elements than one user's row: one user at a time


def test_a_first_hit_ranked_beyond_2_to_the_24_gets_its_exact_rank():
    """Rank counts are exact past float32's 2**24 consecutive integers (a catalog of 16.8M items)."""
    n_items = 2**24 + 2
    row = torch.rand(1, n_items, generator=torch.Generator().manual_seed(0))
    row[0, -1] = -1.0  # the test item ranks last
    test = sp.csr_matrix(([1.0], ([0], [n_items - 1])), shape=(1, n_items))
    result = evaluate(lambda users: row, sp.csr_matrix((1, n_items)), test, ks=(1,))
    assert result["MRR"] == 1 / n_items


def test_cut_offs_and_metric_names():
    assert eval_ks(100) == (3, 5, 10) and eval_ks(7) == (3, 5) and eval_ks(2) == (2,)  # none fits: the catalog's length
    assert eval_ks(100, "NDCG@20", 4, "MRR") == (3, 4, 5, 10, 20) and eval_ks(8, "P@20") == (3, 5)
    assert eval_ks(10) == (3, 5, 10) and eval_ks(20, "P@20") == (3, 5, 10, 20)  # a cut-off equal to the catalog size is kept
    assert metric_names([5, 3, 5]) == [f"{m}@{k}" for k in (3, 5) for m in METRICS] + ["MRR"]
    scores, train, test = random_case(12)
    assert list(evaluate(scores, train, test, ks=[5, 3])) == metric_names([5, 3])


def test_keep_best_keeps_a_copy_of_the_first_best():
    best, model = KeepBest("P@5"), torch.nn.Linear(2, 1)
    assert best.model is None and best.score == -np.inf and best.info == {}
    for epoch, figure in enumerate([0.2, 0.5, 0.5, 0.4], 1):
        best.offer(model, {"P@5": figure, "NDCG@5": epoch}, epoch=epoch)
        with torch.no_grad():
            model.weight.add_(1.0)
    assert best.score == 0.5 and best.info == {"epoch": 2, "metrics": {"P@5": 0.5, "NDCG@5": 2}}  # ties keep the first
    assert best.model is not model and torch.allclose(best.model.weight, model.weight - 3.0)  # as offered at epoch 2


class OtherProcess:
    """Rank ``rank`` of a two-process job, without torch.distributed: ``sum`` adds what the other
    rank's sum was given (``other``) and remembers what it was given itself."""

    active = True

    def __init__(self, rank: int, other: torch.Tensor | None = None) -> None:
        self.rows, self.other, self.given = Shard(rank, 2).rows, other, None

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        self.given = tensor.clone()
        return tensor if self.other is None else tensor + self.other


def test_a_prepared_evaluation_is_evaluate_for_every_model_it_is_given():
    scores, train, test = random_case(12, n_users=60, n_items=50, tied=False)
    prepared = Evaluation(train, test, ks=KS, batch_size=7)  # batches of 7 users: the rows kept per batch
    for model in (scores, -scores, torch.from_numpy(scores[:, ::-1].copy())):  # one preparation, several models
        summary, per_user = prepared(model, per_user=True)
        expected, expected_per_user = evaluate(model, train, test, ks=KS, per_user=True)
        assert summary == expected and per_user.equals(expected_per_user)
    with pytest.raises(ValueError, match="leakage"):  # checked once, when prepared
        Evaluation(train, train)
    empty = Evaluation(train, sp.csr_matrix(test.shape, dtype=np.float32), ks=KS)
    with pytest.raises(ValueError, match="no user has a test item"):
        empty(scores)


@pytest.mark.parametrize("odd_users_tested", [True, False])
def test_sharded_evaluation_is_the_evaluation_of_all_users(odd_users_tested):
    scores, train, test = random_case(11)
    if not odd_users_tested:  # rank 1 then has no test user: it sends zeros
        test = sp.csr_matrix(sp.diags((np.arange(test.shape[0]) % 2 == 0).astype(np.float32)) @ test)
    expected = evaluate(scores, train, test, ks=KS)
    assert evaluate_sharded(scores, train, test, KS) == expected  # alone: plain evaluate
    second = OtherProcess(1)
    evaluate_sharded(scores, train, test, KS, second)
    assert bool(second.given.any()) == odd_users_tested
    got = evaluate_sharded(scores, train, test, KS, OtherProcess(0, other=second.given))
    assert list(got) == list(expected) and got == pytest.approx(expected, abs=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    scores, train, test = random_case(9, n_users=300, n_items=500)
    cpu = evaluate(scores, train, test, ks=KS, per_user=True)
    cuda = evaluate(torch.tensor(scores, device="cuda"), train, test, ks=KS, per_user=True)
    assert cuda[0] == pytest.approx(cpu[0], abs=1e-12)
    pd.testing.assert_frame_equal(cuda[1], cpu[1])
    table = torch.tensor(scores)
    model = evaluate(lambda users: table[users.cpu()], train, test, ks=KS, device="cuda")
    assert model == pytest.approx(cpu[0], abs=1e-12)


NON_FINITE = "^scores contain NaN or -inf; -inf is reserved for excluded train items$"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s, tr, te: (s[:, :-1], tr, te), "shape"),
        (lambda s, tr, te: (s, tr[:, :-1], te), "shape"),
        (lambda s, tr, te: (np.where(s > 0.5, np.nan, s), tr, te), NON_FINITE),
        (lambda s, tr, te: (np.where(s > 0.5, -np.inf, s), tr, te), NON_FINITE),
        (lambda s, tr, te: (s, tr + te, te), r"^leakage: some \(user, item\) pairs are in both train and test$"),
        (lambda s, tr, te: (s, tr, te * 0), "^no user has a test item: nothing to evaluate$"),
        (lambda s, tr, te: (s, tr.toarray(), te), "^train must be a scipy sparse matrix, got ndarray$"),
        (lambda s, tr, te: (s, tr, te.toarray()), "^test must be a scipy sparse matrix, got ndarray$"),
        (lambda s, tr, te: ((lambda u: torch.zeros(len(u), 3)), tr, te), "shape"),
    ],
)
def test_bad_inputs_raise(change, message):
    scores, train, test = random_case(6, tied=False)
    with pytest.raises(NonFiniteScores if message == NON_FINITE else ValueError, match=message):
        evaluate(*change(scores, train, test))


@pytest.mark.parametrize("ks", [(), (0,), (31,)])
def test_bad_cutoffs_raise(ks):
    scores, train, test = random_case(7)
    with pytest.raises(ValueError, match="ks"):
        evaluate(scores, train, test, ks=ks)


def test_bad_batch_size_raises():
    scores, train, test = random_case(7)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(scores, train, test, batch_size=0)


# ---- the IRGAN authors' pretrained model ----------------------------------------------------


def authors_folder() -> Path:
    """The copy of geek-ai/irgan's ml-100k files: $IRGAN_DATA or <repo>/../shared/data."""
    roots = [Path(os.environ["IRGAN_DATA"])] if os.environ.get("IRGAN_DATA") else []
    roots.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for root in roots:
        if (root / "irgan-ml100k" / "model_dns_ori.pkl").is_file():
            return root / "irgan-ml100k"
    pytest.skip("irgan-ml100k not found: set IRGAN_DATA to the folder holding it")


def test_authors_pretrained_model_reproduces_their_figures():
    folder = authors_folder()
    arrays = load_arrays(folder / "model_dns_ori.pkl")
    user_emb, item_emb, item_bias = arrays["user_emb"], arrays["item_emb"], arrays["item_bias"]

    def positives(name: str) -> sp.csr_matrix:
        user, item, rating = np.loadtxt(folder / name, dtype=np.int64, ndmin=2).T
        keep = rating >= 4
        return sp.csr_matrix((np.ones(keep.sum()), (user[keep], item[keep])), shape=(943, 1683))

    train, test = positives("movielens-100k-train.txt"), positives("movielens-100k-test.txt")
    scores = user_emb @ item_emb.T + item_bias
    summary, per_user = evaluate(scores, train, test, per_user=True)
    assert len(per_user) == 456
    expected = {"P@3": 0.3845, "P@5": 0.3474, "P@10": 0.2967}
    expected |= {"NDCG@3": 0.3986, "NDCG@5": 0.3749, "NDCG@10": 0.3518}
    for name, value in expected.items():
        assert summary[name] == pytest.approx(value, abs=1e-4), name
