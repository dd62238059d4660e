"""Human-visual-system metrics: VIF, VIFF (visual information fidelity), Qcb, Qcv (contrast
sensitivity based)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from msgfusion.metrics.filters import (
    LocalStats,
    block_sums,
    correlate_same,
    correlate_valid,
    filter_frequency,
    frequency_radius,
    gaussian_window,
    local_covariance,
    local_stats,
    normalize_255,
    sobel,
)
from msgfusion.metrics.inputs import check_images

# ---- visual information fidelity (Sheikh & Bovik, pixel domain, 4 scales) -----------------------

VIF_EPS = 1e-10
# Gaussian windows N = 2^(5 - scale) + 1 = 17, 9, 5, 3 with sigma N / 5.
VIF_WINDOWS = tuple(gaussian_window(n, n / 5.0) for n in (17, 9, 5, 3))
# The smallest image whose coarsest scale still has a non-empty 'valid' window.
VIF_MIN_SIZE = 41


@dataclass(frozen=True)
class _VifScale:
    """Per-pixel statistics of one scale: gain g, reference variance and distortion variance."""

    gain: np.ndarray
    var_ref: np.ndarray
    var_noise: np.ndarray

    def information(self, sigma_n2: float) -> tuple[np.ndarray, np.ndarray]:
        """(information kept in dist, information in ref) maps: log10(1 + g^2 s_r / (s_v + n)),
        log10(1 + s_r / n) for visual noise variance n."""
        kept = np.log10(1.0 + self.gain ** 2 * self.var_ref / (self.var_noise + sigma_n2))
        total = np.log10(1.0 + self.var_ref / sigma_n2)
        return kept, total


def _vif_pyramid(img: np.ndarray) -> list[LocalStats]:
    """Local statistics of the 4 scales: scale k > 1 is scale k - 1 low-pass filtered with scale
    k's window ('valid') and subsampled by 2 (``vifp_mscale.m``)."""
    levels = []
    for k, w in enumerate(VIF_WINDOWS):
        if k > 0:
            img = correlate_valid(img, w)[::2, ::2]
        levels.append(local_stats(img, w))
    return levels


def _vif_scales(ref: list[LocalStats], dist: list[LocalStats]) -> list[_VifScale]:
    """Sheikh & Bovik's multiscale pixel-domain VIF statistics (``vifp_mscale.m``).

    Per scale, from the local (co)variances under that scale's Gaussian window: the gain
    g = s_rd / s_r and the distortion variance s_v = s_d - g s_rd, with the reference code's
    guards: negative variances -> 0; where s_r < 1e-10: g = 0, s_v = s_d, s_r = 0; where
    s_d < 1e-10: g = s_v = 0; where g < 0: s_v = s_d, g = 0; s_v >= 1e-10.
    """
    scales = []
    for r, d in zip(ref, dist, strict=True):
        var_r, var_d = np.maximum(r.var, 0.0), np.maximum(d.var, 0.0)
        cov = local_covariance(r, d)
        gain = cov / (var_r + VIF_EPS)
        var_v = var_d - gain * cov
        flat_ref = var_r < VIF_EPS
        gain[flat_ref] = 0.0
        var_v[flat_ref] = var_d[flat_ref]
        var_r[flat_ref] = 0.0
        flat_dist = var_d < VIF_EPS
        gain[flat_dist] = 0.0
        var_v[flat_dist] = 0.0
        negative = gain < 0
        var_v[negative] = var_d[negative]
        gain[negative] = 0.0
        var_v = np.maximum(var_v, VIF_EPS)
        scales.append(_VifScale(gain, var_r, var_v))
    return scales


def _vifp(scales: list[_VifScale], sigma_n2: float) -> float:
    kept = total = 0.0
    for scale in scales:
        k, t = scale.information(sigma_n2)
        kept += k.sum()
        total += t.sum()
    return 1.0 if total == 0 else kept / total


VIF_SIGMA_N2 = 2.0


