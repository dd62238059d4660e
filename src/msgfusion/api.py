"""The Python API: fuse a pair in one call, from arrays, files or a :class:`FusionPair`; fuse
a folder of pairs; fuse two volumes slice by slice on the MR's grid."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from msgfusion.data.datasets import PairFolder, name_list
from msgfusion.errors import (
    DatasetError,
    ImageTypeError,
    MsgFusionError,
    OutputExistsError,
    OutputWriteError,
    ShapeMismatchError,
    UnknownModalityError,
)
from msgfusion.intensity import IntensityScale, modality_scale, mr_scale
from msgfusion.io.color import (COLOR_MODES, DEFAULT_COLOR_MODE, colorize, default_cmap,
                                restore_color, to_uint8)
from msgfusion.io.files import atomic_write
from msgfusion.io.images import check_writable, encode_image
from msgfusion.io.volumes import guess_modality, read_volume
from msgfusion.methods.registry import DEFAULT_METHOD, FusionMethod, fuse_pairs, get_method
from msgfusion.pair import (
    FusionPair,
    as_image,
    check_modality,
    infer_modality,
    load_pair,
    prepare_images,
)
from msgfusion.progress import progress_bar
from msgfusion.volume import (AXES, Orientation, Volume, n_planes, plane, plane_spacing,
                              resample_to)

ImageLike = np.ndarray | str | os.PathLike
T = TypeVar("T")
R = TypeVar("R")


def make_pair(mr: ImageLike, func: ImageLike, modality: str | None = None,
              cmap: str | None = None) -> FusionPair:
    """A :class:`FusionPair` from two arrays or two file paths.

    Arrays are scaled as :func:`msgfusion.pair.as_image` says (uint8 by 255, bool to {0, 1},
    16-bit as the file reader does; floats must be in [0, 1]); bad values raise a
    :class:`~msgfusion.errors.MsgFusionError` subclass naming the image. The modality is
    inferred when not given (:func:`msgfusion.pair.infer_modality`: grey is CT, colour PET or
    SPECT by its colour scale); a scalar PET/SPECT is rendered with ``cmap`` (default: the
    atlas's scale of that modality), as :func:`msgfusion.pair.prepare_images` says.
    """
    paths = (str, os.PathLike)
    if isinstance(mr, paths) and isinstance(func, paths):
        return load_pair(mr, func, modality, cmap=cmap)
    if not isinstance(mr, np.ndarray) or not isinstance(func, np.ndarray):
        raise ImageTypeError("give both images as arrays or both as file paths, got "
                             f"{type(mr).__name__} and {type(func).__name__}")
    mr, func = as_image(mr, "MR image"), as_image(func, "functional image")
    for image, what in ((mr, "MR image"), (func, "functional image")):
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ShapeMismatchError(f"{what} must be H x W or H x W x 3, got shape {image.shape}")
    modality = check_modality(modality) if modality else infer_modality(func)
    mr, func = prepare_images(mr, func, modality, cmap)
    return FusionPair(mr=mr, func=func, modality=modality)


def fuse_intensity(pairs: Sequence[FusionPair], method: str = DEFAULT_METHOD,
                   batch_size: int = 16) -> list[np.ndarray]:
    """Fused intensities (H x W float32 in [0, 1]) of many pairs with the named method."""
    return fuse_pairs(get_method(method), pairs, batch_size=batch_size)


def fuse(
    mr: ImageLike | FusionPair,
    func: ImageLike | None = None,
    method: str = DEFAULT_METHOD,
    color: str = DEFAULT_COLOR_MODE,
    modality: str | None = None,
    cmap: str | None = None,
) -> np.ndarray:
    """Fuse an MR image with a CT/PET/SPECT image; returns the fused picture in [0, 1].

    ``mr`` and ``func`` are arrays (grey H x W / RGB H x W x 3, float in [0, 1]) or file paths;
    or pass a :class:`FusionPair` as ``mr``. The result is grey for CT and in the functional
    image's colour scale for PET/SPECT (``color``: ycbcr (default), hsv, gray or viridis; grey
    wherever the PET/SPECT has no signal). A scalar PET/SPECT (give ``modality``) is first
    rendered with the colour map ``cmap`` (default: the atlas's own PET or SPECT scale).

    >>> fused = fuse("mr.png", "pet.png", method="average")   # doctest: +SKIP
    """
    pair = (mr if isinstance(mr, FusionPair)
            else make_pair(mr, func, modality, cmap))  # type: ignore[arg-type]
    (intensity,) = fuse_intensity([pair], method)
    return restore_color(intensity, pair.func, color)


#: fuse_folder: images encoded and waiting for the disk at most (beyond, workers wait).
PENDING_WRITES = 32


@dataclass
class FolderResult:
    """What :func:`fuse_folder` did: outputs written, outputs that existed and were skipped,
    and the pairs that failed (name -> one-line reason)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def fuse_folder(
    pairs_dir: str | os.PathLike | PairFolder,
    out_dir: str | os.PathLike,
    method: str | FusionMethod = DEFAULT_METHOD,
    color: str = DEFAULT_COLOR_MODE,
    *,
    overwrite: bool = False,
    skip_existing: bool = False,
    keep_going: bool = False,
    batch_size: int = 1,
    workers: int | None = None,
    on_failure: Callable[[str, str], object] | None = None,
    progress: bool = True,
) -> FolderResult:
    """Fuse every pair of a folder of pairs into ``out_dir``, under the pairs' file names.

    Before anything is written, every pair is checked from its headers (regular files, sound
    headers and PNG checksums, one size; :meth:`PairFolder.problems`) and every output path
    (no clobbering unless ``overwrite``; with ``skip_existing`` an existing output is kept and
    its pair skipped, which resumes an interrupted run). By default the first problem raises a
    :class:`~msgfusion.errors.MsgFusionError`; with ``keep_going`` a failing pair (unreadable,
    too small for the method, out of memory, unwritable output) is reported to
    ``on_failure(name, reason)`` and the others are fused.

    ``workers`` threads (default: one per usable CPU core) each read ``batch_size`` pairs, fuse
    them in one call of the method, restore colour and encode them, and two writer threads
    commit the files (:func:`~msgfusion.io.files.atomic_write`), so that reading, fusing and
    writing of different pairs overlap and every core fuses. PyTorch's own threads multiply
    with them: the CLI runs one per worker (``torch.set_num_threads(1)``, its ``--threads``
    default); from Python, set it too for a CPU network.
    """
    if overwrite and skip_existing:
        raise ValueError("overwrite and skip_existing exclude each other")
    if batch_size < 1 or (workers is not None and workers < 1):
        raise ValueError(f"batch_size and workers must be positive, got {batch_size} and "
                         f"{workers}")
    folder = (pairs_dir if isinstance(pairs_dir, PairFolder)
              else PairFolder(pairs_dir, check_sizes=False))
    method = get_method(method) if isinstance(method, str) else method
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputWriteError(f"{out_dir}: exists and is not a folder")
    result = FolderResult()

    def fail(index: int, reason: str | MsgFusionError) -> None:
        name = folder.files[index].stem
        result.failed[name] = str(reason)
        if on_failure is not None:
            on_failure(name, str(reason))

    problems = folder.problems()
    if problems and not keep_going:
        raise DatasetError(f"{len(problems)} of {len(folder)} pair(s) cannot be fused: "
                           f"{name_list(list(problems.values()), 3)}")
    for i, reason in problems.items():
        fail(i, reason)
    todo: list[tuple[int, Path]] = []
    existing = []
    for i, f in enumerate(folder.files):
        if i in problems:
            continue
        out = out_dir / f.name
        if out.exists() and skip_existing:
            result.skipped.append(out)
        elif out.exists() and not overwrite:
            existing.append(out)
            if keep_going:
                fail(i, OutputExistsError(f"{out}: already exists"))
        else:
            todo.append((i, check_writable(out, overwrite)))
    if existing and not keep_going:
        raise OutputExistsError(f"{out_dir}: {len(existing)} output(s) already exist: "
                                f"{name_list([p.name for p in existing], 3)}")

    def written_note(exc: MsgFusionError) -> MsgFusionError:
        if not result.written:
            return exc
        return type(exc)(f"{exc}; {len(result.written)} image(s) were written before it "
                         "(skip existing outputs to resume)")

    # Each encoded image is committed (written, fsync'ed, linked into place: atomic_write) by
    # threads of its own, so that a worker goes on with its next pair instead of waiting for
    # the disk (fsync took 0.25 ms per image here, far more on a spinning disk).
    writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="msgfusion-write")
    slots = threading.BoundedSemaphore(PENDING_WRITES)
    commits: list[tuple[Path, Future]] = []

    def commit(out: Path, data: bytes) -> Path:
        try:
            return atomic_write(out, lambda f: f.write(data), overwrite)
        finally:
            slots.release()

    Outcome = MsgFusionError | Future | None

    def job(chunk: list[tuple[int, Path]]) -> list[tuple[int, Path, Outcome]]:
        """Read, fuse, colour and encode one chunk of pairs (in a worker thread), each image
        then handed to the writer; each pair's outcome: the write's future, or the error
        (``keep_going``; else it is raised)."""
        outcomes: list[tuple[int, Path, Outcome]] = []
        batch = []
        for i, out in chunk:
            try:
                batch.append((i, out, folder[i]))
            except MsgFusionError as exc:
                if not keep_going:
                    raise
                outcomes.append((i, out, exc))
        failed: dict[int, MsgFusionError] = {}
        fused = _fuse_isolating(method, batch, keep_going, failed.__setitem__)
        outcomes += [(i, out, failed[i]) for i, out, _ in batch if i in failed]
        for i, out, pair, intensity in fused:
            try:
                data = encode_image(out, restore_color(intensity, pair.func, color))
            except MsgFusionError as exc:
                if not keep_going:
                    raise
                outcomes.append((i, out, exc))
                continue
            slots.acquire()
            future = writer.submit(commit, out, data)
            commits.append((out, future))
            outcomes.append((i, out, future))
        return outcomes

    desc = f"{folder.modality}-MRI {method.name}"
    chunks = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    results = in_workers(job, chunks, workers)
    stop: MsgFusionError | None = None
    with progress_bar(total=len(todo), desc=desc, unit="pair", enabled=progress) as bar:
        try:
            for outcomes in results:
                for i, out, outcome in outcomes:
                    if isinstance(outcome, Future):
                        try:
                            outcome.result()
                            outcome = None
                        except MsgFusionError as exc:
                            if not keep_going:
                                raise
                            outcome = exc
                    if outcome is None:
                        result.written.append(out)
                    else:
                        fail(i, outcome)
                bar.update(len(outcomes))
        except MsgFusionError as exc:
            stop = exc
        finally:
            # every worker stopped first (none then waits for a write slot), then the writes
            # not started are dropped
            results.close()
            writer.shutdown(wait=True, cancel_futures=True)
    if stop is not None:  # the writes that completed count as written
        result.written = [out for out, future in commits if future.done()
                          and not future.cancelled() and future.exception() is None]
        raise written_note(stop) from None
    return result


