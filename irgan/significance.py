"""Paired significance tests between two models' per-user metric values, and Holm's correction
when several comparisons are made at once.

Feed it the per-user values ``evaluate(..., per_user=True)`` returns: both models must be scored on
the same users, in the same order (pandas Series are aligned on their index first).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def paired_tests(a: Sequence[float] | pd.Series, b: Sequence[float] | pd.Series) -> dict[str, float]:
    """Two-sided paired tests of a against b, per-user values (n,) of one metric.

    Returns ``n``, ``mean_a``, ``mean_b``, ``mean_diff`` (a - b), the paired t-test's ``t`` and
    ``t_pvalue`` (``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank test's ``w`` and
    ``wilcoxon_pvalue`` (``scipy.stats.wilcoxon``, zero differences dropped). Where every
    difference is zero neither test can reject: statistics 0, p-values 1.
    """
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        if not a.index.equals(b.index):
            if set(a.index) != set(b.index):
                raise ValueError("a and b hold values for different users: score both models on the same test set")
            b = b.reindex(a.index)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-d and of equal length, got shapes {a.shape} and {b.shape}")
    if len(a) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired tests need at least 2 users and finite values")
    diff = a - b
    out = {"n": float(len(a)), "mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_diff": float(diff.mean())}
    if not diff.any():
        return {**out, "t": 0.0, "t_pvalue": 1.0, "w": 0.0, "wilcoxon_pvalue": 1.0}
    t = stats.ttest_rel(a, b)
    w = stats.wilcoxon(a, b, zero_method="wilcox")
    return {**out, "t": float(t.statistic), "t_pvalue": float(t.pvalue), "w": float(w.statistic),
            "wilcoxon_pvalue": float(w.pvalue)}


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (m,), in the input's order: the i-th smallest p is
    multiplied by (m - i + 1), made non-decreasing, capped at 1. Reject where adjusted <= alpha;
    this controls the family-wise error rate at alpha (Holm, Scand. J. Statist. 1979)."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or ((p < 0) | (p > 1) | np.isnan(p)).any():
        raise ValueError("pvalues must be a 1-d sequence of numbers in [0, 1]")
    order = np.argsort(p, kind="stable")
    scaled = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(scaled, 1.0)
    return adjusted
