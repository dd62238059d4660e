"""Which torch device a network method runs on (``--device``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from msgfusion.errors import MsgFusionError

if TYPE_CHECKING:
    import torch


def torch_device(spec: str | None) -> torch.device:
    """The device named by ``spec`` ("cpu", "cuda", "cuda:1", "mps"; ``None``: the CPU),
    checked to be present here; :class:`MsgFusionError` otherwise."""
    import torch

    try:
        device = torch.device(spec or "cpu")
    except RuntimeError:
        raise MsgFusionError(f"unknown device {spec!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise MsgFusionError(f"device {spec!r}: no CUDA GPU is available here "
                                 f"(torch {torch.__version__})")
        if device.index is not None and device.index >= count:
            raise MsgFusionError(f"device {spec!r}: only {count} CUDA GPU(s) here")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise MsgFusionError(f"device {spec!r}: no Apple GPU (MPS) is available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise MsgFusionError(f"device {spec!r}: not supported; use cpu, cuda, cuda:N or mps")
    return device
