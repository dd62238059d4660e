"""Small building blocks the deep baselines are made of."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Laplacian-type high-pass filters used as "gradient" operators by FusionGAN (4-neighbour) and
# FusionDN (8-neighbour, centre -1, neighbours 1/8).
LAPLACIAN_4 = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
LAPLACIAN_8 = ((0.125, 0.125, 0.125), (0.125, -1.0, 0.125), (0.125, 0.125, 0.125))


class ConvBlock(nn.Sequential):
    """conv k x k -> [BatchNorm] -> [activation], the layer every baseline is built of.

    ``padding``: ``"zeros"``, ``"reflect"`` or ``"replicate"`` keep the size (k // 2 on each
    side); ``"valid"`` pads nothing (FusionGAN pads its input once instead).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, padding: str = "zeros",
                 norm: bool = True, act: nn.Module | None = None, bias: bool = True) -> None:
        same = padding != "valid"
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2 if same else 0,
                      padding_mode=padding if same else "zeros", bias=bias)
        ]
        if norm:
            layers.append(nn.BatchNorm2d(out_ch))
        if act is not None:
            layers.append(act)
        super().__init__(*layers)


def lrelu() -> nn.LeakyReLU:
    """LeakyReLU(0.2): FusionGAN's and FunFuseAn's activation."""
    return nn.LeakyReLU(0.2, inplace=True)


def filter2d(x: torch.Tensor, kernel: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    """Same-size 2-D filtering of N x 1 x H x W with replicate padding."""
    k = torch.tensor(kernel, dtype=x.dtype, device=x.device)[None, None]
    r = k.shape[-1] // 2
    return F.conv2d(F.pad(x, (r, r, r, r), mode="replicate"), k)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom/right of N x C x H x W to a multiple of ``multiple`` (reflect if possible)."""
    h, w = x.shape[-2:]
    pad = (0, -w % multiple, 0, -h % multiple)
    if not any(pad):
        return x
    return F.pad(x, pad, mode="reflect" if min(h, w) > max(pad) else "replicate")
