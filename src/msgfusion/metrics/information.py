"""Information-theory metrics: entropy (EN) and mutual information (MI).

Both count integer grey levels: values are rounded to the nearest integer and must lie in 0..255
(one histogram bin per level, as the reference code does on 8-bit images).
"""

from __future__ import annotations

import math

import numpy as np

from msgfusion.metrics.inputs import check_images

LEVELS = 256


def _grey_levels(img: np.ndarray, name: str) -> np.ndarray:
    q = np.round(img)
    if q.min() < 0 or q.max() > LEVELS - 1:
        raise ValueError(
            f"image {name}: histogram metrics need grey levels in 0..255, got values from "
            f"{img.min():g} to {img.max():g}"
        )
    return q.astype(np.intp)


def _entropy(counts: np.ndarray, base: float) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / math.log(base)) + 0.0  # + 0.0: no -0.0 for one level


def entropy(f: np.ndarray) -> float:
    """EN: Shannon entropy of the fused image's grey-level histogram, in bits.

    EN = -sum_l p_l log2 p_l, p_l the fraction of pixels with grey level l (256 bins).

    Reference: J. W. Roberts, J. van Aardt, F. Ahmed, "Assessment of image fusion procedures
    using entropy, image quality, and multispectral classification", J. Appl. Remote Sens. 2(1),
    2008. Matches VIFB ``metricsEntropy``, CDDFuse ``Evaluator.EN`` and Tang's
    ``analysis_Reference``.
    Direction: higher is better. Range: 0..8.
    """
    (f,) = check_images(f)
    return _entropy(np.bincount(_grey_levels(f, "F").ravel(), minlength=LEVELS), 2.0)


def entropy_ceiling(a: np.ndarray, b: np.ndarray) -> float:
    """The largest EN (bits) a fused image of ``a`` and ``b`` can have while it is black (grey
    level 0) wherever both sources are: no fusion that keeps the no-signal background black
    scores a higher :func:`entropy` on this pair.

    With p the fraction of pixels where both sources are 0, the histogram of largest entropy
    with at least p in level 0 puts p there and spreads 1 - p evenly over the other 255 levels
    (entropy is concave and symmetric in the levels), so

        EN <= -p log2 p - (1 - p) log2((1 - p) / 255)     (p >= 1/256; else log2 256 = 8).

    Not a metric of a fused image: it bounds :func:`entropy` for a pair of sources, which shows
    how much of a fused image's EN above it comes from a lifted (noisy or grey) background.
    """
    a, b = check_images(a, b)
    p = float(np.mean((_grey_levels(a, "A") == 0) & (_grey_levels(b, "B") == 0)))
    if p <= 1 / LEVELS:
        return math.log2(LEVELS)
    rest = 1.0 - p
    spread = -rest * math.log2(rest / (LEVELS - 1)) if rest > 0 else 0.0
    return -p * math.log2(p) + spread + 0.0  # + 0.0: no -0.0 for an all-black pair


def _mutual_information(x: np.ndarray, y: np.ndarray, base: float) -> float:
    joint = np.bincount((x * LEVELS + y).ravel(), minlength=LEVELS * LEVELS)
    hx = _entropy(np.bincount(x.ravel(), minlength=LEVELS), base)
    hy = _entropy(np.bincount(y.ravel(), minlength=LEVELS), base)
    return hx + hy - _entropy(joint, base)


def mutual_information(a: np.ndarray, b: np.ndarray, f: np.ndarray, base: float = 2.0) -> float:
    """MI: mutual information between each source and the fused image, summed.

    MI = I(A; F) + I(B; F), I(X; F) = H(X) + H(F) - H(X, F) from the 256-bin grey-level
    histograms and the 256 x 256 joint histogram; ``base`` 2 gives bits (default), e for nats.

    Reference: G. Qu, D. Zhang, P. Yan, "Information measure for performance of image fusion",
    Electronics Letters 38(7):313-315, 2002. In bits it matches Tang's and xianming-gu's
    ``MI_evaluation``; in nats VIFB ``metricsMutinf`` and CDDFuse ``Evaluator.MI`` (VIFB
    min-max-stretches each image first, which does not change MI on 8-bit data).
    Direction: higher is better. Range: 0..16 bits (each term at most 8).
    """
    if not base > 1:
        raise ValueError(f"logarithm base must be > 1, got {base}")
    a, b, f = check_images(a, b, f)
    la, lb, lf = _grey_levels(a, "A"), _grey_levels(b, "B"), _grey_levels(f, "F")
    return _mutual_information(la, lf, base) + _mutual_information(lb, lf, base)
