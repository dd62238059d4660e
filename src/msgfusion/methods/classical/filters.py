"""Building blocks shared by the classical fusion methods.

Every function works on the last two axes of its input, so a batch of images (N x H x W), or a
stack of sub-bands, is filtered in one call. Borders are handled by replicating the edge
(``"nearest"``) unless the function says otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Burt & Adelson's 5-tap generating kernel w = [1/4 - a/2, 1/4, a, 1/4, 1/4 - a/2] with a = 0.375
#: (the binomial / cubic B-spline kernel). Used by the Laplacian pyramid and the a-trous pyramid.
BURT_KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0

IMAGE_AXES = (-2, -1)


def separable_filter(x: np.ndarray, kernel: np.ndarray, dilation: int = 1,
                     mode: str = "reflect") -> np.ndarray:
    """Correlate the last two axes of ``x`` with ``kernel`` (1-D, applied along rows and columns).

    ``dilation`` > 1 inserts ``dilation - 1`` zeros between the taps (the "a trous" filter of
    level log2(dilation)).
    """
    if dilation > 1:
        taps = np.zeros((len(kernel) - 1) * dilation + 1)
        taps[::dilation] = kernel
        kernel = taps
    out = ndimage.correlate1d(x, kernel, axis=-1, mode=mode)
    return ndimage.correlate1d(out, kernel, axis=-2, mode=mode)


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1) x (2r+1) window around each pixel, the window cut at the borders.

    This is the box filter of He, Sun, Tang ("Guided image filtering", IEEE TPAMI 35(6), 2013):
    sum over the window divided by the number of pixels inside the image, so the mean of a
    constant image is that constant everywhere, borders included.
    """
    size = 2 * radius + 1
    sums = ndimage.uniform_filter(x, size=size, mode="constant", axes=IMAGE_AXES)
    counts = ndimage.uniform_filter(np.ones(x.shape[-2:], dtype=x.dtype), size=size,
                                    mode="constant")
    return sums / counts


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter: the output is locally a linear function of ``guide``.

    In each window w_k: a_k = cov_w(I, p) / (var_w(I) + eps), b_k = mean_w(p) - a_k mean_w(I);
    q = mean(a) * I + mean(b), means over the (2r+1)^2 windows (:func:`box_mean`).
    """
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(src, radius)
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def select_max_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Choose-max rule for detail coefficients: ``a`` where |a| >= |b|, else ``b``."""
    return np.where(np.abs(a) >= np.abs(b), a, b)


def local_range(x: np.ndarray, size: int) -> np.ndarray:
    """Max minus min over the size x size window (morphological gradient with a square)."""
    footprint = (1,) * (x.ndim - 2) + (size, size)
    return (ndimage.maximum_filter(x, size=footprint, mode="nearest")
            - ndimage.minimum_filter(x, size=footprint, mode="nearest"))


def to_unit_range(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and return float32, the contract of :meth:`FusionMethod.fuse`."""
    return np.clip(x, 0.0, 1.0).astype(np.float32)
