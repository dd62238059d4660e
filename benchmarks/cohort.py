"""Cohorts at scale: ``cohort run`` against ``fuse-dir``, 1 and 2 workers, Dask's share, and a
simulation of 100 000 subjects through a real scheduler; writes ``docs/cohort.md``.

Part 1, the atlas: all pairs of ``../shared/data/aanlib`` (six folders: CT-, PET-, SPECT-MRI,
train and test), no metrics, the default method, each command a fresh process (start-up
included): ``msgfusion fuse-dir --workers 1`` on each folder, ``msgfusion cohort run
--workers 1`` and ``--workers 2`` on the manifest of the tree (``cohort make-manifest``), into
empty folders. Dask's own cost per task is measured with empty tasks; the scheduling share is
that cost times the run's tasks over the workers' time in the tasks.

Part 2, the simulation: ``--sim-subjects`` subjects of tiny 32 x 32 pairs (atlas PET pairs
scaled down, shared by many manifest rows) fused with the cheap ``average`` method through a
``dask scheduler`` process and two ``dask worker`` processes on loopback: a small run for the
client's base memory, the full run killed (SIGKILL to the client) half-way, and its re-run;
peak memory of client and scheduler, time per subject, the results table's size; then what
that predicts for 1 000 000 subjects.

    PYTHONPATH=src nice -n 10 python benchmarks/cohort.py              # writes docs/cohort.md
    PYTHONPATH=src python benchmarks/cohort.py --sim-subjects 5000 --output cohort-trial.md
    PYTHONPATH=src python benchmarks/cohort.py --render   # docs/cohort.md from docs/cohort.json

The measurements go to ``docs/cohort.json`` beside the page, which is rendered from them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import distributed
import numpy as np
import pandas as pd

from msgfusion.cohort import open_client
from msgfusion.cohort.deploy import loopback_deployment
from msgfusion.cohort.runner import MAX_SLICE_BATCH
from msgfusion.data.datasets import find_pair_folders
from msgfusion.io.images import read_image, write_image

REPO = Path(__file__).resolve().parents[1]
AANLIB = REPO.parent / "shared" / "data" / "aanlib"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
SIM_METHOD = "average"
SIM_SIZE = 32


class Command(NamedTuple):
    """A finished command: wall seconds, peak memory (MB), exit code, standard output."""

    wall_s: float
    peak_mb: float
    code: int
    stdout: str


def memory_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current, peak) resident memory of a process in MB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as fh:
        fields = dict(line.split(":", 1) for line in fh)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def msgfusion(*args: str | Path, stop_when=None) -> Command:
    """Run ``python -m msgfusion ARGS`` in a fresh process, following its peak memory (every
    0.2 s); with ``stop_when()``, SIGKILL it as soon as that returns true."""
    start = time.perf_counter()
    peak = 0.0
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", "msgfusion", *map(str, args)], env=ENV,
                                stdout=out, stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            try:
                peak = max(peak, memory_mb(proc.pid)[1])
            except (OSError, KeyError):  # it has just exited
                pass
            if stop_when is not None and stop_when():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.2)
        code = proc.wait()
        wall = time.perf_counter() - start
        out.seek(0)
        return Command(wall, peak, code, out.read())


def summary_numbers(stdout: str) -> dict[str, float]:
    """Counts and times from ``cohort run``'s summary lines."""
    numbers = {}
    if m := re.search(r"(\d+) done \((\d+) computed, (\d+) up to date", stdout):
        numbers.update(done=int(m[1]), computed=int(m[2]), skipped=int(m[3]))
    if m := re.search(r"wall time ([\d.]+) s, of which ([\d.]+) s computing: .* in (\d+) task",
                      stdout):
        numbers.update(cluster_s=float(m[1]), compute_s=float(m[2]), tasks=int(m[3]))
    return numbers


def _noop(x: int) -> int:
    return x


