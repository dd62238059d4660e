"""Throughput of ``msgfusion cohort run`` on 1 and 2 local workers; writes ``docs/cohort.md``.

A synthetic cohort of ``--subjects`` subjects is run with the default method and the paper's
metrics on a fresh local cluster of 1 and of 2 single-threaded worker processes, each into an
empty output folder: ``--volumes`` volume pairs made from the SPM templates (T1, T2 or PD with
PET or SPECT, 91 x 109 x 91 at 2 mm) and atlas slice pairs for the rest (equal numbers of CT-,
PET- and SPECT-MRI from the train and test splits of ``../shared/data/aanlib``). Measured:
subjects per minute (from the first submission to the last result, and with the cluster's
start), the ratio, each worker's peak memory, the mean wall and CPU time per step and kind of
input, and Dask's own cost per task (a burst of empty tasks).

    PYTHONPATH=src python benchmarks/cohort.py                  # writes docs/cohort.md
    PYTHONPATH=src python benchmarks/cohort.py --subjects 30 --volumes 4 --output cohort_small.md
"""

from __future__ import annotations

import argparse
import csv
import os
import pickle
import platform
import tempfile
import time
from pathlib import Path

import distributed
import pandas as pd

from msgfusion.cohort import CohortConfig, CohortResult, open_client, run_cohort
from msgfusion.data.datasets import AANLIB_PAIRS, SPLITS, PairFolder
from msgfusion.io.color import DEFAULT_COLOR_MODE
from msgfusion.methods.registry import DEFAULT_METHOD

REPO = Path(__file__).resolve().parents[1]
AANLIB = REPO.parent / "shared" / "data" / "aanlib"
SPM = REPO.parent / "shared" / "data" / "volumes" / "spm_oldnorm"
STEPS = ("read", "fuse", "write", "score")


def write_cohort(manifest: Path, subjects: int, volumes: int) -> dict[str, int]:
    """A manifest of ``volumes`` SPM volume pairs and atlas slice pairs for the rest (a third
    per modality); the input bytes of each subject, by id."""
    rows = []
    combos = [(mr, func) for func in ("PET", "SPECT") for mr in ("T1", "T2", "PD")]
    for i in range(volumes):
        mr, func = combos[i % len(combos)]
        rows.append({"id": f"spm-{mr}-{func}-{i // len(combos)}", "mr": SPM / f"{mr}.nii.gz",
                     "func": SPM / f"{func}.nii.gz", "modality": func})
    slices = subjects - volumes
    per = -(-slices // len(AANLIB_PAIRS))
    for pair in AANLIB_PAIRS:
        files = [f for split in SPLITS for f in PairFolder(AANLIB / pair / split).files][:per]
        rows += [{"id": f"{pair}-{f.stem}", "mr": f.mr_path, "func": f.func_path,
                  "modality": f.modality} for f in files]
    rows = rows[:subjects]
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["id", "mr", "func", "modality"])
        writer.writeheader()
        writer.writerows(rows)
    return {r["id"]: r["mr"].stat().st_size + r["func"].stat().st_size for r in rows}


def _noop(x: int) -> int:
    return x


