"""The GV branch of MsgFusion: multi-scale grey features (GV1) and brightness features (GV2).

Wen et al., IEEE TMM 26:944-957, 2024 (MSGFUSION.md section 3). GV1 is an encoder over several
resolutions with pooling, up-sampling and dense skip concatenations, ending in tanh; its first
layer (ResNet-101 conv1, frozen, in the released script) is trained here. GV2 turns the adapted
HSV brightness V' into g = tanh(conv1x1(conv7x7(V'))) and merges V' and g with the soft rule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from msgfusion.model.configs import GVConfig
from msgfusion.model.layers import ConvNormAct, soft_weighted_merge


def conv_stack(in_ch: int, out_ch: int, n: int) -> nn.Sequential:
    """``n`` 3x3 ConvNormAct layers, the first changing the width."""
    return nn.Sequential(*[ConvNormAct(in_ch if i == 0 else out_ch, out_ch) for i in range(n)])


class MultiScaleEncoder(nn.Module):
    """GV1: stem at full resolution, max-pooled encoder, up-sampling decoder with skips.

    Scale s works at 1/2^s resolution with ``widths[s]`` channels. The decoder goes back up one
    scale at a time, concatenating the encoder features of that scale (skip). At full resolution
    the stem features, the decoded features and the input itself are concatenated (dense
    connection) and mapped by a 1x1 conv to ``out_channels``, then tanh.
    """

    def __init__(self, cfg: GVConfig) -> None:
        super().__init__()
        w = cfg.widths
        self.stem = ConvNormAct(cfg.in_channels, w[0], cfg.stem_kernel)
        self.down = nn.ModuleList(
            conv_stack(w[s - 1], w[s], cfg.convs_per_scale) for s in range(1, len(w))
        )
        # decoder at scale s (from coarsest-1 down to 1) takes up(w[s+1]) + skip w[s]
        self.up = nn.ModuleList(
            conv_stack(w[s + 1] + w[s], w[s], cfg.convs_per_scale) for s in range(1, len(w) - 1)
        )
        top = w[1] if len(w) > 1 else 0
        self.head = nn.Conv2d(w[0] + top + cfg.in_channels, cfg.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.stem(x)
        skips = [stem]
        h = stem
        for block in self.down:
            h = block(F.max_pool2d(h, 2))
            skips.append(h)
        for s in range(len(self.up), 0, -1):  # scales coarsest-1 .. 1
            h = F.interpolate(h, size=skips[s].shape[-2:], mode="bilinear", align_corners=False)
            h = self.up[s - 1](torch.cat([h, skips[s]], dim=1))
        parts = [x, stem]
        if self.down:
            parts.append(F.interpolate(h, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return torch.tanh(self.head(torch.cat(parts, dim=1)))


class BrightnessBranch(nn.Module):
    """GV2: g = tanh(conv1x1(conv7x7(V'))), GV2 = soft-weighted merge of V' and g."""

    def __init__(self, cfg: GVConfig) -> None:
        super().__init__()
        k, c = cfg.brightness_kernel, cfg.brightness_channels
        self.conv = nn.Conv2d(1, c, k, padding=k // 2)
        self.point = nn.Conv2d(c, c, 1)

    def forward(self, v_prime: torch.Tensor) -> torch.Tensor:
        g = torch.tanh(self.point(self.conv(v_prime)))
        return soft_weighted_merge(v_prime, g)