def vif(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """VIF: Sheikh-Bovik visual information fidelity of F with respect to each source, summed.

    VIF = vifp(A, F) + vifp(B, F); vifp(R, D) = sum_k sum_pixels log10(1 + g^2 s_R / (s_V + n))
    / sum_k sum_pixels log10(1 + s_R / n) over 4 scales (Gaussian windows 17, 9, 5, 3 with sigma
    N/5, 'valid' filtering, dyadic subsampling; statistics as :func:`_vif_scales`), visual noise
    n = sigma_n^2 = 2. A flat source (0/0) counts as 1, as CDDFuse does.

    Reference: H. R. Sheikh, A. C. Bovik, "Image information and visual quality", IEEE TIP
    15(2):430-444, 2006 (``vifp_mscale.m``); the fusion form of CDDFuse (``Evaluator.VIFF``,
    which is this VIF, not Han's VIFF) and Tang. Direction: higher is better. Range: >= 0
    (each term is usually <= 1; above 1 for contrast enhancement).
    """
    a, b, f = check_images(a, b, f, min_size=VIF_MIN_SIZE)
    pa, pb, pf = _vif_pyramid(a), _vif_pyramid(b), _vif_pyramid(f)
    return float(_vifp(_vif_scales(pa, pf), VIF_SIGMA_N2)
                 + _vifp(_vif_scales(pb, pf), VIF_SIGMA_N2))


VIFF_SIGMA_N2 = 0.005 * 255.0 * 255.0
VIFF_SCALE_WEIGHTS = np.array([1.0, 0.0, 0.15, 1.0]) / 2.15
VIFF_C = 1e-7


def viff(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """VIFF: Han et al.'s visual information fidelity for fusion.

    Per scale k (the 4-scale VIF statistics of :func:`vif`, visual noise n = 0.005 * 255^2) and
    pixel, the source with the smaller gain g is selected (B where g_A >= g_B); with VID the
    information kept in F and VIND the information in that source,
    F_k = sum(VID + 1e-7) / sum(VIND + 1e-7), and VIFF = sum_k p_k F_k,
    p = [1, 0, 0.15, 1] / 2.15.

    Reference: Y. Han, Y. Cai, Y. Cao, X. Xu, "A new image fusion performance metric based on
    visual information fidelity", Information Fusion 14(2):127-135, 2013 (``VIFF_Public.m``, on
    grey images). One of MsgFusion's paper metrics. Direction: higher is better. Range: >= 0
    (about 0..1).
    """
    a, b, f = check_images(a, b, f, min_size=VIF_MIN_SIZE)
    pf = _vif_pyramid(f)
    scales_a, scales_b = _vif_scales(_vif_pyramid(a), pf), _vif_scales(_vif_pyramid(b), pf)
    total = 0.0
    for p, sa, sb in zip(VIFF_SCALE_WEIGHTS, scales_a, scales_b, strict=True):
        kept_a, info_a = sa.information(VIFF_SIGMA_N2)
        kept_b, info_b = sb.information(VIFF_SIGMA_N2)
        use_a = sa.gain < sb.gain
        kept = np.where(use_a, kept_a, kept_b)
        info = np.where(use_a, info_a, info_b)
        total += p * (kept + VIFF_C).sum() / (info + VIFF_C).sum()
    return float(total)


# ---- Chen-Blum (Qcb) ----------------------------------------------------------------------

_CB_F0, _CB_F1, _CB_A = 15.3870, 1.3456, 0.7622  # DoG contrast sensitivity function
_CB_K, _CB_H, _CB_P, _CB_Q, _CB_Z = 1.0, 1.0, 3.0, 2.0, 1e-4  # contrast masking
_CB_CYCLES = 30.0  # frequencies scaled by image size / 30


def _unnormalised_gaussian(sigma: float) -> np.ndarray:
    """1-D factor g of the 31 x 31 kernel exp(-(x^2 + y^2) / (2 sigma^2)) / (2 pi sigma^2)
    = outer(g, g), x, y = -15..15 (not normalised to sum 1, as the reference)."""
    x = np.arange(-15.0, 16.0)
    return np.exp(-(x * x) / (2.0 * sigma * sigma)) / (math.sqrt(2.0 * math.pi) * sigma)


_CB_G1, _CB_G2 = _unnormalised_gaussian(2.0), _unnormalised_gaussian(4.0)


def _masked_contrast(img: np.ndarray, csf: np.ndarray) -> np.ndarray:
    filtered = filter_frequency(img, csf)
    contrast = np.abs(correlate_same(filtered, _CB_G1) / correlate_same(filtered, _CB_G2) - 1.0)
    return _CB_K * contrast ** _CB_P / (_CB_H * contrast ** _CB_Q + _CB_Z)


def qcb(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Qcb: Chen-Blum human-perception fusion metric.

    Images are min-max stretched to rounded 0..255, filtered in the frequency domain with the DoG
    contrast sensitivity function S(r) = exp(-(r/15.387)^2) - 0.7622 exp(-(r/1.3456)^2)
    (frequencies scaled by image size / 30); local contrast C = |G_2 * I / G_4 * I - 1| (31 x 31
    Gaussians, sigma 2 and 4) is masked, C' = C^3 / (C^2 + 1e-4); the preservation
    Q_AF = min(C'_A, C'_F) / max(C'_A, C'_F); saliency weights lambda_A = C'_A^2 / (C'_A^2 +
    C'_B^2); Qcb = mean(lambda_A Q_AF + lambda_B Q_BF).

    Reference: Y. Chen, R. S. Blum, "A new automated quality assessment algorithm for image
    fusion", Image and Vision Computing 27(10):1421-1432, 2009; Z. Liu's ``metricChenBlum`` =
    VIFB ``metricsQcb``. Direction: higher is better. Range: 0..1 (NaN if an image is constant).

    Numerical caveat: in large black areas the CSF-filtered image is at FFT round-off level
    (1e-14..1e-18), and so is the contrast ratio there; the value then depends on the FFT
    implementation (on the atlas PET-MRI pairs: ~2e-3 between mathematically equivalent
    orderings, 0.4-1.1 % against Octave/FFTW, whose complex residue also enters |C|; elsewhere
    agreement with VIFB/Liu to 3.4e-7). The real part of the inverse FFT is used, as MATLAB
    returns for these symmetric filters.
    """
    a, b, f = check_images(a, b, f)
    h, w = f.shape
    csf_r = frequency_radius((h, w), (h / _CB_CYCLES, w / _CB_CYCLES))
    csf = np.exp(-((csf_r / _CB_F0) ** 2)) - _CB_A * np.exp(-((csf_r / _CB_F1) ** 2))
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 -> NaN, as the reference
        ca, cb, cf = (_masked_contrast(normalize_255(x), csf) for x in (a, b, f))
        q_af = np.where(ca < cf, ca / cf, cf / ca)
        q_bf = np.where(cb < cf, cb / cf, cf / cb)
        sal_a, sal_b = ca * ca, cb * cb
        lam_a = sal_a / (sal_a + sal_b)
        lam_b = sal_b / (sal_a + sal_b)
        return float(np.mean(lam_a * q_af + lam_b * q_bf))


# ---- Chen-Varshney (Qcv) ------------------------------------------------------------------

_CV_WINDOW = 16
_CV_ALPHA = 5.0
_CV_CYCLES = 8.0  # frequencies scaled by image size / 8


def qcv(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """Qcv: Chen-Varshney human-perception fusion metric (a weighted distortion: lower is better).

    Images are min-max stretched to rounded 0..255. Per 16 x 16 block, the saliency of a source
    is lambda = sum g^5 of its Sobel gradient magnitude, and the distortion D_AF = mean of the
    squared difference A - F filtered with the Mannos-Sakrison CSF
    S(r) = 2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1) (frequencies scaled by image size / 8);
    Qcv = sum(lambda_A D_AF + lambda_B D_BF) / sum(lambda_A + lambda_B).

    Reference: H. Chen, P. K. Varshney, "A human perception inspired quality metric for image
    fusion based on regional information", Information Fusion 8(2):193-207, 2007; Z. Liu's
    ``metricChen`` = VIFB ``metricsQcv`` (incomplete blocks zero-padded as ``blkproc``).
    Direction: lower is better. Range: >= 0 (unnormalised; grey levels squared; NaN if both
    sources are flat).
    """
    a, b, f = check_images(a, b, f)
    a, b, f = normalize_255(a), normalize_255(b), normalize_255(f)
    h, w = f.shape
    r = frequency_radius((h, w), (h / _CV_CYCLES, w / _CV_CYCLES))
    csf = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))
    area = _CV_WINDOW * _CV_WINDOW
    num = den = 0.0
    for src in (a, b):
        gx, gy = sobel(src, "zero")
        saliency = block_sums(np.sqrt(gx * gx + gy * gy) ** _CV_ALPHA, _CV_WINDOW)
        distortion = block_sums(filter_frequency(src - f, csf) ** 2, _CV_WINDOW) / area
        num += (saliency * distortion).sum()
        den += saliency.sum()
    return float(num / den) if den > 0 else math.nan
