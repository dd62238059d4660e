"""Run a cohort on Dask: plan what is out of date, submit each subject's chain, collect a table.

Layout of the output folder (which is also the record of what is done)::

    fused/<id>.png | <id>.nii.gz   the fused slice or volume of each subject (written atomically)
    records/<id>.json              fingerprint and result row, written when the subject is done
    results.csv, results.parquet   one row per subject: status, reason, warnings, timings, metrics

A subject is up to date when its record's fingerprint (method name and the method's own
fingerprint: source and weights; colour; metrics; the input files' paths, sizes and
modification times) matches and its output exists; a re-run skips it and recomputes the rest.

With ``register``, every subject's functional input is registered onto its MR first
(:mod:`msgfusion.register`: 2-D similarity, 3-D rigid), a task of its own in the chain.
The cluster is a :class:`distributed.LocalCluster` of ``workers`` single-threaded processes, or
an existing cluster reached at ``scheduler`` (SLURM through dask-jobqueue, Kubernetes, a cloud
service: any Dask scheduler), or a :class:`distributed.Client` the caller already holds. Tasks are
submitted with ``retries`` so that those of a killed worker run again elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from msgfusion import DEFAULT_METHOD, method_fingerprint
from msgfusion.cohort.manifest import Subject, read_manifest
from msgfusion.cohort.tasks import (
    KINDS,
    STEPS,
    CohortWorkerSetup,
    SubjectJob,
    fuse_subject,
    read_subject,
    register_subject,
    score_subject,
    write_subject,
)
from msgfusion.errors import ClusterError, MsgFusionError, OutputExistsError
from msgfusion.io.color import DEFAULT_COLOR_MODE
from msgfusion.io.files import atomic_write, spreadsheet_safe, write_text
from msgfusion.metrics import resolve_names
from msgfusion.progress import progress_bar

METRIC_CHOICES = ("paper", "all", "none")
RECORD_VERSION = 1
WORKER_WAIT_S = 60


@dataclass
class CohortConfig:
    """A cohort run: the manifest, the output folder, the defaults for every row, the cluster."""

    manifest: Path
    out_dir: Path
    method: str = DEFAULT_METHOD
    color: str = DEFAULT_COLOR_MODE
    register: bool = False
    metrics: str = "paper"
    workers: int | None = None  # local cluster size (default: one per CPU core)
    scheduler: str | None = None  # address of an existing scheduler instead
    retries: int = 3
    progress: bool = True


@dataclass
class CohortResult:
    """The results table (manifest order) and what the run did."""

    table: pd.DataFrame
    computed: int
    skipped: int
    wall_s: float  # the whole run
    compute_s: float = 0.0  # from the first submission to the last result
    setup_s: float = 0.0  # loading torch and the methods in the workers (CohortWorkerSetup)
    dashboard: str | None = None
    worker_peak_mb: dict[str, float] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return int((self.table["status"] == status).sum())

    def summary_lines(self) -> list[str]:
        """What was done, skipped and failed (with reasons), throughput, mean metrics."""
        n, done = len(self.table), self.count("done")
        lines = [f"{n} subject(s): {done} done ({self.computed} computed, {self.skipped} up to "
                 f"date and skipped), {n - done} failed"]
        if self.computed and self.compute_s > 0:
            lines.append(f"wall time {self.wall_s:.1f} s, of which {self.compute_s:.1f} s "
                         f"computing: {60 * self.computed / self.compute_s:.1f} subjects/minute")
        if self.worker_peak_mb:
            peaks = sorted(self.worker_peak_mb.values())
            lines.append(f"{len(peaks)} worker(s), peak memory {peaks[0]:.0f}-{peaks[-1]:.0f} MB "
                         "each")
        metrics = [c for c in self.table.columns if c not in _FIXED_COLUMNS]
        ok = self.table[self.table["status"] == "done"]
        if metrics and len(ok):
            lines.append("mean " + ", ".join(f"{m} {ok[m].mean():.4g}" for m in metrics))
        for _, row in self.table[self.table["status"] != "done"].iterrows():
            lines.append(f"  {row['id']}: {row['reason']}")
        return lines


_FIXED_COLUMNS = ("id", "status", "reason", "warnings", "modality", "kind", "method", "color",
                  "registration", "output", "computed", "worker", "pid", *(f"{s}_s" for s in STEPS), "total_s",
                  "cpu_s")


def _file_identity(path: Path) -> list[Any]:
    try:
        st = path.stat()
        return [str(path.resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path), None, None]  # missing: the read step reports it


def plan_jobs(subjects: Sequence[Subject], config: CohortConfig) -> list[SubjectJob]:
    """One job per subject, with its output, record path (absolute: workers may run in
    another folder) and fingerprint."""
    out = Path(config.out_dir).absolute()
    metrics = tuple(resolve_names(config.metrics)) if config.metrics != "none" else ()
    method_fps: dict[str, str] = {}
    jobs = []
    for s in subjects:
        method = s.options.get("method", config.method)
        if method not in method_fps:
            method_fps[method] = method_fingerprint(method)
        color = s.options.get("color", config.color)
        key = {"version": RECORD_VERSION, "method": method, "method_fp": method_fps[method],
               "color": color, "metrics": metrics, "modality": s.modality,
               "register": config.register,
               "mr": _file_identity(s.mr), "func": _file_identity(s.func)}
        fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        jobs.append(SubjectJob(s, method, color, metrics,
                               out / "fused" / f"{s.id}{KINDS[s.kind].suffix}",
                               out / "records" / f"{s.id}.json", fingerprint, config.register))
    return jobs


def up_to_date(job: SubjectJob) -> dict[str, Any] | None:
    """The recorded row of a job whose output and matching record exist, else ``None``."""
    if not (job.output.is_file() and job.record.is_file()):
        return None
    try:
        record = json.loads(job.record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record["row"] if record.get("fingerprint") == job.fingerprint else None


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def open_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: to the scheduler at ``scheduler``, else to a new local cluster of
    ``workers`` single-threaded processes (default: one per CPU core), closed afterwards."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler)  # waits distributed.comm.timeouts.connect (Dask config)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} "
                               f"({type(exc).__name__}: {exc})") from None
        try:
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                raise ClusterError(f"the Dask scheduler at {scheduler} has no workers (none "
                                   f"joined within {WORKER_WAIT_S} s)") from None
            yield client
        finally:
            client.close()
        return
    with LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                      processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def dashboard_link(client: Any) -> str | None:
    """The Dask dashboard's address, when the scheduler serves one (it needs bokeh there)."""
    if "dashboard" not in client.scheduler_info(n_workers=0).get("services", {}):
        return None
    return client.dashboard_link if client.run_on_scheduler(_has_bokeh) else None


