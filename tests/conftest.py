"""Shared fixtures: real data from ../shared beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
AANLIB = SHARED / "data" / "aanlib"
REFERENCE_METRICS = SHARED / "reference" / "metrics"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests need ../shared beside the repository")
    return path


@pytest.fixture(scope="session")
def aanlib_dir() -> Path:
    """The AANLIB pairs: <pair>/<split>/<modality>/<name>.png."""
    return _require(AANLIB)


@pytest.fixture(scope="session")
def reference_metrics_dir() -> Path:
    """Reference metric values and their input/fused images (see its README)."""
    return _require(REFERENCE_METRICS)
