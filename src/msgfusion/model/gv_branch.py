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
from msgfusion.model.layers import (
    ConvNormAct,
    conv2d_one_channel,
    max_pool2,
    soft_weighted_merge,
    upsample,
)


def conv_stack(in_ch: int, out_ch: int, n: int) -> nn.Sequential:
    """``n`` 3x3 ConvNormAct layers, the first changing the width."""
    return nn.Sequential(*[ConvNormAct(in_ch if i == 0 else out_ch, out_ch) for i in range(n)])


class MultiScaleEncoder(nn.Module):
    """GV1: stem at full resolution, max-pooled encoder, up-sampling decoder with skips.

    Scale s works at 1/2^s resolution with ``widths[s]`` channels. The decoder goes back up one
    scale at a time, concatenating the encoder features of that scale (skip). At full resolution
    the stem features, the decoded features and the input itself are concatenated (dense
    connection) and mapped by a 1x1 conv to ``out_channels``, then tanh.

    The tanh output is multiplied by a learnable per-channel gain (ours, initialised to
    ``cfg.out_gain``): level 1 takes max(SF, GV1), and the SF features (BatchNorm, LeakyReLU)
    range up to about 3-4 while tanh stops at 1, so without it GV1 rarely wins the maximum and
    the fused CT bone stays a dim grey (measured).
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
        self.gain = nn.Parameter(torch.full((cfg.out_channels, 1, 1), cfg.out_gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.stem(x)
        skips = [stem]
        h = stem
        for block in self.down:
            h = block(max_pool2(h))
            skips.append(h)
        for s in range(len(self.up), 0, -1):  # scales coarsest-1 .. 1
            h = upsample(h, skips[s].shape[-2:])
            h = self.up[s - 1](torch.cat([h, skips[s]], dim=1))
        # head(cat(x, stem, up(h))) computed part by part, without the full-resolution concat;
        # the 1x1 convolution commutes with the bilinear up-sampling, so h's part runs at the
        # coarser scale (same value, a quarter of the pixels).
        parts = self.head.weight.split([x.shape[1], stem.shape[1], self.head.in_channels
                                        - x.shape[1] - stem.shape[1]], dim=1)
        # (contiguous weights and no bias: the fast path of a 1x1 convolution on this CPU)
        # (sums in place: no new full-resolution tensor, and autograd needs no summand)
        out = F.conv2d(x, parts[0].contiguous())
        out += F.conv2d(stem, parts[1].contiguous())
        bias = self.head.bias.view(1, -1, 1, 1)
        if self.down:  # the bias added at the coarser scale (bilinear weights sum to 1)
            out += upsample(F.conv2d(h, parts[2].contiguous()) + bias, x.shape[-2:])
        else:
            out += bias
        return self.gain * torch.tanh(out)


class BrightnessBranch(nn.Module):
    """GV2: g = tanh(conv1x1(conv7x7(V'))), GV2 = soft-weighted merge of V' and g.

    Initialised as a soft threshold of V', g = tanh(gain (V' - 1/2)): the conv7x7 as the
    identity (centre tap 1) and the conv1x1 as ``gain`` I with bias -gain/2. So GV2 starts near 1
    where V' = 1 (bone, hottest uptake) and below 0 where V' = 0, where the level-2 maximum then
    leaves L1 alone. A default (random) start puts GV2 at about 0.8 wherever V' saturates;
    since max(L1, GV2) passes no gradient to L1 there, L1 never learns to cover those regions
    and the fused bone stays a flat 0.8 grey (measured).

    V' enters the merge through a learnable weight (ours, ``v_gain``, initialised to
    ``cfg.v_weight``, by default 1, so that the initial network is the spec's): with V' at full
    weight, GV2 >= 0.76 wherever V' = 1 (the merge weight of V' is then at least
    e / (e + 1/e)), which puts a flat floor under the output over bone and the hottest uptake
    and hides the MR detail there (measured: Qabf 0.59-0.63 on PET/SPECT with V', 0.71-0.73
    without GV2). Training can lower the weight; a lower start trades the functional image's
    contrast for the MR edges inside it.
    """

    def __init__(self, cfg: GVConfig, gain: float = 6.0) -> None:
        super().__init__()
        k, c = cfg.brightness_kernel, cfg.brightness_channels
        self.conv = nn.Conv2d(1, c, k, padding=k // 2)
        self.point = nn.Conv2d(c, c, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, :, k // 2, k // 2] = 1.0
            self.conv.bias.zero_()
            self.point.weight.copy_(gain * torch.eye(c).view(c, c, 1, 1))
            self.point.bias.fill_(-gain / 2)
        self.v_gain = nn.Parameter(torch.full((1,), float(cfg.v_weight)))

    def fold(self) -> None:
        """For inference: the 1x1 convolution merged into the k x k one (both linear)."""
        if isinstance(self.point, nn.Identity):
            return
        mix = self.point.weight[:, :, 0, 0]  # c x c
        merged = nn.Conv2d(1, self.conv.out_channels, self.conv.kernel_size,
                           padding=self.conv.padding).eval()
        with torch.no_grad():
            merged.weight.copy_(torch.einsum("oc,cikl->oikl", mix, self.conv.weight))
            merged.bias.copy_(mix @ self.conv.bias + self.point.bias)
        self.conv, self.point = merged, nn.Identity()

    def forward(self, v_prime: torch.Tensor) -> torch.Tensor:
        g = torch.tanh(self.point(conv2d_one_channel(v_prime, self.conv)))
        return soft_weighted_merge(self.v_gain * v_prime, g)
