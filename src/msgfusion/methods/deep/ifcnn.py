"""IFCNN: Zhang, Liu, Sun, Yan, Zhao, Zhang, "IFCNN: A general image fusion framework based on
convolutional neural network", Information Fusion 54:99-118, 2020.

Architecture (as in the paper and its released code): each source goes through the same feature
extractor, CONV1 (7 x 7, 64 channels, stride 1, replicate padding; in the paper ResNet-101's
ImageNet conv1, frozen) and CONV2 (3 x 3, 64, BatchNorm, ReLU); the features of the sources are
fused element-wise (maximum, the paper's rule for medical images); CONV3 (3 x 3, 64, BN, ReLU) and
CONV4 (1 x 1) reconstruct the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msgfusion.methods.deep.base import Network, ShippedNetworkMethod
from msgfusion.methods.deep.layers import ConvBlock


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

NETWORK = Network(name="ifcnn", arch=IFCNNConfig(), build=IFCNN)


class IFCNNMethod(ShippedNetworkMethod):
    """IFCNN with the weights trained here (see the module docstring)."""

    name = "ifcnn"
    network = NETWORK
