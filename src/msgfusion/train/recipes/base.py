"""A deep baseline's training recipe: its network (:class:`~msgfusion.methods.deep.base.Network`)
with the loss, settings and trainer that train it, and the weights file the methods load."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from msgfusion.methods.deep.base import Network
from msgfusion.model.inputs import Forward, grey_pair_forward
from msgfusion.train.losses import LossFn
from msgfusion.train.trainer import Trainer, TrainConfig


@dataclass(frozen=True)
class Recipe:
    """How one deep baseline is trained.

    ``loss()`` makes the training loss ``(output, batch) -> (total, terms)``;
    ``train_forward(model, batch)`` is the output the loss sees (default ``model(mr, func_gray)``);
    ``trainer`` the :class:`Trainer` (sub)class.
    """

    network: Network
    loss: Callable[[], LossFn]
    train: TrainConfig
    train_forward: Forward = grey_pair_forward
    trainer: type[Trainer] = Trainer

    @property
    def name(self) -> str:
        return self.network.name


def save_weights(model: nn.Module, arch: Any, path: str | os.PathLike) -> None:
    """The state dict as fp16 (half the size; the fused results change by < 1e-3) with ``arch``,
    as :func:`msgfusion.methods.deep.base.load_weights` reads it."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"arch": asdict(arch), "state_dict": state}, path)
