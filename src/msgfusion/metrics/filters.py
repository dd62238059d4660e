"""Numerical building blocks shared by the metrics (one copy each).

- Gaussian windows as MATLAB's ``fspecial('gaussian', n, sigma)``, separable correlation in
  MATLAB's ``filter2(..., 'valid')`` / ``filter2(..., 'same')`` sense (zero padding), and the
  windowed local statistics (mean, variance, covariance) of SSIM, Piella's index and VIF.
- The Sobel operator with zero ('same') or mirror padding.
- Liu's ``normalize1`` (min-max to rounded 0..255), block sums as MATLAB's ``blkproc``, and
  frequency-domain filtering on MATLAB's ``freqspace`` grid.

All functions take and return float64 arrays and are vectorised (scipy.ndimage / numpy FFT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

SobelPadding = Literal["zero", "mirror"]

# The 3-tap factors of the Sobel kernels: Kx = outer(SMOOTH, DIFF), Ky = outer(DIFF, SMOOTH).
_SOBEL_SMOOTH = np.array([1.0, 2.0, 1.0])
_SOBEL_DIFF = np.array([-1.0, 0.0, 1.0])
_NDIMAGE_MODE = {"zero": "constant", "mirror": "mirror"}


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """The 1-D factor w of MATLAB's ``fspecial('gaussian', size, sigma)`` = outer(w, w).

    w_i = exp(-x_i^2 / (2 sigma^2)) / sum_j exp(-x_j^2 / (2 sigma^2)),
    x = -(size-1)/2 .. (size-1)/2.
    (``fspecial`` also zeroes entries below eps * max; for the windows used here, 11/1.5 and
    N/(N/5) with N = 17, 9, 5, 3, the smallest corner entry is exp(-5.5) * max, so it never does.)
    """
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    w = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return w / w.sum()


def correlate_same(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 2-D correlation with outer(window, window), zero padding, output of input size.

    Equals MATLAB ``filter2(outer(window, window), img, 'same')`` for an odd-length window.
    """
    out = ndimage.correlate1d(img, window, axis=0, mode="constant", cval=0.0)
    return ndimage.correlate1d(out, window, axis=1, mode="constant", cval=0.0)