def _torch_threads(client: Any) -> int:
    """Threads per task for torch: each host's cores shared by the task threads on that host."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(os.cpu_count)
    per_host: Counter[str] = Counter()
    for w in workers.values():
        per_host[w["host"]] += w["nthreads"]
    return max(1, min(((cores.get(addr) or 1) // per_host[w["host"]]
                       for addr, w in workers.items()), default=1))


def prepare_workers(client: Any, methods: tuple[str, ...] = ()) -> None:
    """Set torch's threads in every worker (present and future) to its share of its host's
    cores, and load ``methods`` there once (:class:`~msgfusion.cohort.tasks.CohortWorkerSetup`)."""
    client.register_plugin(CohortWorkerSetup(_torch_threads(client), methods))


def _reason(exc: BaseException) -> str:
    """One line for an error that survived Dask's retries (a crashing worker, a bug)."""
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}".splitlines()[0]


def submit_chain(client: Any, job: SubjectJob, retries: int) -> Any:
    """Submit a subject's tasks read -> (register) -> fuse -> write -> score; the future of
    its row."""
    tag = f"{job.subject.id}-{job.fingerprint}"
    future = client.submit(read_subject, job, key=f"read-{tag}", retries=retries)
    steps = (("register", register_subject),) if job.register else ()
    for name, fn in (*steps, ("fuse", fuse_subject), ("write", write_subject)):
        future = client.submit(fn, future, key=f"{name}-{tag}", retries=retries)
    return client.submit(score_subject, future, key=f"score-{tag}", retries=retries)


