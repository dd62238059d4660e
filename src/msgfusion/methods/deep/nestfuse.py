"""NestFuse: Li, Wu, Durrani, "NestFuse: An infrared and visible image fusion architecture based on
nest connection and spatial/channel attention models", IEEE Transactions on Instrumentation and
Measurement 69(12):9645-9656, 2020.

Architecture: an auto-encoder. Encoder: conv 1 x 1 (16 channels), then four light dense blocks
(conv 3 x 3 to half the input width, conv 1 x 1 to the block width; ReLU; reflect padding) with
2 x 2 max pooling between them, giving features at four scales. Decoder: nest connections
(UNet++-style): each decoder block takes the same-scale features and the up-sampled (nearest)
features of the scale below, concatenated; the top row ends in a 1 x 1 conv to the image.
At test time the two sources are encoded separately and fused at every scale by the two attention
models, averaged: spatial attention (per-pixel softmax of the l1-norms of the feature vectors) and
channel attention (per-channel weights from global average pooling, normalised to sum to one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msgfusion.methods.deep.base import Network, ShippedNetworkMethod
from msgfusion.methods.deep.layers import ConvBlock, pad_to_multiple
from msgfusion.model.inputs import Batch

EPS = 1e-5


@dataclass(frozen=True)
class NestFuseConfig:
    stem: int = 16
    widths: tuple[int, ...] = (16, 28, 40, 52)  # the paper: (64, 112, 160, 208)

    def __post_init__(self) -> None:
        if len(self.widths) != 4:
            raise ValueError("NestFuse has four scales: widths must have four entries")


class LightDenseBlock(nn.Sequential):
    """conv 3 x 3 (to half the input width) -> conv 1 x 1 (to ``out_ch``), ReLU, reflect padding."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        mid = max(in_ch // 2, 1)
        super().__init__(
            ConvBlock(in_ch, mid, 3, padding="reflect", norm=False, act=nn.ReLU(inplace=True)),
            ConvBlock(mid, out_ch, 1, norm=False, act=nn.ReLU(inplace=True)),
        )


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


def attention_fuse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """NestFuse's fusion of two feature maps: mean of spatial- and channel-attention fusion."""
    spatial = torch.softmax(torch.stack([a.abs().sum(1, keepdim=True),
                                         b.abs().sum(1, keepdim=True)]), dim=0)
    pa, pb = a.mean(dim=(2, 3), keepdim=True), b.mean(dim=(2, 3), keepdim=True)
    ca, cb = pa / (pa + pb + EPS), pb / (pa + pb + EPS)
    return ((spatial[0] * a + spatial[1] * b) + (ca * a + cb * b)) / 2


class NestFuse(nn.Module):
    """The nest-connection auto-encoder; ``fuse(a, b)`` is the test-time fusion."""

    multiple = 8  # three 2 x 2 poolings

    def __init__(self, cfg: NestFuseConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or NestFuseConfig()
        w = cfg.widths
        self.stem = ConvBlock(1, cfg.stem, 1, norm=False, act=nn.ReLU(inplace=True))
        self.enc = nn.ModuleList(
            [LightDenseBlock(cfg.stem if i == 0 else w[i - 1], w[i]) for i in range(4)]
        )
        # decoder block (row i, column j) takes x[i][0..j-1] and up(x[i+1][j-1])
        self.dec = nn.ModuleDict({
            f"{i}_{j}": LightDenseBlock(w[i] * j + w[i + 1], w[i])
            for j in range(1, 4) for i in range(4 - j)
        })
        self.out = nn.Conv2d(w[0], 1, 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.enc[0](self.stem(x))]
        for block in self.enc[1:]:
            feats.append(block(F.max_pool2d(feats[-1], 2)))
        return feats

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        grid = [[f] for f in feats]
        for j in range(1, 4):
            for i in range(4 - j):
                inputs = grid[i] + [_up(grid[i + 1][j - 1], grid[i][0])]
                grid[i].append(self.dec[f"{i}_{j}"](torch.cat(inputs, dim=1)))
        return self.out(grid[0][3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Auto-encoder reconstruction (training)."""
        h, w = x.shape[-2:]
        return self.decode(self.encode(pad_to_multiple(x, self.multiple)))[..., :h, :w]

    def fuse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Encode both sources, fuse every scale with the attention models, decode."""
        h, w = a.shape[-2:]
        feats = self.encode(pad_to_multiple(torch.cat([a, b]), self.multiple))
        fused = [attention_fuse(*f.chunk(2)) for f in feats]
        return self.decode(fused)[..., :h, :w]


def infer(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Test time: both sources encoded and fused by the attention models."""
    return model.fuse(batch["mr"], batch["func_gray"])  # type: ignore[operator]

NETWORK = Network(name="nestfuse", arch=NestFuseConfig(), build=NestFuse, infer=infer)


class NestFuseMethod(ShippedNetworkMethod):
    """NestFuse with the auto-encoder trained here (see the module docstring)."""

    name = "nestfuse"
    #: measured: 8 x 8 fails in a reflect padding of the encoder, 9 x 9 works
    min_size = 9
    network = NETWORK
