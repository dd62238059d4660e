"""Input conventions of the metrics: validation of grey arrays, and images as read -> grey 0..255.

Every metric takes grey images on the 8-bit scale (0..255) as numpy arrays and computes in float64
(METRICS.md, "Conventions common to all metrics"). :func:`check_images` is the one validation step
all metrics share; :func:`as_gray255` turns an image as :func:`msgfusion.io.images.read_image`
returns it (float in [0, 1], grey H x W or RGB H x W x 3) into that form, exactly as the field's
evaluation code sees a PNG: quantised to 8 bits, RGB reduced to the BT.601 luma Y of OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from msgfusion.errors import InvalidImageError
from msgfusion.io.color import luminance, to_uint8

SOURCE_NAMES: tuple[str, str, str] = ("A", "B", "F")


def _shape(shape: tuple[int, ...]) -> str:
    return " x ".join(map(str, shape)) if shape else "a scalar"


def check_images(
    *images: ArrayLike, names: Sequence[str] | None = None, min_size: int = 1
) -> tuple[np.ndarray, ...]:
    """Validate metric inputs and return them as float64 arrays.

    Each image must be a real 2-D array (H x W), non-empty, with both sides at least ``min_size``
    pixels (metrics with windows or pyramids need a minimum size), free of NaN and infinity, and
    all images must have the same shape.

    ``names`` label the images in messages; by default ``F`` for one image and ``A, B, F`` for
    three. Raises :class:`~msgfusion.errors.InvalidImageError` (a :class:`ValueError`) with a
    message naming the image and the problem.
    """
    if names is None:
        names = ("F",) if len(images) == 1 else SOURCE_NAMES[: len(images)]
    out = []
    for name, img in zip(names, images, strict=True):
        arr = np.asarray(img)
        if arr.dtype.kind not in "biuf":
            raise InvalidImageError(
                f"image {name}: expected a real numeric array, got dtype {arr.dtype}")
        if arr.ndim != 2:
            hint = (" (a colour image: convert it with msgfusion.metrics.as_gray255 or evaluate "
                    "it with evaluate_images)") if arr.ndim == 3 and arr.shape[-1] in (3, 4) else ""
            raise InvalidImageError(
                f"image {name}: expected a 2-D grey image (H x W), got shape {_shape(arr.shape)}"
                + hint
            )
        if arr.size == 0:
            raise InvalidImageError(f"image {name}: is empty (shape {_shape(arr.shape)})")
        if min(arr.shape) < min_size:
            raise InvalidImageError(
                f"image {name}: is {_shape(arr.shape)}, this metric needs at least "
                f"{min_size} x {min_size} pixels"
            )
        arr = arr.astype(np.float64, copy=False)
        if not np.isfinite(arr).all():
            raise InvalidImageError(f"image {name}: contains NaN or infinite values")
        out.append(arr)
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        listing = ", ".join(f"{n} is {_shape(a.shape)}" for n, a in zip(names, out, strict=True))
        raise InvalidImageError(f"images must have the same shape: {listing}")
    return tuple(out)


def as_gray255(image: ArrayLike, name: str = "image") -> np.ndarray:
    """An image as read (float in [0, 1], grey H x W or RGB H x W x 3) -> grey float64 in 0..255.

    The image is quantised to 8 bits as if written to PNG (:func:`msgfusion.io.color.to_uint8`:
    clipped to [0, 1], round half to even); an RGB image is reduced to its BT.601 luma
    Y = 0.299 R + 0.587 G + 0.114 B, computed exactly as OpenCV's ``RGB2YCrCb`` channel 0 on uint8
    (:func:`msgfusion.io.color.luminance`). The result holds integers 0..255 as float64.
    """
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise InvalidImageError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise InvalidImageError(
            f"{name}: expected a grey (H x W) or RGB (H x W x 3) image, got shape "
            f"{_shape(arr.shape)}"
        )
    if arr.size == 0:
        raise InvalidImageError(f"{name}: is empty (shape {_shape(arr.shape)})")
    if not np.isfinite(arr).all():
        raise InvalidImageError(f"{name}: contains NaN or infinite values")
    if arr.ndim == 3:
        return np.round(luminance(arr).astype(np.float64) * 255.0)
    return to_uint8(arr).astype(np.float64)
