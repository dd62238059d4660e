"""Tensors of a batch of :class:`FusionPair`: what MsgFusion and the deep baselines consume."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from msgfusion.pair import FusionPair, check_same_size

Batch = dict[str, torch.Tensor]


def batch_from_pairs(pairs: Sequence[FusionPair]) -> Batch:
    """N x C x H x W float32 tensors of same-size pairs.

    Keys: ``mr`` (1 ch), ``func`` (3 ch RGB; grey CT replicated), ``func_gray`` (1 ch luminance),
    ``v_prime`` (1 ch, MsgFusion's V').
    """
    check_same_size(pairs)

    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32))

    func = [p.func if p.is_color else np.repeat(p.func[..., None], 3, axis=-1) for p in pairs]
    return {
        "mr": stack([p.mr[None] for p in pairs]),
        "func": stack([f.transpose(2, 0, 1) for f in func]),
        "func_gray": stack([p.func_gray[None] for p in pairs]),
        "v_prime": stack([p.v_prime[None] for p in pairs]),
    }
