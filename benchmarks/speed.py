"""Measure the speed targets of issue 20 in one run and write ``docs/speed.md``.

    python benchmarks/speed.py                  # about 10-20 minutes on a busy 2-core machine
    python benchmarks/speed.py --repeats 3 --skip-old-memory

What it measures (all on the CPU, torch limited to one intra-op thread unless a row says
otherwise; medians of ``--repeats`` runs after a warm-up run):

- start-up: ``msgfusion --help``, ``msgfusion methods`` and an early input error (a missing
  file), each a fresh interpreter, wall and CPU time;
- ``msgfusion fuse-dir`` on the 24 PET-MRI test pairs, in process after a warm-up (PNG reading,
  fusion, colour restoration and PNG writing; interpreter start and imports excluded, reported
  separately as the whole command's time), against its floor (the same command with the pixel
  maximum, 45 us per pair, in place of the network) and the network alone;
- what each optimisation bought: the same measurements on the source tree of ``--base`` (the
  code before this work, extracted with ``git archive``) in the same run, alternating with the
  current tree, and the largest difference between the two trees' fused intensities on all 72
  test pairs;
- memory: peak resident memory of ``msgfusion fuse`` on a 4096 x 4096 pair (a real test pair
  up-sampled 16x), now and at ``--base``; the tiled forward against the whole-image forward on
  up-sampled pairs;
- the same-run comparison: ms per 256 x 256 pair of every registered method;
- volumes: the SPM T1 + PET pair and a 256 x 256 x 100 pair, in process and as a command.

The machine is shared: the load average is recorded at the start and the end, and the ratios
(taken in one run) are more telling than the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AANLIB = REPO.parent / "shared" / "data" / "aanlib"
PET_TEST = AANLIB / "PET-MRI" / "test"
SPM = REPO.parent / "shared" / "data" / "volumes" / "spm_oldnorm"
BASE = "e13b2e6"  # main before this work: eager imports, NCHW, 4 pairs per pass, float64 V'
PREV = "6552c3f"  # main after session 7: two worker threads, each reading, fusing and writing
MAX_ERROR = 1 / 255


# ------------------------------------------------------------------------------------------
# The probe: runs in a subprocess on either source tree (only APIs both trees have).


def per_item_ms(fn, repeats: int, n: int) -> dict:
    """Median wall and CPU time per item (ms) of ``fn()`` (``n`` items) over ``repeats`` runs
    after a warm-up run."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return {"wall": statistics.median(walls) / n * 1e3, "cpu": statistics.median(cpus) / n * 1e3}


