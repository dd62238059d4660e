"""The published methods' scores on the atlas test split (``../shared/reference/peers.md``).

The file holds one Markdown table per modality pair (``### test: CT-MRI (11 methods)``), one row
per published method, columns such as ``EN (n=24)``, ``MI (bits) (n=24)``, ``|rSFe| (n=17)``.
We read it into ``{group: {method: {column: value}}}`` with column names as in our tables
(``EN``, ``MI``, ``|rSFe|``, ``Q_S``, ...), to rank our methods among them.
"""

from __future__ import annotations

import re
from pathlib import Path

_HEADING = re.compile(r"^#+\s*test:\s*([A-Za-z]+-MRI)")
_SUFFIX = re.compile(r"\s*\((?:n=\d+|bits)\)")


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
