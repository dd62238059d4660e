"""How NestFuse is trained here (:mod:`msgfusion.methods.deep.nestfuse` is the network).

Loss (training the auto-encoder alone): L = MSE(O, I) + lambda (1 - SSIM(O, I)), lambda = 100
(the paper's choice among 1, 10, 100, 1000).

Training data: the paper used 80,000 MS-COCO images; here the auto-encoder is trained on the
AANLIB train split, the MR and the functional grey images of all three modality pairs each as a
separate image. Deviations: block widths divided by four (64, 112, 160, 208 -> 16, 28, 40, 52) to
keep the weights small and training feasible on a CPU; inputs of any size are reflect-padded to a
multiple of 8 and the output cropped back; SSIM (11 x 11 Gaussian window) where the released code
uses MS-SSIM; 500 steps of batch 4 (96 x 96 crops) at lr 1e-3 instead of 2 epochs of 80,000
images at 1e-4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from msgfusion.methods.deep.nestfuse import NETWORK
from msgfusion.model.inputs import Batch
from msgfusion.train.losses import ssim
from msgfusion.train.recipes.base import Recipe
from msgfusion.train.trainer import TrainConfig


def autoencoder_images(batch: Batch) -> torch.Tensor:
    """The training images: the MR and the functional grey image of each pair, each on its own."""
    return torch.cat([batch["mr"], batch["func_gray"]])


class NestFuseLoss:
    """MSE(O, I) + lambda (1 - SSIM(O, I)), lambda = 100 (the paper's value)."""

    def __init__(self, ssim_weight: float = 100.0) -> None:
        self.ssim_weight = ssim_weight

    def __call__(self, output: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        target = autoencoder_images(batch)
        pixel = F.mse_loss(output, target)
        structure = (1 - ssim(output, target)).mean()
        total = pixel + self.ssim_weight * structure
        return total, {"pixel": float(pixel.detach()), "ssim": float(structure.detach())}


def train_forward(model: nn.Module, batch: Batch) -> torch.Tensor:
    return model(autoencoder_images(batch))


RECIPE = Recipe(
    network=NETWORK,
    loss=NestFuseLoss,
    train=TrainConfig(epochs=5, batch_size=4, lr=1e-3, crop=96, num_threads=1,
                      max_steps_per_epoch=100),
    train_forward=train_forward,
)
