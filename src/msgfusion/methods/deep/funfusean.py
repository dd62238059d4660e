"""FunFuseAn: Kumar, Hoffmann, Oelschlaegel, Koch, Kirsch, Gumhold, "Structural similarity based
anatomical and functional brain imaging fusion", MICCAI workshop MBIA 2019, LNCS 11846:121-129
(arXiv:1908.03958).

Architecture (as in the paper and its released code): two branches per source, all convs with
BatchNorm and LeakyReLU(0.2), zero 'same' padding. Low frequency: one conv with a large kernel
(MR 9 x 9, functional 7 x 7; 16 channels). High frequency: three convs (MR 3 x 3, 3 x 3, 3 x 3;
functional 5 x 5, 5 x 5, 3 x 3; 16, 32, 64 channels). The high-frequency features of the two
sources are fused (added), reconstructed by two 5 x 5 convs (64 -> 32 -> 16), averaged with the two
low-frequency feature maps, and a last 5 x 5 conv with tanh gives the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from msgfusion.methods.deep.base import Network, ShippedNetworkMethod
from msgfusion.methods.deep.layers import ConvBlock, lrelu


@dataclass(frozen=True)
class FunFuseAnConfig:
    mr_kernels: tuple[int, ...] = (9, 3, 3, 3)  # low-frequency kernel, then high-frequency kernels
    func_kernels: tuple[int, ...] = (7, 5, 5, 3)
    widths: tuple[int, ...] = (16, 32, 64)


def _block(in_ch: int, out_ch: int, kernel: int) -> ConvBlock:
    return ConvBlock(in_ch, out_ch, kernel, act=lrelu())


class SourceBranches(nn.Module):
    """The low-frequency (one large-kernel conv) and high-frequency (three convs) branches."""

    def __init__(self, kernels: tuple[int, ...], widths: tuple[int, ...]) -> None:
        super().__init__()
        self.low = _block(1, widths[0], kernels[0])
        chans = (1, *widths)
        self.high = nn.Sequential(
            *[_block(i, o, k) for i, o, k in zip(chans, chans[1:], kernels[1:])]
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.low(x), self.high(x)


class FunFuseAn(nn.Module):
    """``forward(mr, func) -> N x 1 x H x W`` (tanh output, clipped to [0, 1] by the method)."""

    def __init__(self, cfg: FunFuseAnConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FunFuseAnConfig()
        w = cfg.widths
        self.mr = SourceBranches(cfg.mr_kernels, w)
        self.func = SourceBranches(cfg.func_kernels, w)
        self.recon_high = nn.Sequential(_block(w[2], w[1], 5), _block(w[1], w[0], 5))
        self.recon = nn.Conv2d(w[0], 1, 5, padding=2)

    def forward(self, mr: torch.Tensor, func: torch.Tensor) -> torch.Tensor:
        mr_low, mr_high = self.mr(mr)
        func_low, func_high = self.func(func)
        high = self.recon_high(mr_high + func_high)
        return torch.tanh(self.recon((mr_low + func_low + high) / 3))

NETWORK = Network(name="funfusean", arch=FunFuseAnConfig(), build=FunFuseAn)


class FunFuseAnMethod(ShippedNetworkMethod):
    """FunFuseAn with the weights trained here (see the module docstring)."""

    name = "funfusean"
    network = NETWORK
