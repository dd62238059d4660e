"""Volume jobs of the web page: uploads streamed to disk, read with the library's readers,
registered when asked (or when the two scans do not share a space), fused with every chosen
method through the public API (:func:`msgfusion.fuse_volume`), written as NIfTI for the viewer
(NiiVue) and as NIfTI / zipped DICOM series for download.

Jobs run in a bounded pool (``running`` at once, ``waiting`` more queued; beyond that the server
answers "busy"), report their progress, can be cancelled, and their folders are deleted
``keep_s`` seconds after they end. A doubtful registration stores no fusion unless the user
accepted it (DESIGN.md: doubtful registration stops the fusion).
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import threading
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from msgfusion import (
    FusedVolume,
    Volume,
    check_color,
    check_method,
    evaluate,
    fuse_volume,
    load_volume,
    write_volume,
)
from msgfusion.errors import ImageReadError, MsgFusionError, SpaceMismatchError
from msgfusion.io.color import COLORMAPS
from msgfusion.io.volumes import volume_suffix
from msgfusion.volume import Orientation, check_same_space, n_planes
from msgfusion.web.gate import ServerBusy
from msgfusion.web.security import MAGIC

CHUNK = 1 << 20
#: Upload names taken as volumes (a DICOM series: several .dcm files, or one .zip).
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mha", ".nrrd", ".zip", ".dcm")
#: A zip of a DICOM series: at most this many members.
MAX_ZIP_MEMBERS = 4096


class JobCancelled(MsgFusionError):
    """The user cancelled the job."""


def is_volume_upload(names: Sequence[str | None], head: bytes) -> bool:
    """Whether uploaded files are a volume: several files (a DICOM series), a volume suffix, or
    the first bytes of a NIfTI-1/2 header, a gzip stream or a zip. One DICOM file on its own is
    a 2-D image, as on the command line (:mod:`msgfusion.io.dicom_image`)."""
    if len(names) > 1:
        return True
    name = (names[0] or "").lower()
    if any(name.endswith(s) for s in VOLUME_SUFFIXES if s != ".dcm"):
        return True
    return (head[:4] in (b"\x5c\x01\x00\x00", b"\x1c\x02\x00\x00") or head[:2] == b"\x1f\x8b"
            or head[:4] == b"PK\x03\x04")


def save_stream(source: IO[bytes], target: Path, limit: int, label: str) -> int:
    """Copy an upload to ``target`` in chunks (never all in memory); an
    :class:`ImageReadError` naming ``label`` past ``limit`` bytes. Returns the size."""
    size = 0
    with open(target, "wb") as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise ImageReadError(f"{label}: larger than {limit / 2**20:g} MB")
            out.write(chunk)
    if size == 0:
        raise ImageReadError(f"{label}: the file is empty")
    return size


def unpack_series(archive: Path, folder: Path, limit: int, label: str) -> Path:
    """Extract a zip of DICOM files into ``folder`` (members flattened to safe names, no paths
    outside it, at most ``limit`` bytes unpacked); returns ``folder``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if not members:
                raise ImageReadError(f"{label}: the zip holds no files")
            if len(members) > MAX_ZIP_MEMBERS:
                raise ImageReadError(f"{label}: more than {MAX_ZIP_MEMBERS} files in the zip")
            if sum(m.file_size for m in members) > limit:
                raise ImageReadError(f"{label}: unpacks to more than {limit / 2**20:g} MB")
            folder.mkdir()
            for i, member in enumerate(members):
                with zf.open(member) as src:
                    save_stream(src, folder / f"{i:05d}.dcm", limit, f"{label}: {member.filename}")
    except zipfile.BadZipFile:
        raise ImageReadError(f"{label}: not a readable zip file") from None
    return folder


def read_volume_upload(path: Path, label: str) -> Volume:
    """A staged upload read with the library's reader; messages name the upload, not the
    server's folders, and say what to do on the page (no command-line options)."""
    try:
        volume = load_volume(path)
    except MsgFusionError as exc:
        text = str(exc).replace(str(path), label)
        text = re.sub(r"; choose one with --frame N \(0\.\.\d+\)",
                      "; upload a single 3-D frame", text)
        raise type(exc)(text) from None
    volume.meta["path"] = label
    return volume


@dataclass
class VolumeResult:
    method: str
    nifti: Path
    dicom_zip: Path
    metrics: dict[str, float]


@dataclass
class VolumeJob:
    """One volume fusion request and how far it got."""

    id: str
    folder: Path
    mr: Path
    func: Path
    labels: tuple[str, str]
    methods: list[str]
    color: str
    modality: str | None
    register: bool
    accept_doubtful: bool
    max_voxels: int = 32 * 2**20
    #: queued, reading, registering, fusing; then done, failed, doubtful or cancelled
    status: str = "queued"
    progress: float = 0.0
    message: str = ""
    registration: str = ""
    qa: Path | None = None
    results: list[VolumeResult] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    ended: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def active(self) -> bool:
        return self.ended is None


