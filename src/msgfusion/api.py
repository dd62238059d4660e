"""The Python API: fuse a pair in one call, from arrays, files or a :class:`FusionPair`; fuse
a folder of pairs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msgfusion.data.datasets import PairFolder, name_list
from msgfusion.errors import (
    DatasetError,
    ImageTypeError,
    MsgFusionError,
    OutputExistsError,
    OutputWriteError,
    ShapeMismatchError,
)
from msgfusion.io.color import DEFAULT_COLOR_MODE, restore_color
from msgfusion.io.images import check_writable, write_image
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

ImageLike = np.ndarray | str | os.PathLike


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
    pair = mr if isinstance(mr, FusionPair) else make_pair(mr, func, modality, cmap)  # type: ignore[arg-type]
    (intensity,) = fuse_intensity([pair], method)
    return restore_color(intensity, pair.func, color)


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
    batch_size: int = 16,
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
    ``on_failure(name, reason)`` and the others are fused. Reading the next batch and writing
    the last run in background threads while the method fuses the current batch.
    """
    if overwrite and skip_existing:
        raise ValueError("overwrite and skip_existing exclude each other")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
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

    desc = f"{folder.modality}-MRI {method.name}"
    with ThreadPoolExecutor(max_workers=2) as pool, \
            progress_bar(total=len(todo), desc=desc, unit="pair", enabled=progress) as bar:
        def read(start: int) -> list[tuple[int, Path, Future]]:
            return [(i, out, pool.submit(folder.__getitem__, i))
                    for i, out in todo[start : start + batch_size]]

        def finish(writes: list[tuple[int, Path, Future]]) -> None:
            for i, out, future in writes:
                try:
                    future.result()
                    result.written.append(out)
                except MsgFusionError as exc:
                    if not keep_going:
                        raise written_note(exc) from None
                    fail(i, exc)

        def collect(futures: list[tuple[int, Path, Future]]) -> list[tuple[int, Path, FusionPair]]:
            batch = []
            for i, out, future in futures:
                try:
                    batch.append((i, out, future.result()))
                except MsgFusionError as exc:
                    if not keep_going:
                        raise written_note(exc) from None
                    fail(i, exc)
            return batch

        pending, writes = read(0), []
        for start in range(0, len(todo), batch_size):
            batch = collect(pending)
            pending = read(start + batch_size)
            try:
                fused = _fuse_isolating(method, batch, keep_going, fail)
            except MsgFusionError as exc:
                raise written_note(exc) from None
            finish(writes)
            writes = [(i, out, pool.submit(write_image, out,
                                           restore_color(intensity, pair.func, color),
                                           overwrite=overwrite))
                      for i, out, pair, intensity in fused]
            bar.update(len(todo[start : start + batch_size]))
        finish(writes)
    return result


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
