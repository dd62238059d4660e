"""MsgFusion's classification-based hierarchical fusion (Wen et al., IEEE TMM 2024, section III).

Features are grouped by medical meaning rather than by a learned classifier:

- level 1, anatomy: L1 = tanh(conv1x1(max(SF, GV1))), the element-wise maximum of the MR
  features and the functional grey features;
- level 2, function: out = max(L1, GV2), the brightness (uptake) features on top.

There is no separate decoder: ``out`` is the fused intensity.

Training detail (ours): where GV2 wins the level-2 maximum, the maximum passes no gradient to
L1, so a region where GV2 starts above L1 (V' saturates over CT bone and the hottest uptake, and
GV2 merges V' itself) stays GV2 for good: the fused bone came out a flat 0.8 grey (measured).
In training mode L1 therefore also receives the output's gradient there (a straight-through
estimator, Bengio et al., arXiv:1308.3432, 2013); the forward value is the plain maximum.

Also ours: L1 = gain tanh(...), with a learnable scalar gain initialised to 1 (the spec's L1 at
initialisation). With gain 1 an output near white needs a large pre-activation, which
compresses the contrast of bright edges (bone, hot uptake); the method clamps the output to
[0, 1], so a gain above 1 lets the top of the range be reached on the steep part of tanh.
``gain_max`` (> 0) bounds it: on PET the gain kept rising with training (1.2-1.5 after 60 epochs,
2.5 after 90) and every network with a gain above 1.7 had left the faithful fusion for an
over-contrasted one (Q_S and Qabf below pixel max). The bound alone did not keep PET faithful:
at 1.4, 75 epochs still ended over-contrasted (measured, runs q4-q6 in docs/msgfusion.md).
"""

from __future__ import annotations

import torch
from torch import nn


class HierarchicalFusion(nn.Module):
    """The two-level max fusion; ``gv2`` may be ``None`` (the ablation without V')."""

    def __init__(self, channels: int, out_channels: int, gain_max: float = 0.0,
                 gain: float = 1.0) -> None:
        super().__init__()
        self.project = nn.Conv2d(channels, out_channels, 1)
        self.gain = nn.Parameter(torch.full((1,), gain))
        self.gain_max = gain_max

    def forward(
        self, sf: torch.Tensor, gv1: torch.Tensor, gv2: torch.Tensor | None = None
    ) -> torch.Tensor:
        gain = self.gain.clamp(max=self.gain_max) if self.gain_max > 0 else self.gain
        level1 = gain * torch.tanh(self.project(torch.maximum(sf, gv1)))
        if gv2 is None:
            return level1
        out = torch.maximum(level1, gv2)
        if self.training:  # same value; L1 also gets the gradient where GV2 wins
            out = out + torch.where(gv2 > level1, level1 - level1.detach(), 0.0)
        return out
