"""Unsupervised fusion losses: the MsgFusion paper's loss and optional measured improvements.

Paper loss (Wen et al., IEEE TMM 26:944-957, 2024; MSGFUSION.md section 4), with O the output,
A the MR and B the functional grey image (luminance):

    L = 0.8 [0.5 (1 - SSIM(O, A)) + 0.5 (1 - SSIM(O, B))] + 0.2 [0.5 MSE(O, A) + 0.5 MSE(O, B)]

SSIM with an 11 x 11 Gaussian window, sigma 1.5, data range 1 (Wang et al., IEEE TIP 2004).
Optional terms, used in many recent fusion papers (e.g. Tang et al., SeAFusion, Information
Fusion 82, 2022; Zhao et al., CDDFuse, CVPR 2023):

- ``ssim_saliency``: 1 - Piella's saliency-weighted SSIM (:func:`saliency_ssim`), follows in
  each window the source with more structure;
- ``intensity_max``: L1(O, max(A, B)), keeps the brighter source (bone, uptake);
- ``gradient_max``: L1(|grad O|, max(|grad A|, |grad B|)) with Sobel gradients, keeps the
  stronger edge of the two sources;
- ``qabf``, ``viff``: 1 - Q^AB/F and 1 - VIFF, differentiable versions of two of the paper's
  metrics (:mod:`msgfusion.train.scores`);
- ``mi``: 1 - MI / (H(A) + H(B)), the paper's MI (soft-histogram version) over its upper bound,
  so that the term lies in [0, 1] like the others;
- ``floor``: the mean of max(0, -O) over the pixels where a source is above 0 (O before the
  clamp): see below.

With ``clamp`` the terms see O clamped to [0, 1], as the method writes it: the network may then
push the background below 0 at no cost, so that it comes out exactly black (a fused background
of even 2/255 costs Q_S and Qabf much, since the sources are exactly 0 there; measured). The
clamp passes no gradient below 0, so the network is also free to learn a negative offset that
blacks out faint signal (a noisy MR background of 5-10/255 came out black: Q_S 0.61 against 0.84
for the pixel maximum on such pairs; measured). ``floor`` penalises exactly that, and leaves O
free below 0 where both sources are 0.

Every term is computed on O itself, the fused intensity: the benchmark restores colour with
YCbCr (Y := O), so O is the luminance the metrics read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from msgfusion.model.inputs import Batch
from msgfusion.train.scores import (
    normalized_mi_score,
    qabf_score,
    sobel_responses,
    viff_score,
)

LossFn = Callable[[torch.Tensor, Batch], tuple[torch.Tensor, dict[str, float]]]


@lru_cache(maxsize=8)
def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised 1-D Gaussian of SSIM (applied separably)."""
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    g = gaussian_window(size, sigma).to(x)
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, size), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, size, 1), groups=c)


def _ssim_map(mx: torch.Tensor, my: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor,
              cov: torch.Tensor, data_range: float) -> torch.Tensor:
    """Wang's SSIM map from local means, variances and covariance (K1 = 0.01, K2 = 0.03)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, size: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM over the valid region (Wang et al. 2004; K1 = 0.01, K2 = 0.03), per image (N)."""
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), size, sigma)
    mx, my, xx, yy, xy = stats.split(x.shape[1], dim=1)
    smap = _ssim_map(mx, my, xx - mx**2, yy - my**2, xy - mx * my, data_range)
    return smap.flatten(1).mean(dim=1)


def saliency_ssim(o: torch.Tensor, a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0,
                  size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Piella's Q_S as a differentiable score, per image (N).

    mean over windows of lambda SSIM(O, A) + (1 - lambda) SSIM(O, B), lambda = s_A / (s_A + s_B)
    with s the local variance of a source (1/2 where both are flat): each window follows the
    source with more structure there, instead of the average of both that the paper's
    SSIM term pulls towards. G. Piella, H. Heijmans, "A new quality metric for image fusion",
    ICIP 2003 (the SSIM-map form of :func:`msgfusion.metrics.piella_q`).
    """
    stats = _blur(torch.cat([o, a, b, o * o, a * a, b * b, o * a, o * b], dim=1), size, sigma)
    mo, ma, mb, oo, aa, bb, oa, ob = stats.split(o.shape[1], dim=1)
    vo, va, vb = oo - mo**2, (aa - ma**2).clamp(min=0), (bb - mb**2).clamp(min=0)
    total = va + vb
    lam = torch.where(total > 1e-10, va / total.clamp(min=1e-10), torch.full_like(total, 0.5))
    sa = _ssim_map(mo, ma, vo, va, oa - mo * ma, data_range)
    sb = _ssim_map(mo, mb, vo, vb, ob - mo * mb, data_range)
    return (lam * sa + (1 - lam) * sb).flatten(1).mean(dim=1)


def floor_penalty(o: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean of max(0, -O) over the pixels where max(A, B) > 0, per image (N); 0 where none is."""
    signal = (torch.maximum(a, b) > 0).to(o)
    below = torch.relu(-o) * signal
    return below.flatten(1).sum(dim=1) / signal.flatten(1).sum(dim=1).clamp(min=1.0)


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|grad x| = |Sobel_x| + |Sobel_y| (replicate padding, same size)."""
    return sobel_responses(x, "replicate").abs().sum(dim=1, keepdim=True)


@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms; the defaults are the paper's loss."""

    ssim: float = 0.8
    mse: float = 0.2
    ssim_saliency: float = 0.0
    intensity_max: float = 0.0
    gradient_max: float = 0.0
    qabf: float = 0.0
    viff: float = 0.0
    mi: float = 0.0
    floor: float = 0.0
    clamp: bool = False  # score the output as written, clamped to [0, 1]


class FusionLoss:
    """``loss(output, batch) -> (total, {term: value})`` for N x 1 x H x W outputs.

    ``batch`` holds ``mr`` and ``func_gray``, as made by
    :func:`msgfusion.model.inputs.batch_from_pairs`.
    """

    def __init__(self, cfg: LossConfig | None = None) -> None:
        self.cfg = cfg or LossConfig()

    def __call__(self, o: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        a, b = batch["mr"], batch["func_gray"]
        terms: dict[str, torch.Tensor] = {}
        if cfg.floor:
            terms["floor"] = floor_penalty(o, a, b).mean()
        if cfg.clamp:
            o = o.clamp(0.0, 1.0)
        if cfg.ssim:
            terms["ssim"] = 0.5 * ((1 - ssim(o, a)) + (1 - ssim(o, b))).mean()
        if cfg.ssim_saliency:
            terms["ssim_saliency"] = (1 - saliency_ssim(o, a, b)).mean()
        if cfg.mse:
            terms["mse"] = 0.5 * (F.mse_loss(o, a) + F.mse_loss(o, b))
        if cfg.intensity_max:
            terms["intensity_max"] = F.l1_loss(o, torch.maximum(a, b))
        if cfg.gradient_max:
            target = torch.maximum(sobel_magnitude(a), sobel_magnitude(b))
            terms["gradient_max"] = F.l1_loss(sobel_magnitude(o), target)
        if cfg.qabf:
            terms["qabf"] = (1 - qabf_score(o, a, b)).mean()
        if cfg.viff:
            terms["viff"] = (1 - viff_score(o, a, b)).mean()
        if cfg.mi:
            terms["mi"] = (1 - normalized_mi_score(o, a, b)).mean()
        total = sum(getattr(cfg, name) * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}  # type: ignore[return-value]
