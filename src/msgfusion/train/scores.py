"""Differentiable torch versions of fusion metrics, to train on what the benchmark measures.

Each function mirrors a metric of :mod:`msgfusion.metrics` (same formula, same constants, images
scaled to 0..255 as the reference code reads them) and returns one score per image (N) for
N x 1 x H x W tensors in [0, 1]; ``tests/train/test_scores.py`` checks the values against the
metrics. Where a metric takes a hard decision (Qabf's orientation at a zero horizontal
response, VIFF's choice of source per pixel) the decision is kept and the gradient flows through
the branch taken.

- :func:`qabf_score`: Xydeas & Petrovic's Q^AB/F (Electronics Letters 36(4), 2000), as
  :func:`msgfusion.metrics.gradient.qabf`;
- :func:`viff_score`: Han et al.'s VIFF (Information Fusion 14(2), 2013), as
  :func:`msgfusion.metrics.perceptual.viff`;
- :func:`entropy_score`, :func:`mi_score`: EN and Qu et al.'s MI (Electronics Letters 38(7),
  2002), as :func:`msgfusion.metrics.information.entropy` and ``mutual_information``. The
  histograms are soft: a fused value between grey levels l and l + 1 counts to both, in
  proportion (linear interpolation), so that moving it moves counts and the score has a
  gradient; on integer grey levels the soft histogram is the metric's histogram.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from msgfusion.metrics.gradient import (
    QABF_DA,
    QABF_DG,
    QABF_KA,
    QABF_KG,
    QABF_TA,
    QABF_TG,
)
from msgfusion.metrics.information import LEVELS
from msgfusion.metrics.perceptual import (
    VIF_EPS,
    VIF_MIN_SIZE,
    VIF_WINDOWS,
    VIFF_C,
    VIFF_SCALE_WEIGHTS,
    VIFF_SIGMA_N2,
)

# MATLAB conv2 kernels of the reference code, as correlation kernels (rotated by 180 degrees).
_SOBEL = torch.tensor([
    [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],  # conv2(x, [-1 0 1; -2 0 2; -1 0 1])
    [[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]],  # conv2(x, [1 2 1; 0 0 0; -1 -2 -1])
]).unsqueeze(1)
_GRAD_EPS = 1e-6  # keeps sqrt and the division differentiable where the response is 0


def sobel_responses(x: torch.Tensor, padding: str = "constant") -> torch.Tensor:
    """N x 2 x H x W Sobel responses (sx, sy) of N x 1 x H x W images, as the Qabf reference
    code's ``conv2`` computes them; ``padding``: a mode of ``torch.nn.functional.pad``
    (``constant``: zeros, as the reference)."""
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode=padding), _SOBEL.to(x))


def _edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge strength g and orientation alpha = atan(sy / sx) (pi/2 where sx = 0), zero padding."""
    s = sobel_responses(x)
    sx, sy = s[:, :1], s[:, 1:]
    g = torch.sqrt(sx * sx + sy * sy + _GRAD_EPS)
    zero = sx == 0
    alpha = torch.where(zero, math.pi / 2, torch.atan(sy / torch.where(zero, 1.0, sx)))
    return g, alpha


def _preservation(gs: torch.Tensor, as_: torch.Tensor, gf: torch.Tensor,
                  af: torch.Tensor) -> torch.Tensor:
    strength = torch.minimum(gs, gf) / torch.maximum(gs, gf)
    orientation = 1.0 - (as_ - af).abs() / (math.pi / 2)
    q_g = QABF_TG / (1.0 + torch.exp(QABF_KG * (strength - QABF_DG)))
    q_a = QABF_TA / (1.0 + torch.exp(QABF_KA * (orientation - QABF_DA)))
    return q_g * q_a


