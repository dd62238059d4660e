"""Each statistic of the reader study against an example small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msgfusion.web import stats

M = ["a", "b", "c"]


def test_choice_counts_and_wins_by_hand():
    answers = [(1, 0, "a"), (2, 0, "a"), (3, 0, "b"), (1, 1, "c"), (2, 1, "c"), (3, 1, "c")]
    assert stats.choice_counts(answers, M, 2).tolist() == [[2, 1, 0], [0, 0, 3]]
    # a chosen twice (beats b and c twice), b once, c three times
    assert stats.win_matrix(answers, M).tolist() == [[0, 2, 2], [1, 0, 1], [3, 3, 0]]


def test_preference_share_bootstrap_over_raters():
    # rater 1 always picks a, rater 2 always b (4 cases each): shares 0.5 / 0.5 / 0.
    answers = [(1, i, "a") for i in range(4)] + [(2, i, "b") for i in range(4)]
    shares = {e.method: e for e in stats.preference_share(answers, M, n_resamples=2000)}
    assert shares["a"].value == 0.5 and shares["b"].value == 0.5 and shares["c"].value == 0
    # resampling the two raters gives 0, 0.5 or 1 for a: the 95 % interval spans [0, 1]
    assert (shares["a"].low, shares["a"].high) == (0.0, 1.0)
    assert (shares["c"].low, shares["c"].high) == (0.0, 0.0)
    # identical raters: no rater-to-rater variation, the interval collapses onto the share
    same = [(r, i, "a" if i < 3 else "b") for r in (1, 2, 3) for i in range(4)]
    e = stats.preference_share(same, M, n_resamples=500)[0]
    assert (e.value, e.low, e.high) == (0.75, 0.75, 0.75)
    # one rater: no interval
    assert math.isnan(stats.preference_share(same[:4], M)[0].low)


def test_bradley_terry_two_methods_is_the_log_odds():
    # a beats b three times, b beats a once: log-strength of b = log(1/3), SE sqrt(1/3 + 1)
    wins = np.array([[0, 3], [1, 0]])
    est, note = stats.bradley_terry(wins, ["a", "b"])
    assert est[0].value == 0.0 and "relative to a" in note
    assert est[1].value == pytest.approx(math.log(1 / 3), abs=1e-6)
    half = 1.959964 * math.sqrt(1 / 3 + 1)
    assert est[1].low == pytest.approx(math.log(1 / 3) - half, abs=1e-4)
    assert est[1].high == pytest.approx(math.log(1 / 3) + half, abs=1e-4)


def test_bradley_terry_three_methods_consistent_strengths():
    # strengths 1 : 2 : 4 with wins exactly in proportion: W[i,j] = n * s_i / (s_i + s_j)
    s = np.array([1.0, 2.0, 4.0])
    wins = np.array([[0 if i == j else 60 * s[i] / (s[i] + s[j]) for j in range(3)]
                     for i in range(3)]).round().astype(int)
    est, _ = stats.bradley_terry(wins, M)
    assert [e.value for e in est] == pytest.approx([0, math.log(2), math.log(4)], abs=1e-6)


def test_bradley_terry_not_estimable_when_a_method_never_wins():
    est, note = stats.bradley_terry(np.array([[0, 2], [0, 0]]), ["a", "b"])
    assert math.isnan(est[1].value) and "b never won" in note


def test_friedman_by_hand():
    # 3 cases ranking the methods identically: chi2 = 12/(n k (k+1)) sum R^2 - 3 n (k+1)
    #  = 12/36 * (9 + 36 + 81) - 36 = 6, p = exp(-6/2) for 2 degrees of freedom
    counts = np.array([[1, 2, 3], [0, 1, 5], [2, 3, 4]])
    res = stats.friedman(counts)
    assert res.statistic == pytest.approx(6.0)
    assert res.p == pytest.approx(math.exp(-3.0))
    assert stats.friedman(counts[:, :2]) is None  # needs three methods


def test_wilcoxon_holm_by_hand():
    # a > b in all 5 cases: exact two-sided p = 2 / 2^5 = 0.0625; a vs c: no difference at all
    counts = np.array([[3, 1, 3], [4, 1, 4], [5, 2, 5], [6, 3, 6], [7, 1, 7]])
    tests = {(t.a, t.b): t for t in stats.wilcoxon_holm(counts, M)}
    assert tests[("a", "b")].p == pytest.approx(0.0625)
    assert tests[("a", "c")].p == pytest.approx(1.0)
    # Holm over p = (0.0625, 1.0, 0.0625): the two smallest times 3 and 2 -> both 0.1875
    assert tests[("a", "b")].p_holm == pytest.approx(0.1875)
    assert tests[("b", "c")].p_holm == pytest.approx(0.1875)
    assert tests[("a", "c")].p_holm == pytest.approx(1.0)


def test_fleiss_kappa_by_hand():
    # 2 cases, 3 raters: P1 = (2*1 + 1*0)/(3*2) = 1/3, P2 = 1; Pbar = 2/3;
    # p = (2/6, 4/6): Pe = 5/9; kappa = (2/3 - 5/9) / (1 - 5/9) = 1/4
    assert stats.fleiss_kappa(np.array([[2, 1], [0, 3]])) == pytest.approx(0.25)
    assert stats.fleiss_kappa(np.array([[3, 0], [0, 3]])) == pytest.approx(1.0)


def test_analyse_uses_only_complete_raters_for_kappa():
    answers = [(1, 0, "a"), (1, 1, "b"), (2, 0, "a"), (2, 1, "b"), (3, 0, "c")]
    res = stats.analyse(answers, M, ["x.png", "y.png"], n_resamples=200)
    assert res.kappa_raters == 2 and res.kappa == pytest.approx(1.0)
    assert res.counts.tolist() == [[2, 0, 1], [0, 2, 0]]
    assert res.n_answers == 5
