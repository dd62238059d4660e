"""The registration QA figure: the MR against the moved image, before and after.

Rows: before (the start of the registration: centred, and oriented when searched) and after.
Columns: a checkerboard of the MR and the moved image (``sitk.CheckerBoard``; misalignment shows
as broken edges between squares) and the MR in grey with the moved image's edges (Canny) in
colour; for volumes the edges are also shown on the coronal and sagittal slices through the
MR's centre of mass. The title gives the final Mattes MI and the transform, and any warning.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from msgfusion.errors import OutputExistsError
from msgfusion.io.files import atomic_write
from msgfusion.register.transforms import describe

if TYPE_CHECKING:
    import SimpleITK as sitk

    from msgfusion.register.engine import RegistrationResult

CHECKER_SQUARES = 8


def _normalise(image: sitk.Image) -> sitk.Image:
    """Intensities scaled to [0, 1] between the 1st and 99th percentiles."""
    import SimpleITK as sitk

    a = sitk.GetArrayViewFromImage(image)
    lo, hi = np.percentile(a, [1, 99])
    hi = hi if hi > lo else lo + 1
    scaled = (sitk.Cast(image, sitk.sitkFloat32) - float(lo)) / float(hi - lo)
    return sitk.Clamp(scaled, sitk.sitkFloat32, 0.0, 1.0)


def _views(fixed: sitk.Image) -> list[tuple[str, tuple[int | slice, ...], float]]:
    """(name, array index, pixel aspect) of the slices shown: the image itself in 2-D; axial,
    coronal and sagittal slices through the MR's centre of mass in 3-D."""
    import SimpleITK as sitk

    if fixed.GetDimension() == 2:
        sx, sy = fixed.GetSpacing()
        return [("", (slice(None), slice(None)), sy / sx)]
    mask = sitk.GetArrayFromImage(sitk.OtsuThreshold(fixed, 0, 1))
    z, y, x = (np.argwhere(mask).mean(axis=0).round().astype(int) if mask.any()
               else np.asarray(mask.shape) // 2)
    sx, sy, sz = fixed.GetSpacing()
    return [("axial", (z, slice(None), slice(None)), sy / sx),
            ("coronal", (slice(None), y, slice(None)), sz / sx),
            ("sagittal", (slice(None), slice(None), x), sz / sy)]


def _edges(slice_: np.ndarray) -> np.ndarray:
    """Canny edges, thresholds relative to the slice's own gradients (90th percentile of the
    non-zero gradient magnitude, and half of it), so smooth PET and sharp CT both show edges."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(slice_.astype(np.float32))
    gradient = sitk.GetArrayFromImage(sitk.GradientMagnitudeRecursiveGaussian(image, 1.5))
    upper = float(np.percentile(gradient[gradient > 0], 90)) if np.any(gradient > 0) else 1.0
    return sitk.GetArrayFromImage(
        sitk.CannyEdgeDetection(image, 0.5 * upper, upper, (2.25, 2.25))) > 0


def qa_figure(result: RegistrationResult, path: str | os.PathLike,
              overwrite: bool = False, title: str = "") -> Path:
    """Draw the QA figure of ``result`` to ``path`` (PNG, PDF or SVG by extension), atomically."""
    import SimpleITK as sitk
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (use --overwrite to replace it)")
    fixed = _normalise(result.fixed)
    moving = _normalise(result.moving)
    rows = []
    for label, transform in (("before", result.initial_transform), ("after", result.transform)):
        moved = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0)
        checker = sitk.CheckerBoard(fixed, moved, [CHECKER_SQUARES] * fixed.GetDimension())
        rows.append((label, sitk.GetArrayFromImage(checker), sitk.GetArrayFromImage(moved)))
    mr = sitk.GetArrayFromImage(fixed)
    views = _views(result.fixed)
    columns = 1 + len(views)
    fig = Figure(figsize=(max(3.2 * columns, 9.0), 7.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, columns, squeeze=False)
    origin = "upper" if len(views) == 1 else "lower"
    for r, (label, checker, moved) in enumerate(rows):
        name, index, aspect = views[0]
        ax = axes[r, 0]
        ax.imshow(checker[index], cmap="gray", vmin=0, vmax=1, aspect=aspect,
                  origin="upper", interpolation="nearest")
        ax.set_title(f"{label}: checkerboard {name}".strip(), fontsize=9)
        for c, (name, index, aspect) in enumerate(views, start=1):
            ax = axes[r, c]
            base = mr[index]
            overlay = np.dstack([base] * 3)
            overlay[_edges(moved[index])] = (1.0, 0.2, 0.1)
            ax.imshow(overlay, aspect=aspect, origin="upper" if c == 1 else origin,
                      interpolation="nearest")
            ax.set_title(f"{label}: MR + moved edges {name}".strip(), fontsize=9)
    for ax in axes.ravel():
        ax.set_axis_off()
    lines = [title] if title else []
    lines.append(f"{result.kind} {describe(result.transform)}; Mattes MI "
                 f"{result.metric_initial:.4f} -> {result.metric_final:.4f} (final); "
                 f"overlap {result.overlap:.0%}")
    lines += [textwrap.shorten(f"WARNING: {w}", 140) for w in result.warnings]
    fig.suptitle("\n".join(lines), fontsize=9, color="darkred" if result.warnings else "black")
    fig.tight_layout(rect=(0, 0, 1, 0.97 - 0.03 * (len(lines) - 1)))
    fmt = path.suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=100), overwrite=True)