def qabf_score(o: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Q^AB/F = sum(Q^AF g_A + Q^BF g_B) / sum(g_A + g_B), per image (N).

    G^AF = min(g_A, g_F) / max(g_A, g_F), A^AF = 1 - |alpha_A - alpha_F| / (pi/2), Q^AF the
    product of the two sigmoids of :func:`msgfusion.metrics.gradient.qabf`. Differs from the
    metric only by a 1e-6 added under the square root of the edge strength (and the metric's
    G^AF = g_F where g_A = g_F exactly, a rounding-level case).
    """
    ga, aa = _edges(255.0 * a)
    gb, ab = _edges(255.0 * b)
    gf, af = _edges(255.0 * o)
    q = _preservation(ga, aa, gf, af) * ga + _preservation(gb, ab, gf, af) * gb
    return q.flatten(1).sum(dim=1) / (ga + gb).flatten(1).sum(dim=1)


@lru_cache(maxsize=8)
def _window(k: int) -> torch.Tensor:
    return torch.from_numpy(VIF_WINDOWS[k]).float()


def _filter_valid(x: torch.Tensor, k: int) -> torch.Tensor:
    """Separable correlation with scale k's Gaussian window, 'valid' region (``filter2``)."""
    w = _window(k).to(x)
    n, c = len(w), x.shape[1]
    x = F.conv2d(x, w.view(1, 1, n, 1).expand(c, 1, n, 1), groups=c)
    return F.conv2d(x, w.view(1, 1, 1, n).expand(c, 1, 1, n), groups=c)


def _pyramid(x: torch.Tensor) -> list[torch.Tensor]:
    """The 4 scales of VIF: scale k > 0 is scale k - 1 low-passed ('valid') and subsampled."""
    levels = [x]
    for k in range(1, len(VIF_WINDOWS)):
        levels.append(_filter_valid(levels[-1], k)[..., ::2, ::2])
    return levels


def _vif_terms(ref: torch.Tensor, dist: torch.Tensor,
               k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gain g, information kept in dist and information in ref at scale k (``vifp_mscale.m``
    statistics and guards, visual noise VIFF_SIGMA_N2)."""
    stats = _filter_valid(torch.cat([ref, dist, ref * ref, dist * dist, ref * dist], dim=1), k)
    mr, md, rr, dd, rd = stats.split(1, dim=1)
    var_r, var_d = (rr - mr * mr).clamp(min=0), (dd - md * md).clamp(min=0)
    cov = rd - mr * md
    gain = cov / (var_r + VIF_EPS)
    var_v = var_d - gain * cov
    flat_ref = var_r < VIF_EPS
    gain = torch.where(flat_ref, 0.0, gain)
    var_v = torch.where(flat_ref, var_d, var_v)
    var_r = torch.where(flat_ref, 0.0, var_r)
    flat_dist = var_d < VIF_EPS
    gain = torch.where(flat_dist, 0.0, gain)
    var_v = torch.where(flat_dist, 0.0, var_v)
    negative = gain < 0
    var_v = torch.where(negative, var_d, var_v)
    gain = torch.where(negative, 0.0, gain)
    var_v = var_v.clamp(min=VIF_EPS)
    kept = torch.log10(1.0 + gain * gain * var_r / (var_v + VIFF_SIGMA_N2))
    total = torch.log10(1.0 + var_r / VIFF_SIGMA_N2)
    return gain, kept, total


def viff_score(o: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """VIFF = sum_k p_k sum(VID_k + c) / sum(VIND_k + c), per image (N).

    Per scale and pixel the source with the smaller VIF gain is used (B where g_A >= g_B), as
    :func:`msgfusion.metrics.perceptual.viff`; p = [1, 0, 0.15, 1] / 2.15, c = 1e-7.
    """
    if min(o.shape[-2:]) < VIF_MIN_SIZE:
        raise ValueError(f"VIFF needs images of at least {VIF_MIN_SIZE} x {VIF_MIN_SIZE} pixels "
                         f"(got {o.shape[-2]} x {o.shape[-1]}; use a larger training crop)")
    pa, pb, pf = _pyramid(255.0 * a), _pyramid(255.0 * b), _pyramid(255.0 * o)
    total = torch.zeros(o.shape[0], dtype=o.dtype, device=o.device)
    for k, p in enumerate(VIFF_SCALE_WEIGHTS):
        if p == 0:
            continue
        g_a, kept_a, info_a = _vif_terms(pa[k], pf[k], k)
        g_b, kept_b, info_b = _vif_terms(pb[k], pf[k], k)
        use_a = g_a < g_b
        kept = torch.where(use_a, kept_a, kept_b) + VIFF_C
        info = torch.where(use_a, info_a, info_b) + VIFF_C
        total = total + float(p) * kept.flatten(1).sum(dim=1) / info.flatten(1).sum(dim=1)
    return total


def _soft_counts(x: torch.Tensor, offsets: torch.Tensor, bins: int) -> torch.Tensor:
    """Soft histograms of 255 x (N x 1 x H x W, in [0, 1]), one row of ``bins`` per image:
    pixel i adds 1 - w to bin offsets_i + floor(t) and w to the next, t = 255 x, w = t - floor(t).
    ``offsets``: N x 1 x H x W integer bin offsets (0 for a plain histogram)."""
    t = 255.0 * x.clamp(0.0, 1.0)
    low = t.detach().floor().clamp(max=LEVELS - 2)
    w = t - low
    n = x.shape[0]
    rows = torch.arange(n, device=x.device).view(n, 1, 1, 1) * bins
    index = (rows + offsets + low.long()).flatten()
    counts = torch.zeros(n * bins, dtype=x.dtype, device=x.device)
    counts = counts.index_add(0, index, (1.0 - w).flatten()).index_add(0, index + 1, w.flatten())
    return counts.view(n, bins)


def _entropy_bits(counts: torch.Tensor) -> torch.Tensor:
    p = counts / counts.sum(dim=1, keepdim=True)
    return -(p * torch.log2(p.clamp(min=1e-12))).sum(dim=1)


def entropy_score(x: torch.Tensor) -> torch.Tensor:
    """EN = -sum_l p_l log2 p_l over the 256 grey levels of 255 x, per image (N), in bits."""
    return _entropy_bits(_soft_counts(x, torch.zeros_like(x, dtype=torch.long), LEVELS))


def _mi_and_bound(o: torch.Tensor, a: torch.Tensor,
                  b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(I(A; O) + I(B; O), H(A) + H(B)) per image, in bits; the sources' grey levels are
    rounded (hard histograms), the output's histogram is soft, the joint ones 256 x 256."""
    h_o = entropy_score(o)
    mi = torch.zeros_like(h_o)
    h_sources = torch.zeros_like(h_o)
    for src in (a, b):
        levels = torch.round(255.0 * src.clamp(0.0, 1.0)).long()
        counts = torch.stack([torch.bincount(lv.flatten(), minlength=LEVELS) for lv in levels])
        h_src = _entropy_bits(counts.to(o.dtype))
        h_joint = _entropy_bits(_soft_counts(o, levels * LEVELS, LEVELS * LEVELS))
        mi = mi + h_src + h_o - h_joint
        h_sources = h_sources + h_src
    return mi, h_sources


def mi_score(o: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MI = I(A; O) + I(B; O), I(X; O) = H(X) + H(O) - H(X, O), per image (N), in bits."""
    return _mi_and_bound(o, a, b)[0]


def normalized_mi_score(o: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MI / (H(A) + H(B)), per image (N): MI over its upper bound, in [0, 1]."""
    mi, bound = _mi_and_bound(o, a, b)
    return mi / bound
