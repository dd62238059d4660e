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

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msgfusion.methods.deep.base import Recipe, ShippedNetworkMethod
from msgfusion.methods.deep.layers import ConvBlock, pad_to_multiple
from msgfusion.methods.registry import register
from msgfusion.model.inputs import Batch
from msgfusion.train.losses import ssim
from msgfusion.train.trainer import TrainConfig

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


def infer(model: nn.Module, batch: Batch) -> torch.Tensor:
    return model.fuse(batch["mr"], batch["func_gray"])  # type: ignore[operator]


RECIPE = Recipe(
    name="nestfuse",
    arch=NestFuseConfig(),
    build=NestFuse,
    loss=NestFuseLoss,
    train=TrainConfig(epochs=5, batch_size=4, lr=1e-3, crop=96, num_threads=1,
                      max_steps_per_epoch=100),
    train_forward=train_forward,
    infer=infer,
)


@register
class NestFuseMethod(ShippedNetworkMethod):
    """NestFuse with the auto-encoder trained here (see the module docstring)."""

    name = "nestfuse"
    description = "NestFuse: nest-connection auto-encoder, spatial/channel attention fusion"
    reference = ("H. Li, X.-J. Wu, T. Durrani, \"NestFuse: An infrared and visible image fusion "
                 "architecture based on nest connection and spatial/channel attention models\", "
                 "IEEE Trans. Instrumentation and Measurement 69(12):9645-9656, 2020")
    #: measured: 8 x 8 fails in a reflect padding of the encoder, 9 x 9 works
    min_size = 9
    recipe = RECIPE
