"""Helpers of the cohort tests: real Dask processes on loopback, the results table."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
#: Environment for Dask worker processes started by the tests: the source on the path.
WORKER_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}


@contextlib.contextmanager
def dask_processes(folder: Path, workers: int) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A real deployment on loopback: a ``dask scheduler`` process and ``workers`` ``dask
    worker`` processes (single-threaded, no nanny: a killed worker stays dead) over TCP; the
    scheduler's address and the worker processes. Stopped (the processes started here, by id)
    afterwards."""
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "scheduler.json"
    dask = str(Path(sys.executable).with_name("dask"))
    logs = [open(folder / f"{name}.log", "w") for name in  # noqa: SIM115 - closed below
            ["scheduler", *(f"worker-{i}" for i in range(workers))]]
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(file)],
                              env=WORKER_ENV, stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        deadline = time.monotonic() + 60
        while not file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        procs += [subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--nthreads",
                                    "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                                   env=WORKER_ENV, stdout=log, stderr=subprocess.STDOUT)
                  for log in logs[1:]]
        address = json.loads(file.read_text())["address"]
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=120)
        assert address.startswith("tcp://127.0.0.1:")
        yield address, procs[1:]
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


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
