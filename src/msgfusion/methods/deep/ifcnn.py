"""IFCNN: Zhang, Liu, Sun, Yan, Zhao, Zhang, "IFCNN: A general image fusion framework based on
convolutional neural network", Information Fusion 54:99-118, 2020.

Architecture (as in the paper and its released code): each source goes through the same feature
extractor, CONV1 (7 x 7, 64 channels, stride 1, replicate padding; in the paper ResNet-101's
ImageNet conv1, frozen) and CONV2 (3 x 3, 64, BatchNorm, ReLU); the features of the sources are
fused element-wise (maximum, the paper's rule for medical images); CONV3 (3 x 3, 64, BN, ReLU) and
CONV4 (1 x 1) reconstruct the image.

Loss: the paper trained supervised (MSE + VGG perceptual loss against ground truth made from
synthetic multi-focus data). Neither the ground truth nor the ImageNet weights exist here, so CONV1
is trained with the rest and the loss is unsupervised, against both sources (AANLIB train split,
all three modality pairs): L = (1 - SSIM(F, A)) / 2 + (1 - SSIM(F, B)) / 2
+ |F - max(A, B)|_1 + | |grad F| - max(|grad A|, |grad B|) |_1 (Sobel gradients), i.e. the
structure of both sources plus the intensity and edges of the max rule that IFCNN applies to the
features. Deviations: grey input and output (1 channel instead of 3, no ImageNet normalisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msgfusion.methods.deep.base import Recipe, ShippedNetworkMethod
from msgfusion.methods.deep.layers import ConvBlock
from msgfusion.train.losses import FusionLoss, LossConfig
from msgfusion.train.trainer import TrainConfig


@dataclass(frozen=True)
class IFCNNConfig:
    channels: int = 64
    rule: str = "max"  # element-wise rule: max (medical), mean or sum


RULES = {
    "max": lambda a, b: torch.maximum(a, b),
    "mean": lambda a, b: (a + b) / 2,
    "sum": lambda a, b: a + b,
}


class IFCNN(nn.Module):
    """``forward(a, b) -> N x 1 x H x W``: shared CONV1-CONV2, element-wise rule, CONV3-CONV4."""

    def __init__(self, cfg: IFCNNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or IFCNNConfig()
        if cfg.rule not in RULES:
            raise ValueError(f"unknown IFCNN rule {cfg.rule!r}; choose one of {', '.join(RULES)}")
        c = cfg.channels
        self.extract = nn.Sequential(
            ConvBlock(1, c, 7, padding="replicate", norm=False, bias=False),  # CONV1
            ConvBlock(c, c, 3, padding="replicate", act=nn.ReLU(inplace=True), bias=False),
        )
        self.reconstruct = nn.Sequential(
            ConvBlock(c, c, 3, padding="replicate", act=nn.ReLU(inplace=True), bias=False),
            nn.Conv2d(c, 1, 1),  # CONV4
        )

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        features = self.extract(torch.cat([a, b]))
        fa, fb = features.chunk(2)
        return self.reconstruct(RULES[self.cfg.rule](fa, fb))


RECIPE = Recipe(
    name="ifcnn",
    arch=IFCNNConfig(),
    build=IFCNN,
    loss=lambda: FusionLoss(LossConfig(ssim=1.0, mse=0.0, intensity_max=1.0, gradient_max=1.0)),
    train=TrainConfig(epochs=3, batch_size=4, lr=1e-3, crop=96, num_threads=1,
                      max_steps_per_epoch=100),
)


class IFCNNMethod(ShippedNetworkMethod):
    """IFCNN with the weights trained here (see the module docstring)."""

    name = "ifcnn"
    recipe = RECIPE