def colour_scale(fused: FusedVolume, stops: int = 32) -> dict[str, Any]:
    """What each colour of the result means: the functional image's colour map from its lowest
    to its highest shown value (physical units of the scan), for the colour bars."""
    name = fused.cmap or "gray"
    table = COLORMAPS[name]
    index = np.linspace(0, len(table) - 1, stops).round().astype(int)
    unit = fused.unit
    return {"name": name, "rgb": (table[index] * 255).round().astype(int).tolist(),
            "low": round(float(fused.func_scale.low), 4),
            "high": round(float(fused.func_scale.high), 4), "unit": unit,
            "meaning": (f"darker to brighter grey: low to high {unit}" if fused.modality == "CT"
                        else f"colour: {fused.modality} {unit} from low (left) to high (right); "
                             "brightness: the fused anatomy")}


class VolumeJobs:
    """The bounded queue of volume jobs, their folders under ``root`` and their lifetimes."""

    def __init__(self, root: Path, running: int = 1, waiting: int = 2,
                 keep_s: float = 3600.0) -> None:
        self.root = root
        self.keep_s = keep_s
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.iterdir():  # a previous server's jobs: nobody can reach them
            shutil.rmtree(stale, ignore_errors=True)
        self._pool = ThreadPoolExecutor(max_workers=running, thread_name_prefix="msgfusion-volume")
        self._slots = threading.BoundedSemaphore(running + waiting)
        self._jobs: dict[str, VolumeJob] = {}
        self._lock = threading.Lock()

    def new_folder(self) -> tuple[str, Path]:
        job_id = secrets.token_urlsafe(16)
        folder = self.root / job_id
        folder.mkdir()
        return job_id, folder

    def submit(self, job: VolumeJob) -> VolumeJob:
        """Queue ``job``; :class:`ServerBusy` (its folder removed) when every slot is taken."""
        self.sweep()
        if not self._slots.acquire(blocking=False):
            shutil.rmtree(job.folder, ignore_errors=True)
            raise ServerBusy("the server is busy with other volumes; try again in a minute")
        with self._lock:
            self._jobs[job.id] = job
        future = self._pool.submit(self._run, job)
        future.add_done_callback(lambda _: self._slots.release())
        return job

    def get(self, job_id: str) -> VolumeJob | None:
        self.sweep()
        with self._lock:
            return self._jobs.get(job_id)

    def sweep(self) -> None:
        """Forget and delete the jobs that ended more than ``keep_s`` seconds ago."""
        now = time.monotonic()
        with self._lock:
            expired = [j for j in self._jobs.values()
                       if j.ended is not None and now - j.ended > self.keep_s]
            for job in expired:
                del self._jobs[job.id]
        for job in expired:
            shutil.rmtree(job.folder, ignore_errors=True)

    def _run(self, job: VolumeJob) -> None:
        try:
            run_job(job)
            if job.status not in ("doubtful",):
                job.status = "done"
        except JobCancelled:
            job.status, job.message = "cancelled", "cancelled"
        except MsgFusionError as exc:
            job.status, job.message = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - reported on the page, logged by the app
            job.status = "failed"
            job.message = f"internal error ({type(exc).__name__}); the server log has the details"
            logging.getLogger("msgfusion.web").exception("volume job failed")
        finally:
            if job.status in ("failed", "cancelled"):
                job.results = []  # nothing half-made is offered
            job.ended = time.monotonic()
            job.finished.set()

    def close(self) -> None:
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def run_job(job: VolumeJob) -> None:
    """Read, (register), fuse with each method, write; updates ``job`` as it goes."""
    job.status = "reading"
    mr = read_volume_upload(job.mr, job.labels[0])
    func = read_volume_upload(job.func, job.labels[1])
    for vol, label in ((mr, job.labels[0]), (func, job.labels[1])):
        if vol.is_rgb:
            raise ImageReadError(f"{label}: an RGB volume; upload the scanner's grey values")
        if int(np.prod(vol.shape)) > job.max_voxels:
            raise ImageReadError(f"{label}: {' x '.join(map(str, vol.shape))} voxels is more than "
                                 f"the {job.max_voxels} this server allows")
    transform = None
    register = job.register
    if not register:
        try:
            check_same_space(mr, func)
        except SpaceMismatchError as exc:
            register = True  # the frames of reference differ: registration is not optional
            job.info["registered_because"] = str(exc)
    if register:
        transform = _register(job, mr, func)
        if job.status == "doubtful":
            return
    job.status = "fusing"
    n = n_planes(Orientation.of(mr).view(mr.data), "axial")
    total, done = n * len(job.methods), 0

    def step(count: int) -> None:
        nonlocal done
        if job.cancel.is_set():
            raise JobCancelled("cancelled")
        done += count
        job.progress = done / total

    for i, method in enumerate(job.methods):
        fused = fuse_volume(mr, func, job.modality, method, job.color, transform=transform,
                            progress=step)
        if i == 0:
            _write_sources(job, fused)
        job.results.append(_write_result(job, i, fused))


