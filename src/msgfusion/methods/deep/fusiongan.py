"""FusionGAN: Ma, Yu, Liang, Li, Jiang, "FusionGAN: A generative adversarial network for infrared
and visible image fusion", Information Fusion 48:11-26, 2019.

Mapping of the sources: FusionGAN keeps the *intensity* of the infrared image and the *texture*
(gradients) of the visible image. Here infrared -> the functional image (its grey luminance: uptake
or bone intensity) and visible -> MR (anatomical detail).

Architecture (as in the paper and its released code): images scaled to [-1, 1]. Generator: the two
sources concatenated (2 channels), five 'valid' convs (5 x 5, 5 x 5, 3 x 3, 3 x 3, 1 x 1), BN and
LeakyReLU(0.2) on the first four, tanh on the last; the input is edge-padded by 6 pixels so the
output has the input's size. Discriminator: four 3 x 3 stride-2 'valid' convs (BN from the second,
LeakyReLU) and a linear layer; it tells the visible (MR) image from the fused one (used in training
only: :mod:`msgfusion.train.recipes.fusiongan`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msgfusion.methods.deep.base import Network, ShippedNetworkMethod
from msgfusion.methods.deep.layers import ConvBlock, lrelu


@dataclass(frozen=True)
class FusionGANConfig:
    generator: tuple[int, ...] = (64, 32, 16, 8)  # the paper: (256, 128, 64, 32)
    kernels: tuple[int, ...] = (5, 5, 3, 3, 1)
    discriminator: tuple[int, ...] = (16, 32, 64, 128)  # the paper: (32, 64, 128, 256)


def signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], the range FusionGAN works in."""
    return 2 * x - 1


class Generator(nn.Module):
    """``forward(mr, func) -> N x 1 x H x W`` in [0, 1] (inputs in [0, 1])."""

    def __init__(self, cfg: FusionGANConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FusionGANConfig()
        chans = (2, *cfg.generator)
        self.pad = sum(k // 2 for k in cfg.kernels)
        self.body = nn.Sequential(
            *[ConvBlock(i, o, k, padding="valid", act=lrelu())
              for i, o, k in zip(chans, chans[1:], cfg.kernels)],
            nn.Conv2d(chans[-1], 1, cfg.kernels[-1]),
        )

    def forward(self, mr: torch.Tensor, func: torch.Tensor) -> torch.Tensor:
        x = signed(torch.cat([func, mr], dim=1))  # infrared first, as in the released code
        x = F.pad(x, (self.pad,) * 4, mode="replicate")
        return (torch.tanh(self.body(x)) + 1) / 2

NETWORK = Network(name="fusiongan", arch=FusionGANConfig(), build=Generator)


class FusionGANMethod(ShippedNetworkMethod):
    """FusionGAN's generator with the weights trained here (see the module docstring)."""

    name = "fusiongan"
    network = NETWORK

