"""How FusionDN is trained here (:mod:`msgfusion.methods.deep.fusiondn` is the network).

Loss: adaptive information preservation. Each source k gets a per-image score
s_k = q_k + w_EN EN_k, with EN the entropy (the amount of information) and q a no-reference quality
measure, and weight w_k = exp(s_k / c) / sum_j exp(s_j / c) (w_EN = 12, c = 13, the released
values for infrared/visible); L = sum_k w_k (1 - SSIM(F, I_k)) + 1800 sum_k w_k MSE(L F, L I_k)
+ 20 sum_k w_k MSE(F, I_k), with L the 8-neighbour Laplacian of the released code.

Deviations: the quality q was deepIQA (a CNN trained on TID2013, MOS scale 0-9), unavailable here;
it is replaced by the average gradient (in grey levels, typically 2-10 on these images), a
gradient-based no-reference sharpness measure of a similar range. The VGG-16 perceptual term
(weight 4e-5; no ImageNet weights here) is replaced by the same information-weighted comparison on
pixels, 20 sum_k w_k MSE(F, I_k): without any intensity term, SSIM's luminance factor saturates on
the black background of brain slices (its gradient vanishes far from the target) and a trial run
left the background mid-grey. Elastic weight consolidation is what makes
FusionDN *one* model for several fusion tasks trained in sequence (multi-modal, multi-exposure,
multi-focus); here there is one task, MR + functional brain images, with the three modality pairs
pooled into one training set, so no task is trained after another and EWC has nothing to protect:
it is left out. Widths divided by four (encoder 48 -> 12 per layer, decoder 240, 128, 64 -> 60,
32, 16) to keep the weights small and training feasible on a CPU. Training data: AANLIB train split
(the paper: RoadScene/TNO, exposure and focus data sets).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from msgfusion.methods.deep.fusiondn import NETWORK
from msgfusion.methods.deep.layers import LAPLACIAN_8, filter2d
from msgfusion.model.inputs import Batch
from msgfusion.train.losses import ssim
from msgfusion.train.recipes.base import Recipe
from msgfusion.train.trainer import TrainConfig


def entropy(x: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (bits) of the 256-level histogram of each N x 1 x H x W image in [0, 1]."""
    levels = (x.clamp(0, 1) * 255).round().long().flatten(1)
    counts = torch.zeros(levels.shape[0], 256, device=x.device).scatter_add_(
        1, levels, torch.ones_like(levels, dtype=torch.float32))
    p = counts / counts.sum(dim=1, keepdim=True)
    return -(p * torch.log2(p.clamp_min(1e-12))).sum(dim=1)


def average_gradient(x: torch.Tensor) -> torch.Tensor:
    """Mean of sqrt((dx^2 + dy^2) / 2) in grey levels (0..255), per image (N)."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (255 * torch.sqrt((dx**2 + dy**2) / 2)).flatten(1).mean(dim=1)


def _mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per image (N)."""
    return (x - y).pow(2).flatten(1).mean(dim=1)


@dataclass(frozen=True)
class FusionDNLoss:
    """The adaptive, information-preserving loss (see the module docstring)."""

    w_en: float = 12.0
    c: float = 13.0
    gradient: float = 1800.0
    pixel: float = 20.0  # replaces the VGG perceptual term (see the module docstring)

    def weights(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """2 x N weights of the sources, from quality (average gradient) and entropy."""
        with torch.no_grad():
            scores = torch.stack([average_gradient(s) + self.w_en * entropy(s) for s in (a, b)])
            return torch.softmax(scores / self.c, dim=0)

    def __call__(self, output: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        a, b = batch["mr"], batch["func_gray"]
        w = self.weights(a, b)
        lap = filter2d(output, LAPLACIAN_8)
        sources = (a, b)
        structure = sum(w[k] * (1 - ssim(output, s)) for k, s in enumerate(sources))
        grad = sum(w[k] * _mse(lap, filter2d(s, LAPLACIAN_8)) for k, s in enumerate(sources))
        pixel = sum(w[k] * _mse(output, s) for k, s in enumerate(sources))
        terms = {"ssim": structure.mean(), "gradient": grad.mean(),  # type: ignore[union-attr]
                 "pixel": pixel.mean()}  # type: ignore[union-attr]
        total = terms["ssim"] + self.gradient * terms["gradient"] + self.pixel * terms["pixel"]
        return total, {**{k: float(v.detach()) for k, v in terms.items()},
                       "w_mr": float(w[0].mean())}


RECIPE = Recipe(
    network=NETWORK,
    loss=FusionDNLoss,
    train=TrainConfig(epochs=3, batch_size=8, lr=1e-3, crop=96, num_threads=1),
)
