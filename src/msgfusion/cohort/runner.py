"""Run a cohort on Dask: plan what is out of date, submit batches of subjects, stream the table.

Layout of the output folder (which is also the record of what is done)::

    fused/<id>.png | <id>.nii.gz   the fused slice or volume of each subject (written atomically),
                                   or the path of the manifest's ``output`` column (a BIDS
                                   derivatives dataset: see :mod:`.bids`)
    fused/<id>.tfm, <id>_qa.png    with ``register``: the transform and the QA figure
    records/<id>.json              fingerprint and result row, written when the subject is done
    results.sqlite                 the rows as they arrive (the client keeps none in memory)
    results.csv, results.parquet   one row per subject: status, reason, warnings, timings, metrics

A subject is up to date when its record's fingerprint (method name and the method's own
fingerprint: source and weights; colour; metrics; registration; the input files' paths, sizes and
modification times) matches and its output exists; a re-run skips it and recomputes the rest.

Subjects travel to the workers in batches (:func:`make_batches`: several slice pairs per task,
fused by one :func:`msgfusion.fuse_many` call; one volume pair per task), so that Dask's cost of
a few milliseconds per task is shared. The client keeps a bounded number of batches in flight and
submits the next as one completes; each batch's rows go to ``results.sqlite`` as it completes.

The cluster is a :class:`distributed.LocalCluster` of ``workers`` single-threaded processes, or
an existing cluster reached at ``scheduler`` (``dask scheduler`` / ``dask worker`` processes,
SLURM through dask-jobqueue, Kubernetes, a cloud service: any Dask scheduler), or a
:class:`distributed.Client` the caller already holds. Tasks are submitted with ``retries``, and
the scheduler runs the batches of a worker that dies again elsewhere; subjects that the dead
worker had already recorded are not computed again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import resource
import sqlite3
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from msgfusion import DEFAULT_METHOD, method_fingerprint
from msgfusion.cohort.bids import is_bids_output, write_dataset_description
from msgfusion.cohort.manifest import Subject, iter_manifest
from msgfusion.cohort.tasks import (
    KINDS,
    STEPS,
    CohortWorkerSetup,
    SubjectJob,
    recorded_row,
    run_batch,
)
from msgfusion.errors import ClusterError, MsgFusionError, OutputExistsError
from msgfusion.io.color import DEFAULT_COLOR_MODE
from msgfusion.io.files import spreadsheet_safe
from msgfusion.metrics import resolve_names
from msgfusion.progress import progress_bar

METRIC_CHOICES = ("paper", "all", "none")
RECORD_VERSION = 2
WORKER_WAIT_S = 60
#: Slice pairs per task at most: at ~10-30 ms a pair, a task of 32 takes 0.3-1 s, against
#: Dask's few ms per task.
MAX_SLICE_BATCH = 32
#: Batches waiting per worker beyond the one it runs (so that no worker waits for the client).
QUEUED_PER_WORKER = 2
EXPORT_CHUNK = 20000


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
    batch_size: int | None = None  # slice pairs per task (default: see make_batches)


@dataclass
class CohortResult:
    """What the run did; the results table (manifest order) is read from ``results.parquet``
    on demand (:attr:`table`), so that a run of a million subjects holds no table in memory."""

    out_dir: Path
    counts: dict[str, int]
    computed: int
    skipped: int
    wall_s: float  # the whole run
    compute_s: float = 0.0  # from the first submission to the last result
    setup_s: float = 0.0  # loading torch and the methods in the workers (CohortWorkerSetup)
    tasks: int = 0  # batches submitted
    dashboard: str | None = None
    worker_peak_mb: dict[str, float] = field(default_factory=dict)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # id, status, reason
    means: dict[str, float] = field(default_factory=dict)  # metrics over the done subjects

    @property
    def table(self) -> pd.DataFrame:
        return pd.read_parquet(Path(self.out_dir) / "results.parquet")

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary_lines(self) -> list[str]:
        """What was done, skipped and failed (with reasons), throughput, mean metrics."""
        n, done, doubtful = self.total, self.count("done"), self.count("doubtful")
        lines = [f"{n} subject(s): {done} done ({self.computed} computed, {self.skipped} up to "
                 f"date and skipped), {n - done - doubtful} failed"
                 + (f", {doubtful} doubtful (look at their QA figures)" if doubtful else "")]
        if self.computed and self.compute_s > 0:
            lines.append(f"wall time {self.wall_s:.1f} s, of which {self.compute_s:.1f} s "
                         f"computing: {60 * self.computed / self.compute_s:.1f} subjects/minute"
                         f" in {self.tasks} task(s)")
        if self.worker_peak_mb:
            peaks = sorted(self.worker_peak_mb.values())
            lines.append(f"{len(peaks)} worker(s), peak memory {peaks[0]:.0f}-{peaks[-1]:.0f} MB "
                         "each")
        if self.means:
            lines.append("mean " + ", ".join(f"{m} {v:.4g}" for m, v in self.means.items()))
        lines += [f"  {sid}: {reason}" for sid, _, reason in self.failures]
        return lines


_TEXT_COLUMNS = ("id", "status", "reason", "warnings", "modality", "kind", "method", "color",
                 "registration", "output", "transform", "qa_figure", "worker")
_FIXED_COLUMNS = (*_TEXT_COLUMNS, "computed", "pid", *(f"{s}_s" for s in STEPS), "total_s",
                  "cpu_s")


def _file_identity(path: Path) -> list[Any]:
    try:
        st = path.stat()
        return [str(path.resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path), None, None]  # missing: the read step reports it


def plan_jobs(subjects: Iterable[Subject], config: CohortConfig,
              on_failed: Callable[[int, Subject], None] | None = None) -> Iterator[SubjectJob]:
    """One job per subject, in manifest order, with its position in the manifest, output, record
    path (absolute: workers may run in another folder) and fingerprint; a subject the manifest
    marks failed has no job (``on_failed(position, subject)`` is called instead)."""
    out = Path(config.out_dir).absolute()
    metrics = tuple(resolve_names(config.metrics)) if config.metrics != "none" else ()
    method_fps: dict[str, str] = {}
    for index, s in enumerate(subjects):
        if s.failed:
            if on_failed is not None:
                on_failed(index, s)
            continue
        method = s.options.get("method", config.method)
        if method not in method_fps:
            method_fps[method] = method_fingerprint(method)
        color = s.options.get("color", config.color)
        key = {"version": RECORD_VERSION, "method": method, "method_fp": method_fps[method],
               "color": color, "metrics": metrics, "modality": s.modality,
               "register": config.register, "output": s.options.get("output", ""),
               "mr": _file_identity(s.mr), "func": _file_identity(s.func)}
        fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        output = out / s.options["output"] if "output" in s.options \
            else out / "fused" / f"{s.id}{KINDS[s.kind].suffix}"
        yield SubjectJob(s, method, color, metrics, output, out / "records" / f"{s.id}.json",
                         fingerprint, config.register, method_fps[method],
                         sidecar=is_bids_output(s.options), index=index)


def slice_batch_size(slices: int, workers: int, batch_size: int | None = None) -> int:
    """Slice pairs per task: ``batch_size``, else enough tasks for four per worker, at most
    :data:`MAX_SLICE_BATCH` pairs each."""
    return batch_size or max(1, min(MAX_SLICE_BATCH, math.ceil(slices / (4 * workers))))


def make_batches(jobs: Iterable[SubjectJob], size: int) -> Iterator[list[SubjectJob]]:
    """The tasks of a run, in manifest order: each volume pair alone, consecutive slice pairs
    ``size`` per task."""
    pending: list[SubjectJob] = []
    for job in jobs:
        if job.subject.kind != "slice":
            yield [job]
            continue
        pending.append(job)
        if len(pending) == size:
            yield pending
            pending = []
    if pending:
        yield pending


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: Linux's VmHWM (``ru_maxrss`` instead
    elsewhere; on Linux it would start from the parent's peak at the fork, across exec)."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration, ValueError):
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
    import dask

    from msgfusion.cohort.deploy import SCHEDULER_LOG_LENGTH

    with dask.config.set({"distributed.admin.low-level-log-length": int(SCHEDULER_LOG_LENGTH)}), \
            LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                         processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
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


def _remove_leftovers(out_dir: Path) -> None:
    """Delete temporary files of writes that a killed worker left half-done."""
    for tmp in out_dir.rglob(".*.part"):
        tmp.unlink(missing_ok=True)


class ResultsTable:
    """The rows of a run in ``results.sqlite`` (manifest position, id, status, the row as JSON),
    written as they arrive; exported at the end to CSV and Parquet in chunks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)  # a table per run: a re-run rewrites it
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE rows (idx INTEGER PRIMARY KEY, id TEXT, status TEXT, "
                        "row TEXT)")
        self.columns: dict[str, None] = {}  # every key of a row, in order of appearance
        self._pending = 0

    def add(self, index: int, row: dict[str, Any]) -> None:
        self.columns.update(dict.fromkeys(row))
        self.db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?, ?)",
                        (index, row["id"], row["status"], json.dumps(row)))
        self._pending += 1
        if self._pending >= 1000:
            self.commit()

    def add_failed(self, index: int, subject: Subject) -> None:
        """The row of a subject the manifest marks failed."""
        self.add(index, {"id": subject.id, "status": "failed", "reason": subject.failed,
                         "modality": subject.modality, "computed": False})

    def commit(self) -> None:
        self.db.commit()
        self._pending = 0

    def close(self) -> None:
        self.db.commit()
        self.db.close()

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The table in manifest order, :data:`EXPORT_CHUNK` rows at a time, every chunk with
        the same columns and types."""
        columns = [c for c in _FIXED_COLUMNS if c in self.columns] + \
            [c for c in self.columns if c not in _FIXED_COLUMNS]
        cursor = self.db.execute("SELECT row FROM rows ORDER BY idx")
        while batch := cursor.fetchmany(EXPORT_CHUNK):
            frame = pd.DataFrame([json.loads(r) for (r,) in batch]).reindex(columns=columns)
            for c in columns:
                if c in _TEXT_COLUMNS:
                    frame[c] = frame[c].fillna("").astype(str)
                elif c == "computed":
                    frame[c] = frame[c].fillna(False).astype(bool)
                elif c == "pid":
                    frame[c] = frame[c].astype("Int64")
                else:
                    frame[c] = frame[c].astype("float64")
            yield frame

    def export(self, out: Path) -> tuple[dict[str, int], list[tuple[str, str, str]],
                                         dict[str, float]]:
        """Write ``results.csv`` and ``results.parquet`` (atomically); the counts per status,
        the subjects not done (id, status, reason) and the mean metrics of the done ones."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.commit()
        counts: Counter[str] = Counter()
        failures: list[tuple[str, str, str]] = []
        sums: dict[str, float] = {}
        n_done = 0
        csv_tmp = out / ".results.csv.part"
        pq_tmp = out / ".results.parquet.part"
        writer = None
        try:
            with csv_tmp.open("w", newline="", encoding="utf-8") as csv_file:
                for i, frame in enumerate(self.chunks()):
                    frame.map(spreadsheet_safe).to_csv(csv_file, index=False, header=i == 0)
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    writer = writer or pq.ParquetWriter(pq_tmp, table.schema)
                    writer.write_table(table)
                    counts.update(frame["status"])
                    bad = frame[frame["status"] != "done"]
                    failures += list(zip(bad["id"], bad["status"], bad["reason"]))
                    done = frame[frame["status"] == "done"]
                    n_done += len(done)
                    for c in frame.columns:
                        if c not in _FIXED_COLUMNS:
                            sums[c] = sums.get(c, 0.0) + float(done[c].sum())
            if writer is not None:
                writer.close()
                writer = None
            os.replace(csv_tmp, out / "results.csv")
            os.replace(pq_tmp, out / "results.parquet")
        finally:
            if writer is not None:
                writer.close()
            csv_tmp.unlink(missing_ok=True)
            pq_tmp.unlink(missing_ok=True)
        means = {c: s / n_done for c, s in sums.items()} if n_done else {}
        return dict(counts), failures, means


