"""A small synthetic cohort: real atlas pairs copied under subject folders, with a manifest."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from cohort_helpers import WORKER_ENV

from msgfusion.api import fuse
from msgfusion.io.images import read_image, write_image
from msgfusion.metrics import evaluate_images
from msgfusion.pair import load_pair


def make_cohort(aanlib: Path, root: Path, per_modality: int) -> list[dict[str, str]]:
    """Copy ``per_modality`` atlas test pairs of each modality into ``root/<id>/`` and write
    ``root/manifest.csv`` with paths relative to it; the manifest rows."""
    rows = []
    for modality in ("CT", "PET", "SPECT"):
        folder = aanlib / f"{modality}-MRI" / "test"
        for mr in sorted((folder / "MRI").iterdir())[:per_modality]:
            sid = f"{modality.lower()}-{mr.stem}"
            (root / sid).mkdir(parents=True)
            shutil.copy(mr, root / sid / "mr.png")
            shutil.copy(folder / modality / mr.name, root / sid / "func.png")
            rows.append({"id": sid, "mr": f"{sid}/mr.png", "func": f"{sid}/func.png",
                         "modality": modality})
    write_manifest(root / "manifest.csv", rows)
    return rows


def write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)


def assert_output_matches_api(root: Path, row: dict[str, str], output: Path, method: str,
                              tmp: Path, metrics: dict[str, float] | None = None) -> None:
    """The cohort's output is pixel for pixel what the Python API gives for that pair (up to
    rounding ties of the 8-bit file), and its recorded metrics are the metrics of that picture."""
    pair = load_pair(root / row["mr"], root / row["func"], modality=row["modality"])
    expected = fuse(pair, method=method)
    reference = write_image(tmp / f"{row['id']}.png", expected, overwrite=True)
    # equal up to 8-bit rounding ties: a worker's torch may run another number of threads than
    # this process, which moves a float by ~1e-7 (docs/speed.md)
    diff = np.abs(read_image(output) - read_image(reference))
    assert diff.max() <= 1 / 255 + 1e-6 and (diff > 0).mean() < 1e-4, (diff.max(),
                                                                       (diff > 0).sum())
    if metrics:
        want = evaluate_images(pair.mr, pair.func, expected, list(metrics))
        for label, value in metrics.items():
            assert value == pytest.approx(want[label], rel=1e-9, abs=1e-12), label


@pytest.fixture
def manifest_writer():
    """``write(path, rows)``: a manifest CSV from rows (dicts of column -> value)."""
    return write_manifest


@pytest.fixture
def matches_api():
    """``check(root, row, output, method, tmp, metrics)``: see :func:`assert_output_matches_api`."""
    return assert_output_matches_api


@pytest.fixture
def worker_env():
    """Environment for Dask worker processes started by a test: the source on the path."""
    return WORKER_ENV


@pytest.fixture
def cohort(aanlib_dir, tmp_path) -> tuple[Path, list[dict[str, str]]]:
    """Six subjects (two pairs each of CT, PET and SPECT): (folder, manifest rows)."""
    root = tmp_path / "study"
    return root, make_cohort(aanlib_dir, root, per_modality=2)


@pytest.fixture
def large_cohort(aanlib_dir, tmp_path) -> tuple[Path, list[dict[str, str]]]:
    """Fifteen subjects (five pairs each of CT, PET and SPECT): (folder, manifest rows)."""
    root = tmp_path / "study"
    return root, make_cohort(aanlib_dir, root, per_modality=5)


@pytest.fixture
def deployment(tmp_path):
    """``start(workers)``: a ``dask scheduler`` and ``workers`` ``dask worker`` processes on
    loopback (:func:`msgfusion.cohort.deploy.loopback_deployment`), in the test's folder."""
    from msgfusion.cohort.deploy import loopback_deployment

    return lambda workers: loopback_deployment(tmp_path / "dask", workers, env=WORKER_ENV)


@pytest.fixture
def threads_cluster():
    """One worker thread in this process (fast: no process to start), closed afterwards."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client
