"""Structural-similarity metrics: SSIM and Piella's fusion quality indices Q_S and Q_W."""

from __future__ import annotations

import numpy as np

from msgfusion.metrics.filters import (
    LocalStats,
    flat_windows_valid,
    gaussian_window,
    local_covariance,
    local_stats,
)
from msgfusion.metrics.inputs import check_images

# Wang's reference settings: 11 x 11 Gaussian window, sigma 1.5; K = (0.01, 0.03); L = 255.
WANG_WINDOW = gaussian_window(11, 1.5)
WANG_C1 = (0.01 * 255.0) ** 2
WANG_C2 = (0.03 * 255.0) ** 2
MIN_SIZE = len(WANG_WINDOW)


def ssim_map(x: LocalStats, y: LocalStats) -> np.ndarray:
    """Wang's SSIM map of two images on 0..255 from their local statistics (:func:`local_stats`
    with :data:`WANG_WINDOW`).

    SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2)
           / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))
    with Gaussian-weighted local statistics (11 x 11, sigma 1.5, 'valid' region, so the map is
    (H - 10) x (W - 10)), C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 255; as ``ssim_index.m``
    (Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, IEEE TIP 13(4):600-612, 2004).
    """
    mu_xy = x.mean * y.mean
    num = (2.0 * mu_xy + WANG_C1) * (2.0 * local_covariance(x, y) + WANG_C2)
    den = (x.mean * x.mean + y.mean * y.mean + WANG_C1) * (x.var + y.var + WANG_C2)
    return num / den


def _wang_stats(*images: np.ndarray) -> list[LocalStats]:
    return [local_stats(img, WANG_WINDOW) for img in images]


def ssim(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """SSIM: structural similarity of the fused image to each source, summed.

    SSIM = mean SSIM_map(A, F) + mean SSIM_map(B, F) with Wang's reference SSIM
    (:func:`ssim_map`: 11 x 11 Gaussian window, sigma 1.5, L = 255, 'valid' region).

    Reference: Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment:
    from error visibility to structural similarity", IEEE TIP 13(4):600-612, 2004; the fusion
    form of VIFB ``metricsSsim`` (a sum; Tang averages the two, CDDFuse uses skimage with other
    settings, so their numbers differ). Direction: higher is better. Range: -2..2.
    """
    a, b, f = check_images(a, b, f, min_size=MIN_SIZE)
    sa, sb, sf = _wang_stats(a, b, f)
    return float(ssim_map(sa, sf).mean() + ssim_map(sb, sf).mean())


def _piella_terms(a: np.ndarray, b: np.ndarray,
                  f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local source variances (exactly 0 in constant windows; 0.5 added to both where both are
    0), saliency weight lambda = var_A / (var_A + var_B) and the local quality
    lambda S(F, A) + (1 - lambda) S(F, B)."""
    sa, sb, sf = _wang_stats(a, b, f)
    size = len(WANG_WINDOW)
    var_a = np.where(flat_windows_valid(a, size), 0.0, sa.var)
    var_b = np.where(flat_windows_valid(b, size), 0.0, sb.var)
    both_flat = (var_a + var_b) == 0
    var_a = var_a + 0.5 * both_flat
    var_b = var_b + 0.5 * both_flat
    lam = var_a / (var_a + var_b)
    local = lam * ssim_map(sf, sa) + (1.0 - lam) * ssim_map(sf, sb)
    return var_a, var_b, local


def piella_q(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Q_S: Piella's fusion quality index (SSIM-map form); our reading of the paper's "SM".

    Q_S = mean over windows w of [lambda(w) SSIM(F, A | w) + (1 - lambda(w)) SSIM(F, B | w)],
    lambda(w) = s_A(w) / (s_A(w) + s_B(w)), s the local variance (saliency) of a source; SSIM
    maps as :func:`ssim_map` (11 x 11 Gaussian, L = 255, 'valid'); lambda = 1/2 where both
    sources are flat.

    Reference: G. Piella, H. Heijmans, "A new quality metric for image fusion", ICIP 2003,
    pp. 173-176, as implemented in Z. Liu's toolbox (``metricPeilla(.., 1)``; Liu et al., IEEE
    TPAMI 34(1), 2012), which uses Wang's SSIM map instead of Piella's 8 x 8 UIQI windows.
    MsgFusion's "SM" is most likely this structural-similarity fusion metric (the paper's
    definition was not available; see docs/metrics.md). Direction: higher is better.
    Range: -1..1.

    Deliberate difference from ``metricPeilla``: a window is flat when its pixels are equal
    (decided exactly), and a flat window's variance is exactly 0. The reference takes the
    computed E[x^2] - mu^2, which in a constant non-zero window is round-off (~1e-13) rather
    than 0; where the other source's window is constant zero this round-off turns
    lambda = 1/2 into lambda = 1. On the atlas PET-MRI pairs (MR with a constant dark level next
    to zero PET) this makes the reference up to 0.22 % higher; elsewhere the values agree to
    1e-13.
    """
    a, b, f = check_images(a, b, f, min_size=MIN_SIZE)
    return float(_piella_terms(a, b, f)[2].mean())


def piella_qw(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Q_W: Piella's weighted fusion quality index.

    Q_W = sum_w c(w) [lambda(w) SSIM(F, A | w) + (1 - lambda(w)) SSIM(F, B | w)],
    c(w) = C(w) / sum C, C(w) = max(s_A(w), s_B(w)): windows with more salient source content
    count more. Terms as :func:`piella_q`.

    Reference: G. Piella, H. Heijmans, ICIP 2003; Z. Liu's ``metricPeilla(.., 2)``, with the
    exact flat-window rule of :func:`piella_q` (flat windows where both sources are flat carry
    weight 1/2 here; the reference's round-off variance gives them ~0 weight where one source
    is constant non-zero: up to 1.2e-6 relative on the atlas PET-MRI pairs).
    Direction: higher is better. Range: -1..1.
    """
    a, b, f = check_images(a, b, f, min_size=MIN_SIZE)
    var_a, var_b, local = _piella_terms(a, b, f)
    weight = np.maximum(var_a, var_b)
    return float((weight / weight.sum() * local).sum())
