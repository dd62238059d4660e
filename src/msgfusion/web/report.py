"""A study's results as tables (for the terminal and the admin page), CSV files and a figure."""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

from msgfusion.io.files import atomic_write, csv_text
from msgfusion.web.stats import StudyResults, analyse
from msgfusion.web.study import Study, StudyStore

RESULT_FILES = ("answers.csv", "results.csv", "results.png")
ANSWER_COLUMNS = ("rater", "position", "case", "pair_name", "shown", "choice_label", "choice",
                  "ranking", "comment", "created_at", "updated_at", "revisions")


@dataclass(frozen=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def study_results(store: StudyStore, study: Study, n_resamples: int = 9999) -> StudyResults:
    """Load a study's answers and analyse them."""
    answers = [(a["rater"], a["case_idx"], a["choice"]) for a in store.answers(study)]
    res = analyse(answers, study.methods, store.case_names(study), store.completion(study),
                  n_resamples=n_resamples)
    res.closed_at = study.closed_at
    return res


def tables(res: StudyResults) -> list[Table]:
    """The results as titled tables of strings, in reading order."""
    m = res.methods
    status = f"closed {res.closed_at}" if res.closed_at else "open (answers are still taken)"
    out = [Table("Study", ["answers", "status"], [[str(res.n_answers), status]]),
           Table("Choices per case (how many raters chose each method)",
                 ["case", "pair", *m, "answers"],
                 [[str(i + 1), name, *map(str, row), str(row.sum())]
                  for i, (name, row) in enumerate(zip(res.case_names, res.counts))]
                 + [["all", "", *map(str, res.counts.sum(axis=0)), str(res.counts.sum())]],
                 "case = the study's case number, as in answers.csv (raters saw the cases in "
                 "their own orders)")]
    if res.n_answers:
        most = [str(int((res.counts[:, j] == res.counts.max(axis=1))[res.counts.sum(axis=1) > 0]
                        .sum())) for j in range(len(m))]
        out.append(Table("Cases in which each method was chosen most often (ties count for each)",
                         m, [most]))
        out.append(Table("Preference share (bootstrap 95 % interval over raters)",
                         ["method", "share", "95 % low", "95 % high"],
                         [[e.method, _f(e.value), _f(e.low), _f(e.high)] for e in res.shares]))
        out.append(Table("Bradley-Terry strengths (a choice = a win over each other option)",
                         ["method", "log-strength", "95 % low", "95 % high"],
                         [[e.method, _f(e.value), _f(e.low), _f(e.high)] for e in res.bt],
                         res.bt_note))
        fr = res.friedman
        out.append(Table("Friedman test across cases (choice counts)",
                         ["chi-square", "p"], [[_f(fr.statistic), _f(fr.p, 4)]] if fr else [],
                         res.tests_note or ("" if fr else "needs at least three methods and two "
                                                          "cases")))
        out.append(Table("Post-hoc: pairwise Wilcoxon signed-rank over cases, Holm-corrected",
                         ["method A", "method B", "W", "p", "p (Holm)"],
                         [[t.a, t.b, _f(t.statistic, 1), _f(t.p, 4), _f(t.p_holm, 4)]
                          for t in res.posthoc], res.tests_note))
        out.append(Table("Agreement between raters (Fleiss' kappa)", ["kappa", "raters"],
                         [[_f(res.kappa), str(res.kappa_raters)]],
                         "raters who answered every case; needs at least two"))
    out.append(Table("Completion per rater", ["rater", "answered", "of", "first answer",
                                              "last answer"],
                     [[str(c["rater"]), str(c["answered"]), str(c["total"]),
                       c["first_answer"] or "", c["last_answer"] or ""] for c in res.completion]))
    return out


def format_text(res: StudyResults) -> str:
    """The tables as aligned plain text."""
    parts = []
    for t in tables(res):
        grid = [t.headers, *t.rows]
        widths = [max(len(r[i]) for r in grid) for i in range(len(t.headers))]
        lines = [t.title, "  ".join(h.ljust(w) for h, w in zip(t.headers, widths))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in t.rows]
        if t.note:
            lines.append(f"({t.note})")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def answers_csv(store: StudyStore, study: Study) -> str:
    """Every answer as CSV (one row per rater and case; method names included; cases numbered
    from 1 as in the results)."""
    return csv_text([list(ANSWER_COLUMNS),
                 *([a[c] for c in ANSWER_COLUMNS] for a in store.answers(study))])


def tables_csv(res: StudyResults) -> str:
    """Every results table in one CSV, each introduced by a line with its title."""
    rows: list[list[object]] = []
    for t in tables(res):
        rows += [[t.title], t.headers, *t.rows, []]
    return csv_text(rows)


def figure_png(res: StudyResults) -> bytes:
    """Choices per case (stacked bars) beside the preference shares with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    x = np.arange(1, len(res.case_names) + 1)
    bottom = np.zeros(len(x))
    for j, m in enumerate(res.methods):
        left.bar(x, res.counts[:, j], bottom=bottom, label=m)
        bottom += res.counts[:, j]
    left.set_xlabel("case")
    left.set_ylabel("raters choosing the method")
    left.set_xticks(x)
    left.set_title("Most useful for diagnosis, per case")
    left.legend(fontsize=8)
    if res.shares:
        shares = np.array([e.value for e in res.shares])
        low = np.array([e.low for e in res.shares])
        high = np.array([e.high for e in res.shares])
        err = np.nan_to_num(np.vstack([shares - low, high - shares]))
        right.bar(range(len(res.methods)), shares, yerr=err, capsize=4,
                  color=[f"C{j}" for j in range(len(res.methods))])
    right.set_xticks(range(len(res.methods)))
    right.set_xticklabels(res.methods, rotation=30, ha="right")
    right.set_ylabel("share of all choices")
    right.set_title("Preference share, bootstrap 95 % CI")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write_results(store: StudyStore, study: Study, out_dir: str | os.PathLike,
                  res: StudyResults) -> list[Path]:
    """answers.csv, results.csv and results.png in ``out_dir`` (each written atomically)."""
    out = Path(out_dir)
    files = dict(zip(RESULT_FILES, (answers_csv(store, study).encode(), tables_csv(res).encode(),
                                    figure_png(res))))
    return [atomic_write(out / name, lambda f, data=data: f.write(data), overwrite=True)
            for name, data in files.items()]
