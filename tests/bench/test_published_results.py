"""The numbers docs/results.md publishes for MsgFusion are what the shipped model gives today.

Runs the benchmark's own code path (``run_bench``, colour ``ycbcr``, the paper's metrics) for the
``msgfusion`` method on the 72 atlas test pairs and compares each mean with the Markdown table
of docs/results.md (printed to 4 significant digits). New weights or a changed metric without a
regenerated docs/results.md fail here. Slow (about a minute): ``python -m pytest -m slow``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from msgfusion.bench.config import BenchConfig
from msgfusion.bench.runner import run_bench
from msgfusion.bench.tables import group_stats
from msgfusion.metrics import PAPER_METRICS

RESULTS_MD = Path(__file__).resolve().parents[2] / "docs" / "results.md"


def published_means(method: str) -> dict[str, dict[str, float]]:
    """``{group: {column label: mean}}`` of ``method``'s rows in docs/results.md."""
    tables: dict[str, dict[str, float]] = {}
    group, header = None, None
    for line in RESULTS_MD.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            group, header = line[3:].strip(), None
        elif group and group.endswith("-MRI") and line.startswith("| method |"):
            header = [re.sub(r"\s*[↑↓]$", "", c.strip().replace("\\|", "|"))
                      for c in re.split(r"(?<!\\)\|", line)[2:-1]]
        elif header and line.startswith(f"| {method} |"):
            cells = [c.strip().strip("*_") for c in re.split(r"(?<!\\)\|", line)[2:-1]]
            tables[group] = {h: float(c.split(" ± ")[0]) for h, c in zip(header, cells)
                             if c != "-"}
            header = None
    return tables


@pytest.mark.slow
def test_results_md_states_what_the_shipped_model_scores(aanlib_dir, tmp_path):
    published = published_means("msgfusion")
    assert set(published) == {"CT-MRI", "PET-MRI", "SPECT-MRI"}
    config = BenchConfig(methods=["msgfusion"], data=str(aanlib_dir), split="test",
                         metrics=list(PAPER_METRICS), out=str(tmp_path), color="ycbcr",
                         timing_repeats=1)
    result = run_bench(config, progress=False)
    assert not result.failures
    for group in result.groups:
        assert len({r["image"] for r in result.records if r["group"] == group}) == 24
        cols, stats = group_stats(result, group)
        for col in cols:
            ours = stats["msgfusion"][col.label][0]
            assert published[group][col.label] == pytest.approx(ours, rel=1e-3, abs=1e-9), \
                f"{group} {col.label}: docs/results.md says {published[group][col.label]}, " \
                f"the shipped model gives {ours:.6g}; regenerate docs/results.md"
