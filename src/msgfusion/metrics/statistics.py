"""Pixel-statistics metrics: SD, CC, SCD, PSNR."""

from __future__ import annotations

import math

import numpy as np

from msgfusion.metrics.inputs import check_images

PEAK = 255.0


def standard_deviation(f: np.ndarray) -> float:
    """SD: population standard deviation of the fused image (contrast).

    SD = sqrt( sum (F - mean F)^2 / (M N) ).

    Reference: Y.-J. Rao, "In-fibre Bragg grating sensors", Meas. Sci. Technol. 8(4), 1997 (as
    cited by VIFB). Matches VIFB ``metricsVariance`` (which returns the SD despite its name),
    CDDFuse ``Evaluator.SD`` and Tang. Direction: higher is better. Range: 0..127.5 on 0..255.
    """
    (f,) = check_images(f)
    return float(np.std(f))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    norm = math.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / norm) if norm > 0 else math.nan


def correlation_coefficient(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """CC: mean Pearson correlation of the fused image with each source.

    CC = (r(A, F) + r(B, F)) / 2,  r(X, F) = sum (X - mean X)(F - mean F) /
    sqrt( sum (X - mean X)^2 sum (F - mean F)^2 ).

    Reference: the correlation coefficient as used in CDDFuse ``Evaluator.CC`` and Tang's
    ``CC_evaluation`` (Z. Zhao et al., CVPR 2023; L. Tang et al., Information Fusion 2022).
    Direction: higher is better. Range: -1..1 (NaN if an image is constant).
    """
    a, b, f = check_images(a, b, f)
    return (_pearson(a, f) + _pearson(b, f)) / 2.0


def scd(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """SCD: sum of the correlations of differences.

    SCD = r(F - B, A) + r(F - A, B), r the Pearson correlation: how much of each source the fused
    image carries beyond the other source.

    Reference: V. Aslantas, E. Bendes, "A new image quality metric for image fusion: the sum of
    the correlations of differences", AEU Int. J. Electron. Commun. 69(12):1890-1896, 2015.
    Matches CDDFuse ``Evaluator.SCD`` and Tang. Direction: higher is better. Range: -2..2 (NaN if
    a source or a difference image is constant).
    """
    a, b, f = check_images(a, b, f)
    return _pearson(a, f - b) + _pearson(b, f - a)


def psnr(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """PSNR: peak signal-to-noise ratio of the fused image against both sources, in dB.

    PSNR = 10 log10( 255^2 / MSE ),  MSE = (MSE(A, F) + MSE(B, F)) / 2, on 0..255 images
    (infinite when F equals both sources).

    Reference: the fusion PSNR of Tang's ``analysis_Reference.m`` (L. Tang et al., Information
    Fusion 82:28-42, 2022), which computes the MSE on im2double (0..1) images but keeps the
    peak 255, so its numbers are 20 log10(255) = 48.13 dB higher than this standard 8-bit PSNR:
    PSNR_here = PSNR_Tang - 20 log10(255). VIFB (an L2 norm / MN instead of an MSE) and CDDFuse
    (peak = max F) define yet other quantities. Direction: higher is better. Range: >= 0 dB.
    """
    a, b, f = check_images(a, b, f)
    mse = (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2.0
    if mse == 0:
        return math.inf
    return float(10.0 * math.log10(PEAK * PEAK / mse))
