"""Tensors of a batch of :class:`FusionPair`: what MsgFusion and the deep baselines consume."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from msgfusion.pair import FusionPair, check_same_size

Batch = dict[str, torch.Tensor]
#: ``(network, batch) -> output``: how a network is run on a batch, in training or inference.
Forward = Callable[[nn.Module, Batch], torch.Tensor]


def grey_pair_forward(model: nn.Module, batch: Batch) -> torch.Tensor:
    """The usual two-input signature of fusion networks: ``model(mr, func_gray)``."""
    return model(batch["mr"], batch["func_gray"])


#: The tensors :func:`batch_from_pairs` makes by default.
BATCH_KEYS: tuple[str, ...] = ("mr", "func", "func_gray", "v_prime")


def batch_from_pairs(pairs: Sequence[FusionPair], keys: Iterable[str] = BATCH_KEYS,
                     channels_last: bool = False) -> Batch:
    """N x C x H x W float32 tensors of same-size pairs.

    Keys: ``mr`` (1 ch), ``func`` (3 ch RGB; grey CT replicated), ``func_gray`` (1 ch luminance),
    ``v_prime`` (1 ch, MsgFusion's V'); ``keys`` picks some of them (the others are not
    computed). With ``channels_last``, ``func`` is a channels-last view of the stacked H x W x 3
    images (no transposed copy; the layout fast convolutions on CPU want).
    """
    check_same_size(pairs)

    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32))

    def func() -> torch.Tensor:
        rgb = [p.func if p.is_color else np.repeat(p.func[..., None], 3, axis=-1) for p in pairs]
        if channels_last:
            return stack(rgb).permute(0, 3, 1, 2)
        return stack([f.transpose(2, 0, 1) for f in rgb])

    makers = {
        "mr": lambda: stack([p.mr[None] for p in pairs]),
        "func": func,
        "func_gray": lambda: stack([p.func_gray[None] for p in pairs]),
        "v_prime": lambda: stack([p.v_prime[None] for p in pairs]),
    }
    return {key: makers[key]() for key in keys}
