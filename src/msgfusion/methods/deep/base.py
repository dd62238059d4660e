"""What the five deep baselines share: a torch network and its shipped weights.

A deep baseline's network is described once, by a :class:`Network` (how to build it from a small
architecture config, how to run it on a batch), and exposed to the registry by a
:class:`ShippedNetworkMethod` subclass that names it. The method loads ``weights/<name>.pt`` from
the package (no network access), runs the network in eval mode under ``torch.inference_mode`` on
batches made by :func:`msgfusion.model.inputs.batch_from_pairs`, and returns N x H x W
intensities in [0, 1], like every method; ``fingerprint()`` includes the weights, so cached
benchmark results follow retraining (the same scheme as ``methods/msgfusion.py``). How each
network is trained (loss, settings, trainer) is its recipe in :mod:`msgfusion.train.recipes`:
fusing imports no training code.

Weight files hold ``{"arch": <architecture config as a dict>, "state_dict": <fp16 tensors>}``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import IO, Any, ClassVar

import numpy as np
import torch
from torch import nn

from msgfusion.methods.device import on_device_thread, torch_device
from msgfusion.methods.registry import FusionMethod
from msgfusion.model.configs import from_dict
from msgfusion.model.inputs import Forward, batch_from_pairs, grey_pair_forward
from msgfusion.pair import FusionPair

WEIGHTS_PACKAGE = "msgfusion.methods.deep.weights"


@dataclass(frozen=True)
class Network:
    """One deep baseline's network: ``arch``, the default architecture config (a frozen
    dataclass; ``build(arch)`` makes the network), and ``infer(model, batch)``, the fused
    intensity N x 1 x H x W at test time (default ``model(mr, func_gray)``)."""

    name: str
    arch: Any
    build: Callable[[Any], nn.Module]
    infer: Forward = grey_pair_forward


def load_weights(network: Network, source: str | os.PathLike | IO[bytes]) -> nn.Module:
    """``network`` in eval mode (fp32) from a weights file (fp16 state dict and its arch)."""
    blob = torch.load(source, map_location="cpu", weights_only=True)
    model = network.build(from_dict(type(network.arch), blob["arch"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in blob["state_dict"].items()})
    return model.eval()


def shipped_weights(name: str) -> bytes:
    """The bytes of the weights shipped in the package for the baseline ``name``."""
    ref = resources.files(WEIGHTS_PACKAGE).joinpath(f"{name}.pt")
    if not ref.is_file():
        raise FileNotFoundError(f"no shipped weights {name}.pt in {WEIGHTS_PACKAGE}; train them "
                                f"with `msgfusion train-baseline {name} --ship`")
    return ref.read_bytes()


class ShippedNetworkMethod(FusionMethod):
    """A registered method backed by a :class:`Network` and its shipped weights.

    ``weights``: a file written by ``msgfusion train-baseline`` (default: the shipped one);
    ``device``: where the network runs ("cpu" by default, "cuda", "cuda:N").
    """

    network: ClassVar[Network]

    def __init__(self, weights: str | os.PathLike | None = None,
                 device: str | None = None) -> None:
        self.weights = weights
        self.device = device

    def fingerprint_data(self) -> bytes:
        """The weights: cached results follow retraining."""
        if self.weights:
            with open(self.weights, "rb") as fh:
                return fh.read()
        return shipped_weights(self.network.name)

    @cached_property
    def model(self) -> nn.Module:
        """The network in eval mode on its device, loaded on first use."""
        model = load_weights(self.network, io.BytesIO(self.fingerprint_data()))
        return model.to(torch_device(self.device))

    def fuse(self, pairs: Sequence[FusionPair]) -> np.ndarray:
        device = next(self.model.parameters()).device

        def run() -> np.ndarray:
            batch = {key: t.to(device) for key, t in batch_from_pairs(pairs).items()}
            with torch.inference_mode():
                out = self.network.infer(self.model, batch)
            return out[:, 0].clamp(0.0, 1.0).cpu().numpy()

        return on_device_thread(device, run)

