"""MsgFusion's classification-based hierarchical fusion (Wen et al., IEEE TMM 2024, section III).

Features are grouped by medical meaning rather than by a learned classifier:

- level 1, anatomy: L1 = tanh(conv1x1(max(SF, GV1))), the element-wise maximum of the MR
  features and the functional grey features;
- level 2, function: out = max(L1, GV2), the brightness (uptake) features on top.

There is no separate decoder: ``out`` is the fused intensity.
"""

from __future__ import annotations

import torch
from torch import nn


class HierarchicalFusion(nn.Module):
    """The two-level max fusion; ``gv2`` may be ``None`` (the ablation without V')."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(channels, out_channels, 1)

    def forward(
        self, sf: torch.Tensor, gv1: torch.Tensor, gv2: torch.Tensor | None = None
    ) -> torch.Tensor:
        level1 = torch.tanh(self.project(torch.maximum(sf, gv1)))
        if gv2 is None:
            return level1
        return torch.maximum(level1, gv2)
