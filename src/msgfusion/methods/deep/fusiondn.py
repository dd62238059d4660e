"""FusionDN: Xu, Ma, Le, Jiang, Guo, "FusionDN: A unified densely connected network for image
fusion", AAAI 2020 (34(07):12484-12491).

Architecture (as in the paper and its released code): the two sources, concatenated, go through a
densely connected encoder: conv 3 x 3 (BN, ReLU), then four blocks of two 3 x 3 convs (BN, ReLU),
each block's output concatenated to its input (dense connections); a four-layer 3 x 3 decoder
(ReLU, BN from the second layer) ends in tanh / 2 + 0.5. Reflect padding throughout. Widths
divided by four (encoder 48 -> 12 per layer, decoder 240, 128, 64 -> 60, 32, 16). The loss, the
training data and the other deviations: :mod:`msgfusion.train.recipes.fusiondn`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msgfusion.methods.deep.base import Network, ShippedNetworkMethod
from msgfusion.methods.deep.layers import ConvBlock


@dataclass(frozen=True)
class FusionDNConfig:
    growth: int = 12  # the paper: 48
    blocks: int = 4
    decoder: tuple[int, ...] = (60, 32, 16)  # the paper: (240, 128, 64)


def _conv(in_ch: int, out_ch: int, norm: bool = True) -> ConvBlock:
    return ConvBlock(in_ch, out_ch, 3, padding="reflect", norm=norm, act=nn.ReLU(inplace=True))


class DenseBlock(nn.Module):
    """Two 3 x 3 convs (BN, ReLU) whose output is concatenated to the input."""

    def __init__(self, in_ch: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(in_ch, growth), _conv(growth, growth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


class FusionDN(nn.Module):
    """``forward(a, b) -> N x 1 x H x W`` in [0, 1]."""

    def __init__(self, cfg: FusionDNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FusionDNConfig()
        g = cfg.growth
        self.encoder = nn.Sequential(
            _conv(2, g), *[DenseBlock(g * (i + 1), g) for i in range(cfg.blocks)]
        )
        widths = [g * (cfg.blocks + 1), *cfg.decoder]
        self.decoder = nn.Sequential(
            *[_conv(i, o, norm=k > 0) for k, (i, o) in enumerate(zip(widths, widths[1:]))],
            nn.Conv2d(widths[-1], 1, 3, padding=1, padding_mode="reflect"),
        )

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decoder(self.encoder(torch.cat([a, b], dim=1)))) / 2 + 0.5

NETWORK = Network(name="fusiondn", arch=FusionDNConfig(), build=FusionDN)


class FusionDNMethod(ShippedNetworkMethod):
    """FusionDN with the weights trained here (see the module docstring)."""

    name = "fusiondn"
    #: reflect padding by 1 needs at least 2 pixels per side
    min_size = 2
    network = NETWORK
