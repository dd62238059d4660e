"""Helpers of the cohort tests: the environment of worker processes, the results table."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
#: Environment for Dask worker processes started by the tests: the source on the path.
WORKER_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}


def results_table(out: Path) -> pd.DataFrame:
    """The results table of a run, as Parquet; its CSV twin lists the same rows."""
    csv = pd.read_csv(out / "results.csv", keep_default_na=False, dtype={"id": str})
    parquet = pd.read_parquet(out / "results.parquet")
    assert list(csv["id"]) == list(parquet["id"])
    assert list(csv["status"]) == list(parquet["status"])
    return parquet


def assert_no_leftovers(out: Path) -> None:
    assert not [p.name for p in out.rglob("*") if p.name.startswith(".")
                and p.name != ".bidsignore"], "temporary files left"