def task_overhead(workers: int, tasks: int) -> tuple[float, float]:
    """Seconds per empty task through the scheduler: independent tasks, and chains of four
    (a subject's shape), on a local cluster of ``workers`` processes."""
    with open_client(workers) as client:
        client.gather(client.map(_noop, range(50), pure=False))  # warm connections
        start = time.perf_counter()
        client.gather(client.map(_noop, range(tasks), pure=False))
        flat = (time.perf_counter() - start) / tasks
        start = time.perf_counter()
        chains = []
        for i in range(tasks // 4):
            f = client.submit(_noop, i, pure=False)
            for _ in range(3):
                f = client.submit(_noop, f, pure=False)
            chains.append(f)
        client.gather(chains)
        chained = (time.perf_counter() - start) / (4 * (tasks // 4))
    return flat, chained


def run(manifest: Path, workers: int, work: Path) -> tuple[CohortResult, float]:
    """A cohort run on a fresh local cluster; the result and the whole wall time."""
    config = CohortConfig(manifest, work / f"out-{workers}", workers=workers, progress=False)
    start = time.perf_counter()
    result = run_cohort(config)
    return result, time.perf_counter() - start


def report(args: argparse.Namespace) -> str:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest = work / "manifest.csv"
        input_bytes = write_cohort(manifest, args.subjects, args.volumes)
        runs = {w: run(manifest, w, work) for w in args.workers}
        top_out = work / f"out-{max(args.workers)}" / "fused"
        output_bytes = {p.name.split(".")[0]: p.stat().st_size for p in top_out.iterdir()}
    flat, chained = task_overhead(max(args.workers), args.tasks)
    load_after = os.getloadavg()[0]
    n = args.subjects
    base, top = args.workers[0], max(args.workers)
    kinds = [k for k in ("slice", "volume") if (runs[base][0].table["kind"] == k).any()]

    def rate(w: int) -> float:
        return 60 * runs[w][0].computed / runs[w][0].compute_s

    def of_kind(w: int, kind: str) -> pd.DataFrame:
        t = runs[w][0].table
        return t[t["kind"] == kind]

    counts = ", ".join(f"{len(of_kind(base, k))} {k} pairs" for k in kinds)
    lines = [
        "# Whole cohorts on Dask: throughput and scaling",
        "",
        "Generated by `PYTHONPATH=src python benchmarks/cohort.py` (rerun it on a quiet machine: "
        f"it rewrites this file). A synthetic cohort of {n} subjects ({counts}): volume pairs "
        "made from the SPM templates (T1, T2 or PD with PET or SPECT, 91 x 109 x 91 voxels of "
        "2 mm, NIfTI), and atlas slice pairs (a third each CT-, PET- and SPECT-MRI, train and "
        "test splits of `../shared/data/aanlib`, 256 x 256 PNG). Run by `msgfusion cohort run` "
        f"with the default method (`{DEFAULT_METHOD}`), `--metrics paper` (a volume: its central "
        f"axial slice) and the default colour (`{DEFAULT_COLOR_MODE}`), on a fresh local "
        "cluster of single-threaded worker processes, into an empty output folder.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores **shared with other engineers' "
        f"jobs while this ran**: load average {load_before:.1f} before, {load_after:.1f} after "
        "(a load above the core count means the workers waited for CPU; the numbers below are "
        "what this loaded machine gave, not its capacity)",
        f"- Python {platform.python_version()}, dask/distributed {distributed.__version__}; torch "
        "threads per worker = cores / workers (2 with one worker, 1 each with two)",
        "",
        "| workers | subjects | computing (s) | subjects / minute | ratio | with cluster start (s) "
        "| peak memory per worker (MB) | failed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in args.workers:
        result, whole = runs[w]
        peaks = sorted(result.worker_peak_mb.values())
        lines.append(f"| {w} | {result.computed} | {result.compute_s:.1f} | {rate(w):.1f} | "
                     f"{rate(w) / rate(base):.2f} | {whole:.1f} | "
                     f"{', '.join(f'{p:.0f}' for p in peaks)} | {n - result.count('done')} |")
    lines += ["", "Mean time per subject in each step (seconds, inside the worker), and how "
              "busy the workers were:", "",
              "| workers | kind | " + " | ".join(STEPS) + " | total | CPU | CPU share |",
              "|---:|---|" + "---:|" * (len(STEPS) + 3)]
    for w in args.workers:
        for k in kinds:
            t = of_kind(w, k)
            lines.append(f"| {w} | {k} | " + " | ".join(f"{t[f'{s}_s'].mean():.3f}" for s in STEPS)
                         + f" | {t['total_s'].mean():.3f} | {t['cpu_s'].mean():.3f} | "
                         f"{t['cpu_s'].sum() / t['total_s'].sum():.2f} |")
    busy = {w: runs[w][0].table["total_s"].sum() / runs[w][0].compute_s for w in args.workers}
    cores = {w: runs[w][0].table["cpu_s"].sum() / runs[w][0].compute_s for w in args.workers}
    lines += ["", "CPU: the worker's CPU seconds per subject; CPU share: CPU time over wall time "
              "in the tasks (1 for one thread with a core of its own, up to 2 for the single "
              "worker whose network runs two threads, lower when workers wait for a CPU). The "
              "tasks kept the workers busy " + ", ".join(
                  f"{busy[w]:.2f} of {w}" for w in args.workers) + " worker(s) over the "
              "computing time, and the cohort got " + ", ".join(
                  f"{cores[w]:.2f} cores' worth of CPU with {w} worker(s)" for w in args.workers)
              + "."]
    tt = runs[top][0].table
    row_bytes = len(pickle.dumps(tt.iloc[0].to_dict()))
    chain_ms = 4 * chained * 1e3
    ceiling = 60 / (4 * chained)
    fs_example = 100  # MB/s, a round figure for a shared file system, not measured here
    per_kind = {}
    for k in kinds:
        t1, tk = of_kind(base, k), of_kind(top, k)
        ids = list(tk["id"])
        in_kb = sum(input_bytes[i] for i in ids) / len(ids) / 1e3
        out_kb = sum(output_bytes[i] for i in ids) / len(ids) / 1e3
        per_kind[k] = {
            "cpu": tk["cpu_s"].mean(),  # one torch thread per worker in the widest run
            "share": {s: t1[f"{s}_s"].sum() / t1["total_s"].sum() for s in STEPS},
            "task": t1["total_s"].mean(),
            "in_kb": in_kb, "out_kb": out_kb,
            "read_mb_s": sum(input_bytes[i] for i in t1["id"]) / 1e6 / t1["read_s"].sum(),
        }
    lines += [
        "",
        f"Dask's cost per task, measured with {args.tasks} empty tasks on {top} workers (client, "
        f"scheduler and workers on the same loaded cores, so an upper bound of the scheduler's "
        f"own cost): {flat * 1e3:.2f} ms per independent task, {chained * 1e3:.2f} ms per task "
        f"in chains of four (a subject is a chain of four tasks: {chain_ms:.1f} ms per subject).",
        "",
        "## Scaling note",
        "",
        "The CPU time of a subject is the machine-independent part of these numbers (the wall "
        "times above are longer by the CPU share): with one torch thread (the "
        f"{top}-worker run) " + "; ".join(
            f"a {k} pair took {v['cpu']:.3f} s, i.e. {1 / v['cpu']:.2f} subjects per second for "
            f"a worker with a core to itself" for k, v in per_kind.items()) + ".",
        "",
        f"- **What grows linearly.** Subjects are independent: no task reads another subject's "
        f"data, and each worker holds its own copy of the method (weights loaded once per worker "
        f"when it starts). Throughput therefore grows with the number of workers as long as each "
        f"has a core; here {top} workers gave {rate(top) / rate(base):.2f}x the subjects per "
        f"minute of {base} on {os.cpu_count()} cores that other jobs were also using: the "
        f"cohort got {cores[base]:.2f} and {cores[top]:.2f} cores' worth of CPU, so the added "
        f"workers " + ("found no idle core" if cores[top] < 1.5 * cores[base] else
                      "found cores of their own") + ". Memory "
        f"grows linearly too: each worker peaked at "
        f"{min(min(r[0].worker_peak_mb.values()) for r in runs.values()):.0f}-"
        f"{max(max(r[0].worker_peak_mb.values()) for r in runs.values()):.0f} MB (Python, torch, "
        f"the network, one subject at a time: a volume pair and its fused volume at most), so a "
        f"node of M GB holds about M * 1000 / that many workers. What travels back to the client "
        f"per subject is its row of the table ({row_bytes} bytes pickled); the images stay on "
        f"the workers.",
        "- **Where the time goes on one worker.** " + " ".join(
            f"A {k} pair takes {v['task']:.3f} s of task time: reading "
            f"{100 * v['share']['read']:.0f}%, fusion {100 * v['share']['fuse']:.0f}%, writing "
            f"{100 * v['share']['write']:.0f}%, metrics {100 * v['share']['score']:.0f}%."
            for k, v in per_kind.items())
        + f" The cluster's start ({runs[base][1] - runs[base][0].compute_s:.0f} s here, of which "
        f"{runs[base][0].setup_s:.0f} s importing torch and loading the method in the workers) "
        f"is paid once per run, and a re-run of a finished cohort starts no cluster at all.",
        "- **Reading files.** " + " ".join(
            f"A {k} pair reads {v['in_kb']:.0f} kB and writes {v['out_kb']:.0f} kB; its read "
            f"step (open, decode) ran at {v['read_mb_s']:.1f} MB/s per worker. At "
            f"{fs_example} MB/s of shared file system (an example, not measured) that is "
            f"{fs_example * 1000 / (v['in_kb'] + v['out_kb']):.0f} {k} subjects per second, the "
            f"pace of about {fs_example * 1000 / (v['in_kb'] + v['out_kb']) * v['cpu']:.0f} "
            f"workers." for k, v in per_kind.items())
        + " The bigger the files per second of CPU, the sooner the file system, not the "
        "workers, sets the pace.",
        f"- **The scheduler.** At {chain_ms:.1f} ms of Dask's work per subject, one scheduler "
        f"handles at least {ceiling:.0f} subjects per minute, the pace of about " + ", ".join(
            f"{ceiling / 60 * v['cpu']:.0f} workers on {k} pairs" for k, v in per_kind.items())
        + ". Beyond that, give each task several subjects (batching also speeds up the network) "
        "to divide the per-task cost.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=150)
    parser.add_argument("--volumes", type=int, default=12,
                        help="how many of the subjects are SPM volume pairs (default 12)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tasks", type=int, default=2000, help="empty tasks for the overhead")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "cohort.md")
    args = parser.parse_args()
    text = report(args)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