def task_overhead(workers: int, tasks: int) -> float:
    """Seconds per empty task through a local cluster of ``workers`` processes."""
    with open_client(workers) as client:
        client.gather(client.map(_noop, range(50), pure=False))  # warm connections
        start = time.perf_counter()
        client.gather(client.map(_noop, range(tasks), pure=False))
        return (time.perf_counter() - start) / tasks


def load() -> float:
    return os.getloadavg()[0]


def atlas_part(work: Path, aanlib: Path, workers: list[int], tasks: int) -> dict:
    """fuse-dir and cohort run on all atlas pairs; see the module doc."""
    folders = find_pair_folders(aanlib)
    pairs = sum(len(f) for f in folders)
    res: dict = {"pairs": pairs, "load": [load()]}
    start = time.perf_counter()
    for folder in folders:
        run = msgfusion("fuse-dir", folder.root, "-o", work / "fuse-dir" / folder.label,
                        "--workers", "1", "-q")
        assert run.code == 0, run.stdout
    res["fuse_dir_s"] = time.perf_counter() - start
    res["load"].append(load())
    manifest = work / "atlas.csv"
    made = msgfusion("cohort", "make-manifest", aanlib, "-o", manifest)
    assert made.code == 0
    res["manifest_s"] = made.wall_s
    for w in workers:
        out = work / f"cohort-{w}"
        run = msgfusion("cohort", "run", manifest, "-o", out, "--workers", w, "--metrics", "none")
        assert run.code == 0, run.stdout
        table = pd.read_parquet(out / "results.parquet")
        res[w] = {"wall_s": run.wall_s, **summary_numbers(run.stdout),
                  "task_s": float(table["total_s"].sum()), "cpu_s": float(table["cpu_s"].sum()),
                  "fuse_s": float(table["fuse_s"].sum()), "client_mb": run.peak_mb}
        res["load"].append(load())
    res["task_overhead_s"] = task_overhead(max(workers), tasks)
    res["load"].append(load())
    return res


def tiny_inputs(folder: Path, aanlib: Path, n: int) -> list[tuple[Path, Path]]:
    """``n`` atlas PET pairs scaled down to 32 x 32 (PNG)."""
    from PIL import Image

    source = [f for pair_folder in find_pair_folders(aanlib) if pair_folder.modality == "PET"
              for f in pair_folder.files][:n]
    pairs = []
    for f in source:
        paths = []
        for kind, path in (("mr", f.mr_path), ("pet", f.func_path)):
            image = read_image(path)
            small = np.asarray(Image.fromarray((image * 255).astype(np.uint8)).resize(
                (SIM_SIZE, SIM_SIZE), Image.BILINEAR), dtype=np.float32) / 255
            paths.append(write_image(folder / f"{f.stem}_{kind}.png", small, overwrite=True))
        pairs.append(tuple(paths))
    return pairs


def write_manifest(path: Path, pairs: list[tuple[Path, Path]], n: int) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "mr", "func", "modality"])
        writer.writerows((f"s{i:07d}", *pairs[i % len(pairs)], "PET") for i in range(n))


def count_files(folder: Path) -> int:
    try:
        return sum(1 for _ in os.scandir(folder))
    except FileNotFoundError:
        return 0


def folder_bytes(folder: Path) -> int:
    return sum(e.stat().st_size for e in os.scandir(folder))


