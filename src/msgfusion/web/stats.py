"""Statistics of a reader study, from the raters' choices ("which image is most useful?").

Every function takes plain data (an answer is a ``(rater, case, chosen method)`` triple; every
case shows every method) and uses scipy/statsmodels for the statistics themselves:

- :func:`choice_counts`: per case, how often each method was chosen (the paper's table).
- :func:`preference_share`: each method's share of all choices, with a percentile bootstrap
  95 % interval that resamples *raters* (a rater's answers are not independent of each other;
  ``scipy.stats.bootstrap``, paired).
- :func:`bradley_terry`: Bradley-Terry log-strengths with Wald 95 % intervals; a choice counts as
  a win of the chosen method over each other method shown (a binomial GLM on the pairwise win
  counts, ``statsmodels``; the first method is the reference, log-strength 0). The wins of one
  choice share a rater and a case, so these intervals are somewhat too narrow; the bootstrap
  shares are the primary summary.
- :func:`friedman`: Friedman's test across cases (blocks) of the per-case choice counts
  (``scipy.stats.friedmanchisquare``), with :func:`wilcoxon_holm`: pairwise Wilcoxon signed-rank
  tests over cases, Holm-corrected (``statsmodels.stats.multitest``).
- :func:`fleiss_kappa`: agreement between the raters who answered every case
  (``statsmodels.stats.inter_rater.fleiss_kappa``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

Answer = tuple[object, int, str]
"""(rater, case index, chosen method)."""

#: Friedman's and the Wilcoxon tests are reported only with this many raters who answered every
#: case: with fewer, their p-values describe one or two people's taste, not the raters'.
MIN_COMPLETE_RATERS = 3


def choice_counts(answers: Sequence[Answer], methods: Sequence[str], n_cases: int) -> np.ndarray:
    """n_cases x n_methods: how many raters chose each method in each case."""
    col = {m: j for j, m in enumerate(methods)}
    counts = np.zeros((n_cases, len(methods)), dtype=np.int64)
    for _, case, choice in answers:
        counts[case, col[choice]] += 1
    return counts


@dataclass(frozen=True)
class Estimate:
    method: str
    value: float
    low: float
    high: float


def preference_share(answers: Sequence[Answer], methods: Sequence[str], n_resamples: int = 9999,
                     seed: int = 0) -> list[Estimate]:
    """Each method's share of all choices, with a 95 % percentile bootstrap interval over raters
    (NaN bounds with fewer than two raters)."""
    from scipy.stats import bootstrap

    raters = sorted({r for r, _, _ in answers}, key=str)
    row = {r: i for i, r in enumerate(raters)}
    col = {m: j for j, m in enumerate(methods)}
    per_rater = np.zeros((len(raters), len(methods)))
    for r, _, choice in answers:
        per_rater[row[r], col[choice]] += 1
    totals = per_rater.sum(axis=1)
    out = []
    for j, m in enumerate(methods):
        share = per_rater[:, j].sum() / totals.sum() if totals.sum() else float("nan")
        low = high = float("nan")
        if len(raters) >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ci = bootstrap((per_rater[:, j], totals),
                               lambda c, t, axis=-1: c.sum(axis=axis) / t.sum(axis=axis),
                               paired=True, vectorized=True, method="percentile",
                               n_resamples=n_resamples, random_state=seed).confidence_interval
            low, high = float(ci.low), float(ci.high)
        out.append(Estimate(m, float(share), low, high))
    return out


def win_matrix(answers: Sequence[Answer], methods: Sequence[str]) -> np.ndarray:
    """W[i, j]: how often method i was chosen while method j was shown (every method is shown)."""
    col = {m: j for j, m in enumerate(methods)}
    wins = np.zeros((len(methods), len(methods)), dtype=np.int64)
    for _, _, choice in answers:
        i = col[choice]
        wins[i] += 1
        wins[i, i] -= 1
    return wins


def bradley_terry(wins: np.ndarray, methods: Sequence[str]) -> tuple[list[Estimate], str]:
    """Bradley-Terry log-strengths (first method = 0) with Wald 95 % intervals from the win
    matrix, and a note; NaN (with the reason in the note) when the maximum-likelihood estimate
    does not exist (a method that never wins or never loses)."""
    import statsmodels.api as sm

    k = len(methods)
    never = [methods[i] for i in range(k)
             if wins[i].sum() == 0 or wins[:, i].sum() == 0]
    if never:
        nan = [Estimate(m, float("nan"), float("nan"), float("nan")) for m in methods]
        return nan, ("not estimable: " + ", ".join(never) + " never won or never lost a "
                     "comparison (the maximum-likelihood strength is infinite)")
    rows, endog = [], []
    for i, j in combinations(range(k), 2):
        if wins[i, j] + wins[j, i] == 0:
            continue
        x = np.zeros(k)
        x[i], x[j] = 1.0, -1.0
        rows.append(x[1:])  # the first method is the reference
        endog.append((wins[i, j], wins[j, i]))
    with warnings.catch_warnings():  # a saturated fit (two methods) warns about its scale
        warnings.simplefilter("ignore")
        fit = sm.GLM(np.array(endog, dtype=float), np.array(rows),
                     family=sm.families.Binomial()).fit()
    ci = np.asarray(fit.conf_int(0.05))
    out = [Estimate(methods[0], 0.0, 0.0, 0.0)]
    out += [Estimate(m, float(fit.params[i]), float(ci[i, 0]), float(ci[i, 1]))
            for i, m in enumerate(methods[1:])]
    return out, f"log-strength relative to {methods[0]}; Wald 95 % intervals"


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p: float
    note: str = ""


def friedman(counts: np.ndarray) -> TestResult | None:
    """Friedman's chi-square across cases (rows) of the methods' choice counts (columns);
    None when it is undefined (fewer than three methods or two cases)."""
    from scipy.stats import friedmanchisquare

    if counts.shape[1] < 3 or counts.shape[0] < 2:
        return None
    res = friedmanchisquare(*counts.T)
    return TestResult(float(res.statistic), float(res.pvalue))


@dataclass(frozen=True)
class PairTest:
    a: str
    b: str
    statistic: float
    p: float
    p_holm: float


def wilcoxon_holm(counts: np.ndarray, methods: Sequence[str]) -> list[PairTest]:
    """Pairwise two-sided Wilcoxon signed-rank tests of the per-case counts, Holm-adjusted."""
    from scipy.stats import wilcoxon
    from statsmodels.stats.multitest import multipletests

    pairs = list(combinations(range(len(methods)), 2))
    if not pairs or counts.shape[0] < 2:
        return []
    stats, ps = [], []
    for i, j in pairs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = wilcoxon(counts[:, i], counts[:, j])
        stats.append(float(res.statistic))
        ps.append(float(res.pvalue))
    holm = multipletests(ps, method="holm")[1]
    return [PairTest(methods[i], methods[j], s, p, float(h))
            for (i, j), s, p, h in zip(pairs, stats, ps, holm)]


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of a cases x methods table in which every case has the same number of
    raters (the choice counts of raters who answered every case)."""
    from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss

    return float(_fleiss(counts, method="fleiss"))


