"""The benchmark cache is dropped when a method's fingerprint changes (new weights, new code)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from msgfusion.bench.config import BenchConfig
from msgfusion.bench.runner import run_bench
from msgfusion.io.images import read_image
from msgfusion.methods import registry
from msgfusion.methods.registry import FusionMethod, stack_sources


class Weighted(FusionMethod):
    """w * MR + (1 - w) * functional; ``w`` plays the part of trained weights."""

    name = "weighted-for-test"
    description = "weighted average with a changeable weight"
    reference = "test"
    w = 0.3

    def fuse(self, pairs):
        mr, func = stack_sources(pairs)
        return self.w * mr + (1 - self.w) * func

    def fingerprint_data(self) -> bytes:
        return repr(self.w).encode()


@pytest.fixture
def weighted():
    registry.register(Weighted)
    yield Weighted
    Weighted.w = 0.3
    registry._REGISTRY.pop(Weighted.name)
    registry._INSTANCES.pop(Weighted.name, None)


@pytest.fixture(scope="module")
def two_pairs(aanlib_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("two") / "PET-MRI" / "test"
    for sub in ("MRI", "PET"):
        (root / sub).mkdir(parents=True)
        for f in sorted((aanlib_dir / "PET-MRI" / "test" / sub).iterdir())[:2]:
            shutil.copy(f, root / sub / f.name)
    return root.parent.parent


def test_new_fingerprint_recomputes_everything(weighted, two_pairs, tmp_path):
    config = lambda: BenchConfig(methods=[weighted.name], data=str(two_pairs),  # noqa: E731
                                 metrics=["EN", "SD"], out=str(tmp_path), timing_repeats=1)
    first = run_bench(config(), progress=False)
    assert first.computed["fused"] == 2
    fused_png = tmp_path / "fused" / weighted.name / "PET-MRI" / "25015.png"
    before = read_image(fused_png)

    weighted.w = 0.7  # "retrained": the fingerprint changes
    second = run_bench(config(), progress=False)
    assert second.computed == {"fused": 2, "evaluated": 2, "timed": 1}
    assert second.cached == {"fused": 0, "evaluated": 0, "timed": 0}
    assert np.abs(read_image(fused_png) - before).mean() > 0.01
    assert [r["SD"] for r in second.records] != [r["SD"] for r in first.records]


def test_new_colour_code_recomputes_the_fused_images(weighted, two_pairs, tmp_path, monkeypatch):
    from msgfusion.bench import runner

    config = lambda: BenchConfig(methods=[weighted.name], data=str(two_pairs),  # noqa: E731
                                 metrics=["EN"], out=str(tmp_path), timing_repeats=1)
    assert run_bench(config(), progress=False).computed["fused"] == 2
    again = run_bench(config(), progress=False)
    assert again.computed == {"fused": 0, "evaluated": 0, "timed": 0}
    assert again.cached == {"fused": 2, "evaluated": 2, "timed": 1}
    monkeypatch.setattr(runner, "color_fingerprint", lambda: "another colour rule")
    assert run_bench(config(), progress=False).computed["fused"] == 2
