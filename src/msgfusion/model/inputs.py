"""Tensors of a batch of :class:`FusionPair`: what MsgFusion and the deep baselines consume."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from msgfusion.errors import ShapeMismatchError
from msgfusion.pair import FusionPair

Batch = dict[str, torch.Tensor]
# BT.601 luma weights: the metrics read PET/SPECT through Y (METRICS.md, conventions).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def luma_gain(func: np.ndarray) -> np.ndarray:
    """Y / V of the functional colour at each pixel (1 for grey, and where V = 0).

    The fused intensity O becomes the HSV value of the output colour (MSGFUSION.md section 5),
    so the luminance the metrics see is O * Y/V: a pure blue pixel keeps only 11 % of O. Loss
    terms can be computed on this "evaluated" luminance (``LossConfig.space = "y"``).
    """
    if func.ndim == 2:
        return np.ones(func.shape, dtype=np.float32)
    v = func.max(axis=-1)
    y = func @ _LUMA
    return np.divide(y, v, out=np.ones_like(v), where=v > 0).astype(np.float32)


def batch_from_pairs(pairs: Sequence[FusionPair]) -> Batch:
    """N x C x H x W float32 tensors of same-size pairs.

    Keys: ``mr`` (1 ch), ``func`` (3 ch RGB; grey CT replicated), ``func_gray`` (1 ch luminance),
    ``v_prime`` (1 ch, MsgFusion's V'), ``luma_gain`` (1 ch, see :func:`luma_gain`).
    """
    if len({p.shape for p in pairs}) != 1:
        raise ShapeMismatchError(
            f"a batch must hold pairs of one size, got {sorted({p.shape for p in pairs})}"
        )

    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32))

    func = [p.func if p.is_color else np.repeat(p.func[..., None], 3, axis=-1) for p in pairs]
    return {
        "mr": stack([p.mr[None] for p in pairs]),
        "func": stack([f.transpose(2, 0, 1) for f in func]),
        "func_gray": stack([p.func_gray[None] for p in pairs]),
        "v_prime": stack([p.v_prime[None] for p in pairs]),
        "luma_gain": stack([luma_gain(p.func)[None] for p in pairs]),
    }
