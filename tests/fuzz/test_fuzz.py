"""The fuzz suite: corrupted and unusual inputs generated from real atlas pairs, through the real
command line (in-process ``main()`` and ``python -m msgfusion`` subprocesses); see fuzzkit.py
for the cases and the oracle. A fast subset runs always; the whole campaign under ``-m slow``
(and as ``benchmarks/reliability.py``, which writes docs/reliability.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fuzzkit  # noqa: E402

FAST = {  # (category, name prefix) of the cases that run in every test run
    ("truncation", "png cut at 30%"), ("truncation", "lzw.tif cut at 70%"),
    ("truncation", "jpg cut at 0%"), ("bit flip", "png bit"), ("bomb", "PNG header 100000x100000"),
    ("bomb", "PNG header 20000x20000"), ("float TIFF", "1 x NaN"), ("float TIFF", "1 x +inf"),
    ("float TIFF", "two pages"), ("special file", "FIFO as --mr"), ("special file", "/dev"),
    ("special file", "a folder"), ("special file", "empty"), ("tiny image", "1x1 average"),
    ("tiny image", "8x8 nestfuse"), ("tiny image", "2x2 nestfuse"), ("tiny image", "1x7 fusiondn"),
    ("constant image", "all 0 average"), ("output", "parent"), ("output", "exists"),
    ("output", "output is a folder"), ("output", "4 concurrent"), ("output", "permission"),
    ("output", "read-only"), ("batch", ""),
    ("libtiff message", ""),
}


def _cases(tmp_path_factory: pytest.TempPathFactory, n_flips: int) -> tuple[list, Path]:
    root = tmp_path_factory.mktemp("fuzz")
    return fuzzkit.all_cases(root, n_flips=n_flips), root


@pytest.fixture(scope="module")
def fast_cases(tmp_path_factory):
    cases, root = _cases(tmp_path_factory, n_flips=3)
    chosen = [c for c in cases
              if any(c.category == cat and c.name.startswith(prefix) for cat, prefix in FAST)]
    return chosen, root


def _check(outcomes):
    bad = [f"{o.case.category} / {o.case.name}: {o.verdict}: {o.detail}" for o in outcomes
           if o.verdict in fuzzkit.BAD]
    assert not bad, "\n".join(bad)


@pytest.mark.timeout(300)
def test_fast_subset_every_input_is_handled(fast_cases):
    cases, root = fast_cases
    assert len(cases) >= 30
    # a hang is cut after fuzzkit.TIMEOUT_S; the real FIFO subprocess runs in the campaign
    outcomes = [fuzzkit.run_case(c, root) for c in cases]
    _check(outcomes)
    verdicts = {(o.case.category, o.case.name): o.verdict for o in outcomes}
    # what the issue found, case by case
    assert verdicts[("bomb", "PNG header 100000x100000")] == "error"
    assert verdicts[("float TIFF", "1 x NaN")] == "error"
    assert verdicts[("float TIFF", "two pages")] == "error"
    assert all(v == "error" for (cat, name), v in verdicts.items() if name.startswith("png bit"))
    assert verdicts[("tiny image", "8x8 nestfuse")] == "error"
    assert verdicts[("tiny image", "1x7 fusiondn")] == "error"
    assert verdicts[("constant image", "all 0 average")] == "ok"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_campaign_has_no_crash_hang_partial_clobber_or_garbage(tmp_path_factory):
    cases, root = _cases(tmp_path_factory, n_flips=40)
    _check([fuzzkit.run_case(c, root) for c in cases])
