"""Pins of the model code outside the shipped networks: the paper layout, a gain bound below 1."""

from __future__ import annotations

import torch

from msgfusion.model.configs import paper
from msgfusion.model.fusion import HierarchicalFusion
from msgfusion.model.msgfusion import MsgFusionNet, count_parameters


def test_paper_layout_parameter_count_is_pinned():
    """The paper layout (MSGFUSION.md section 3, "about 2.6 M"): its exact count, so that a
    changed default width or kernel is seen."""
    assert count_parameters(MsgFusionNet(paper())) == 2_627_175


def test_gain_bound_below_one_is_applied():
    sf, gv1 = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    free, bounded = HierarchicalFusion(4, 1), HierarchicalFusion(4, 1, gain_max=0.5)
    bounded.load_state_dict(free.state_dict())
    with torch.no_grad():
        free.gain.fill_(0.5)
    assert torch.equal(free(sf, gv1), bounded(sf, gv1))
