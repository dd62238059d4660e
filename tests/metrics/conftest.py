"""Fixtures for the metric tests: the 18 reference triples and their reference values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@dataclass(frozen=True)
class Triple:
    """One (A, B, F) triple of ../shared/reference/metrics with its reference values."""

    tid: str  # e.g. "PET-MRI_25015"
    rule: str  # "avg" | "max"
    a: np.ndarray  # grey 0..255 float64
    b: np.ndarray
    f: np.ndarray
    refs: dict  # metric -> {reference name: value}

    @property
    def modality(self) -> str:
        return self.tid.split("-")[0]

    def ref(self, metric: str, reference: str) -> float:
        return self.refs[metric][reference]


def _grey(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "L", f"{path} is not 8-bit grey"
        return np.asarray(img, dtype=np.float64)


@pytest.fixture(scope="session")
def reference_triples(reference_metrics_dir: Path) -> list[Triple]:
    """The 9 pairs x {avg, max} fusion rules, in manifest order."""
    manifest = json.loads((reference_metrics_dir / "manifest.json").read_text())
    values = json.loads((reference_metrics_dir / "reference_values.json").read_text())
    triples = []
    for tid, entry in manifest.items():
        a, b = _grey(reference_metrics_dir / entry["A"]), _grey(reference_metrics_dir / entry["B"])
        for rule, fused in entry["fused"].items():
            triples.append(Triple(tid, rule, a, b, _grey(reference_metrics_dir / fused),
                                  values[tid][rule]))
    assert len(triples) == 18
    return triples


@pytest.fixture(scope="session")
def ct_triple(reference_triples: list[Triple]) -> Triple:
    """CT-MRI_16009 with average fusion."""
    return reference_triples[0]
