"""The MsgFusion network: SF branch (MR) + GV branch (functional) + two-level fusion.

Wen et al., "MsgFusion: Medical Semantic Guided Two-Branch Network for Multimodal Brain Image
Fusion", IEEE TMM 26:944-957, 2024; as specified in MSGFUSION.md section 3. Any input size works:
inputs are reflect-padded to a multiple of the encoder's down-sampling factor and the output is
cropped back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict
from importlib import resources
from typing import Any, BinaryIO

import torch
import torch.nn.functional as F
from torch import nn

from msgfusion.model.configs import MsgFusionConfig, from_dict, lite
from msgfusion.model.fusion import HierarchicalFusion
from msgfusion.model.gv_branch import BrightnessBranch, MultiScaleEncoder
from msgfusion.model.inputs import Batch
from msgfusion.model.sf_branch import SFBranch

WEIGHTS_PACKAGE = "msgfusion.model.weights"


class MsgFusionNet(nn.Module):
    """MsgFusion: ``forward(mr, func, v_prime) -> N x 1 x H x W`` fused intensity (unclipped).

    ``mr``: N x 1 x H x W; ``func``: N x 3 x H x W (RGB, grey replicated); ``v_prime``:
    N x 1 x H x W. With ``out_channels > 1`` (the paper layout) the intensity is the channel mean.
    """

    def __init__(self, cfg: MsgFusionConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or lite()
        self.sf = SFBranch(self.cfg.sf)
        self.gv1 = MultiScaleEncoder(self.cfg.gv)
        self.gv2 = BrightnessBranch(self.cfg.gv) if self.cfg.use_v_prime else None
        self.fusion = HierarchicalFusion(
            self.cfg.sf.channels, self.cfg.out_channels, self.cfg.gain_max
        )

    def forward(self, mr: torch.Tensor, func: torch.Tensor, v_prime: torch.Tensor) -> torch.Tensor:
        h, w = mr.shape[-2:]
        m = self.cfg.multiple
        pad = (0, -w % m, 0, -h % m)  # left, right, top, bottom
        if any(pad):
            mode = "reflect" if min(h, w) > max(pad) else "replicate"
            mr, func, v_prime = (F.pad(t, pad, mode=mode) for t in (mr, func, v_prime))
        gv2 = self.gv2(v_prime) if self.gv2 is not None else None
        out = self.fusion(self.sf(mr), self.gv1(func), gv2)
        return out.mean(dim=1, keepdim=True)[..., :h, :w]

    def forward_batch(self, batch: Batch) -> torch.Tensor:
        """The forward pass on a batch dict of :func:`msgfusion.model.inputs.batch_from_pairs`."""
        return self(batch["mr"], batch["func"], batch["v_prime"])

    def net(self, modality: str) -> MsgFusionNet:
        """The network for pairs of ``modality``: this one, for every modality."""
        return self


class PerModality(nn.Module):
    """One :class:`MsgFusionNet` per functional modality (CT, PET, SPECT), same configuration.

    The MR-CT and MR-PET/SPECT pairs ask for different things of the level-2 brightness path:
    CT bone should come out at the top of the range, while over the hottest PET/SPECT uptake the
    MR detail should stay visible. One network trained on all three let the CT bone go dark
    (VIFF 0.10-0.17 on CT-MRI against 0.40-0.43 for a CT-only network; measured in
    docs/msgfusion.md), so the shipped model keeps one small network per modality.
    """

    def __init__(self, nets: Mapping[str, MsgFusionNet]) -> None:
        super().__init__()
        if not nets:
            raise ValueError("PerModality needs at least one network")
        self.nets = nn.ModuleDict(dict(nets))

    def net(self, modality: str) -> MsgFusionNet:
        """The network trained for ``modality``."""
        if modality not in self.nets:
            raise ValueError(f"no network for {modality} pairs (this model has: "
                             f"{', '.join(self.nets)})")
        return self.nets[modality]  # type: ignore[return-value]


FusionModel = MsgFusionNet | PerModality


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (the paper layout has about 2.6 M)."""
    return sum(p.numel() for p in model.parameters())


def _net_blob(model: MsgFusionNet, half: bool) -> dict[str, Any]:
    state = {k: (v.half() if half and v.is_floating_point() else v)
             for k, v in model.state_dict().items()}
    return {"config": asdict(model.cfg), "state_dict": state}


def _net_from_blob(blob: dict[str, Any]) -> MsgFusionNet:
    model = MsgFusionNet(from_dict(MsgFusionConfig, blob["config"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in blob["state_dict"].items()})
    return model.eval()


def save_weights(model: FusionModel, path: str | os.PathLike, half: bool = True) -> None:
    """Save the state dict(s) (fp16 by default: tens of kB for ``lite``) with the config(s).

    One network: ``{"config", "state_dict"}``; :class:`PerModality`:
    ``{"modalities": {modality: {"config", "state_dict"}}}``.
    """
    if isinstance(model, PerModality):
        blob = {"modalities": {m: _net_blob(net, half) for m, net in model.nets.items()}}
    else:
        blob = _net_blob(model, half)
    torch.save(blob, path)


def load_weights(path_or_file: str | os.PathLike | BinaryIO) -> FusionModel:
    """A model in eval mode from a file written by :func:`save_weights` (path or open file)."""
    blob = torch.load(path_or_file, map_location="cpu", weights_only=True)
    if "modalities" in blob:
        return PerModality({m: _net_from_blob(b) for m, b in blob["modalities"].items()}).eval()
    return _net_from_blob(blob)


def load_pretrained(name: str = "msgfusion_lite") -> FusionModel:
    """The trained weights shipped with the package (no network access), in eval mode."""
    ref = resources.files(WEIGHTS_PACKAGE).joinpath(f"{name}.pt")
    if not ref.is_file():
        raise FileNotFoundError(f"no shipped weights named {name!r} in {WEIGHTS_PACKAGE}")
    with ref.open("rb") as fh:
        return load_weights(fh)
