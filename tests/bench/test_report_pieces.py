"""The pieces of the benchmark report: versions, peer coverage and ranking, runtime table."""

from __future__ import annotations

import re
import subprocess

import pytest

from msgfusion.bench.config import BenchConfig
from msgfusion.bench.peers import coverage_note, peer_comparison, peer_pair_counts
from msgfusion.bench.report import git_commit, versions
from msgfusion.bench.runner import BenchResult
from msgfusion.bench.tables import runtime_table
from msgfusion.bench.timing import MethodCost

PEERS = """# scores

### test: CT-MRI (2 methods)

| method | EN (n=3) | |rSFe| (n=2) | Q_S (n=3) |
|---|---|---|---|
| P1 | 5.0 | 0.1 | 0.8 |
| P2 | 4.0 | 0.3 | 0.6 |

### test: PET-MRI (1 methods)

| method | EN (n=3) | Q_S (n=3) |
|---|---|---|
| P1 | 5.5 | 0.7 |
"""


@pytest.fixture
def peers(tmp_path):
    path = tmp_path / "peers.md"
    path.write_text(PEERS)
    return path


def _result(records, groups=("CT-MRI", "PET-MRI"), metrics=("EN", "rSFe", "Q_S")):
    return BenchResult(config=BenchConfig(metrics=list(metrics)), groups=list(groups),
                       records=records)


def _records(method, group, n, **values):
    return [{"method": method, "group": group, "image": f"{i}", **values} for i in range(n)]


def test_peer_coverage_is_read_from_the_column_headers(peers):
    assert peer_pair_counts(peers) == {"CT-MRI": {"EN": 3, "|rSFe|": 2, "Q_S": 3},
                                       "PET-MRI": {"EN": 3, "Q_S": 3}}
    result = _result(_records("ours", "CT-MRI", 3, EN=4.5, rSFe=0.2, Q_S=0.9)
                     + _records("ours", "PET-MRI", 3, EN=6.0, rSFe=0.2, Q_S=0.5))
    assert coverage_note(result, peers) == "their |rSFe| for CT-MRI covers 2 of 3 pairs"
    assert coverage_note(_result(result.records[:2], groups=("CT-MRI",)), peers) == ""


def test_real_peers_file_states_its_rsfe_coverage(reference_metrics_dir):
    counts = peer_pair_counts(reference_metrics_dir.parent / "peers.md")
    assert set(counts) == {"CT-MRI", "PET-MRI", "SPECT-MRI"}
    assert counts["CT-MRI"]["EN"] == 24 and counts["CT-MRI"]["|rSFe|"] < 24


def test_peer_comparison_ranks_and_tolerates_a_missing_column(peers):
    records = (_records("ours", "CT-MRI", 3, EN=4.5, rSFe=-0.05, Q_S=0.9)
               + _records("partial", "CT-MRI", 3, EN=5.5, rSFe=0.5))  # no Q_S values
    text = peer_comparison(_result(records, groups=("CT-MRI",)), peers)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()
            if line.startswith("| ")}
    # ours: EN 4.5 is 2nd of (5.0, 4.0), |rSFe| 0.05 1st, Q_S 0.9 1st -> 3 of 3 in the top two
    assert rows["ours"] == "| ours | 4.5 (2) | 0.05 (1) | 0.9 (1) | 3/3 |"
    assert rows["partial"] == "| partial | 5.5 (1) | 0.5 (3) | - | 1/3 |"
    assert rows["best published"] == "| best published | 5 | 0.1 | 0.8 |  |"


def test_runtime_table_per_modality_pair():
    result = _result(_records("net", "CT-MRI", 1, EN=1.0, rSFe=0.0, Q_S=0.5)
                     + _records("net", "PET-MRI", 1, EN=1.0, rSFe=0.0, Q_S=0.5)
                     + _records("avg", "CT-MRI", 1, EN=1.0, rSFe=0.0, Q_S=0.5))
    result.costs = {"net": {"CT-MRI": MethodCost(0.0342, 5, 3800, 1_000_000),
                            "PET-MRI": MethodCost(0.0180, 5, 4800, 2_500_000)},
                    "avg": {"CT-MRI": MethodCost(4.4e-5, 5), "PET-MRI": MethodCost(4.6e-5, 5)}}
    lines = runtime_table(result).splitlines()
    assert lines[0] == ("| method | ms per pair, CT-MRI | ms per pair, PET-MRI | parameters (CT / PET)"
                        " | multiply-adds (CT / PET) |")
    assert lines[2] == "| net | 34.2 | 18.0 | 3800 / 4800 | 1e+06 / 2.5e+06 |"
    assert lines[3] == "| avg | 0.044 | 0.046 | - | - |"


def test_git_commit_says_when_the_tree_is_dirty(tmp_path):
    assert git_commit(tmp_path) == "unknown"  # not a repository
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True,  # noqa: E731
                                    capture_output=True)
    run("init", "-q")
    (tmp_path / "f.txt").write_text("one")
    run("add", "f.txt")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    clean = git_commit(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{4,}", clean)
    (tmp_path / "untracked.txt").write_text("not part of the code")
    assert git_commit(tmp_path) == clean
    (tmp_path / "f.txt").write_text("two")
    assert git_commit(tmp_path) == clean + "+dirty"
    assert re.fullmatch(r"([0-9a-f]{4,}(\+dirty)?|unknown)", versions()["git_commit"])


def test_records_array_selects_one_method_group_and_metric():
    from msgfusion.bench.runner import records_array

    records = (_records("a", "CT-MRI", 2, EN=1.0) + _records("b", "CT-MRI", 1, EN=2.0)
               + _records("a", "PET-MRI", 1, EN=3.0) + _records("a", "CT-MRI", 1, SD=9.0))
    result = _result(records)
    assert records_array(result, "a", "CT-MRI", "EN").tolist() == [1.0, 1.0]
    assert records_array(result, "a", "CT-MRI", "SD").tolist() == [9.0]