def _remove_leftovers(out_dir: Path) -> None:
    """Delete temporary files of writes that a killed worker left half-done."""
    for folder in (out_dir / "fused", out_dir / "records"):
        for tmp in folder.glob(".*.part"):
            tmp.unlink(missing_ok=True)


def _compute(client: Any, jobs: Sequence[SubjectJob], config: CohortConfig,
             result_rows: dict[str, dict[str, Any]]) -> tuple[float, float, dict[str, float]]:
    """Run the jobs on the client's cluster, filling ``result_rows``; the seconds preparing
    the workers and from the first submission to the last result, and each worker's peak
    memory (MB)."""
    from distributed import as_completed

    start = time.perf_counter()
    prepare_workers(client, tuple(sorted({j.method for j in jobs})))
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    futures = {submit_chain(client, job, config.retries): job for job in jobs}
    with progress_bar(config.progress, total=len(jobs), desc="cohort", unit="subject") as bar:
        for future in as_completed(futures):
            job = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # survived the retries: record it, carry on
                row = {"id": job.subject.id, "status": "failed", "reason": _reason(exc),
                       "modality": job.subject.modality, "kind": job.subject.kind,
                       "method": job.method, "color": job.color, "output": ""}
            result_rows[job.subject.id] = {**row, "computed": True}
            future.release()
            bar.update(1)
    return setup_s, time.perf_counter() - start, client.run(_peak_rss_mb)


def run_cohort(config: CohortConfig, client: Any = None) -> CohortResult:
    """Fuse, write and score every subject of the manifest that is not up to date; write the
    results table. ``client``: a Dask client to use instead of opening one from the config."""
    if config.metrics not in METRIC_CHOICES:
        raise MsgFusionError(f"--metrics must be one of {', '.join(METRIC_CHOICES)}, "
                             f"not {config.metrics!r}")
    if config.workers is not None and config.workers < 1:
        raise ClusterError(f"--workers must be at least 1, got {config.workers}")
    out = Path(config.out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    subjects = read_manifest(config.manifest)
    jobs = plan_jobs(subjects, config)
    rows: dict[str, dict[str, Any]] = {}
    for job in jobs:
        recorded = up_to_date(job)
        if recorded is not None:
            rows[job.subject.id] = {**recorded, "computed": False}
    todo = [j for j in jobs if j.subject.id not in rows]
    (out / "fused").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    dashboard, setup_s, compute_s, peaks = None, 0.0, 0.0, {}
    if todo:
        with open_client(config.workers, config.scheduler) if client is None \
                else nullcontext(client) as client:
            dashboard = dashboard_link(client)
            if dashboard and config.progress:
                print(f"Dask dashboard: {dashboard}", file=sys.stderr)
            setup_s, compute_s, peaks = _compute(client, todo, config, rows)
    wall = time.perf_counter() - start
    _remove_leftovers(out)
    table = pd.DataFrame([rows[j.subject.id] for j in jobs])
    ordered = [c for c in _FIXED_COLUMNS if c in table.columns]
    table = table[ordered + [c for c in table.columns if c not in ordered]]
    write_text(out / "results.csv", table.map(spreadsheet_safe).to_csv(index=False),
               overwrite=True)
    atomic_write(out / "results.parquet", lambda f: table.to_parquet(f, index=False),
                 overwrite=True)
    return CohortResult(table, computed=len(todo), skipped=len(jobs) - len(todo), wall_s=wall,
                        compute_s=compute_s, setup_s=setup_s, dashboard=dashboard,
                        worker_peak_mb=peaks)