@dataclass
class StudyResults:
    """Everything ``msgfusion study results`` and the admin page show."""

    methods: list[str]
    case_names: list[str]
    counts: np.ndarray
    shares: list[Estimate]
    bt: list[Estimate]
    bt_note: str
    friedman: TestResult | None
    posthoc: list[PairTest]
    kappa: float | None
    kappa_raters: int
    n_answers: int
    completion: list[dict] = field(default_factory=list)
    tests_note: str = ""  # why Friedman's and the post-hoc tests are not reported, if so
    closed_at: str | None = None  # when the study closed (None: open, answers still taken)


def analyse(answers: Sequence[Answer], methods: Sequence[str], case_names: Sequence[str],
            completion: Sequence[dict] = (), n_resamples: int = 9999) -> StudyResults:
    """All statistics of a study's answers (:data:`Answer` triples, case = index)."""
    methods = list(methods)
    counts = choice_counts(answers, methods, len(case_names))
    by_rater: dict[object, int] = {}
    for r, _, _ in answers:
        by_rater[r] = by_rater.get(r, 0) + 1
    complete = {r for r, n in by_rater.items() if n == len(case_names)}
    kappa = None
    if len(complete) >= 2:
        kappa = fleiss_kappa(choice_counts([a for a in answers if a[0] in complete], methods,
                                           len(case_names)))
    bt, note = bradley_terry(win_matrix(answers, methods), methods) if answers else ([], "")
    testable = bool(answers) and len(complete) >= MIN_COMPLETE_RATERS
    tests_note = "" if testable else (
        f"not reported: {len(complete)} rater{'' if len(complete) == 1 else 's'} answered every "
        f"case; needs at least {MIN_COMPLETE_RATERS}")
    return StudyResults(
        methods=methods, case_names=list(case_names), counts=counts,
        shares=preference_share(answers, methods, n_resamples) if answers else [],
        bt=bt, bt_note=note, friedman=friedman(counts) if testable else None,
        posthoc=wilcoxon_holm(counts, methods) if testable else [],
        kappa=kappa, kappa_raters=len(complete), n_answers=len(answers),
        completion=list(completion), tests_note=tests_note)
