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
    assert out["t_pvalue"] == 1.0 and out["wilcoxon_pvalue"] == 1.0 and out["mean_diff"] == 0.0


def test_series_are_aligned_on_users():
    a = pd.Series(A, index=pd.Index(np.arange(10), name="user"))
    b = pd.Series(B, index=a.index).iloc[::-1]
    assert paired_tests(a, b) == pytest.approx(paired_tests(A, B))
    with pytest.raises(ValueError, match="different users"):
        paired_tests(a, pd.Series(B, index=np.arange(1, 11)))


@pytest.mark.parametrize("a, b", [(A, B[:5]), (A[:1], B[:1]), (np.array([np.nan, 1.0]), np.array([0.0, 1.0]))])
def test_bad_input_raises(a, b):
    with pytest.raises(ValueError):
        paired_tests(a, b)


def test_holm_by_hand():
    # sorted p: 0.01, 0.02, 0.03, 0.04 (m = 4) -> 0.04, 0.06, 0.06 (monotone), 0.06
    p = [0.03, 0.01, 0.04, 0.02]
    np.testing.assert_allclose(holm(p), [0.06, 0.04, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.001, 0.4]), [0.8, 0.003, 0.8])  # 0.4 x 2 = 0.8, 0.5 x 1 -> 0.8
    np.testing.assert_allclose(holm([0.3, 0.9]), [0.6, 0.9])
    assert holm([0.7, 0.6]).max() == 1.0  # capped
    assert holm([]).shape == (0,)


def test_holm_rejects_what_bonferroni_rejects_and_more():
    p = np.random.default_rng(0).random(20) ** 3
    adjusted = holm(p)
    assert (adjusted <= np.minimum(p * len(p), 1) + 1e-15).all() and (adjusted >= p).all()


@pytest.mark.parametrize("bad", [[0.1, 1.2], [-0.1], [[0.1, 0.2]], [np.nan]])
def test_holm_rejects_bad_pvalues(bad):
    with pytest.raises(ValueError):
        holm(bad)
