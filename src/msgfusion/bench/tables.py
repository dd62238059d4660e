"""Benchmark tables: per-method statistics, best marks, Markdown / LaTeX / CSV, rankings, runtime.

Everything here is computed from a :class:`~msgfusion.bench.runner.BenchResult`; nothing is
written by hand. Files are written atomically (:mod:`msgfusion.io.files`). Figures are in :mod:`msgfusion.bench.figures`, the ranking against the published
methods in :mod:`msgfusion.bench.peers`, and ``results.md`` is assembled by
:mod:`msgfusion.bench.report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msgfusion.bench.runner import BenchResult, records_array
from msgfusion.io.files import csv_text, write_text
from msgfusion.metrics import METRICS


@dataclass(frozen=True)
class Column:
    """A table column: a metric, or the absolute value of a signed 'closer to zero' metric."""

    metric: str
    label: str
    direction: str  # "higher" | "lower"

    def values(self, result: BenchResult, method: str, group: str) -> np.ndarray:
        v = records_array(result, method, group, self.metric)
        return np.abs(v) if self.label != self.metric else v


def column_for(metric: str) -> Column:
    direction = METRICS[metric].direction
    if direction == "zero":
        return Column(metric, f"|{metric}|", "lower")
    return Column(metric, metric, direction)


Stats = dict[str, dict[str, tuple[float, float]]]  # method -> column label -> (mean, std)


def group_stats(result: BenchResult, group: str) -> tuple[list[Column], Stats]:
    cols = [column_for(m) for m in result.metrics]
    stats: Stats = {}
    for method in result.methods:
        row = {}
        for col in cols:
            v = col.values(result, method, group)
            if v.size:  # sample standard deviation, as `msgfusion evaluate` reports it
                row[col.label] = (float(np.mean(v)), float(np.std(v, ddof=1)) if v.size > 1 else 0.0)
        if row:
            stats[method] = row
    return cols, stats


def best_two(stats: Stats, col: Column) -> list[str]:
    """The methods ranked first and second on a column (fewer when fewer methods have values)."""
    have = [(m, s[col.label][0]) for m, s in stats.items() if col.label in s and np.isfinite(s[col.label][0])]
    have.sort(key=lambda mv: -mv[1] if col.direction == "higher" else mv[1])
    return [m for m, _ in have[:2]]


def md_cell(text: str) -> str:
    """Escape pipes for a Markdown table cell (the label |rSFe| would split the cell)."""
    return text.replace("|", "\\|")


def fmt_number(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.3e}"


def _marked_rows(stats: Stats, cols: list[Column], bold: str, under: str) -> list[list[str]]:
    marks = {c.label: best_two(stats, c) for c in cols}
    rows = []
    for method, s in stats.items():
        row = [method]
        for c in cols:
            if c.label not in s:
                row.append("-")
                continue
            text = f"{fmt_number(s[c.label][0])} ± {fmt_number(s[c.label][1])}"
            ranked = marks[c.label]
            if ranked and method == ranked[0]:
                text = bold.format(text)
            elif len(ranked) > 1 and method == ranked[1]:
                text = under.format(text)
            row.append(text)
        rows.append(row)
    return rows


def markdown_table(stats: Stats, cols: list[Column]) -> str:
    """Mean ± std per method (rows) and metric (columns); best in bold, second in italics."""
    header = ["method"] + [md_cell(f"{c.label} {'↑' if c.direction == 'higher' else '↓'}") for c in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in _marked_rows(stats, cols, "**{}**", "_{}_")]
    return "\n".join(lines)


def latex_table(stats: Stats, cols: list[Column], caption: str) -> str:
    """The same table in LaTeX (booktabs): best in bold, second underlined."""
    esc = lambda s: s.replace("_", r"\_").replace("|", r"$|$").replace("±", r"$\pm$")  # noqa: E731
    rows = _marked_rows(stats, cols, r"\textbf{{{}}}", r"\underline{{{}}}")
    header = " & ".join(["Method"] + [esc(c.label) + (r"$\uparrow$" if c.direction == "higher"
                                                       else r"$\downarrow$") for c in cols])
    body = "\n".join(" & ".join(esc(cell) for cell in r) + r" \\" for r in rows)
    return "\n".join([
        r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(caption)}}}",
        r"\begin{tabular}{l" + "c" * len(cols) + "}", r"\toprule", header + r" \\", r"\midrule",
        body, r"\bottomrule", r"\end{tabular}", r"\end{table}", ""])


def write_tables(result: BenchResult, out: Path) -> dict[str, Path]:
    """Per modality pair: ``tables/<group>.{md,csv,tex}``; returns the Markdown paths."""
    (out / "tables").mkdir(parents=True, exist_ok=True)
    written = {}
    for group in result.groups:
        cols, stats = group_stats(result, group)
        md = out / "tables" / f"{group}.md"
        write_text(md, markdown_table(stats, cols) + "\n", overwrite=True)
        write_text(out / "tables" / f"{group}.tex", latex_table(
            stats, cols, f"{group}: mean and standard deviation over the test pairs"),
            overwrite=True)
        rows = [["method"] + [f"{c.label} {k}" for c in cols for k in ("mean", "std")]]
        rows += [[method] + [f"{s[c.label][i]:.6g}" if c.label in s else ""
                             for c in cols for i in (0, 1)] for method, s in stats.items()]
        rows.append(["best"] + [x for c in cols for x in ((best_two(stats, c) or [""])[0], "")])
        write_text(out / "tables" / f"{group}.csv", _csv(rows), overwrite=True)
        written[group] = md
    return written


def _csv(rows: list[list[str]]) -> str:
    return csv_text(rows, lineterminator="\r\n")  # csv's default line end, as before


def write_per_image_csv(result: BenchResult, path: Path) -> None:
    rows = [["method", "pair", "image"] + result.metrics]
    rows += [[r["method"], r["group"], r["image"]] + [f"{r[m]:.8g}" for m in result.metrics]
             for r in result.records]
    write_text(path, _csv(rows), overwrite=True)


def ranking(result: BenchResult) -> dict[str, dict[str, int]]:
    """How often each method is best or second on a metric column, over all modality pairs."""
    counts = {m: {"best": 0, "second": 0} for m in result.methods}
    for group in result.groups:
        cols, stats = group_stats(result, group)
        for c in cols:
            for place, method in zip(("best", "second"), best_two(stats, c)):
                counts[method][place] += 1
    return counts


def _per_group(values: list[object], fmt) -> str:  # type: ignore[no-untyped-def]
    """One value when all modality pairs share it, else 'a / b / c' in group order."""
    if all(v is None for v in values):
        return "-"
    shown = ["-" if v is None else fmt(v) for v in values]
    return shown[0] if len(set(shown)) == 1 else " / ".join(shown)


def _ms(seconds: float) -> str:
    ms = 1000 * seconds
    return f"{ms:.1f}" if ms >= 1 else f"{ms:.2g}"


def runtime_table(result: BenchResult) -> str:
    """Markdown: warm milliseconds per pair for each modality pair, and the parameters and
    multiply-adds of the network that fuses each (MsgFusion has one network per modality)."""
    groups = result.groups
    header = ["method"] + [f"ms per pair, {g}" for g in groups] + [
        f"parameters ({' / '.join(g.split('-')[0] for g in groups)})",
        f"multiply-adds ({' / '.join(g.split('-')[0] for g in groups)})"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in result.methods:
        costs = result.costs.get(method, {})
        if not costs:
            continue
        cells = [_ms(costs[g].seconds_per_pair) if g in costs else "-" for g in groups]
        cells.append(_per_group([costs[g].parameters if g in costs else None for g in groups], str))
        cells.append(_per_group([costs[g].macs if g in costs else None for g in groups],
                                lambda v: f"{v:.3g}"))
        lines.append("| " + " | ".join([method, *cells]) + " |")
    return "\n".join(lines)
