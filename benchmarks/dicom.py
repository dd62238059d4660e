"""Measure fusion straight from a PACS against the same files on disk; write ``docs/dicom.md``.

A real PACS: Orthanc with its DICOMweb plugin started on loopback (tests/orthanc_server.py, the
tests' launcher), loaded with studies built from ``../shared/data/volumes/spm_oldnorm``: the SPM
T1 as an MR series and the PET template as a PT series of one frame of reference
(tests/dicom_helpers.py).

- **A study, PACS against disk**: ``msgfusion pacs fuse`` (QIDO-RS, WADO-RS of both series, fuse,
  STOW-RS of the new series, check of what the PACS holds) against ``msgfusion fuse`` on folders
  holding the same DICOM files, each a fresh process (wall time, CPU time, peak resident memory;
  interpreter start and the network's weights included), the default method; and the PACS
  run's stages in one process (fetch, fuse, store).
- **Memory per series size**: the same study resampled (linear) onto larger grids over the same
  field of view, fused from the PACS and from disk with ``--method average`` (so that the cost
  measured is the series', not a network's).

    python benchmarks/dicom.py              # writes docs/dicom.md
    python benchmarks/dicom.py --repeats 5
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the Orthanc launcher and the study builder

from dicom_helpers import new_study, spm_study, volume_series  # noqa: E402
from orthanc_server import PASSWORD, USER, missing, running_orthanc  # noqa: E402

import msgfusion  # noqa: E402
from msgfusion.methods.registry import DEFAULT_METHOD  # noqa: E402
from msgfusion.pacs import PacsClient  # noqa: E402

COMMAND = "python benchmarks/dicom.py"
#: (z, y, x) grids of the memory sweep; the first is the SPM templates' own.
SIZES = ((91, 109, 91), (64, 256, 256), (128, 256, 256), (64, 512, 512))
_CHILD = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:], "
          "stdout=subprocess.DEVNULL).returncode; u = resource.getrusage(resource.RUSAGE_CHILDREN);"
          " print(u.ru_utime + u.ru_stime, u.ru_maxrss); sys.exit(rc)")


def measured(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak resident MB) of ``msgfusion ARGV`` as a fresh process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, sys.executable, "-m", "msgfusion",
                           *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"msgfusion {' '.join(argv)} failed: {done.stderr.strip()}")
    cpu, rss = done.stdout.split()
    return wall, float(cpu), int(rss) / 1024


def resized_study(shape: tuple[int, int, int]) -> list[list]:
    """The SPM T1 and PET series resampled onto ``shape`` over the same field of view."""
    from scipy.ndimage import zoom

    base = spm_study(new_study("BENCH^SIZE", f"SIZE-{'x'.join(map(str, shape))}"))
    if shape == SIZES[0]:
        return base
    study, frame = base[0][0], str(base[0][0].FrameOfReferenceUID)
    series = []
    for number, datasets in enumerate(base, 1):
        data = np.stack([ds.pixel_array for ds in datasets]).astype(np.float32)
        factors = [n / m for n, m in zip(shape, data.shape)]
        big = np.clip(np.rint(zoom(data, factors, order=1)), -32768, 32767).astype(np.int16)
        spacing = tuple(2.0 * m / n for m, n in zip(data.shape[::-1], shape[::-1]))
        first = datasets[0]
        series.append(volume_series(big, spacing, str(first.Modality), study, frame,
                                    str(first.SeriesDescription), number,
                                    tuple(float(v) for v in first.ImagePositionPatient)))
    return series


def save_series(series: list[list], folder: Path) -> list[Path]:
    """Each series into its own subfolder of ``folder``; returns the subfolders."""
    out = []
    for i, datasets in enumerate(series):
        sub = folder / f"series{i}"
        sub.mkdir(parents=True)
        for k, ds in enumerate(datasets):
            ds.save_as(sub / f"{k:05d}.dcm", enforce_file_format=True)
        out.append(sub)
    return out


def megabytes(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def stages(url: str, study: str) -> dict[str, float]:
    """Seconds of each stage of ``pacs fuse`` in one process, the default method."""
    import pydicom

    client = PacsClient(url)
    mr_info, pet_info = client.series(study)[:2]
    times: dict[str, float] = {}
    start = time.perf_counter()
    with client.fetched(study, mr_info.uid) as mr_dir, client.fetched(study, pet_info.uid) as pet:
        mr, func = msgfusion.load_volume(mr_dir), msgfusion.load_volume(pet)
    times["fetch (QIDO + WADO-RS, read)"] = time.perf_counter() - start
    start = time.perf_counter()
    fused = msgfusion.fuse_volume(mr, func, "PET")
    times["fuse"] = time.perf_counter() - start
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = msgfusion.write_volume(Path(tmp) / "fused", fused.picture, source=mr)
        client.store(study, [pydicom.dcmread(f) for f in sorted(out.iterdir())])
    times["store (write, STOW-RS, check)"] = time.perf_counter() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "dicom.md")
    args = parser.parse_args()
    reason = missing()
    if reason:
        raise SystemExit(reason)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MSGFUSION_PACS_USER": USER,
           "MSGFUSION_PACS_PASSWORD": PASSWORD}
    os.environ.update(MSGFUSION_PACS_USER=USER, MSGFUSION_PACS_PASSWORD=PASSWORD)
    load_before = os.getloadavg()
    rows, size_rows = [], []
    with tempfile.TemporaryDirectory() as tmp, running_orthanc(Path(tmp)) as pacs:
        tmp_path = Path(tmp)
        # A study, PACS against disk, default method
        series = spm_study(new_study("BENCH^STUDY", "BENCH-1"))
        for datasets in series:
            pacs.upload(datasets)
        study = str(series[0][0].StudyInstanceUID)
        mr_dir, pet_dir = save_series(series, tmp_path / "disk")
        runs: dict[str, list[tuple[float, float, float]]] = {"PACS": [], "disk": []}
        for r in range(args.repeats):
            runs["PACS"].append(measured(["pacs", "fuse", "--url", pacs.dicomweb, "--study",
                                          study], env))
            runs["disk"].append(measured(["fuse", "--mr", str(mr_dir), "--func", str(pet_dir),
                                          "-o", str(tmp_path / f"fused{r}"), "-q"], env))
        for where, found in runs.items():
            wall, cpu, rss = (statistics.median(v) for v in zip(*found))
            rows.append((where, wall, cpu, rss))
        stages(pacs.dicomweb, study)  # loads the method's network first
        stage_times = stages(pacs.dicomweb, study)
        # memory per series size, --method average
        for shape in SIZES:
            sized = resized_study(shape)
            for datasets in sized:
                pacs.upload(datasets)
            uid = str(sized[0][0].StudyInstanceUID)
            folders = save_series(sized, tmp_path / f"size{shape[0]}x{shape[1]}x{shape[2]}")
            mb = sum(megabytes(f) for f in folders)
            from_pacs = measured(["pacs", "fuse", "--url", pacs.dicomweb, "--study", uid,
                                  "--method", "average"], env)
            from_disk = measured(["fuse", "--mr", str(folders[0]), "--func", str(folders[1]),
                                  "-o", str(folders[0].parent / "fused"), "-q", "--method",
                                  "average"], env)
            size_rows.append((shape, mb, from_pacs, from_disk))
    load_after = os.getloadavg()
    write_doc(args, rows, stage_times, size_rows, (load_before, load_after))


def write_doc(args, rows, stage_times, size_rows, loads) -> None:  # type: ignore[no-untyped-def]
    import pydicom

    lines = [
        "# Fusion from a PACS (DICOMweb) against the same files on disk",
        "",
        f"Generated by `{COMMAND}` (do not edit by hand).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores **shared with other agents' "
        "jobs** (the lead's and other helpers' builds and tests ran meanwhile), load average "
        f"{loads[0][0]:.2f} before and {loads[1][0]:.2f} after this run; Python "
        f"{platform.python_version()}, pydicom {pydicom.__version__}, Orthanc with its "
        "DICOMweb plugin (Debian) on loopback, HTTP basic authentication. Each command is a "
        "fresh process (interpreter start and the network's weights included); wall times on "
        "a shared machine include the other jobs' load, CPU times less so.",
        "",
        "## A study: SPM T1 (MR) + PET, 91 x 109 x 91 voxels of 2 mm",
        "",
        f"Default method ({DEFAULT_METHOD}), median of {args.repeats} runs.",
        "",
        "| input | command | wall s | CPU s | peak memory MB |",
        "|---|---|---:|---:|---:|",
    ]
    commands = {"PACS": "`msgfusion pacs fuse --url URL --study UID`",
                "disk": "`msgfusion fuse --mr MR/ --func PET/ -o OUT`"}
    for where, wall, cpu, rss in rows:
        lines.append(f"| {where} | {commands[where]} | {wall:.2f} | {cpu:.2f} | {rss:.0f} |")
    lines += ["", "The PACS run's stages, in one process with the method loaded:", "",
              "| stage | seconds |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in stage_times.items()]
    lines += [
        "",
        "## Memory per series size",
        "",
        "The same study resampled (linear) onto larger grids over the same field of view; MR and "
        "PET series of the same size, fused with `--method average` so that what is measured "
        "is the series' cost (reading, resampling, colour, writing, transfer), not a "
        "network's. One run each.",
        "",
        "| grid (z x y x x) | voxels per series | both series on disk MB | PACS wall s | "
        "PACS peak MB | disk wall s | disk peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for shape, mb, (pw, _, prss), (dw, _, drss) in size_rows:
        lines.append(f"| {' x '.join(map(str, shape))} | {int(np.prod(shape)):,} | {mb:.1f} | "
                     f"{pw:.2f} | {prss:.0f} | {dw:.2f} | {drss:.0f} |")
    shape, _, (_, _, prss), (_, _, drss) = size_rows[-1]
    rgb_mb = int(np.prod(shape)) * 3 / 2**20
    lines += [
        "",
        "What the PACS path adds: the two series travel over HTTP (WADO-RS, one instance at a "
        "time into a temporary folder, then read like the folders on disk); the fused series is "
        "written to a temporary folder, read back and sent in one STOW-RS request, then the "
        "PACS is asked whether it holds every image. Holding the new series for that one "
        "request is the "
        f"price: at {' x '.join(map(str, shape))} the PACS run peaked {prss - drss:.0f} MB above "
        f"the disk run, where the fused RGB pixels are {rgb_mb:.0f} MB.",
        "",
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
