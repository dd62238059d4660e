"""The Python API: fuse a pair in one call, from arrays, files or a :class:`FusionPair`, or many
pairs at once; evaluate a fusion; name and check methods; fuse two volumes slice by slice on the
MR's grid. Folders of pairs: :mod:`msgfusion.folder`. The CLI, the web app and the cohort runner
are clients of these functions (through :mod:`msgfusion`): there is one fusion path."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from msgfusion.errors import (
    ImageTypeError,
    MsgFusionError,
    ShapeMismatchError,
    UnknownModalityError,
)
from msgfusion.intensity import UNITS, IntensityScale, modality_scale, mr_scale
from msgfusion.io.color import (
    COLOR_MODES,
    DEFAULT_COLOR_MODE,
    colorize,
    default_cmap,
    restore_color,
    to_uint8,
)
from msgfusion.io.volumes import guess_modality, read_volume
from msgfusion.methods.registry import (
    DEFAULT_METHOD,
    FusionMethod,
    fuse_pairs,
    get_method,
    list_methods,
)
from msgfusion.pair import (
    FusionPair,
    as_image,
    check_modality,
    infer_modality,
    load_pair,
    prepare_images,
)
from msgfusion.volume import (
    AXES,
    Orientation,
    Volume,
    n_planes,
    plane,
    plane_spacing,
    resample_to,
)
from msgfusion.workers import in_workers

ImageLike = np.ndarray | str | os.PathLike

__all__ = ["DEFAULT_METHOD", "FusedVolume", "check_color", "check_method", "evaluate", "fuse",
           "fuse_intensity", "fuse_many", "fuse_volume", "list_methods", "load_volume",
           "make_pair", "method_fingerprint", "volume_preview"]


def make_pair(mr: ImageLike, func: ImageLike, modality: str | None = None,
              cmap: str | None = None, name: str | None = None) -> FusionPair:
    """A :class:`FusionPair` from two arrays or two file paths.

    Arrays are scaled as :func:`msgfusion.pair.as_image` says (uint8 by 255, bool to {0, 1},
    16-bit as the file reader does; floats must be in [0, 1]); bad values raise a
    :class:`~msgfusion.errors.MsgFusionError` subclass naming the image. The modality is
    inferred when not given (:func:`msgfusion.pair.infer_modality`: grey is CT, colour PET or
    SPECT by its colour scale); a scalar PET/SPECT is rendered with ``cmap`` (default: the
    atlas's scale of that modality), as :func:`msgfusion.pair.prepare_images` says. ``name``
    labels the pair in messages (default: the MR file's stem, or none for arrays).
    """
    paths = (str, os.PathLike)
    if isinstance(mr, paths) and isinstance(func, paths):
        return load_pair(mr, func, modality, name=name, cmap=cmap)
    if not isinstance(mr, np.ndarray) or not isinstance(func, np.ndarray):
        raise ImageTypeError("give both images as arrays or both as file paths, got "
                             f"{type(mr).__name__} and {type(func).__name__}")
    mr, func = as_image(mr, "MR image"), as_image(func, "functional image")
    for image, what in ((mr, "MR image"), (func, "functional image")):
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ShapeMismatchError(f"{what} must be H x W or H x W x 3, got shape {image.shape}")
    modality = check_modality(modality) if modality else infer_modality(func)
    mr, func = prepare_images(mr, func, modality, cmap)
    return FusionPair(mr=mr, func=func, modality=modality, name=name or "")


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
    (fused,) = fuse_many([pair], method, color)
    return fused


def fuse_many(pairs: Sequence[FusionPair], method: str = DEFAULT_METHOD,
              color: str = DEFAULT_COLOR_MODE, batch_size: int = 16) -> list[np.ndarray]:
    """The fused pictures of many pairs (each as :func:`fuse` gives it), fused ``batch_size``
    same-size pairs per call of the method."""
    check_color(color)
    return [restore_color(intensity, pair.func, color)
            for pair, intensity in zip(pairs, fuse_intensity(pairs, method, batch_size))]


def evaluate(mr: np.ndarray, func: np.ndarray, fused: np.ndarray,
             metrics: str | Iterable[str] = "paper") -> dict[str, float]:
    """Fusion-quality metrics of ``fused`` made from ``mr`` and ``func`` (images as read: float
    in [0, 1], grey or RGB), on 8-bit grey / BT.601 luminance as the reference code computes
    them; ``metrics``: labels, ``"paper"`` (the paper's seven) or ``"all"``
    (:func:`msgfusion.metrics.evaluate_images`)."""
    from msgfusion.metrics import (
        evaluate_images,  # scipy: loaded when a fusion is evaluated
    )

    return evaluate_images(mr, func, fused, metrics)


def check_method(name: str) -> str:
    """``name`` if a method is registered under it; else an
    :class:`~msgfusion.errors.UnknownMethodError` listing the registered ones."""
    get_method(name)
    return name


def method_fingerprint(name: str) -> str:
    """A digest of the method's code and weights: results cached under it follow retraining."""
    return get_method(name).fingerprint()


def check_color(color: str) -> str:
    """``color`` if it is a colour mode (:data:`msgfusion.io.color.COLOR_MODES`), else a
    :class:`~msgfusion.errors.MsgFusionError` listing them."""
    if color not in COLOR_MODES:
        raise MsgFusionError(f"unknown colour mode {color!r}; choose one of "
                             f"{', '.join(COLOR_MODES)}")
    return color


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

    @property
    def unit(self) -> str:
        """What the functional values measure: HU (CT), uptake (PET), perfusion (SPECT)."""
        return UNITS[self.modality]

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
    space; outside its field of view there is no signal and the fused image is the MR alone),
    both are brought to [0, 1] per modality (:mod:`msgfusion.intensity`; ``window``: the CT
    window), PET/SPECT rendered with ``cmap`` (default: the atlas's scale of the modality,
    :func:`msgfusion.io.color.default_cmap`), then cut into :class:`FusionPair` slices along ``axis`` (axial, coronal or sagittal) that go through
    ``fuse_pairs`` in batches of ``batch_size`` (``progress(n)`` after each), ``workers``
    batches at once (default: one per CPU core; see :func:`fuse_folder` on torch threads).
    Colour is restored per slice (``color`` as in :func:`fuse`). The modality is taken from the
    functional volume's header or file name when not given.
    """
    if axis not in AXES:
        raise MsgFusionError(f"unknown axis {axis!r}; choose one of {', '.join(AXES)}")
    check_color(color)
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
    pixels), and under them a colour bar saying what the colours mean: the functional scale
    from its lowest to its highest value, in the scan's units. Returns H x W x 3 in [0, 1]."""
    from msgfusion.io.figures import colour_bar, resize, side_by_side, stack_rows

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
    caption = (f"{result.modality} {result.unit}: low (left) to high (right)" if result.cmap
               else f"CT window: {result.unit}, dark to bright")
    rows.append(colour_bar(result.cmap or "gray", max(r.shape[1] for r in rows),
                           result.func_scale.low, result.func_scale.high, caption))
    return stack_rows(rows)
