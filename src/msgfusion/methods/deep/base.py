"""What the five deep baselines share: a torch network, its shipped weights, its training recipe.

A deep baseline is described once, by a :class:`Recipe` (how to build the network from a small
architecture config, how to train it, how to run it on a batch), and exposed to the registry by a
:class:`ShippedNetworkMethod` subclass that names the recipe. The method loads
``weights/<name>.pt`` from the package (no network access), runs the network in eval mode under
``torch.inference_mode`` on batches made by :func:`msgfusion.model.inputs.batch_from_pairs`, and
returns N x H x W intensities in [0, 1], like every method; ``fingerprint()`` includes the weights,
so cached benchmark results follow retraining (the same scheme as ``methods/msgfusion.py``).

Weight files hold ``{"arch": <architecture config as a dict>, "state_dict": <fp16 tensors>}``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from importlib import resources
from typing import IO, Any, ClassVar

import numpy as np
import torch
from torch import nn

from msgfusion.methods.device import on_device_thread, torch_device
from msgfusion.methods.registry import FusionMethod
from msgfusion.model.configs import from_dict
from msgfusion.model.inputs import Batch, batch_from_pairs
from msgfusion.pair import FusionPair
from msgfusion.train.losses import LossFn
from msgfusion.train.trainer import Forward, Trainer, TrainConfig, grey_pair_forward

WEIGHTS_PACKAGE = "msgfusion.methods.deep.weights"

Infer = Callable[[nn.Module, Batch], torch.Tensor]


@dataclass(frozen=True)
class Recipe:
    """How one deep baseline is built, trained and run.

    ``arch``: the default architecture config (a frozen dataclass; ``build(arch)`` makes the
    network); ``loss()`` makes the training loss ``(output, batch) -> (total, terms)``;
    ``train_forward(model, batch)`` is the output the loss sees; ``infer(model, batch)`` the fused
    intensity N x 1 x H x W at test time (both default to ``model(mr, func_gray)``); ``trainer``
    the :class:`Trainer` (sub)class.
    """

    name: str
    arch: Any
    build: Callable[[Any], nn.Module]
    loss: Callable[[], LossFn]
    train: TrainConfig
    train_forward: Forward = grey_pair_forward
    infer: Infer = grey_pair_forward
    trainer: type[Trainer] = Trainer


def save_weights(model: nn.Module, arch: Any, path: str | os.PathLike) -> None:
    """The state dict as fp16 (half the size; the fused results change by < 1e-3) with ``arch``."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"arch": asdict(arch), "state_dict": state}, path)


def load_weights(recipe: Recipe, source: str | os.PathLike | IO[bytes]) -> nn.Module:
    """The network of ``recipe`` in eval mode (fp32) from a file written by :func:`save_weights`."""
    blob = torch.load(source, map_location="cpu", weights_only=True)
    model = recipe.build(from_dict(type(recipe.arch), blob["arch"]))
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
    """A registered method backed by a :class:`Recipe` and its shipped weights.

    ``weights``: a file written by ``msgfusion train-baseline`` (default: the shipped one);
    ``device``: where the network runs ("cpu" by default, "cuda", "cuda:N").
    """

    recipe: ClassVar[Recipe]

    def __init__(self, weights: str | os.PathLike | None = None,
                 device: str | None = None) -> None:
        self.weights = weights
        self.device = device

    def fingerprint_data(self) -> bytes:
        """The weights: cached results follow retraining."""
        if self.weights:
            with open(self.weights, "rb") as fh:
                return fh.read()
        return shipped_weights(self.recipe.name)

    @cached_property
    def model(self) -> nn.Module:
        """The network in eval mode on its device, loaded on first use."""
        model = load_weights(self.recipe, io.BytesIO(self.fingerprint_data()))
        return model.to(torch_device(self.device))

    def fuse(self, pairs: Sequence[FusionPair]) -> np.ndarray:
        device = next(self.model.parameters()).device

        def run() -> np.ndarray:
            batch = {key: t.to(device) for key, t in batch_from_pairs(pairs).items()}
            with torch.inference_mode():
                out = self.recipe.infer(self.model, batch)
            return out[:, 0].clamp(0.0, 1.0).cpu().numpy()

        return on_device_thread(device, run)

