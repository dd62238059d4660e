"""Gradient-based metrics: SF, AG, rSFe (spatial frequency) and Qabf, Nabf (edge transfer)."""

from __future__ import annotations

import math

import numpy as np

from msgfusion.metrics.filters import sobel
from msgfusion.metrics.inputs import check_images

HALF_PI = math.pi / 2.0
DIAGONAL_WEIGHT = math.sqrt(2.0) / 2.0


def spatial_frequency(f: np.ndarray) -> float:
    """SF: spatial frequency of the fused image.

    SF = sqrt(RF^2 + CF^2), RF^2 = mean over the M (N-1) horizontal first differences of
    (F[i, j+1] - F[i, j])^2, CF^2 likewise over the (M-1) N vertical ones.

    Reference: A. M. Eskicioglu, P. S. Fisher, "Image quality measures and their performance",
    IEEE Trans. Commun. 43(12):2959-2965, 1995. Matches Tang and CDDFuse ``Evaluator.SF``; VIFB
    divides both sums by M N instead (its SF is smaller by sqrt((N-1)/N) on square images).
    Direction: higher is better. Range: >= 0 (at most 255 sqrt 2 on 0..255).
    """
    (f,) = check_images(f, min_size=2)
    rf2 = np.mean(np.diff(f, axis=1) ** 2)
    cf2 = np.mean(np.diff(f, axis=0) ** 2)
    return float(math.sqrt(rf2 + cf2))


def average_gradient(f: np.ndarray) -> float:
    """AG: average gradient of the fused image (sharpness).

    AG = sum sqrt((Gx^2 + Gy^2) / 2) / ((M - 1)(N - 1)) with (Gx, Gy) MATLAB's ``gradient``:
    central differences inside, one-sided differences at the borders (numpy.gradient).

    Reference: G. Cui, H. Feng, Z. Xu, Q. Li, Y. Chen, "Detail preserved fusion of visible and
    infrared images using regional saliency extraction and multi-scale image decomposition",
    Optics Communications 341:199-209, 2015. Matches VIFB ``metricsAvg_gradient`` and Tang
    (CDDFuse divides by M N instead). Direction: higher is better. Range: >= 0.
    """
    (f,) = check_images(f, min_size=2)
    gy, gx = np.gradient(f)
    m, n = f.shape
    return float(np.sqrt((gx * gx + gy * gy) / 2.0).sum() / ((m - 1) * (n - 1)))


def _directional_differences(img: np.ndarray) -> tuple[np.ndarray, ...]:
    """First differences in the four directions of Zheng's extended SF: row (horizontal), column
    (vertical), main diagonal and secondary diagonal."""
    return (
        img[:, :-1] - img[:, 1:],
        img[:-1, :] - img[1:, :],
        img[1:, 1:] - img[:-1, :-1],
        img[1:, :-1] - img[:-1, 1:],
    )


# Weights of the squared differences of the four directions (diagonals at distance sqrt 2).
_DIRECTION_WEIGHTS = (1.0, 1.0, DIAGONAL_WEIGHT, DIAGONAL_WEIGHT)


