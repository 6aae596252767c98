"""McNemar's test (pipeline.core.mcnemar) against scipy's own tests, and on the edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core import mcnemar


def test_mcnemar_exact_matches_the_binomial_test():
    from scipy.stats import binomtest

    labels = np.zeros(100, dtype=int)
    a = labels.copy()
    b = labels.copy()
    a[:10] = 1  # A wrong on 10 rows B gets right
    b[10:12] = 1  # B wrong on 2 rows A gets right
    m = mcnemar.mcnemar(labels, a, b)
    assert (m.a_only, m.b_only, m.both_correct, m.both_wrong) == (2, 10, 88, 0)
    assert m.method == "exact"
    assert m.p_value == pytest.approx(binomtest(2, 12, 0.5).pvalue)
    assert m.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert m.significant and m.better == "b"


def test_mcnemar_chi2_with_continuity_correction():
    from scipy.stats import chi2

    labels = np.zeros(1000, dtype=int)
    a, b = labels.copy(), labels.copy()
    a[:60] = 3
    b[60:90] = 3
    m = mcnemar.mcnemar(labels, a, b)
    assert m.method == "chi2" and (m.a_only, m.b_only) == (30, 60)
    assert m.statistic == pytest.approx((abs(30 - 60) - 1) ** 2 / 90)
    assert m.p_value == pytest.approx(chi2.sf(m.statistic, 1))
    assert m.significant and m.better == "b"


def test_mcnemar_identical_predictions_are_not_significant():
    labels = np.arange(50) % 10
    m = mcnemar.mcnemar(labels, labels, labels)
    assert m.p_value == 1.0 and not m.significant and m.better is None


def test_a_significant_difference_names_the_run_with_fewer_errors():
    labels = np.zeros(400, dtype=int)
    a, b = labels.copy(), labels.copy()
    b[:40] = 1  # B wrong on 40 rows A gets right, A never wrong alone
    m = mcnemar.mcnemar(labels, a, b)
    assert (m.a_only, m.b_only, m.both_correct, m.both_wrong, m.rows) == (40, 0, 360, 0, 400)
    assert m.method == "chi2" and m.statistic == pytest.approx(39**2 / 40)
    assert m.significant and m.better == "a"
    assert m.as_dict()["better"] == "a" and m.as_dict()["a_only_correct"] == 40
