"""The MsgFusion network (Wen et al., IEEE TMM 26:944-957, 2024): branches, fusion, configs."""

from msgfusion.model.configs import MsgFusionConfig, lite, paper
from msgfusion.model.msgfusion import MsgFusionNet, PerModality, load_pretrained

__all__ = ["MsgFusionConfig", "MsgFusionNet", "PerModality", "lite", "load_pretrained", "paper"]