def probe(spec: dict) -> dict:
    """Per-pair timings (ms, median over repeats) of one source tree, as a JSON-able dict."""
    import numpy as np
    import torch

    from msgfusion.cli import main
    from msgfusion.data.datasets import PairFolder, load_aanlib
    from msgfusion.io.color import restore_color, v_prime
    from msgfusion.io.images import read_image, write_image
    from msgfusion.methods.registry import fuse_pairs, get_method

    torch.set_num_threads(spec["threads"])
    if spec.get("as_cli"):  # what the CLI sets up for its process (the current tree's main())
        from threadpoolctl import threadpool_limits

        from msgfusion.allocator import reuse_freed_memory

        reuse_freed_memory()
        threadpool_limits(limits=spec["threads"], user_api="blas")
    repeats = spec["repeats"]
    aanlib = Path(spec["aanlib"])  # the probe runs from a copy of this script, elsewhere
    pet_test = aanlib / "PET-MRI" / "test"
    folder = PairFolder(pet_test)
    n = len(folder)
    pairs = [folder[i] for i in range(n)]
    out_dir = tempfile.mkdtemp(prefix="speed-probe-")

    def timed(fn) -> dict:
        return per_item_ms(fn, repeats, n)

    method = get_method("msgfusion")
    if "chunk" in spec:
        method.chunk = spec["chunk"]

    def network() -> None:
        fuse_pairs_of(method, pairs)

    def fuse_dir(name: str, *more: str):  # a fresh output folder per run, as for a first run
        return lambda: main(["fuse-dir", str(pet_test), "-o", tempfile.mkdtemp(dir=out_dir),
                             "--method", name, *spec["extra"], *more])

    fused = fuse_pairs(method, pairs)
    colours = [restore_color(f, p.func, "ycbcr") for f, p in zip(fused, pairs)]
    result = {"network": timed(network), "fuse_dir": timed(fuse_dir("msgfusion"))}
    if spec.get("network_only"):
        return result
    if spec.get("serial"):  # the same command with one worker thread: no pairs side by side
        result["fuse_dir_serial"] = timed(fuse_dir("msgfusion", "--workers", "1"))
        result["floor_serial"] = timed(fuse_dir("max", "--workers", "1"))
    result |= {
        "floor": timed(fuse_dir("max")),
        "read": timed(lambda: [(read_image(f.mr_path), read_image(f.func_path))
                               for f in folder.files]),
        "v_prime": timed(lambda: [v_prime(p.func) for p in pairs]),
        "colour": timed(lambda: [restore_color(f, p.func, "ycbcr")
                                 for f, p in zip(fused, pairs)]),
        "write": timed(lambda: [write_image(Path(tempfile.mkdtemp(dir=out_dir)) / "w.png", c)
                                for c in colours]),
    }
    if spec.get("jit"):
        result["jit"] = _python_vs_traced(method, pairs, timed)
    if spec.get("fused"):  # with the weights file named (both trees: the same weights)
        from msgfusion.methods.msgfusion import MsgFusion

        same = MsgFusion(spec["weights"]) if spec.get("weights") else method
        outputs = {}
        for f in load_aanlib(aanlib, "test"):
            outputs[f.modality] = np.stack(fuse_pairs(same, [f[i] for i in range(len(f))]))
        np.savez(spec["fused"], **outputs)
    return result


def _python_vs_traced(method, pairs, timed) -> dict:
    """The shipped network with its Python forward pass (no TorchScript trace), and the time
    the method takes to trace it for one input shape."""
    import torch

    from msgfusion.methods.msgfusion import MsgFusion
    from msgfusion.model.inputs import batch_from_pairs

    python = MsgFusion()
    python.trace_after = 0
    times = timed(lambda: fuse_pairs_of(python, pairs))
    net = method.model.net("PET")
    batch = tuple(batch_from_pairs(pairs[:1], ("mr", "func", "v_prime"),
                                   channels_last=True).values())
    start = time.perf_counter()
    method._traced.clear()
    method._runner("PET", net, batch)  # the second call of a shape traces
    method._runner("PET", net, batch)
    build = time.perf_counter() - start
    with torch.inference_mode():
        traced = method._runner("PET", net, batch)
        diff = (traced(*batch) - net(*batch)).abs().max().item()
    return {**times, "build_s": build, "max_diff": diff}


def fuse_pairs_of(method, pairs) -> None:
    """Fresh pairs (V' and tensors are part of the method's work), all in one call."""
    from msgfusion.methods.registry import fuse_pairs
    from msgfusion.pair import FusionPair

    fuse_pairs(method, [FusionPair(p.mr, p.func, p.modality) for p in pairs], len(pairs))


# ------------------------------------------------------------------------------------------
# The measuring side.