def _register(job: VolumeJob, mr: Volume, func: Volume) -> Any:
    """The rigid transform of ``func`` onto ``mr`` with its QA figure; marks the job doubtful
    (and returns None) when the registration is, unless the user accepted that."""
    from msgfusion.register import qa_figure, register_volumes

    job.status = "registering"
    result = register_volumes(mr, func, accept_doubtful=True)  # the doubt is the page's to show
    job.registration = result.summary
    job.qa = qa_figure(result, job.folder / "qa.png", title="functional (edges) on the MR")
    if result.doubts and not job.accept_doubtful:
        job.status = "doubtful"
        job.message = "; ".join(d.reason for d in result.doubts)
        return None
    return result.transform


def _write_sources(job: VolumeJob, fused: FusedVolume) -> None:
    """The MR and the functional volume on the MR's grid, as NIfTI for the viewer."""
    write_volume(job.folder / "mr.nii.gz", fused.mr)
    write_volume(job.folder / "func.nii.gz", fused.func.with_data(
        fused.func.data.astype(np.float32)))
    job.info.update(modality=fused.modality, shape=list(fused.mr.shape),
                    spacing=list(fused.mr.spacing), scale=colour_scale(fused),
                    mr_range=[round(float(fused.mr_scale.low), 4),
                              round(float(fused.mr_scale.high), 4)])


def _write_result(job: VolumeJob, i: int, fused: FusedVolume) -> VolumeResult:
    """The fused picture as NIfTI and as a zipped DICOM series (MR geometry), and the paper's
    metrics of its central axial slice."""
    label = f"{fused.modality}-MRI fused with {fused.method}"
    nifti = write_volume(job.folder / f"fused-{i}.nii.gz", fused.picture)
    series = write_volume(job.folder / f"fused-{i}-dicom", fused.picture, source=fused.mr,
                          description=f"{label} (msgfusion)",
                          derivation=f"{label}, colour {job.color}, from {job.labels[0]} and "
                                     f"{job.labels[1]} resampled onto the MR grid")
    archive = job.folder / f"fused-{i}-dicom.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(series.iterdir()):
            zf.write(f, f"{series.name}/{f.name}")
    shutil.rmtree(series)
    axial = n_planes(Orientation.of(fused.mr).view(fused.mr.data), "axial")
    metrics = evaluate(*fused.planes("axial", axial // 2), "paper")
    return VolumeResult(fused.method, nifti, archive, metrics)


def sniff_volume(name: str, head: bytes, label: str) -> str:
    """The suffix an uploaded volume is read by: its name's, else judged by its first bytes;
    an :class:`ImageReadError` naming ``label`` for a 2-D image."""
    for magic, _, kind in MAGIC:
        if head.startswith(magic):
            raise ImageReadError(f"{label}: a 2-D {kind} image, not a volume; fuse two slices on "
                                 "the fusion page (/) or upload two volumes")
    lowered = name.lower()
    if lowered.endswith(".zip") or head[:4] == b"PK\x03\x04":
        return ".zip"
    if volume_suffix(lowered):
        return volume_suffix(lowered)
    if head[:2] == b"\x1f\x8b":
        return ".nii.gz"
    if head[:4] in (b"\x5c\x01\x00\x00", b"\x1c\x02\x00\x00"):
        return ".nii"
    return ".dcm"


def stage_uploads(uploads: Sequence[Any], folder: Path, limit: int, label: str) -> Path:
    """Stream one volume upload (a file, a zip of a DICOM series, or several DICOM files;
    Starlette ``UploadFile`` objects) into ``folder``; the path the volume reader takes."""
    folder.mkdir()
    if len(uploads) > 1:
        series = folder / "series"
        series.mkdir()
        for i, upload in enumerate(uploads):
            save_stream(upload.file, series / f"{i:05d}.dcm", limit, f"{label} file {i + 1}")
        return series
    (upload,) = uploads
    head = upload.file.read(352)
    upload.file.seek(0)
    suffix = sniff_volume(upload.filename or "", head, label)
    if suffix == ".zip":
        archive = folder / "upload.zip"
        save_stream(upload.file, archive, limit, label)
        return unpack_series(archive, folder / "series", limit, label)
    if suffix == ".dcm":  # one DICOM file: the reader takes the series of its folder
        (folder / "series").mkdir()
        target = folder / "series" / "00000.dcm"
    else:
        target = folder / f"upload{suffix}"
    save_stream(upload.file, target, limit, label)
    return target


def validate(methods: Sequence[str], color: str) -> tuple[list[str], str]:
    """The chosen methods (each registered, no repeats) and colour, checked before any upload is
    read."""
    chosen = [check_method(m) for m in dict.fromkeys(m for m in methods if m)]
    if not chosen:
        raise MsgFusionError("choose at least one method")
    return chosen, check_color(color)
