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
            self.cfg.sf.channels, self.cfg.out_channels, self.cfg.gain_max,
            gain=self.cfg.residual_gain if self.cfg.residual_max else 1.0,
        )

    def forward(self, mr: torch.Tensor, func: torch.Tensor, v_prime: torch.Tensor) -> torch.Tensor:
        h, w = mr.shape[-2:]
        return self._fuse(*self._pad(mr, func, v_prime))[..., :h, :w]

    def _pad(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        """The inputs reflect-padded (bottom, right) to a multiple of :attr:`cfg.multiple`."""
        h, w = inputs[0].shape[-2:]
        m = self.cfg.multiple
        pad = (0, -w % m, 0, -h % m)  # left, right, top, bottom
        if not any(pad):
            return list(inputs)
        mode = "reflect" if min(h, w) > max(pad) else "replicate"
        return [F.pad(t, pad, mode=mode) for t in inputs]

    def _fuse(self, mr: torch.Tensor, func: torch.Tensor, v_prime: torch.Tensor,
              sf2: torch.Tensor | None = None) -> torch.Tensor:
        gv2 = self.gv2(v_prime) if self.gv2 is not None else None
        out = self.fusion(self.sf(mr, sf2), self.gv1(func), gv2)
        out = out if out.shape[1] == 1 else out.mean(dim=1, keepdim=True)
        if self.cfg.residual_max:  # BT.601 luminance of the functional image
            luma = func[:, :1] * 0.299 + func[:, 1:2] * 0.587 + func[:, 2:3] * 0.114
            out = out + torch.maximum(mr, luma)
        return out

    def forward_tiled(self, mr: torch.Tensor, func: torch.Tensor, v_prime: torch.Tensor,
                      tile: int = 512, halo: int = 32) -> torch.Tensor:
        """:meth:`forward` computed in tiles of ``tile`` x ``tile`` pixels, for large images:
        memory grows with the tile, not with the image.

        The frequency path (SF2) is global (each output pixel depends on the whole spectrum), so
        it runs once on the whole image at its reduced resolution, and each tile takes its window
        of those features. Everything else is local: each tile is computed with ``halo`` pixels
        of context on every side (more than the receptive field of GV1, SF1 and GV2), and tiles,
        halos and windows start on multiples of the down-sampling factor, so that pooling and
        up-sampling see the same pixel grid as on the whole image. The result equals
        :meth:`forward` up to float rounding (tests/model/test_tiling.py).
        """
        h, w = mr.shape[-2:]
        mr, func, v_prime = self._pad(mr, func, v_prime)
        unit = self.sf.frequency
        step = max(self.cfg.multiple, 2 ** unit.scale if unit is not None else 1)
        if tile % step or halo % step:
            raise ValueError(f"tile ({tile}) and halo ({halo}) must be multiples of {step}")
        low = unit.low_res(mr) if unit is not None else None
        height, width = mr.shape[-2:]
        out = mr.new_empty((mr.shape[0], 1, height, width))
        for y0 in range(0, height, tile):
            for x0 in range(0, width, tile):
                y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
                ya, yb = max(y0 - halo, 0), min(y1 + halo, height)
                xa, xb = max(x0 - halo, 0), min(x1 + halo, width)
                window = (..., slice(ya, yb), slice(xa, xb))
                sf2 = None
                if unit is not None:
                    sf2 = self._frequency_window(unit, low, (ya, yb), (xa, xb), height, width)
                fused = self._fuse(mr[window], func[window], v_prime[window], sf2)
                out[..., y0:y1, x0:x1] = fused[..., y0 - ya : y1 - ya, x0 - xa : x1 - xa]
        return out[..., :h, :w]

    @staticmethod
    def _frequency_window(unit: nn.Module, low: torch.Tensor, rows: tuple[int, int],
                          cols: tuple[int, int], height: int, width: int) -> torch.Tensor:
        """SF2 at full resolution over the window ``rows`` x ``cols`` of the (padded) image: the
        low-resolution features around it (one pixel of margin, so that bilinear interpolation
        at the window's edges sees its true neighbours) up-sampled by exactly 2^scale."""
        s = 2**unit.scale
        lows = [(max(a // s - 1, 0), min(-(-b // s) + 1, n // s))
                for (a, b), n in ((rows, height), (cols, width))]
        (la, lb), (lc, ld) = lows
        up = unit.upsample(low[..., la:lb, lc:ld], ((lb - la) * s, (ld - lc) * s))
        return up[..., rows[0] - la * s : rows[1] - la * s, cols[0] - lc * s : cols[1] - lc * s]

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