@dataclass
class Census:
    """What the whole manifest holds, from a first pass that checks every row (a bad row stops
    the run before anything is written) and keeps nothing per subject."""

    subjects: int = 0
    slices: int = 0
    methods: set[str] = field(default_factory=set)
    bids: bool = False

    @classmethod
    def of(cls, config: CohortConfig) -> Census:
        census = cls()
        for s in iter_manifest(config.manifest):
            census.subjects += 1
            if not s.failed:
                census.slices += s.kind == "slice"
                census.methods.add(s.options.get("method", config.method))
                census.bids |= is_bids_output(s.options)
        return census


@dataclass
class _Progress:
    """Subjects found up to date or marked failed in the manifest, as the plan goes by."""

    skipped: int = 0
    failed: int = 0


def _todo(config: CohortConfig, table: ResultsTable, progress: _Progress
          ) -> Iterator[SubjectJob]:
    """The jobs not up to date, in manifest order, read from the manifest as they are needed;
    the rows of the others (recorded, or marked failed in the manifest) go to ``table``."""
    for job in plan_jobs(iter_manifest(config.manifest), config, on_failed=table.add_failed):
        recorded = recorded_row(job)
        if recorded is None:
            yield job
        else:
            table.add(job.index, {**recorded, "computed": False})
            progress.skipped += 1


