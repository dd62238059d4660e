"""Measure volume fusion end to end and write ``docs/volumes.md`` with its figures.

- **SPM T1 + PET** (91 x 109 x 91 at 2 mm, ``../shared/data/volumes/spm_oldnorm``) with the
  default method: the command ``msgfusion fuse --mr T1.nii.gz --func PET.nii.gz -o fused.nii.gz``
  run as a fresh process (wall time and peak resident memory, interpreter start and weights
  included), and the stages in one process with the method loaded (read, resample, fuse, write).
- **A 256 x 256 x 100 pair**: the SPM T1 resampled onto a 256 x 256 x 100 grid over the same field
  of view (0.71 x 0.85 x 1.82 mm), the PET left on its 2 mm grid, so the pipeline resamples it.
- **The default CT window**: the grey levels of the atlas CT slices the CT network was trained
  on, inside the skull (``../shared/data/aanlib/CT-MRI/train``), beside where the presets put
  brain tissue.
- **Figures**: SPM T1 + PET and T1 + SPECT fused with the default method, three planes
  (``docs/figures/volumes_pet.png``, ``docs/figures/volumes_spect.png``).

    python benchmarks/volumes.py      # writes docs/volumes.md and docs/figures/volumes_*.png
    python benchmarks/volumes.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from msgfusion.api import fuse_volume, load_volume, volume_preview
from msgfusion.intensity import CT_WINDOWS, DEFAULT_CT_WINDOW, MR_PERCENTILES, FUNCTIONAL_PERCENTILE
from msgfusion.io.color import DEFAULT_COLOR_MODE
from msgfusion.io.images import read_image, write_image
from msgfusion.io.volumes import write_volume
from msgfusion.methods.registry import DEFAULT_METHOD, get_method
from msgfusion.volume import Volume, resample_to

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SPM = SHARED / "volumes" / "spm_oldnorm"
COMMAND = "python benchmarks/volumes.py"

_PEAK = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
         "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
         "print(u.ru_utime + u.ru_stime, u.ru_maxrss); sys.exit(rc)")


def cli_run(mr: Path, func: Path, out: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak resident MB) of ``msgfusion fuse`` as a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "msgfusion", "fuse",
                           "--mr", str(mr), "--func", str(func), "-o", str(out), "--overwrite"],
                          env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    cpu, rss = proc.stdout.strip().splitlines()[-1].split()
    return wall, float(cpu), int(rss) / 1024


def stages(mr_path: Path, func_path: Path, out: Path, method: str = DEFAULT_METHOD
           ) -> dict[str, float]:
    """Seconds per stage in one process, the method already loaded."""
    t = {}
    start = time.perf_counter()
    mr, func = load_volume(mr_path), load_volume(func_path)
    t["read"] = time.perf_counter() - start
    start = time.perf_counter()
    resample_to(func, mr)
    t["resample"] = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    result = fuse_volume(mr, func, method=method)  # resamples, scales, renders, fuses, colours
    t["fuse"] = time.perf_counter() - start
    t["fuse_cpu"] = time.process_time() - cpu
    start = time.perf_counter()
    write_volume(out, result.picture, overwrite=True)
    t["write"] = time.perf_counter() - start
    t["total"] = t["read"] + t["fuse"] + t["write"]
    return t


def large_pair(folder: Path) -> tuple[Path, Path]:
    """The SPM T1 on a 256 x 256 x 100 grid (same field of view) and the PET as it is."""
    t1 = load_volume(SPM / "T1.nii.gz")
    extent = np.asarray(t1.spacing) * np.asarray(t1.shape[::-1])  # x, y, z in mm
    size = np.array([256, 256, 100])
    spacing = extent / size
    origin = np.asarray(t1.origin) + t1.direction @ ((spacing - np.asarray(t1.spacing)) / 2)
    grid = Volume(np.zeros(tuple(size[::-1]), np.float32), tuple(spacing), tuple(origin),
                  t1.direction)
    mr = resample_to(t1, grid)
    mr_path = write_volume(folder / "T1_256x256x100.nii.gz", mr, overwrite=True)
    return mr_path, SPM / "PET.nii.gz"


def atlas_ct_grey() -> np.ndarray:
    """5th, 25th, 50th, 75th, 95th percentiles of the atlas CT grey inside the skull."""
    from scipy import ndimage

    values = []
    for f in sorted((SHARED / "aanlib" / "CT-MRI" / "train" / "CT").glob("*.png")):
        ct = read_image(f)
        bone = ct > 0.8
        inside = ndimage.binary_fill_holes(ndimage.binary_closing(bone, iterations=3))
        inside &= ~ndimage.binary_dilation(bone, iterations=4)
        if inside.sum() > 500:
            values.append(ct[inside])
    return np.percentile(np.concatenate(values), [5, 25, 50, 75, 95])


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--output", default=str(REPO / "docs" / "volumes.md"))
    args = parser.parse_args()
    docs = Path(args.output).parent
    (docs / "figures").mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    get_method(DEFAULT_METHOD).fuse  # noqa: B018 (weights loaded outside the timings)
    rows_cli, rows_stage, rows_overhead = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = [("SPM T1 + PET, 91 x 109 x 91 (PET on the same grid)", SPM / "T1.nii.gz",
                  SPM / "PET.nii.gz"),
                 ("T1 on 256 x 256 x 100 + PET 91 x 109 x 91 (resampled)", *large_pair(tmp))]
        for label, mr, func in cases:
            stage_runs = [stages(mr, func, tmp / "fused.nii.gz") for _ in range(args.repeats)]
            cli_runs = [cli_run(mr, func, tmp / "cli.nii.gz") for _ in range(args.repeats)]
            rows_stage.append((label, _median(stage_runs)))
            overhead = [stages(mr, func, tmp / "fused.nii.gz", "average")
                        for _ in range(args.repeats)]
            rows_overhead.append((label, _median(overhead)))
            rows_cli.append((label, statistics.median(r[0] for r in cli_runs),
                             statistics.median(r[1] for r in cli_runs),
                             max(r[2] for r in cli_runs)))
            print(label, rows_stage[-1][1], rows_cli[-1][1:])
    load_after = os.getloadavg()
    figures = {}
    for modality in ("PET", "SPECT"):
        result = fuse_volume(SPM / "T1.nii.gz", SPM / f"{modality}.nii.gz", modality)
        path = docs / "figures" / f"volumes_{modality.lower()}.png"
        write_image(path, volume_preview(result), overwrite=True)
        figures[modality] = path.relative_to(docs).as_posix()
    grey = atlas_ct_grey()
    closest = min(CT_WINDOWS, key=lambda k: abs((32.5 - (CT_WINDOWS[k][1] - CT_WINDOWS[k][0] / 2))
                                                / CT_WINDOWS[k][0] - grey[2]))
    lines = [
        "# Volumes: timings and figures",
        "",
        f"Generated by `{COMMAND}` (do not edit by hand). Method: `{DEFAULT_METHOD}` "
        "(the default), "
        f"default colour (`{DEFAULT_COLOR_MODE}`). Median of "
        f"{args.repeats} runs; peak memory is the largest of them.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}. Load average before / after: "
        f"{load_before[0]:.1f} / {load_after[0]:.1f}"
        + (" (other work was running on the machine; timings on an idle machine are lower)."
           if max(load_before[0], load_after[0]) > 1.5 else " (a quiet machine)."),
        "",
        "## The command, as a fresh process",
        "",
        "`msgfusion fuse --mr T1.nii.gz --func PET.nii.gz -o fused.nii.gz`: interpreter start, "
        "imports and the network's weights included.",
        "",
        "| pair | wall time | CPU time (all threads) | peak memory (resident) |",
        "|---|---:|---:|---:|",
        *[f"| {label} | {wall:.2f} s | {cpu:.2f} s | {mem:.0f} MB |"
          for label, wall, cpu, mem in rows_cli],
        "",
        "## Stages, in one process (method loaded)",
        "",
        "Read both volumes, resample the PET onto the MR grid (SimpleITK, linear; skipped when the "
        "grids are the same), fuse (`fuse_volume`: resampling, intensity scaling, colour map, the "
        "network slice by slice in batches of 8, one batch per CPU core at a time, colour "
        "restored), write the RGB NIfTI.",
        "",
        "| pair | read | resample | fuse | fuse, CPU time | write | read + fuse + write |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[f"| {label} | {t['read']:.2f} s | {t['resample']:.2f} s | {t['fuse']:.2f} s | "
          f"{t['fuse_cpu']:.2f} s | {t['write']:.2f} s | {t['total']:.2f} s |"
          for label, t in rows_stage],
        "",
        "The same with `--method average` (a pixel operation), i.e. what reading, resampling, "
        "scaling, colour maps, slicing, colour restoration and writing cost around the method:",
        "",
        "| pair | read | resample | fuse | fuse, CPU time | write | read + fuse + write |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *[f"| {label} | {t['read']:.2f} s | {t['resample']:.2f} s | {t['fuse']:.2f} s | "
          f"{t['fuse_cpu']:.2f} s | {t['write']:.2f} s | {t['total']:.2f} s |"
          for label, t in rows_overhead],
        "",
        "## Intensities",
        "",
        f"- MR: the {MR_PERCENTILES[0]}th to {MR_PERCENTILES[1]}th percentile of the voxels maps "
        "to [0, 1].",
        f"- PET/SPECT: 0 to the {FUNCTIONAL_PERCENTILE}th percentile of the positive voxels, "
        "then the atlas's PET/SPECT colour scale (`io.color.default_cmap`).",
        "- CT windows (width, level in HU): "
        + ", ".join(f"`{k}` ({w:g}, {lv:g})" for k, (w, lv) in CT_WINDOWS.items())
        + f"; default `{DEFAULT_CT_WINDOW}`. The atlas CT slices the CT network was trained on "
        "have, inside the skull, grey levels "
        + ", ".join(f"{q:.2f}" for q in grey)
        + " (5th, 25th, 50th, 75th, 95th percentile) with bone saturated. Brain tissue "
        "(20..45 HU) falls at "
        + "; ".join(f"{(20 - (lv - w / 2)) / w:.2f}..{(45 - (lv - w / 2)) / w:.2f} with `{k}`"
                    for k, (w, lv) in CT_WINDOWS.items())
        + f": the preset closest to the atlas's median at mid brain tissue (32.5 HU) is "
        f"`{closest}`.",
        "",
        "## Figures",
        "",
        "Middle axial, coronal and sagittal slices: MR | functional (as the network sees it) | "
        "fused. From `msgfusion fuse --mr T1.nii.gz --func PET.nii.gz -o fused.nii.gz "
        "--preview FILE.png` (the SPM12 OldNorm templates).",
        "",
        f"![SPM T1 + PET]({figures['PET']})",
        "",
        f"![SPM T1 + SPECT]({figures['SPECT']})",
        "",
    ]
    Path(args.output).write_text("\n".join(lines))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