def simulation_part(work: Path, aanlib: Path, subjects: int, batch: int) -> dict:
    """100 000 tiny subjects through a real scheduler; see the module doc."""
    from distributed import Client

    pairs = tiny_inputs(work / "tiny", aanlib, 100)
    small, full = work / "small.csv", work / "full.csv"
    write_manifest(small, pairs, 1000)
    write_manifest(full, pairs, subjects)
    res: dict = {"subjects": subjects, "batch": batch, "load": [load()]}
    common = ["--method", SIM_METHOD, "--metrics", "none", "--batch-size", str(batch)]
    with loopback_deployment(work / "dask", 2, env=ENV) as (address, _):
        def scheduler_mb() -> float:
            with Client(address) as client:
                return client.run_on_scheduler(memory_mb)[0]

        res["scheduler_mb"] = [scheduler_mb()]
        run = msgfusion("cohort", "run", small, "-o", work / "small", "--scheduler", address,
                        *common)
        assert run.code == 0, run.stdout
        res["small"] = {"wall_s": run.wall_s, "client_mb": run.peak_mb,
                        **summary_numbers(run.stdout)}
        res["scheduler_mb"].append(scheduler_mb())
        out = work / "full"
        killed = msgfusion("cohort", "run", full, "-o", out, "--scheduler", address, *common,
                           stop_when=lambda: count_files(out / "records") >= subjects // 2)
        time.sleep(2)  # tasks already running on the workers finish
        res["killed"] = {"wall_s": killed.wall_s, "client_mb": killed.peak_mb,
                         "code": killed.code, "records": count_files(out / "records")}
        res["scheduler_mb"].append(scheduler_mb())
        res["load"].append(load())
        resumed = msgfusion("cohort", "run", full, "-o", out, "--scheduler", address, *common)
        assert resumed.code == 0, resumed.stdout
        table = pd.read_parquet(out / "results.parquet")
        res["resumed"] = {"wall_s": resumed.wall_s, "client_mb": resumed.peak_mb,
                          **summary_numbers(resumed.stdout),
                          "task_s": float(table.loc[table["computed"], "total_s"].sum()),
                          "rows": len(table), "done": int((table["status"] == "done").sum())}
        res["scheduler_mb"].append(scheduler_mb())
        with Client(address) as client:
            res["worker_mb"] = sorted(p for _, p in client.run(memory_mb).values())
    res["load"].append(load())
    res["sizes"] = {name: (out / name).stat().st_size
                    for name in ("results.sqlite", "results.csv", "results.parquet")}
    res["records"] = (count_files(out / "records"), folder_bytes(out / "records"))
    res["outputs"] = (count_files(out / "fused"), folder_bytes(out / "fused"))
    return res


def report(atlas: dict, sim: dict, workers: list[int]) -> str:
    base, top = workers[0], max(workers)
    a1, a2 = atlas[base], atlas[top]
    rate = {w: atlas[w]["computed"] / atlas[w]["compute_s"] for w in workers}
    overhead = atlas["task_overhead_s"]
    share = {w: overhead * atlas[w]["tasks"] / atlas[w]["task_s"] for w in workers}
    idle = {w: 1 - atlas[w]["task_s"] / (w * atlas[w]["compute_s"]) for w in workers}
    cores = {w: atlas[w]["cpu_s"] / atlas[w]["compute_s"] for w in workers}
    # Shared or not is told by the load before the benchmark's first command: once it runs, the
    # load average is its own (two workers on two cores make a load of about 2).
    loaded = atlas["load"][0] > 0.5 * (os.cpu_count() or 1)
    per_pair_cpu = a2["cpu_s"] / a2["computed"]
    lines = [
        "# Whole cohorts on Dask: cost per subject, workers, scale",
        "",
        "Generated by `PYTHONPATH=src nice -n 10 python benchmarks/cohort.py` (it rewrites this "
        "file; see its doc for what runs).",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, dask/distributed {distributed.__version__}",
        "- load average (1 min) during the atlas part: "
        + ", ".join(f"{x:.1f}" for x in atlas["load"]) + "; during the simulation: "
        + ", ".join(f"{x:.1f}" for x in sim["load"]) + " (before, between the steps, after)",
    ]
    if loaded:
        lines += ["", f"**The machine was shared with other jobs while this ran** (load average "
                  f"{atlas['load'][0]:.1f} before the first command, on {os.cpu_count()} cores): "
                  "the workers waited for CPU, so the times below are what this loaded machine "
                  "gave, not its capacity. **The goal of 2 workers >= 1.8x of 1 cannot be "
                  "judged from them** (the second worker found no idle core of its own); the "
                  "comparison with `fuse-dir` ran under the same load, one command after the "
                  "other. Rerun on a "
                  "quiet machine."]
    else:
        lines += ["", f"The machine ran nothing else (load average {atlas['load'][0]:.1f} before "
                  "the first command; the later values are the benchmark's own load)."]
    lines += [
        "",
        f"## All {atlas['pairs']} atlas pairs, no metrics, default method",
        "",
        "Each command a fresh process, start-up included (Python, torch, the cluster, the "
        "method's weights in every worker), into an empty folder.",
        "",
        "| command | wall (s) | ratio to fuse-dir | computing (s) | pairs / s computing | "
        "tasks | scheduling share | workers idle | cores' worth of CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| `fuse-dir --workers 1` on the six folders (six runs) | {atlas['fuse_dir_s']:.1f} | "
        "1.00 | | | | | | |",
    ]
    for w in workers:
        r = atlas[w]
        lines.append(
            f"| `cohort run --workers {w} --metrics none` | {r['wall_s']:.1f} | "
            f"{r['wall_s'] / atlas['fuse_dir_s']:.2f} | {r['compute_s']:.1f} | {rate[w]:.1f} | "
            f"{r['tasks']} | {100 * share[w]:.1f} % | {100 * idle[w]:.0f} % | {cores[w]:.2f} |")
    lines += [
        "",
        f"- `cohort make-manifest` of the tree took {atlas['manifest_s']:.1f} s (not in the "
        "times above).",
        f"- 2 workers against 1: {rate[top] / rate[base]:.2f}x the pairs per second while "
        f"computing, {a1['wall_s'] / a2['wall_s']:.2f}x by wall time; the cohort got "
        f"{cores[base]:.2f} and {cores[top]:.2f} cores' worth of CPU"
        + (" (the other jobs took the rest)" if loaded else "") + ".",
        f"- Dask's cost per task (2000 empty tasks, client, scheduler and workers on the same "
        f"cores): {1e3 * overhead:.2f} ms. The run's tasks are batches of up to "
        f"{-(-a1['computed'] // a1['tasks'])} pairs, so the scheduling share (that cost times "
        "the tasks, over the workers' time in the tasks) is "
        + ", ".join(f"{100 * share[w]:.1f} % with {w} worker(s)" for w in workers)
        + "; before batching a subject was a chain of four tasks (about 17 ms of Dask per "
        "subject, more than fusing a pair).",
        f"- Per pair, inside the tasks: {a2['task_s'] / a2['computed'] * 1e3:.1f} ms of wall "
        f"time, of which fusion {a2['fuse_s'] / a2['computed'] * 1e3:.1f} ms; "
        f"{per_pair_cpu * 1e3:.1f} ms of CPU.",
        f"- Peak memory of the client process: {a1['client_mb']:.0f} MB (1 worker), "
        f"{a2['client_mb']:.0f} MB (2 workers): it holds the plan and the rows' counters, no "
        "image.",
    ]
    s, k, rs = sim, sim["killed"], sim["resumed"]
    n = s["subjects"]
    client_per_subject = (max(k["client_mb"], rs["client_mb"]) - s["small"]["client_mb"]) \
        / (n - 1000) * 2**20
    per_subject_s = 2 * rs["compute_s"] / rs["computed"]
    in_tasks_s = rs["task_s"] / rs["computed"]
    beyond_s = per_subject_s - in_tasks_s
    table_bytes = s["sizes"]["results.parquet"] / n
    lines += [
        "",
        f"## {n:,} subjects through a real scheduler (simulation)",
        "",
        f"Tiny {SIM_SIZE} x {SIM_SIZE} pairs (100 atlas PET pairs scaled down, each used by "
        f"many rows), method `{SIM_METHOD}`, no metrics, `--batch-size {s['batch']}`, a `dask "
        "scheduler` process and two single-threaded `dask worker` processes on loopback; the "
        "client is `msgfusion cohort run --scheduler`.",
        "",
        "| run | subjects computed | skipped | wall (s) | computing (s) | client peak (MB) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| 1 000 subjects | {s['small']['computed']} | 0 | {s['small']['wall_s']:.1f} | "
        f"{s['small']['compute_s']:.1f} | {s['small']['client_mb']:.0f} |",
        f"| {n:,} subjects, client killed (SIGKILL) at half | {k['records']} recorded | | "
        f"{k['wall_s']:.1f} | | {k['client_mb']:.0f} |",
        f"| the same, re-run | {rs['computed']} | {rs['skipped']} | {rs['wall_s']:.1f} | "
        f"{rs['compute_s']:.1f} | {rs['client_mb']:.0f} |",
        "",
        f"- Resume: the re-run found {rs['skipped']:,} subjects recorded (the killed client's "
        f"and those its running tasks finished), computed the other {rs['computed']:,}, and the "
        f"table has {rs['rows']:,} rows, {rs['done']:,} done: none lost, none twice. "
        f"Start-up (Python, the method) and planning the re-run (reading the manifest twice, "
        f"checking {n:,} records) took "
        f"{rs['wall_s'] - rs['cluster_s']:.1f} s of its wall time.",
        "- Scheduler memory (resident, MB): " + ", ".join(
            f"{m:.0f} {when}" for m, when in zip(s["scheduler_mb"], (
                "at the start", "after the 1 000-subject run", "after the killed run",
                "after the re-run"))) + ". The first run's step is the scheduler importing what "
        "unpickles a task (numpy, msgfusion.cohort); after that it stays flat, because the "
        "client keeps at most three batches per worker in flight and the scheduler's debug "
        "log of messages is cut to 20 per connection (`DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_"
        "LENGTH=20`, set by `loopback_deployment` and `cohort run --workers`; with Dask's "
        "default of 1000 it keeps the last 1000 batches per worker, about 1.8 kB per subject). "
        "Workers: " + ", ".join(f"{p:.0f}" for p in s["worker_mb"]) + " MB peak.",
        f"- Client memory: {s['small']['client_mb']:.0f} MB peak for 1 000 subjects, "
        f"{max(k['client_mb'], rs['client_mb']):.0f} MB for {n:,}: about "
        f"{client_per_subject:.0f} bytes per subject if it were all linear, an upper bound: the "
        "manifest is read a row at a time (twice), rows go to `results.sqlite` as they come "
        "and are exported 20 000 at a time, so what grows with the cohort is the set of ids "
        "that refuses a duplicate; part of the difference is the export's bounded chunk. No "
        "image and no row is held.",
        f"- Time per subject: {1e3 * per_subject_s:.2f} ms of a worker (2 workers x computing "
        f"time / subjects), of which {1e3 * in_tasks_s:.2f} ms in the steps (read, fuse, write)"
        f" and {1e3 * beyond_s:.2f} ms outside them (the worker's record and check, Dask's "
        "scheduling, waiting for the client); Dask's measured cost per task over the batch is "
        f"{1e3 * overhead / s['batch']:.3f} ms per subject.",
        f"- Results table: {s['sizes']['results.parquet'] / 1e6:.1f} MB Parquet, "
        f"{s['sizes']['results.csv'] / 1e6:.1f} MB CSV, {s['sizes']['results.sqlite'] / 1e6:.1f}"
        f" MB SQLite for {n:,} rows; records: {s['records'][0]:,} files, "
        f"{s['records'][1] / 1e6:.0f} MB; fused outputs: {s['outputs'][0]:,} files, "
        f"{s['outputs'][1] / 1e6:.0f} MB.",
        "",
        "## What this predicts for 1 000 000 subjects",
        "",
        f"- Client: at most about "
        f"{(s['small']['client_mb'] + client_per_subject * 1e6 / 2**20):.0f} MB (its base plus "
        "the growth per subject above taken as linear); the scheduler stays at the "
        "size it had after its first batches (bounded submission window, short message log).",
        f"- Table: about {table_bytes * 1e6 / 1e6:.0f} MB Parquet, "
        f"{s['sizes']['results.csv'] / n:.0f} MB CSV; 1 000 000 record files "
        f"({s['records'][1] / n * 1e6 / 1e9:.1f} GB) beside 1 000 000 outputs: a file system "
        "that holds millions of small files (or one output folder per shard of the manifest).",
        f"- Time: a real 256 x 256 slice pair costs {per_pair_cpu * 1e3:.0f} ms of CPU with the "
        f"default network (atlas part, one torch thread), i.e. {per_pair_cpu * 1e6 / 3600:.0f} "
        "CPU-hours for 1 000 000: "
        + ", ".join(f"{per_pair_cpu * 1e6 / 60 / w:.0f} min on {w} workers"
                    for w in (16, 64, 256))
        + f" with a core each. Dask's cost per task ({1e3 * overhead:.1f} ms here) over "
        f"batches of {MAX_SLICE_BATCH} pairs is under 1 % of that, so one scheduler keeps up "
        f"with about {per_pair_cpu * MAX_SLICE_BATCH / overhead:.0f} workers on such pairs "
        "before it becomes the limit (more per task beyond that).",
        "",
        "## Elsewhere, or not measured",
        "",
        "- **SLURM** through dask-jobqueue: run once on a single-node SLURM started on this "
        "machine, not in the test suite (it needs root to start `slurmctld`, `slurmd` and "
        "`munged`): [cohort_slurm.md](cohort_slurm.md), by `benchmarks/cohort_slurm.py`.",
        "- **GPU**: no GPU machine was lent to this task, so the GPU goal (large batches on the "
        "GPU while the cores decode and encode) is not measured.",
    ]
    return "\n".join(lines) + "\n"


def render(atlas: dict, sim: dict) -> str:
    """The page for a run's measurements."""
    return report(atlas, sim, sorted(w for w in atlas if isinstance(w, int)))


def save(path: Path, atlas: dict, sim: dict) -> None:
    path.write_text(json.dumps({"atlas": atlas, "sim": sim}, indent=1) + "\n")


def load_measurements(path: Path) -> tuple[dict, dict]:
    """The measurements of a run (JSON turns the worker counts into strings: back to ints)."""
    data = json.loads(path.read_text())
    atlas = {int(k) if k.isdigit() else k: v for k, v in data["atlas"].items()}
    return atlas, data["sim"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tasks", type=int, default=2000, help="empty tasks for the overhead")
    parser.add_argument("--sim-subjects", type=int, default=100_000)
    parser.add_argument("--sim-batch", type=int, default=500,
                        help="subjects per task in the simulation")
    parser.add_argument("--aanlib", type=Path, default=AANLIB,
                        help="the atlas tree (default: ../shared/data/aanlib)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "cohort.md")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: render the page from the measurements file")
    args = parser.parse_args()
    measurements = args.output.with_suffix(".json")
    if args.render:
        atlas, sim = load_measurements(measurements)
    else:
        work = args.work or Path(tempfile.mkdtemp(prefix="cohort-bench-"))
        try:
            atlas = atlas_part(work / "atlas", args.aanlib, args.workers, args.tasks)
            print(atlas, flush=True)
            sim = simulation_part(work / "sim", args.aanlib, args.sim_subjects, args.sim_batch)
            print(sim, flush=True)
        finally:
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)
        save(measurements, atlas, sim)
    text = render(atlas, sim)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