def _compute(client: Any, jobs: Iterator[SubjectJob], census: Census, config: CohortConfig,
             table: ResultsTable, progress: _Progress
             ) -> tuple[float, float, int, int, dict[str, float]]:
    """Run the jobs on the client's cluster, a bounded number of batches in flight, streaming
    their rows into ``table``; the seconds preparing the workers and from the first submission
    to the last result, the number of tasks and of subjects computed, and each worker's peak
    memory (MB)."""
    from distributed import as_completed

    start = time.perf_counter()
    prepare_workers(client, tuple(sorted(census.methods)))
    setup_s = time.perf_counter() - start
    workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    batches = make_batches(jobs, slice_batch_size(census.slices, workers, config.batch_size))
    futures: dict[Any, list[SubjectJob]] = {}
    pending = as_completed()
    n_tasks = computed = 0
    start = time.perf_counter()

    def submit() -> None:
        nonlocal n_tasks
        batch = next(batches, None)
        if batch is not None:
            future = client.submit(run_batch, batch, key=f"cohort-{batch[0].subject.id}-"
                                   f"{batch[0].fingerprint}", retries=config.retries)
            futures[future] = batch
            pending.add(future)
            n_tasks += 1

    for _ in range(workers * (1 + QUEUED_PER_WORKER)):
        submit()
    with progress_bar(config.progress, total=census.subjects, desc="cohort",
                      unit="subject") as bar:
        shown = 0
        for future in pending:
            batch = futures.pop(future)
            try:
                rows = future.result()
            except Exception as exc:  # survived the retries: record it, carry on
                reason = _reason(exc)
                rows = [{"id": job.subject.id, "status": "failed", "reason": reason,
                         "modality": job.subject.modality, "kind": job.subject.kind,
                         "method": job.method, "color": job.color, "output": ""}
                        for job in batch]
            future.release()
            for job, row in zip(batch, rows):
                table.add(job.index, {**row, "computed": True})
            table.commit()
            computed += len(rows)
            submit()
            now = computed + progress.skipped + progress.failed
            bar.update(now - shown)
            shown = now
    return setup_s, time.perf_counter() - start, n_tasks, computed, client.run(_peak_rss_mb)