def in_workers(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None
               ) -> Iterator[R]:
    """``fn(item)`` for every item in ``workers`` threads (default: one per usable core),
    yielded in the items' order. The first exception is raised where it is reached; items not
    started by then are cancelled (those running finish)."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers or usable_cores(), len(items))))
    try:
        futures = [pool.submit(fn, item) for item in items]
        for future in futures:
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _fuse_isolating(method: FusionMethod, batch: list[tuple[int, Path, FusionPair]],
                    keep_going: bool, fail: Callable[[int, MsgFusionError], None],
                    ) -> list[tuple[int, Path, FusionPair, np.ndarray]]:
    """Fuse a batch; with ``keep_going``, a failing batch is retried pair by pair and each
    failing pair reported to ``fail``."""
    try:
        fused = fuse_pairs(method, [pair for _, _, pair in batch], batch_size=max(1, len(batch)))
        return [(i, out, pair, f) for (i, out, pair), f in zip(batch, fused)]
    except MsgFusionError:
        if not keep_going:
            raise
    done = []
    for i, out, pair in batch:
        try:
            (f,) = fuse_pairs(method, [pair])
            done.append((i, out, pair, f))
        except MsgFusionError as exc:
            fail(i, exc)
    return done


# --- Volumes -------------------------------------------------------------------------------------

VolumeLike = Volume | str | os.PathLike


def load_volume(path: str | os.PathLike, series: Sequence[str] = (),
                frame: int | None = None) -> Volume:
    """Read a NIfTI file, DICOM series (folder or one of its files), MetaImage or NRRD file.

    ``series``: SeriesInstanceUIDs choosing among several series in one DICOM folder; ``frame``:
    the frame of a 4-D input. See :mod:`msgfusion.io.volumes` for the conventions.
    """
    return read_volume(path, series, frame)


@dataclass(frozen=True)
class FusedVolume:
    """Two volumes fused on the MR's grid.

    ``intensity``: the fused intensity (float32 in [0, 1]); ``picture``: what a viewer shows, RGB
    uint8 for PET/SPECT in colour or ``intensity`` itself for grey results. Both carry the MR's
    geometry. ``mr`` and ``func`` (resampled onto the MR grid, physical values) with the scales
    below re-render any slice as the method saw it (:meth:`planes`).
    """

    intensity: Volume
    picture: Volume
    mr: Volume
    func: Volume
    modality: str
    method: str
    color: str
    cmap: str | None
    mr_scale: IntensityScale
    func_scale: IntensityScale

    def render_func(self, values: np.ndarray) -> np.ndarray:
        """Physical functional values -> the picture the method is given (grey or colour)."""
        unit = self.func_scale(values)
        return unit if self.cmap is None else colorize(unit, self.cmap)

    def planes(self, axis: str, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(MR, functional, fused picture) of one slice, displayed the radiological way."""
        orient = Orientation.of(self.mr)
        mr = self.mr_scale(plane(orient.view(self.mr.data), axis, index))
        func = self.render_func(plane(orient.view(self.func.data), axis, index))
        fused = plane(orient.view(self.picture.data), axis, index)
        if fused.dtype == np.uint8:
            fused = fused.astype(np.float32) / 255.0
        return mr, func, fused


