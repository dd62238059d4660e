"""The published methods' scores on the atlas test split (``../shared/reference/peers.md``).

The file holds one Markdown table per modality pair (``### test: CT-MRI (11 methods)``), one row
per published method, columns such as ``EN (n=24)``, ``MI (bits) (n=24)``, ``|rSFe| (n=17)``.
We read it into ``{group: {method: {column: value}}}`` with column names as in our tables
(``EN``, ``MI``, ``|rSFe|``, ``Q_S``, ...), and the number of pairs behind each column
(``n=17``: some runs of a slow reference did not finish), to rank our methods among them
(:func:`peer_comparison`).
"""

from __future__ import annotations

import re
from pathlib import Path

from msgfusion.bench.runner import BenchResult
from msgfusion.bench.tables import column_for, fmt_number, group_stats, md_cell
from msgfusion.metrics import PAPER_METRICS

_HEADING = re.compile(r"^#+\s*test:\s*([A-Za-z]+-MRI)")
_SUFFIX = re.compile(r"\s*\((?:n=\d+|bits)\)")
_COUNT = re.compile(r"\(n=(\d+)\)")


def _cells(line: str) -> list[str]:
    """Cells of a Markdown table row; split on ' | ' so that a header like '|rSFe|' stays whole."""
    return [c.strip() for c in line.strip()[1:-1].split(" | ")]


def parse_peers(path: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """Parse peers.md; raises ValueError naming the file if no table is found."""
    path = Path(path)
    tables: dict[str, dict[str, dict[str, float]]] = {}
    group, header = None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        heading = _HEADING.match(line)
        if heading:
            group, header = heading.group(1), None
            continue
        if group is None or not line.startswith("|"):
            continue
        cells = _cells(line)
        if header is None:
            header = [_SUFFIX.sub("", c).strip() for c in cells]
        elif not set(line.strip()) <= set("|-: "):  # skip the |---|---| rule
            values = {col: float(v.strip("*")) for col, v in zip(header[1:], cells[1:]) if v}
            tables.setdefault(group, {})[cells[0]] = values
    if not tables:
        raise ValueError(f"{path}: no '### test: <pair>' tables found")
    return tables


def rank_among(value: float, others: list[float], direction: str) -> int:
    """1-based rank of ``value`` among ``others`` (ties go to ``value``)."""
    better = [o for o in others if (o > value if direction == "higher" else o < value)]
    return 1 + len(better)


def peer_pair_counts(path: str | Path) -> dict[str, dict[str, int]]:
    """``{group: {column: n}}``: the number of test pairs behind each column of peers.md."""
    counts: dict[str, dict[str, int]] = {}
    group = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        heading = _HEADING.match(line)
        if heading:
            group = heading.group(1)
        elif group is not None and group not in counts and line.startswith("|"):
            counts[group] = {_SUFFIX.sub("", c).strip(): int(m.group(1))
                             for c in _cells(line)[1:] if (m := _COUNT.search(c))}
    return counts


def coverage_note(result: BenchResult, peers_path: str | Path) -> str:
    """Which published columns cover fewer pairs than we score, e.g. "their |rSFe| for CT-MRI
    covers 17 of 24 pairs"; empty when every column covers all of them."""
    notes = []
    for group, columns in peer_pair_counts(peers_path).items():
        if group not in result.groups:
            continue
        ours = len({r["image"] for r in result.records if r["group"] == group})
        notes += [f"their {col} for {group} covers {n} of {ours} pairs"
                  for col, n in columns.items() if n < ours]
    return "; ".join(notes)


def peer_comparison(result: BenchResult, peers_path: str | Path) -> str:
    """Markdown: where each of our methods would rank among the published methods, per pair.

    A method without a value for a column (its metric failed) shows "-" there and does not
    count towards its top-2 total.
    """
    peers = parse_peers(peers_path)
    paper_cols = [column_for(m) for m in PAPER_METRICS if m in result.metrics]
    parts = []
    for group in result.groups:
        if group not in peers:
            continue
        _, stats = group_stats(result, group)
        cols = [c for c in paper_cols if any(c.label in v for v in peers[group].values())]
        n = len(peers[group])
        header = ["method"] + [md_cell(c.label) for c in cols] + ["top-2"]
        lines = [f"### {group}: rank among the {n} published methods + ours (1 = best)", "",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method, s in stats.items():
            cells, top2 = [method], 0
            for c in cols:
                if c.label not in s:
                    cells.append("-")
                    continue
                others = [v[c.label] for v in peers[group].values() if c.label in v]
                r = rank_among(s[c.label][0], others, c.direction)
                top2 += r <= 2
                cells.append(f"{fmt_number(s[c.label][0])} ({r})")
            lines.append("| " + " | ".join(cells + [f"{top2}/{len(cols)}"]) + " |")
        best = ["best published"] + [
            fmt_number(max(v) if c.direction == "higher" else min(v))
            for c in cols for v in [[p[c.label] for p in peers[group].values() if c.label in p]]
        ] + [""]
        lines.append("| " + " | ".join(best) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