def rsfe(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """rSFe: ratio of spatial-frequency error, signed (0 is ideal).

    SF_F = sqrt(RF^2 + CF^2 + MDF^2 + SDF^2) over the four directional first differences of F
    (row, column, main and secondary diagonal; each sum of squares divided by M N, the diagonal
    ones weighted by sqrt(2)/2). The reference SF_R uses, per pixel and direction, the larger of
    the two sources' absolute differences, max(|dA|, |dB|). rSFe = (SF_F - SF_R) / SF_R:
    negative = detail lost (under-fused), positive = detail added (over-fused, e.g. noise).

    Reference: Y. Zheng, E. A. Essock, B. C. Hansen, A. M. Haun, "A new metric based on extended
    spatial frequency and its application to DWT based fusion algorithms", Information Fusion
    8(2):177-192, 2007, as implemented in Z. Liu's toolbox (``metricZheng``, Liu et al., IEEE
    TPAMI 34(1), 2012), which corrects the paper's equations (7)-(8). One of MsgFusion's paper
    metrics. Direction: closer to zero is better (compare |rSFe|). Range: >= -1 (0 when all
    three images are flat, +inf when only F has detail).
    """
    a, b, f = check_images(a, b, f, min_size=2)
    m, n = f.shape
    sf_f2 = sf_r2 = 0.0
    for w, df, da, db in zip(_DIRECTION_WEIGHTS, _directional_differences(f),
                             _directional_differences(a), _directional_differences(b), strict=True):
        sf_f2 += w * (df * df).sum() / (m * n)
        ref = np.maximum(np.abs(da), np.abs(db))
        sf_r2 += w * (ref * ref).sum() / (m * n)
    sf_f, sf_r = math.sqrt(sf_f2), math.sqrt(sf_r2)
    return (sf_f - sf_r) / sf_r if sf_r > 0 else (0.0 if sf_f == 0 else math.inf)


# ---- Xydeas-Petrovic edge transfer, as in the VIFB / CDDFuse / Tang code -------------------------

QABF_TG, QABF_KG, QABF_DG = 0.9994, -15.0, 0.5
QABF_TA, QABF_KA, QABF_DA = 0.9879, -22.0, 0.8


def _qabf_edges(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength g and orientation alpha as the reference code computes them: Sobel responses
    by MATLAB ``conv2(x, h, 'same')``, which correlates with h rotated by 180 degrees, so
    sx = conv2(x, [-1 0 1; -2 0 2; -1 0 1]) = -gx and sy = conv2(x, [1 2 1; 0 0 0; -1 -2 -1]) = gy;
    g = sqrt(sx^2 + sy^2), alpha = atan(sy / sx) and pi/2 where sx == 0 (the sign convention
    matters there)."""
    gx, gy = sobel(img, "zero")
    sx = -gx  # conv2(img, [-1 0 1; -2 0 2; -1 0 1]) = correlation with the negated kernel
    sy = gy  # conv2(img, [1 2 1; 0 0 0; -1 -2 -1])
    g = np.sqrt(sx * sx + sy * sy)
    zero = sx == 0
    alpha = np.where(zero, HALF_PI, np.arctan(sy / np.where(zero, 1.0, sx)))
    return g, alpha


def _qabf_preservation(gs: np.ndarray, as_: np.ndarray, gf: np.ndarray,
                       af: np.ndarray) -> np.ndarray:
    ratio = np.divide(np.minimum(gs, gf), np.maximum(gs, gf),
                      out=np.zeros_like(gs), where=gs != gf)
    strength = np.where(gs == gf, gf, ratio)
    orientation = 1.0 - np.abs(as_ - af) / HALF_PI
    q_g = QABF_TG / (1.0 + np.exp(QABF_KG * (strength - QABF_DG)))
    q_a = QABF_TA / (1.0 + np.exp(QABF_KA * (orientation - QABF_DA)))
    return q_g * q_a


def qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Qabf: Xydeas-Petrovic gradient-based edge-information transfer Q^AB/F.

    With Sobel edge strength g and orientation alpha (3 x 3 Sobel, zero padding) of each image:
    G^AF = min(g_A, g_F) / max(g_A, g_F), A^AF = 1 - |alpha_A - alpha_F| / (pi/2),
    Q^AF = 0.9994 / (1 + exp(-15 (G^AF - 0.5))) * 0.9879 / (1 + exp(-22 (A^AF - 0.8))),
    Q^AB/F = sum(Q^AF g_A + Q^BF g_B) / sum(g_A + g_B)  (weights g, L = 1).

    Reference: C. S. Xydeas, V. Petrovic, "Objective image fusion performance measure",
    Electronics Letters 36(4):308-309, 2000; the code shared by VIFB ``metricsQabf``, CDDFuse
    ``Evaluator.Qabf`` and Tang, on 0..255 images. Like that code, G^AF = g_F (not 1) where
    g_A == g_F; on 0..255 images non-zero Sobel strengths are >= 1, so this changes a pixel's
    Q by at most 6e-4, but it is kept so the values equal the field's. The code's result depends
    on the intensity scale through this branch (on 0..1 images, as xianming-gu's copy, it is up
    to 36 % lower). Direction: higher is better. Range: 0..0.987 (NaN if both sources are flat).
    """
    a, b, f = check_images(a, b, f)
    ga, aa = _qabf_edges(a)
    gb, ab = _qabf_edges(b)
    gf, af = _qabf_edges(f)
    q_af = _qabf_preservation(ga, aa, gf, af)
    q_bf = _qabf_preservation(gb, ab, gf, af)
    weight = (ga + gb).sum()
    return float((q_af * ga + q_bf * gb).sum() / weight) if weight > 0 else math.nan


# ---- Petrovic's 2005 parameterisation with Shreyamsha Kumar's artefact measure -------------------

_NABF_TD, _NABF_WT_MIN, _NABF_LG = 2.0, 0.001, 1.5
_NABF_NRG, _NABF_KG, _NABF_SG = 0.9999, 19.0, 0.5
_NABF_NRA, _NABF_KA, _NABF_SA = 0.9995, 22.0, 0.5


def _kumar_edges(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kumar's ``sobel_fn``: Sobel / 8 with mirror padding; strength and angle atan(gx / gy),
    0 where both responses are 0 (atan(+-inf) = +-pi/2 where only gy is 0)."""
    gx, gy = sobel(img, "mirror")
    gv, gh = gx / 8.0, gy / 8.0
    g = np.sqrt(gh * gh + gv * gv)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.where((gv == 0) & (gh == 0), 0.0, np.arctan(gv / gh))
    return g, angle


def _kumar_preservation(gs: np.ndarray, as_: np.ndarray, gf: np.ndarray,
                        af: np.ndarray) -> np.ndarray:
    ratio = np.divide(np.minimum(gs, gf), np.maximum(gs, gf),
                      out=np.zeros_like(gs), where=(gs != 0) & (gf != 0))
    orientation = np.abs(np.abs(as_ - af) - HALF_PI) / HALF_PI
    q_g = _NABF_NRG / (1.0 + np.exp(-_NABF_KG * (ratio - _NABF_SG)))
    q_a = _NABF_NRA / (1.0 + np.exp(-_NABF_KA * (orientation - _NABF_SA)))
    return np.sqrt(q_g * q_a)


def nabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Nabf: fusion artefacts, Shreyamsha Kumar's modified N^AB/F.

    With Petrovic's 2005 edge-preservation Q^AF (Sobel / 8 with mirror padding;
    Q^AF = sqrt(Q_g Q_a), Q_g = 0.9999 / (1 + exp(-19 (G^AF - 0.5))),
    Q_a = 0.9995 / (1 + exp(-22 (A^AF - 0.5))), A^AF = ||alpha_A - alpha_F| - pi/2| / (pi/2)) and
    weights w_A = g_A^1.5 where g_A >= 2, else 0.001:
    N^AB/F = sum over pixels with g_F > g_A and g_F > g_B of ((1 - Q^AF) w_A + (1 - Q^BF) w_B)
    / sum(w_A + w_B): the edge strength that appears in F without being in either source.

    Reference: B. K. Shreyamsha Kumar, "Multifocus and multispectral image fusion based on pixel
    significance using discrete cosine harmonic wavelet transform", Signal, Image and Video
    Processing 7(6):1125-1143, 2013 (``objective_fusion_perform_fn``, output NABF), on 0..255
    images (the threshold 2 is in grey levels). Tang's ``analysis_Reference.m`` calls it with the
    arguments in the wrong order (a source taken as the fused image); with the order fixed it
    equals this value. Direction: lower is better. Range: 0..1.
    """
    a, b, f = check_images(a, b, f, min_size=2)
    ga, aa = _kumar_edges(a)
    gb, ab = _kumar_edges(b)
    gf, af = _kumar_edges(f)
    q_af = _kumar_preservation(ga, aa, gf, af)
    q_bf = _kumar_preservation(gb, ab, gf, af)
    w_a = np.where(ga >= _NABF_TD, ga ** _NABF_LG, _NABF_WT_MIN)
    w_b = np.where(gb >= _NABF_TD, gb ** _NABF_LG, _NABF_WT_MIN)
    artefact = (gf > ga) & (gf > gb)
    loss = ((1.0 - q_af) * w_a + (1.0 - q_bf) * w_b)[artefact].sum()
    return float(loss / (w_a + w_b).sum())
