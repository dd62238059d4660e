"""A Dask deployment of real processes on one machine: ``dask scheduler`` and ``dask worker``.

What a cluster's nodes run, started on loopback: a scheduler process and single-threaded worker
processes that talk over TCP, as on a cluster of machines (unlike a
:class:`distributed.LocalCluster`, whose scheduler lives in the client's process). Used by the
tests and the benchmark of ``cohort run --scheduler``; on a real cluster, start the same two
commands on the nodes (or let dask-jobqueue submit them to SLURM).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from msgfusion.errors import ClusterError

START_TIMEOUT_S = 120
#: Messages each connection keeps for debugging (Dask's ``distributed.admin.low-level-log-length``,
#: 1000 by default). A cohort's task carries its batch's jobs, so on the scheduler that log holds
#: up to 1000 batches per worker: memory that grows with the cohort up to a large bound. Set it in
#: the scheduler's environment (or Dask config) on a real cluster too.
SCHEDULER_LOG_LENGTH = 20


@contextlib.contextmanager
def loopback_deployment(folder: Path, workers: int, env: Mapping[str, str] | None = None,
                        nanny: bool = False) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """Start a ``dask scheduler`` process and ``workers`` single-threaded ``dask worker``
    processes on 127.0.0.1 (logs and the scheduler file in ``folder``; without ``nanny``, a
    killed worker stays dead); yield the scheduler's address and the worker processes. The
    processes started here are stopped afterwards."""
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "scheduler.json"
    file.unlink(missing_ok=True)
    dask = str(Path(sys.executable).with_name("dask"))
    names = ["scheduler", *(f"worker-{i}" for i in range(workers))]
    logs = [open(folder / f"{name}.log", "w") for name in names]  # noqa: SIM115 - closed below
    env = {**(os.environ if env is None else env),
           "DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH": str(SCHEDULER_LOG_LENGTH)}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(file)],
                              env=env, stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not file.is_file():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise ClusterError(f"the dask scheduler did not start; see {folder}/scheduler.log")
            time.sleep(0.1)
        procs += [subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--nthreads",
                                    "1", "--nanny" if nanny else "--no-nanny", "--no-dashboard",
                                    "--host", "127.0.0.1"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
                  for log in logs[1:]]
        address = json.loads(file.read_text())["address"]
        with Client(address, timeout="30s") as client:
            try:
                client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
            except TimeoutError:
                raise ClusterError(f"{workers} dask worker(s) did not join; see "
                                   f"{folder}/worker-*.log") from None
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
