"""Benchmark reports: tables (Markdown, CSV, LaTeX), charts, rankings, figure grids, results.md."""

from __future__ import annotations

import csv
import io
import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from msgfusion.bench.peers import parse_peers, rank_among
from msgfusion.bench.runner import INPUT, BenchResult, records_array, summary_lines
from msgfusion.data.datasets import find_pair_folders
from msgfusion.io.files import atomic_write, write_text
from msgfusion.io.images import read_image
from msgfusion.metrics import METRICS, PAPER_METRICS


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


def _md(text: str) -> str:
    """Escape pipes for a Markdown table cell (the label |rSFe| would split the cell)."""
    return text.replace("|", "\\|")


def _fmt(x: float) -> str:
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
            text = f"{_fmt(s[c.label][0])} ± {_fmt(s[c.label][1])}"
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
    header = ["method"] + [_md(f"{c.label} {'↑' if c.direction == 'higher' else '↓'}") for c in cols]
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
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def _save_figure(fig: object, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically (:func:`msgfusion.io.files.atomic_write`)."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110),  # type: ignore[attr-defined]
                 overwrite=True)


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


def write_chart(result: BenchResult, group: str, path: Path) -> None:
    """The paper's style: each metric rescaled linearly to [0, 1] across methods (1 = best)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols, stats = group_stats(result, group)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(cols) + 3), 4.2))
    x = np.arange(len(cols))
    for method, s in stats.items():
        ys = []
        for c in cols:
            vals = np.array([st[c.label][0] for st in stats.values() if c.label in st])
            lo, hi = np.nanmin(vals), np.nanmax(vals)
            y = (s[c.label][0] - lo) / (hi - lo) if hi > lo else 1.0
            ys.append(y if c.direction == "higher" else 1.0 - y)
        ax.plot(x, ys, marker="o", lw=1.4, label=method)
    ax.set_xticks(x, [c.label for c in cols], rotation=45, ha="right")
    ax.set_ylabel("rescaled value (1 = best method)")
    ax.set_title(f"{group}: every metric rescaled to [0, 1] across methods")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left", bbox_to_anchor=(1.01, 0))
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _roi(func_gray: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` x ``size`` region around the strongest functional signal."""
    smooth = gaussian_filter(func_gray.astype(np.float64), sigma=size / 4)
    cy, cx = np.unravel_index(np.argmax(smooth), smooth.shape)
    h, w = func_gray.shape
    size = min(size, h, w)
    return int(np.clip(cy - size // 2, 0, h - size)), int(np.clip(cx - size // 2, 0, w - size))


def write_figure_grid(result: BenchResult, group: str, pair, path: Path) -> None:
    """Sources and every method's fused image side by side, with a zoomed region of interest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fused_root = result.config.out_dir / "fused"
    panels = [("MR", pair.mr), (pair.modality, pair.func)]
    for method in result.methods:
        f = fused_root / method / group / f"{pair.name}.png"
        if f.exists():
            panels.append((method, read_image(f)))
    size = min(result.config.roi_size, *pair.shape)
    y0, x0 = _roi(pair.func_gray, size)
    fig, axes = plt.subplots(2, len(panels), figsize=(1.7 * len(panels), 3.7), squeeze=False)
    for k, (title, img) in enumerate(panels):
        cmap = "gray" if img.ndim == 2 else None
        axes[0, k].imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axes[0, k].add_patch(Rectangle((x0, y0), size, size, fill=False, ec="yellow", lw=1))
        axes[1, k].imshow(img[y0:y0 + size, x0:x0 + size], cmap=cmap, vmin=0, vmax=1,
                          interpolation="nearest")
        axes[0, k].set_title(title, fontsize=8)
        for ax in axes[:, k]:
            ax.set_axis_off()
    fig.suptitle(f"{group} {pair.name} (bottom row: zoom of the yellow box)", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def figure_pairs(result: BenchResult) -> list[tuple[str, object]]:
    """(group, pair) for the figure grids: the configured names, else the first readable pair
    per group (pairs that could not be read are failures of the run, never drawn)."""
    chosen = []
    wanted = set(result.config.figure_pairs)
    unreadable = {f.pair for f in result.failures if f.method == INPUT}
    for folder in find_pair_folders(result.config.data, split=result.config.split,
                                    check_sizes=False):
        group = f"{folder.modality}-MRI"
        if group not in result.groups:
            continue
        stems = [f.stem for f in folder.files]
        readable = [i for i, s in enumerate(stems) if f"{group}/{s}" not in unreadable]
        picks = [i for i in readable if stems[i] in wanted] if wanted else readable[:1]
        chosen += [(group, folder[i]) for i in picks]
    return chosen


def versions() -> dict[str, str]:
    import numpy
    import scipy
    import torch

    import msgfusion

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(msgfusion.__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"msgfusion": msgfusion.__version__, "git_commit": commit or "unknown",
            "python": sys.version.split()[0], "platform": platform.platform(),
            "processor": platform.machine(), "numpy": numpy.__version__, "scipy": scipy.__version__,
            "torch": torch.__version__, "torch_threads": str(torch.get_num_threads()),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def peer_comparison(result: BenchResult, peers_path: Path) -> str:
    """Markdown: where each of our methods would rank among the published methods, per pair."""
    peers = parse_peers(peers_path)
    paper_cols = [column_for(m) for m in PAPER_METRICS if m in result.metrics]
    parts = []
    for group in result.groups:
        if group not in peers:
            continue
        _, stats = group_stats(result, group)
        cols = [c for c in paper_cols if any(c.label in v for v in peers[group].values())]
        n = len(peers[group])
        header = ["method"] + [_md(c.label) for c in cols] + ["top-2"]
        lines = [f"### {group}: rank among the {n} published methods + ours (1 = best)", "",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method, s in stats.items():
            cells, top2 = [method], 0
            for c in cols:
                others = [v[c.label] for v in peers[group].values() if c.label in v]
                r = rank_among(s[c.label][0], others, c.direction)
                top2 += r <= 2
                cells.append(f"{_fmt(s[c.label][0])} ({r})")
            lines.append("| " + " | ".join(cells + [f"{top2}/{len(cols)}"]) + " |")
        best = ["best published"] + [
            _fmt(max(v) if c.direction == "higher" else min(v))
            for c in cols for v in [[p[c.label] for p in peers[group].values() if c.label in p]]
        ] + [""]
        lines.append("| " + " | ".join(best) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def write_report(result: BenchResult, command: str, peers_path: Path | None = None,
                 publish: Path | None = None) -> Path:
    """Write every output into the results folder, and ``results.md`` (into ``publish`` if given,
    with its figures under ``publish/figures/``). Returns the path of results.md."""
    out = result.config.out_dir
    write_per_image_csv(result, out / "per_image.csv")
    tables = write_tables(result, out)
    write_text(out / "config.json", json.dumps(result.config.to_dict(), indent=2), overwrite=True)
    vers = versions()
    write_text(out / "versions.json", json.dumps(vers, indent=2), overwrite=True)
    write_text(out / "summary.txt", "\n".join(summary_lines(result)) + "\n", overwrite=True)
    doc_dir = publish if publish is not None else out
    fig_dir = doc_dir / "figures"
    rel = lambda p: p.relative_to(doc_dir).as_posix()  # noqa: E731

    md = [
        "# Benchmark results", "",
        f"Generated by `{command}`; do not edit by hand. msgfusion {vers['msgfusion']} "
        f"(commit {vers['git_commit']}), Python {vers['python']}, torch {vers['torch']}, "
        f"{vers['platform']}, {vers['date']}.", "",
        f"Data: `{result.config.data}` split `{result.config.split}`; fused PET/SPECT images are "
        f"restored to colour with `{result.config.color}` and every metric is computed on the "
        "luminance Y of the 8-bit output, as in `../shared/spec/METRICS.md`. Values are mean ± "
        "std over the pairs; best per column in **bold**, second in _italics_; ↑ higher is better, "
        "↓ lower is better (|rSFe| is the mean absolute rSFe).", "",
        "Run summary: " + "; ".join(summary_lines(result)[1:2]) + ".", "",
    ]
    if result.failures:
        md += ["Failures:", ""] + [f"- {f.method} on {f.pair}: {f.reason}" for f in result.failures] + [""]
    for group in result.groups:
        chart = fig_dir / f"chart_{group}.png"
        write_chart(result, group, chart)
        md += [f"## {group}", "", tables[group].read_text().strip(), "",
               f"![{group} chart]({rel(chart)})", ""]
    if peers_path is not None and peers_path.exists():
        md += ["## Against the published methods", "",
               f"Our methods ranked among the published methods' scores of `{peers_path.name}` "
               "(same test pairs and metric conventions; their |rSFe| for CT-MRI covers 17 of 24 "
               "pairs). Each cell: our mean (rank). `top-2` counts the paper metrics on which the "
               "method ranks first or second.", "", peer_comparison(result, peers_path), ""]
    counts = ranking(result)
    md += ["## Ranking summary", "", "How often each method is best or second on a metric, over "
           f"all {len(result.groups)} modality pairs and {len(result.metrics)} metrics.", "",
           "| method | best | second |", "|---|---|---|"]
    md += [f"| {m} | {c['best']} | {c['second']} |"
           for m, c in sorted(counts.items(), key=lambda mc: (-mc[1]["best"], -mc[1]["second"]))]
    md += ["", "## Runtime and size", "",
           "Warm time per 256 x 256 pair, batch 1, median of repeated runs on this machine "
           "(fusion only, no file I/O); parameters and multiply-adds for networks. A method is "
           "timed when its results are computed and the time is cached with them, so times "
           "of different methods may come from runs at different machine load; `--force` "
           "re-measures all.", "",
           "| method | ms per pair | parameters | multiply-adds |", "|---|---|---|---|"]
    for m in result.methods:
        c = result.costs.get(m)
        if c is not None:
            md.append(f"| {m} | {1000 * c.seconds_per_pair:.1f} | "
                      f"{c.parameters if c.parameters is not None else '-'} | "
                      f"{f'{c.macs:.3g}' if c.macs is not None else '-'} |")
    md += ["", "## Figures", ""]
    for group, pair in figure_pairs(result):
        path = fig_dir / f"grid_{group}_{pair.name}.png"
        write_figure_grid(result, group, pair, path)
        md += [f"![{group} {pair.name}]({rel(path)})", ""]
    path = doc_dir / "results.md"
    write_text(path, "\n".join(md), overwrite=True)
    return path
