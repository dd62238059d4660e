"""Transforms: ITK ``.tfm`` files, and the transforms as matrices for measuring them.

ITK's convention holds throughout: a registration transform maps a point of the *fixed* image
(the MR) to the point of the *moving* image (CT/PET/SPECT) that lands there, in physical
coordinates (millimetres for volumes, pixels for 2-D images). ``sitk.Resample(moving, fixed,
transform)`` therefore moves the functional image onto the MR grid.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from msgfusion.errors import ImageReadError, OutputExistsError
from msgfusion.io.files import atomic_write

if TYPE_CHECKING:
    import SimpleITK as sitk

TRANSFORM_SUFFIXES = (".tfm", ".txt")


def write_transform(path: str | os.PathLike, transform: sitk.Transform,
                    overwrite: bool = False) -> Path:
    """Write ``transform`` in ITK's text format (``sitk.WriteTransform``), atomically.

    Other ITK-based tools (3D Slicer, ANTs, elastix's transformix via conversion) read the file.
    Refuses to replace an existing file unless ``overwrite``.
    """
    import SimpleITK as sitk

    path = Path(path)
    if path.suffix.lower() not in TRANSFORM_SUFFIXES:
        raise ImageReadError(f"{path}: transforms are written as ITK text files; name it *.tfm")
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a folder")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (use --overwrite to replace it)")
    with tempfile.TemporaryDirectory() as scratch:  # SimpleITK writes to a file name only
        text = Path(scratch) / f"transform{path.suffix}"
        sitk.WriteTransform(transform, str(text))
        data = text.read_bytes()
    return atomic_write(path, lambda f: f.write(data), overwrite=overwrite)


def read_transform(path: str | os.PathLike) -> sitk.Transform:
    """Read an ITK transform file; the result is the transform's own class (e.g. Euler3D)."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: transform file not found")
    try:
        transform = sitk.ReadTransform(str(path))
    except RuntimeError:
        raise ImageReadError(f"{path}: not a readable ITK transform file") from None
    return transform.Downcast()


def homogeneous(transform: sitk.Transform) -> np.ndarray:
    """The (d+1) x (d+1) matrix of a linear transform (rigid, similarity, affine, or a
    composite of them), found by mapping the origin and the unit vectors."""
    d = transform.GetDimension()
    origin = np.asarray(transform.TransformPoint((0.0,) * d))
    m = np.eye(d + 1)
    m[:d, d] = origin
    for i in range(d):
        m[:d, i] = np.asarray(transform.TransformPoint(tuple(np.eye(d)[i]))) - origin
    return m


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a homogeneous matrix to an N x d array of points."""
    d = points.shape[1]
    return points @ matrix[:d, :d].T + matrix[:d, d]


def describe(transform: sitk.Transform) -> str:
    """A short human summary: rotation angle, translation, and scale/shear when present."""
    m = homogeneous(transform)
    d = transform.GetDimension()
    linear = m[:d, :d]
    u, s, vt = np.linalg.svd(linear)
    rotation = u @ vt
    cos = (np.trace(rotation) - (1 if d == 3 else 0)) / 2
    angle = float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    centre = np.asarray(transform.GetFixedParameters()[:d]) if transform.GetFixedParameters() \
        else np.zeros(d)
    shift = apply(m, centre[None])[0] - centre
    unit = "mm" if d == 3 else "px"
    text = f"rotation {angle:.1f} deg, shift {np.linalg.norm(shift):.1f} {unit}"
    if not np.allclose(s, 1.0, atol=1e-3):
        text += ", scale " + "/".join(f"{x:.3f}" for x in s)
    return text