def run_cohort(config: CohortConfig, client: Any = None) -> CohortResult:
    """Fuse, write and score every subject of the manifest that is not up to date; write the
    results table. ``client``: a Dask client to use instead of opening one from the config.

    The manifest is read twice, a row at a time (to check it, then to plan and submit), so
    that the client's memory does not grow with the cohort."""
    if config.metrics not in METRIC_CHOICES:
        raise MsgFusionError(f"--metrics must be one of {', '.join(METRIC_CHOICES)}, "
                             f"not {config.metrics!r}")
    if config.workers is not None and config.workers < 1:
        raise ClusterError(f"--workers must be at least 1, got {config.workers}")
    if config.batch_size is not None and config.batch_size < 1:
        raise MsgFusionError(f"--batch-size must be at least 1, got {config.batch_size}")
    out = Path(config.out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    census = Census.of(config)
    for method in census.methods:
        method_fingerprint(method)  # an unknown method stops here, before any output
    out.mkdir(parents=True, exist_ok=True)
    table = ResultsTable(out / "results.sqlite")
    progress = _Progress()
    with closing(table.db):
        todo = _todo(config, table, progress)
        first = next(todo, None)  # a cohort all done opens no cluster
        if census.bids:
            write_dataset_description(out, config.manifest)
        start = time.perf_counter()
        dashboard, setup_s, compute_s, n_tasks, computed, peaks = None, 0.0, 0.0, 0, 0, {}
        if first is not None:
            with open_client(config.workers, config.scheduler) if client is None \
                    else nullcontext(client) as client:
                dashboard = dashboard_link(client)
                if dashboard and config.progress:
                    print(f"Dask dashboard: {dashboard}", file=sys.stderr)
                setup_s, compute_s, n_tasks, computed, peaks = _compute(
                    client, itertools.chain([first], todo), census, config, table, progress)
        wall = time.perf_counter() - start
        _remove_leftovers(out)
        counts, failures, means = table.export(out)
    return CohortResult(out, counts, computed=computed, skipped=progress.skipped, wall_s=wall,
                        compute_s=compute_s, setup_s=setup_s, tasks=n_tasks,
                        dashboard=dashboard, worker_peak_mb=peaks, failures=failures,
                        means=means)
