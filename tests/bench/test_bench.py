"""The benchmark on a tiny real dataset: caching, a failing method, tables, reports."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from msgfusion.bench.config import BenchConfig
from msgfusion.bench.peers import parse_peers, rank_among
from msgfusion.bench.report import write_report
from msgfusion.bench.runner import run_bench
from msgfusion.bench.tables import best_two, column_for, group_stats
from msgfusion.cli import main
from msgfusion.methods import registry
from msgfusion.methods.registry import FusionMethod, stack_sources

METRICS = ["EN", "SD", "MI", "rSFe", "Qabf"]


@pytest.fixture(scope="module")
def tiny(aanlib_dir, tmp_path_factory):
    """Two real test pairs of CT-MRI and of PET-MRI, in the AANLIB layout."""
    root = tmp_path_factory.mktemp("tiny")
    for pair, mod in (("CT-MRI", "CT"), ("PET-MRI", "PET")):
        for sub in ("MRI", mod):
            dst = root / pair / "test" / sub
            dst.mkdir(parents=True)
            for f in sorted((aanlib_dir / pair / "test" / sub).iterdir())[:2]:
                shutil.copy(f, dst / f.name)
    return root


@pytest.fixture
def broken_method():
    """A method that fails on one particular pair (registered for the test only)."""

    class Broken(FusionMethod):
        name = "broken-for-test"
        description = "fails on pair 25022"
        reference = "test"

        def fuse(self, pairs):
            if any(p.name == "25022" for p in pairs):
                raise RuntimeError("cannot fuse 25022")
            mr, func = stack_sources(pairs)
            return 0.3 * mr + 0.7 * func

    registry.register(Broken)
    yield Broken.name
    registry._REGISTRY.pop(Broken.name)
    registry._INSTANCES.pop(Broken.name, None)


def _config(tiny, out, methods, **kw):
    return BenchConfig(methods=methods, data=str(tiny), metrics=list(METRICS), out=str(out),
                       timing_repeats=1, **kw)


def test_cache_makes_a_rerun_compute_nothing(tiny, tmp_path):
    first = run_bench(_config(tiny, tmp_path, ["average", "max"]), progress=False)
    assert first.computed["fused"] == 8 and first.cached["fused"] == 0
    assert len(first.records) == 8 and not first.failures
    again = run_bench(_config(tiny, tmp_path, ["average", "max"]), progress=False)
    assert again.computed == {"fused": 0, "evaluated": 0, "timed": 0}
    assert again.cached["fused"] == 8 and again.records == first.records
    # a new metric is evaluated without fusing again; --force redoes everything
    more = run_bench(BenchConfig(methods=["average"], data=str(tiny), metrics=METRICS + ["SSIM"],
                                 out=str(tmp_path), timing_repeats=1), progress=False)
    assert more.computed["fused"] == 0 and more.computed["evaluated"] == 4
    forced = run_bench(_config(tiny, tmp_path, ["average"], force=True), progress=False)
    assert forced.computed["fused"] == 4 and forced.computed["timed"] == 2  # one per modality pair


def test_one_failing_method_does_not_stop_the_others(tiny, tmp_path, broken_method, capsys):
    result = run_bench(_config(tiny, tmp_path, [broken_method, "max"]), progress=False)
    assert [(f.method, f.pair) for f in result.failures] == [(broken_method, "PET-MRI/25022")]
    assert "cannot fuse 25022" in result.failures[0].reason
    assert sum(r["method"] == broken_method for r in result.records) == 3
    assert sum(r["method"] == "max" for r in result.records) == 4
    report = write_report(result, "msgfusion bench (test)")
    assert "broken-for-test on PET-MRI/25022" in report.read_text()


def test_best_marks_and_table_formats(tiny, tmp_path):
    result = run_bench(_config(tiny, tmp_path, ["average", "max"]), progress=False)
    report = write_report(result, "msgfusion bench (test)")
    cols, stats = group_stats(result, "CT-MRI")
    sd = column_for("SD")
    expected = max(stats, key=lambda m: stats[m]["SD"][0])
    assert best_two(stats, sd)[0] == expected
    rsfe = column_for("rSFe")
    assert rsfe.label == "|rSFe|" and rsfe.direction == "lower"

    md = (tmp_path / "tables" / "CT-MRI.md").read_text().strip().splitlines()
    split = [re.split(r"(?<!\\)\|", line)[1:-1] for line in md]
    assert all(len(cells) == len(cols) + 1 for cells in split)
    for j in range(1, len(cols) + 1):
        assert sum("**" in row[j] for row in split[2:]) == 1  # exactly one best per column
    row_of = {row[0].strip(): row for row in split[2:]}
    assert "**" in row_of[expected][1 + [c.label for c in cols].index("SD")]

    tex = (tmp_path / "tables" / "CT-MRI.tex").read_text()
    assert tex.count(r"\begin{") == tex.count(r"\end{") == 2
    assert tex.count("{") == tex.count("}")
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == 2 and all(line.count("&") == len(cols) for line in body)
    assert tex.count(r"\textbf") == len(cols)

    csv_lines = (tmp_path / "per_image.csv").read_text().splitlines()
    assert csv_lines[0] == "method,pair,image," + ",".join(METRICS) and len(csv_lines) == 9
    text = report.read_text()
    for link in re.findall(r"\]\(([^)]+\.png)\)", text):
        assert (report.parent / link).exists()


def test_bench_cli_publishes_results(tiny, tmp_path, capsys):
    code = main(["bench", "--data", str(tiny), "--methods", "average", "--metrics", "EN", "Q_S",
                 "-o", str(tmp_path / "res"), "--publish", str(tmp_path / "docs"),
                 "--timing-repeats", "1", "--peers", str(tmp_path / "none.md")])
    out = capsys.readouterr().out
    assert code == 0 and "no failures" in out
    assert (tmp_path / "docs" / "results.md").exists()
    assert (tmp_path / "docs" / "figures" / "chart_PET-MRI.png").exists()
    code = main(["bench", "--data", str(tiny), "--methods", "nope", "-o", str(tmp_path / "r2")])
    assert code == 2 and "unknown method 'nope'" in capsys.readouterr().err


def test_peers_table_is_parsed(reference_metrics_dir):
    path = reference_metrics_dir.parent / "peers.md"
    peers = parse_peers(path)
    # the counts the file states in its headings ("### test: CT-MRI (12 methods)"), not literals:
    # the file gains rows as published methods are added
    stated = {m[1]: int(m[2]) for m in re.finditer(r"^### test: (\S+) \((\d+) methods\)",
                                                  path.read_text(), re.M)}
    assert set(stated) == {"CT-MRI", "PET-MRI", "SPECT-MRI"}
    assert {g: len(v) for g, v in peers.items()} == stated
    assert peers["CT-MRI"]["GeSeNet"]["SD"] == 81.9
    assert peers["CT-MRI"]["GeSeNet"]["|rSFe|"] == 0.07202
    assert "|rSFe|" not in peers["PET-MRI"]["LP"]
    assert rank_among(5.0, [6.0, 4.0, 5.0], "higher") == 2
    assert rank_among(0.1, [0.2, 0.05], "lower") == 2
    assert np.isclose(peers["SPECT-MRI"]["LP"]["VIFF"], 0.597)