def correlate_valid(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 2-D correlation with outer(window, window), only where the window fits.

    Equals MATLAB ``filter2(outer(window, window), img, 'valid')`` for an odd-length window:
    the output is (H - n + 1) x (W - n + 1).
    """
    h = len(window) // 2
    rows = ndimage.correlate1d(img, window, axis=0, mode="constant")[h : img.shape[0] - h]
    return ndimage.correlate1d(rows, window, axis=1, mode="constant")[:, h : img.shape[1] - h]


@dataclass(frozen=True)
class LocalStats:
    """An image with its windowed local mean and variance over the 'valid' region:
    mean = w * x, var = w * x^2 - mean^2 (w * . = :func:`correlate_valid`, as ``filter2``)."""

    img: np.ndarray
    window: np.ndarray
    mean: np.ndarray
    var: np.ndarray


def local_stats(img: np.ndarray, window: np.ndarray) -> LocalStats:
    """Local mean and variance of ``img`` under the separable window outer(window, window)."""
    mean = correlate_valid(img, window)
    return LocalStats(img, window, mean, correlate_valid(img * img, window) - mean * mean)


def local_covariance(x: LocalStats, y: LocalStats) -> np.ndarray:
    """Local covariance w * (x y) - mean_x mean_y of two images under the same window."""
    return correlate_valid(x.img * y.img, x.window) - x.mean * y.mean


def flat_windows_valid(img: np.ndarray, size: int) -> np.ndarray:
    """Where the size x size window (positions as :func:`correlate_valid`) holds a constant.

    Decided exactly (window max == min), so it does not depend on floating-point round-off the
    way a computed variance E[x^2] - mu^2 does.
    """
    h = size // 2
    crop = (slice(h, img.shape[0] - h), slice(h, img.shape[1] - h))
    return ndimage.maximum_filter(img, size)[crop] == ndimage.minimum_filter(img, size)[crop]


def sobel(img: np.ndarray, padding: SobelPadding = "zero") -> tuple[np.ndarray, np.ndarray]:
    """Sobel responses (gx, gy) as correlations with the 3 x 3 kernels

        Kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],   Ky = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]

    (gx grows to the right, gy downwards). ``padding``: ``zero`` as MATLAB's ``filter2(K, x,
    'same')``; ``mirror`` reflects about the border pixel without repeating it (d c b | a b c d),
    as Shreyamsha Kumar's ``per_extn_im_fn``. MATLAB's ``conv2(x, K, 'same')`` is the correlation
    with K rotated by 180 degrees, i.e. -gx for Kx and -gy for Ky. Exact for integer images.
    """
    mode = _NDIMAGE_MODE[padding]
    smooth_rows = ndimage.correlate1d(img, _SOBEL_SMOOTH, axis=0, mode=mode)
    smooth_cols = ndimage.correlate1d(img, _SOBEL_SMOOTH, axis=1, mode=mode)
    gx = ndimage.correlate1d(smooth_rows, _SOBEL_DIFF, axis=1, mode=mode)
    gy = ndimage.correlate1d(smooth_cols, _SOBEL_DIFF, axis=0, mode=mode)
    return gx, gy


def normalize_255(img: np.ndarray) -> np.ndarray:
    """Min-max stretch to 0..255, rounded (Z. Liu's ``normalize1``).

    round(255 (x - min) / (max - min)) with MATLAB's rounding (half away from zero). An all-zero
    image is returned unchanged; a constant non-zero image (where ``normalize1`` divides 0 by 0)
    becomes all zeros.
    """
    lo, hi = img.min(), img.max()
    if hi == lo:
        return np.zeros_like(img)
    x = (img - lo) / (hi - lo) * 255.0
    whole = np.trunc(x)
    return np.where(np.abs(x - whole) == 0.5, whole + np.sign(x), np.round(x))


def block_sums(img: np.ndarray, block: int) -> np.ndarray:
    """Sums over non-overlapping block x block tiles, the image zero-padded to whole tiles.

    The tiling of MATLAB's ``blkproc(img, [block block], fun)``.
    """
    h, w = img.shape
    ph, pw = -h % block, -w % block
    padded = np.pad(img, ((0, ph), (0, pw))) if ph or pw else img
    H, W = padded.shape
    return padded.reshape(H // block, block, W // block, block).sum(axis=(1, 3))


def frequency_radius(shape: tuple[int, int], cycles_scale: tuple[float, float]) -> np.ndarray:
    """Radial frequency on MATLAB's ``freqspace(shape, 'meshgrid')`` grid, scaled per axis.

    freqspace gives f_k = (k - floor(n/2)) * 2/n (k = 0..n-1, zero frequency at the centre);
    with u = cycles_scale[1] * f (columns) and v = cycles_scale[0] * f (rows) this returns
    sqrt(u^2 + v^2) in the centred ('fftshift') layout.
    """
    (h, w), (sv, su) = shape, cycles_scale
    fv = (np.arange(h) - h // 2) * (2.0 / h) * sv
    fu = (np.arange(w) - w // 2) * (2.0 / w) * su
    return np.sqrt(fu[None, :] ** 2 + fv[:, None] ** 2)


def filter_frequency(img: np.ndarray, response: np.ndarray) -> np.ndarray:
    """real(ifft2(ifftshift(fftshift(fft2(img)) .* response))) for a centred ``response``.

    The responses used here are radial, hence symmetric, so the exact result is real; the real
    part is taken (MATLAB/Octave leave a negligible imaginary part).
    """
    return np.real(np.fft.ifft2(np.fft.fft2(img) * np.fft.ifftshift(response)))
