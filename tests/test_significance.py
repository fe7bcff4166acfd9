"""Paired tests over per-user metrics and Holm's correction (irgan.significance)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from irgan.significance import holm, paired_tests

A = np.array([0.6, 0.4, 0.8, 0.2, 0.6, 1.0, 0.4, 0.6, 0.0, 0.8])
B = np.array([0.4, 0.4, 0.6, 0.0, 0.2, 0.8, 0.6, 0.4, 0.0, 0.4])


def test_paired_tests_match_scipy_on_a_hand_made_case():
    out = paired_tests(A, B)
    t, w = stats.ttest_rel(A, B), stats.wilcoxon(A, B)
    assert out["n"] == 10 and out["mean_a"] == pytest.approx(0.54) and out["mean_b"] == pytest.approx(0.38)
    assert out["mean_diff"] == pytest.approx(0.16)
    assert (out["t"], out["t_pvalue"]) == pytest.approx((t.statistic, t.pvalue))
    assert (out["w"], out["wilcoxon_pvalue"]) == pytest.approx((w.statistic, w.pvalue))
    # by hand: differences 0.2, 0, 0.2, 0.2, 0.4, 0.2, -0.2, 0.2, 0, 0.4: mean 0.16, sd 0.1897, n 10
    assert out["t"] == pytest.approx(0.16 / (np.std(A - B, ddof=1) / np.sqrt(10)))
    assert out["t_pvalue"] < 0.05


def test_paired_tests_are_antisymmetric():
    ab, ba = paired_tests(A, B), paired_tests(B, A)
    assert ab["t"] == pytest.approx(-ba["t"]) and ab["t_pvalue"] == pytest.approx(ba["t_pvalue"])
    assert ab["wilcoxon_pvalue"] == pytest.approx(ba["wilcoxon_pvalue"])


def test_identical_models_cannot_differ():
    out = paired_tests(A, A.copy())
    assert out == {"n": 10.0, "mean_a": pytest.approx(0.54), "mean_b": pytest.approx(0.54), "mean_diff": 0.0,
                   "t": 0.0, "t_pvalue": 1.0, "w": 0.0, "wilcoxon_pvalue": 1.0}


def test_series_are_aligned_on_users():
    a = pd.Series(A, index=pd.Index(np.arange(10), name="user"))
    b = pd.Series(B, index=a.index).iloc[::-1]
    assert paired_tests(a, b) == pytest.approx(paired_tests(A, B))
    with pytest.raises(ValueError, match="^a and b hold values for different users: score both models on the same"):
        paired_tests(a, pd.Series(B, index=np.arange(1, 11)))
    assert paired_tests(pd.Series(A, index=np.arange(10)[::-1]), B) == pytest.approx(paired_tests(A, B))  # by position


@pytest.mark.parametrize("a, b, words", [
    (A, B[:5], r"^a and b must be 1-d and of equal length, got shapes \(10,\) and \(5,\)$"),
    (A.reshape(2, 5), B.reshape(2, 5), r"^a and b must be 1-d and of equal length, got shapes \(2, 5\) and \(2, 5\)$"),
    (A[:1], B[:1], "^paired tests need at least 2 users and finite values$"),
    (np.array([np.nan, 1.0]), np.array([0.0, 1.0]), "^paired tests need at least 2 users and finite values$"),
    (np.array([0.0, 1.0]), np.array([np.inf, 1.0]), "^paired tests need at least 2 users and finite values$"),
    ([None, 1.0], [0.0, 1.0], "^paired tests need at least 2 users and finite values$"),  # a missing value
    ([0.0, 1.0], [0.0, None], "^paired tests need at least 2 users and finite values$"),
])
def test_bad_input_raises(a, b, words):
    with pytest.raises(ValueError, match=words):
        paired_tests(a, b)


def test_two_users_and_boolean_hits_are_enough():
    out = paired_tests([0.5, 0.9], [0.1, 0.6])
    assert out["n"] == 2 and out["t_pvalue"] == pytest.approx(stats.ttest_rel([0.5, 0.9], [0.1, 0.6]).pvalue)
    hits_a, hits_b = A > 0.3, B > 0.3  # HR@k per user, as booleans
    assert paired_tests(hits_a, hits_b) == pytest.approx(paired_tests(hits_a.astype(float), hits_b.astype(float)))


def test_holm_by_hand():
    # sorted p: 0.01, 0.02, 0.03, 0.04 (m = 4) -> 0.04, 0.06, 0.06 (monotone), 0.06
    p = [0.03, 0.01, 0.04, 0.02]
    np.testing.assert_allclose(holm(p), [0.06, 0.04, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.001, 0.4]), [0.8, 0.003, 0.8])  # 0.4 x 2 = 0.8, 0.5 x 1 -> 0.8
    np.testing.assert_allclose(holm([0.3, 0.9]), [0.6, 0.9])
    assert holm([0.7, 0.6]).max() == 1.0  # capped
    assert holm([]).shape == (0,)
    np.testing.assert_array_equal(holm([0.0, 0.2]), [0.0, 0.2])  # 0 and 1 are p-values too
    assert holm([1, 0]).dtype == np.float64 and holm([1, 0]).tolist() == [1.0, 0.0]


def test_holm_rejects_what_bonferroni_rejects_and_more():
    p = np.random.default_rng(0).random(20) ** 3
    adjusted = holm(p)
    assert (adjusted <= np.minimum(p * len(p), 1) + 1e-15).all() and (adjusted >= p).all()


@pytest.mark.parametrize("bad", [[0.1, 1.2], [-0.1], [[0.1, 0.2]], [np.nan]])
def test_holm_rejects_bad_pvalues(bad):
    with pytest.raises(ValueError, match=r"^pvalues must be a 1-d sequence of numbers in \[0, 1\]$"):
        holm(bad)
