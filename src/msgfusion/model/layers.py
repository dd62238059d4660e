"""Small building blocks shared by the MsgFusion branches."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class ConvNormAct(nn.Sequential):
    """conv k x k (same padding) -> BatchNorm -> LeakyReLU(0.2), the paper's basic layer."""

    def fold(self) -> None:
        """For inference: fold the (eval-mode) BatchNorm into the convolution."""
        if isinstance(self[1], nn.BatchNorm2d):
            self[0] = fuse_conv_bn_eval(self[0], self[1])
            self[1] = nn.Identity()

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.LeakyReLU(0.2, inplace=True),
        )


def soft_weighted_merge(*features: torch.Tensor) -> torch.Tensor:
    """Per-pixel soft weighting of feature maps (MsgFusion's merge rule, MSGFUSION.md section 3).

    s_i = channel-mean of F_i, w_i = exp(s_i) / sum_j exp(s_j), out = sum_i w_i F_i.
    Maps with different channel counts broadcast (a 1-channel map against a C-channel one).
    Two maps (every merge in MsgFusion) take the same value in closed form, with fewer passes
    over full-resolution tensors: w_1 = sigmoid(s_1 - s_2), out = F_2 + w_1 (F_1 - F_2).
    """
    if len(features) == 2:
        first, second = features
        weight = torch.sigmoid(_channel_mean(first) - _channel_mean(second))
        return torch.lerp(second, first, weight)
    scores = torch.stack([_channel_mean(f) for f in features], dim=0)
    weights = torch.softmax(scores, dim=0)
    return sum(w * f for w, f in zip(weights, features))  # type: ignore[return-value]


def _channel_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean over channels, N x 1 x H x W (a one-channel map is its own mean: no copy)."""
    return x if x.shape[1] == 1 else x.mean(dim=1, keepdim=True)


def fold_for_inference(model: nn.Module) -> nn.Module:
    """Eval mode, and every module with a ``fold()`` rewritten into its inference form: the
    same function with fewer passes over the image (BatchNorm folded into its convolution,
    consecutive linear layers merged). Folded modules no longer train."""
    model.eval()
    for module in list(model.modules()):
        fold = getattr(module, "fold", None)
        if callable(fold):
            fold()
    return model