def run_probe(src: Path, spec: dict) -> dict:
    with tempfile.NamedTemporaryFile("r", suffix=".json") as fh:
        env = {**os.environ, "PYTHONPATH": str(src)}
        script = src.parent.parent / "speed.py"
        subprocess.run([sys.executable, str(script), "--probe", json.dumps(spec), "--probe-out",
                        fh.name], env=env, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        return json.loads(Path(fh.name).read_text())


def extract_tree(rev: str, into: Path) -> Path:
    """The ``src`` folder of revision ``rev`` of this repository, extracted under ``into``."""
    blob = subprocess.run(["git", "archive", rev, "src"], cwd=REPO, check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def child_run(argv: list[str], src: Path, env: dict | None = None) -> tuple[float, float, int]:
    """(wall s, CPU s, peak resident KiB) of one command in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], env={**os.environ, "PYTHONPATH": str(src),
                                                        **(env or {})},
                          cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 2):
        raise RuntimeError(f"{argv}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return wall, cpu, after.ru_maxrss


def startup(src: Path, repeats: int) -> dict[str, tuple[float, float]]:
    commands = {
        "`python -c pass` (the interpreter alone)": ["-c", "pass"],
        "`msgfusion --help`": ["-m", "msgfusion", "--help"],
        "`msgfusion methods`": ["-m", "msgfusion", "methods"],
        "`msgfusion fuse` with a missing input file": [
            "-m", "msgfusion", "fuse", "--mr", "no-such-mr.png", "--func", "no-such-pet.png",
            "-o", "never-written.png"],
    }
    out = {}
    for label, argv in commands.items():
        runs = [child_run(argv, src)[:2] for _ in range(repeats + 1)][1:]
        out[label] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    return out


def big_pair(folder: Path, size: int, into: Path) -> tuple[Path, Path]:
    """The first PET-MRI test pair up-sampled (bicubic) to ``size`` x ``size``, as PNG files."""
    from PIL import Image

    name = sorted((folder / "MRI").iterdir())[0].name
    paths = []
    for modality in ("MRI", "PET"):
        path = into / f"{modality}_{size}.png"
        with Image.open(folder / modality / name) as img:
            img.resize((size, size), Image.BICUBIC).save(path, compress_level=1)
        paths.append(path)
    return paths[0], paths[1]


def tiling_error(sizes: tuple[int, ...]) -> list[tuple[int, float, float]]:
    """(size, max, mean) |tiled - whole| of the fused intensity of the first test pair of each
    modality up-sampled to ``size``, tiles of 512 pixels."""
    import numpy as np
    from PIL import Image

    from msgfusion.data.datasets import load_aanlib
    from msgfusion.methods.msgfusion import MsgFusion
    from msgfusion.pair import FusionPair

    whole, tiled = MsgFusion(), MsgFusion()
    whole.tile_above, tiled.tile_above = sys.maxsize, 0
    rows = []
    for size in sizes:
        diffs = []
        for folder in load_aanlib(AANLIB, "test"):
            p = folder[0]
            up = [np.asarray(Image.fromarray((a * 255).round().astype(np.uint8)).resize(
                (size, size), Image.BICUBIC), dtype=np.float32) / 255 for a in (p.mr, p.func)]
            pair = FusionPair(up[0], up[1], p.modality)
            diffs.append(np.abs(tiled.fuse([pair]) - whole.fuse([pair])))
        d = np.stack(diffs)
        rows.append((size, float(d.max()), float(d.mean())))
    return rows


def method_table(seconds: float) -> list[tuple[str, float, float, int]]:
    """(method, median wall ms, median CPU ms, runs) per 256 x 256 pair, one pair per call,
    the first test pair of each modality in turn; every registered method."""
    from msgfusion.data.datasets import load_aanlib
    from msgfusion.methods.registry import get_method, list_methods

    pairs = [folder[0] for folder in load_aanlib(AANLIB, "test")]
    rows = []
    for info in list_methods():
        method = get_method(info.name)
        start = time.perf_counter()
        method.fuse([pairs[0]])  # warm-up: imports, weights
        first = time.perf_counter() - start
        runs = max(3, min(30, int(seconds / max(first, 1e-4))))
        walls, cpus = [], []
        for i in range(runs):
            w, c = time.perf_counter(), time.process_time()
            method.fuse([pairs[i % len(pairs)]])
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
        rows.append((info.name, statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3,
                     runs))
        print(f"  {info.name}: {rows[-1][1]:.1f} ms", flush=True)
    return rows


def volume_times(src: Path, work: Path, repeats: int) -> dict:
    """``msgfusion fuse`` on the SPM T1 + PET volumes (91 slices) and on the T1 resampled to
    256 x 256 x 100 with the PET (``benchmarks/volumes.py``'s large pair): in process after a
    warm-up (s, median) and as a fresh process."""
    import importlib.util

    from msgfusion.cli import main

    spec = importlib.util.spec_from_file_location("volumes_bench", REPO / "benchmarks" /
                                                  "volumes.py")
    volumes_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(volumes_bench)
    pairs = {"spm": (SPM / "T1.nii.gz", SPM / "PET.nii.gz"),
             "large": volumes_bench.large_pair(work)}
    out = {}
    for key, (mr, func) in pairs.items():
        argv = ["fuse", "--mr", str(mr), "--func", str(func), "-o",
                str(work / f"fused_{key}.nii.gz"), "--overwrite", "-q"]
        main(argv)
        walls = []
        for _ in range(repeats):
            start = time.perf_counter()
            main(argv)
            walls.append(time.perf_counter() - start)
        out[key] = {"in_process_s": statistics.median(walls),
                    "command_s": child_run(["-m", "msgfusion", *argv], src)[0]}
    return out


# ------------------------------------------------------------------------------------------
# The report.


def ms(x: float) -> str:
    if x < 0.1:
        return f"{x * 1000:.0f} us"
    return f"{x:.1f} ms" if x < 1000 else f"{x / 1000:.2f} s"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def report(r: dict) -> str:
    new, old = r["new"], r["old"]
    e2e, net = new["1"]["fuse_dir"], new["1"]["network"]
    big = r["memory"]
    lines = [
        "# Speed",
        "",
        f"Generated by `python benchmarks/speed.py` (issue 20) on {r['date']}. "
        + (("**Measured on a loaded machine**: "
            f"{r['machine']}, shared with other engineers' test runs and benchmarks; load average "
            f"{r['load'][0]:.1f} at the start and {r['load'][1]:.1f} at the end (2 cores: a load "
            "above 2 means processes waited for a core). Wall times under such load are inflated "
            "and vary from run to run; the CPU times (the process's own) and the ratios between "
            "rows of one run are the steadier figures. ") if max(r['load']) > 2 else
           (f"Machine: {r['machine']}, load average {r['load'][0]:.1f} at the start and "
            f"{r['load'][1]:.1f} at the end (2 cores: nothing else of note was running). "))
        + "Medians of "
        f"{r['repeats']} runs after a warm-up run; torch on one intra-op thread unless a row "
        "says otherwise.",
        "",
        "## Targets",
        "",
        "| target | measured (wall) | CPU | status |",
        "|---|---:|---:|---|",
        f"| `fuse-dir`, 24 PET-MRI test pairs, end to end: <= 10 ms per pair | "
        f"{ms(e2e['wall'])} / pair | {ms(e2e['cpu'])} / pair | "
        f"{verdict(e2e['wall'] <= 10)} |",
    ]
    for label, (wall, cpu) in r["startup"].items():
        if "python -c" in label:
            continue
        lines.append(f"| {label} <= 0.3 s | {wall:.2f} s | {cpu:.2f} s | "
                     f"{verdict(wall <= 0.3)} |")
    lines += [
        f"| peak memory, `msgfusion fuse` on a 4096 x 4096 pair: <= 2 GB | "
        f"{big['new_kib'] / 2**20:.2f} GiB | | {verdict(big['new_kib'] * 1024 <= 2e9)} |",
        f"| tiled = whole image within 1/255 on average (up-sampled real pairs) | "
        f"mean {max(t[2] for t in r['tiling']):.1e}, max {max(t[1] for t in r['tiling']):.1e} "
        f"| | {verdict(max(t[2] for t in r['tiling']) <= MAX_ERROR)} |",
        f"| inference path equal to the shipped one ({BASE}) within 1/255, 72 test pairs | "
        f"max {r['equality']['max']:.1e} | | {verdict(r['equality']['max'] <= MAX_ERROR)} |",
    ]
    vol = r["volumes"]
    for key, label, limit in (("spm", "SPM T1 + PET (91 slices)", 1.0),
                              ("large", "a 256 x 256 x 100 pair (T1 resampled, with the PET)",
                               2.0)):
        v = vol[key]
        lines.append(f"| `msgfusion fuse` {label} end to end <= {limit:.0f} s | "
                     f"{v['in_process_s']:.2f} s in process, {v['command_s']:.2f} s as a "
                     f"fresh process | | {verdict(v['in_process_s'] <= limit)} |")
    lines += [
        "",
        f"Start-up for reference: the interpreter alone (`python -c pass`) takes "
        f"{r['startup']['`python -c pass` (the interpreter alone)'][0]:.2f} s wall here. "
        "The commands import numpy and Pillow but not torch, scipy, matplotlib, SimpleITK, "
        "FastAPI or Dask (tests/test_startup.py checks it). Before this work (`msgfusion "
        f"methods` at {BASE}, this run): {r['startup_old'][0]:.2f} s wall, "
        f"{r['startup_old'][1]:.2f} s CPU.",
        "",
        "## fuse-dir: floor, network, end to end",
        "",
        "Per pair, 24 PET-MRI test pairs (256 x 256, PNG), in process after a warm-up run. "
        "The floor is the same `fuse-dir` with the pixel maximum in place of the network "
        "(reading both PNGs, V', colour restoration, writing the PNG, in the same threads). "
        f"The whole command in a fresh process (interpreter, imports, weights) took "
        f"{r['command_s']:.2f} s wall for the 24 pairs. Columns: {BASE} (before the speed "
        f"work), {PREV} (after session 7: two worker threads, each reading, fusing, colouring "
        "and writing whole pairs) and now (the same workers hand each encoded image to two "
        "writer threads, which fsync it and link it into place, and go on with their next "
        "pair; the network runs traced from its second pass).",
        "",
        f"| | {BASE} wall | CPU | {PREV} wall | CPU | now wall | CPU |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [("`fuse-dir` end to end", "fuse_dir"), ("floor: read + colour + write", "floor"),
            ("network alone (with V' and tensors)", "network"),
            ("read both PNGs", "read"), ("V' of the PET image", "v_prime"),
            ("colour restoration (ycbcr)", "colour"), ("write the fused PNG", "write")]
    for label, key in rows:
        cells = [r.get("prev", {}).get(key) if tree == "prev" else tree.get(key)
                 for tree in (old["1"], "prev", new["1"])]
        lines.append(f"| {label} | " + " | ".join(
            f"{ms(c['wall'])} | {ms(c['cpu'])}" if c else "| " for c in cells) + " |")
    serial, floor_serial = new["1"]["fuse_dir_serial"], new["1"]["floor_serial"]
    lines += [
        "",
        f"Now with `--workers 1` (one pair at a time: read, fuse, colour, write in turn): "
        f"`fuse-dir` {ms(serial['wall'])} per pair ({ms(serial['cpu'])} CPU), floor "
        f"{ms(floor_serial['wall'])}; two workers: {ms(e2e['wall'])} and "
        f"{ms(new['1']['floor']['wall'])}.",
        "",
    ]
    jit = new["1"]["jit"]
    lines += [
        "",
        "## What each optimisation bought",
        "",
        "Network alone, ms per pair (with V' and tensor building), same run:",
        "",
        "| configuration (network alone) | wall | CPU |",
        "|---|---:|---:|",
        f"| before ({BASE}): 4 pairs per pass, NCHW, torch's default 2 threads | "
        f"{ms(old['2']['network']['wall'])} | {ms(old['2']['network']['cpu'])} |",
        f"| before, 1 thread | {ms(old['1']['network']['wall'])} | "
        f"{ms(old['1']['network']['cpu'])} |",
        f"| before, 1 thread, 1 pair per pass | {ms(old['1c']['network']['wall'])} | "
        f"{ms(old['1c']['network']['cpu'])} |",
        f"| {PREV}: + channels-last, closed-form two-map merge, GV1 head without the "
        f"full-resolution concat, float32 V', GV2's two convolutions in one, no channel mean "
        f"of one-channel maps (1 thread, 1 pair per pass) | "
        f"{ms(r['prev']['network']['wall'])} | {ms(r['prev']['network']['cpu'])} |",
        f"| now, Python forward pass: + freed memory kept for reuse (glibc `mallopt`), 2 x 2 "
        f"max pooling as two pairwise maxima, bilinear up-sampling as a depthwise transposed "
        f"convolution, GV2's one-channel 7 x 7 as a banded depthwise convolution, GV1 head's "
        f"1 x 1 convolutions without bias (their fast path) and summed in place, soft merge "
        f"from the difference of the two maps | {ms(jit['wall'])} | {ms(jit['cpu'])} |",
        f"| now, traced (TorchScript, from the second pass on one shape; {jit['build_s']:.2f} s "
        f"to trace, max diff {jit['max_diff']:.1e}): as shipped | "
        f"{ms(net['wall'])} | {ms(net['cpu'])} |",
        f"| now, 4 pairs per pass | {ms(new['1c']['network']['wall'])} | "
        f"{ms(new['1c']['network']['cpu'])} |",
        f"| now, torch's default 2 threads | {ms(new['2']['network']['wall'])} | "
        f"{ms(new['2']['network']['cpu'])} |",
        "",
        f"`fuse-dir` end to end with torch's 2 threads: {ms(new['2']['fuse_dir']['wall'])} per "
        f"pair now, {ms(old['2']['fuse_dir']['wall'])} before (the CLI's `--threads` "
        "default is 1). Beside the network: the 'write' row encodes PNGs with one filter type "
        "for every row (`encode_png`; Pillow tries five per row) and fsyncs each file; "
        "`fuse-dir` does the fsync and the link in writer threads. The 'read' row decodes PNGs "
        "outside the decoding lock and scales 8-bit images before the float conversion; the "
        "'colour' row computes one luminance per image (exact in float32), the noise estimate "
        "in float32 slices and the YCbCr mix in three passes; numpy's BLAS runs one thread per "
        "worker (`--threads`).",
        "",
        "Not shipped: `torch.compile` (tens of seconds of compilation per input size on this "
        "CPU, more than a whole `fuse-dir` run); TorchScript `freeze` + "
        "`optimize_for_inference` (measured slower than the plain trace); ONNX Runtime (the "
        "frequency path's complex FFT, amplitude and phase do not export to ONNX as they are); "
        "bfloat16/float16 (differences above 1/255). `torch.jit.trace` is deprecated since "
        "torch 2.13; where it fails or is gone the method keeps the Python forward pass.",
        "",
        "## Numerical equality",
        "",
        f"Fused intensities of the current tree against {BASE}'s on all 72 test pairs, both "
        f"with {BASE}'s shipped weights (the inference path, not the weights, compared): max "
        f"|difference| {r['equality']['max']:.1e}, mean {r['equality']['mean']:.1e}; "
        f"{r['equality']['changed']} of {r['equality']['pixels']} pixels change their 8-bit "
        "value (rounding ties). tests/methods/test_inference.py checks the fast path against "
        "the plain network on the same 72 pairs (within 1/255 everywhere).",
        "",
        "## Memory",
        "",
        f"`msgfusion fuse` on one 4096 x 4096 PET-MRI pair (a test pair up-sampled 16x): peak "
        f"resident memory {big['new_kib'] / 2**20:.2f} GiB now"
        + (f", {big['old_kib'] / 2**20:.2f} GiB before ({BASE})" if big.get("old_kib") else "")
        + f"; {big['new_s']:.1f} s wall. Pairs above 1024 x 1024 pixels go through the network "
        "in tiles of 512 x 512 with 32 pixels of halo; the frequency path (global) runs once on "
        "the whole image at its quarter resolution and each tile takes its window of it, so the "
        "tiled result equals the whole-image one up to float rounding:",
        "",
        "| up-sampled size | max abs difference | mean abs difference |",
        "|---:|---:|---:|",
        *[f"| {s} x {s} | {mx:.1e} | {mean:.1e} |" for s, mx, mean in r["tiling"]],
        "",
        "## Every method, same run",
        "",
        "One 256 x 256 pair per call (the first test pair of CT-, PET- and SPECT-MRI in turn), "
        "intensity only, images in memory; median after a warm-up call.",
        "",
        "| method | wall / pair | CPU / pair | runs |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {ms(w)} | {ms(c)} | {n} |" for name, w, c, n in r["methods"]],
        "",
        "## Device",
        "",
        "`--device cuda` (or `cuda:N`) runs MsgFusion and the deep baselines on a GPU "
        "(`get_method(name, device)`, or the `device` argument of their constructors); the "
        "classical methods run on the CPU and refuse another device.",
        "",
    ]
    gpu = r.get("gpu")
    if gpu is None:
        lines += ["No GPU was available for this run, so only the CPU path is measured here.",
                  ""]
    else:
        lines += [
            f"Measured on a lent GPU machine ({gpu['gpu']}; {gpu['machine']}) by `python "
            "benchmarks/speed_gpu.py` (medians of "
            f"{gpu['repeats']} runs after a warm-up, in process; not the machine of the "
            "tables above). Fused intensities on the GPU against the same machine's CPU, all "
            f"{gpu['pairs']} test pairs: max |difference| {gpu['max_diff']:.1e}, mean "
            f"{gpu['mean_diff']:.1e} (within 1/255: "
            f"{'yes' if gpu['max_diff'] <= MAX_ERROR else '**no**'}).",
            "",
            "| on the GPU machine, per PET-MRI test pair | wall | CPU |",
            "|---|---:|---:|",
            *[f"| {label} | {ms(gpu[key]['wall'])} | {ms(gpu[key]['cpu'])} |" for label, key in (
                ("network alone, one pair per call (traced from the second)", "network_1"),
                ("network alone, 24 pairs per call", "network_24"),
                ("`fuse-dir --device cuda` end to end", "fuse_dir_gpu"),
                ("`fuse-dir --device cpu` end to end (that machine's CPU)", "fuse_dir_cpu"))],
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--base", default=BASE, help="revision measured as 'before'")
    parser.add_argument("--prev", default=PREV,
                        help="revision measured as the previous step (its fuse-dir)")
    parser.add_argument("--skip-old-memory", action="store_true",
                        help="do not measure the 4096 x 4096 pair at --base (about 7 GB)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "speed.md")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--probe-out", help=argparse.SUPPRESS)
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="write the report from the raw numbers of an earlier run")
    parser.add_argument("--gpu", type=Path, metavar="JSON",
                        default=REPO / "docs" / "speed_gpu.json",
                        help="numbers of benchmarks/speed_gpu.py from a GPU machine, reported "
                             "in the Device section (default: docs/speed_gpu.json, if there)")
    args = parser.parse_args()
    gpu = {"gpu": json.loads(args.gpu.read_text())} if args.gpu.is_file() else {}
    if args.render:
        args.output.write_text(report(json.loads(args.render.read_text()) | gpu),
                               encoding="utf-8")
        return
    if args.probe:
        Path(args.probe_out).write_text(json.dumps(probe(json.loads(args.probe))))
        return

    import numpy as np

    load_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="speed-"))
    # Both trees are snapshots (the working tree may change during a run of many minutes).
    new_src = Path(shutil.copytree(REPO / "src", work / "now" / "src"))
    old_src = extract_tree(args.base, work / "base")
    prev_src = extract_tree(args.prev, work / "prev")
    shutil.copy(__file__, work / "speed.py")
    result: dict = {"repeats": args.repeats, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                   time.gmtime())}
    print("start-up", flush=True)
    result["startup"] = startup(new_src, args.repeats)
    old_runs = [child_run(["-m", "msgfusion", "methods"], old_src)[:2] for _ in range(3)]
    result["startup_old"] = [statistics.median(r[i] for r in old_runs) for i in (0, 1)]
    print("fuse-dir, before and now", flush=True)
    result["new"], result["old"] = {}, {}
    # "1": one thread as shipped; "2": torch's default two; "1c": one thread, the other tree's
    # pairs per pass. The trees alternate so that both see the same load.
    for key in ("1", "2", "1c"):
        common = {"threads": 2 if key == "2" else 1, "repeats": args.repeats,
                  "aanlib": str(AANLIB), "network_only": key != "1"}
        threads = ["--threads", str(common["threads"])]
        old_spec = {**common, "extra": [], **({"chunk": 1} if key == "1c" else {})}
        new_spec = {**common, "extra": threads, "as_cli": True,
                    **({"chunk": 4} if key == "1c" else {})}
        if key == "1":
            old_spec["fused"], new_spec["fused"] = str(work / "old.npz"), str(work / "new.npz")
            # the inference path alone: the current tree fuses with the base's shipped weights
            new_spec["weights"] = str(old_src / "msgfusion" / "model" / "weights"
                                      / "msgfusion_lite.pt")
            new_spec["jit"] = new_spec["serial"] = True
            result["prev"] = run_probe(prev_src, {**common, "extra": threads})
        result["old"][key] = run_probe(old_src, old_spec)
        result["new"][key] = run_probe(new_src, new_spec)
    a, b = np.load(work / "old.npz"), np.load(work / "new.npz")
    diff = np.concatenate([np.abs(a[k] - b[k]).ravel() for k in a.files])
    changed = sum(int((np.round(a[k] * 255) != np.round(b[k] * 255)).sum()) for k in a.files)
    result["equality"] = {"max": float(diff.max()), "mean": float(diff.mean()),
                          "changed": changed, "pixels": int(diff.size)}
    print("whole command", flush=True)
    result["command_s"] = child_run(["-m", "msgfusion", "fuse-dir", str(PET_TEST), "-o",
                                     str(work / "cmd")], new_src)[0]
    print("memory", flush=True)
    mr, pet = big_pair(PET_TEST, 4096, work)
    fuse_big = ["-m", "msgfusion", "fuse", "--mr", str(mr), "--func", str(pet), "-o"]
    wall, peak = _peak([*fuse_big, str(work / "big_new.png")], new_src)
    result["memory"] = {"new_kib": peak, "new_s": wall}
    if not args.skip_old_memory:
        result["memory"]["old_kib"] = _peak([*fuse_big, str(work / "big_old.png")], old_src)[1]
    sys.path.insert(0, str(new_src))
    print("tiling", flush=True)
    result["tiling"] = tiling_error((1024, 2048))
    print("every method", flush=True)
    import torch

    torch.set_num_threads(1)
    result["methods"] = method_table(seconds=3.0)
    print("volumes", flush=True)
    result["volumes"] = volume_times(new_src, work, args.repeats)
    result["load"] = (load_start, os.getloadavg()[0])
    result["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, Python "
                         f"{platform.python_version()}, torch {torch.__version__}")
    result |= gpu
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(f"raw numbers: {work / 'result.json'}", flush=True)
    args.output.write_text(report(result), encoding="utf-8")
    print(f"wrote {args.output} (raw numbers: {work / 'result.json'})")


def _peak(argv: list[str], src: Path) -> tuple[float, int]:
    """(wall s, peak resident KiB) of one command, from a wrapper process of its own (this
    process's maximum over its children would keep the largest child seen so far)."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, sys.executable, *argv], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True,
                         text=True, check=True).stdout
    return time.perf_counter() - start, int(out.split()[-1])


if __name__ == "__main__":
    main()