def fuse_volume(
    mr: VolumeLike,
    func: VolumeLike,
    modality: str | None = None,
    method: str | FusionMethod = DEFAULT_METHOD,
    color: str = DEFAULT_COLOR_MODE,
    window: str | tuple[float, float] | None = None,
    axis: str = "axial",
    transform: object = None,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
    cmap: str | None = None,
    workers: int | None = None,
) -> FusedVolume:
    """Fuse an MR volume with a CT/PET/SPECT volume, slice by slice, on the MR's grid.

    The functional volume is resampled onto the MR grid (linear; ``transform``, a SimpleITK
    transform from MR to functional points, e.g. from registration, when they do not share a
    space; outside its field of view there is no signal and the fused image is the MR alone), both are brought to [0, 1] per modality (:mod:`msgfusion.intensity`; ``window``: the
    CT window), PET/SPECT rendered with ``cmap`` (default: the atlas's scale of the modality,
    :func:`msgfusion.io.color.default_cmap`), then cut into
    :class:`FusionPair` slices along ``axis`` (axial, coronal or sagittal) that go through
    ``fuse_pairs`` in batches of ``batch_size`` (``progress(n)`` after each), ``workers``
    batches at once (default: one per CPU core; see :func:`fuse_folder` on torch threads).
    Colour is restored per slice (``color`` as in :func:`fuse`). The modality is taken from the
    functional volume's header or file name when not given.
    """
    if axis not in AXES:
        raise MsgFusionError(f"unknown axis {axis!r}; choose one of {', '.join(AXES)}")
    if color not in COLOR_MODES:
        raise MsgFusionError(f"unknown colour mode {color!r}; choose one of "
                             f"{', '.join(COLOR_MODES)}")
    mr = mr if isinstance(mr, Volume) else load_volume(mr)
    func = func if isinstance(func, Volume) else load_volume(func)
    method = get_method(method) if isinstance(method, str) else method
    name = func.meta.get("path", "the functional volume")
    if modality is None:
        modality = guess_modality(func)
        if modality in (None, "MR"):
            raise UnknownModalityError(f"{name}: cannot tell whether it is CT, PET or SPECT; "
                                       "give the modality (--modality)")
    modality = check_modality(modality)
    for vol, what in ((mr, "MR"), (func, modality)):
        if vol.is_rgb:
            raise ShapeMismatchError(f"{vol.meta.get('path', what)}: the {what} volume is RGB; "
                                     "a scalar volume is needed")
    func_scale = modality_scale(func.data, modality, window)
    # outside the functional volume's field of view: no signal (its minimum: air, no
    # activity), and the fusion there is the MR alone
    on_grid = resample_to(func, mr, transform, default=float(np.min(func.data)))
    covered = resample_to(func.with_data(np.ones(func.shape, np.float32)), mr, transform).data
    covered_view = Orientation.of(mr).view(covered > 0.5)
    mr_scale_ = mr_scale(mr.data)
    cmap = None if modality == "CT" else (cmap or default_cmap(modality))
    rgb = color == "viridis" or (modality != "CT" and color != "gray")
    intensity = np.zeros(mr.shape, dtype=np.float32)
    picture = np.zeros(mr.shape + (3,), dtype=np.uint8) if rgb else intensity
    descrip = f"msgfusion {modality}-MRI fused ({method.name})"
    result = FusedVolume(mr.with_data(intensity, descrip=f"{descrip} intensity"),
                         mr.with_data(picture, descrip=descrip), mr, on_grid, modality,
                         method.name, color, cmap, mr_scale_, func_scale)
    orient = Orientation.of(mr)
    mr_view, func_view = orient.view(mr.data), orient.view(on_grid.data)
    out_view, pic_view = orient.view(intensity), orient.view(picture)
    n = n_planes(mr_view, axis)

    def job(indices: range) -> int:  # fills its own planes of the outputs
        pairs = [FusionPair(mr=mr_scale_(plane(mr_view, axis, i)),
                            func=result.render_func(plane(func_view, axis, i)),
                            modality=modality, name=f"{axis} {i}") for i in indices]
        for i, pair, fused in zip(indices, pairs, fuse_pairs(method, pairs, batch_size)):
            fused = np.where(plane(covered_view, axis, i), fused, pair.mr)
            plane(out_view, axis, i)[...] = fused
            if rgb:
                plane(pic_view, axis, i)[...] = to_uint8(restore_color(fused, pair.func, color))
        return len(indices)

    chunks = [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    for done in in_workers(job, chunks, workers):
        if progress is not None:
            progress(done)
    return result


def volume_preview(result: FusedVolume, size: int = 256) -> np.ndarray:
    """A montage of the middle axial, coronal and sagittal slices, one row each:
    MR | functional | fused, with square pixels (the longest side of the volume is ``size``
    pixels). Returns H x W x 3 in [0, 1]."""
    from msgfusion.io.figures import resize, side_by_side, stack_rows

    extent = max(n * s for n, s in zip(result.mr.shape, result.mr.spacing[::-1]))
    mm_per_pixel = extent / size
    canonical = Orientation.of(result.mr).view(result.mr.data)
    rows = []
    for axis in AXES:
        panels = result.planes(axis, n_planes(canonical, axis) // 2)
        dy, dx = plane_spacing(result.mr, axis)
        h, w = panels[0].shape[:2]
        shape = (round(h * dy / mm_per_pixel), round(w * dx / mm_per_pixel))
        rows.append(side_by_side([resize(p, *shape) for p in panels],
                                 [f"MR ({axis})", result.modality,
                                  f"fused ({result.method})"]))
    return stack_rows(rows)
