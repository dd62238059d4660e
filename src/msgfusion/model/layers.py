"""Small building blocks shared by the MsgFusion branches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
    over full-resolution tensors: with D = F_1 - F_2, w_1 = sigmoid(s_1 - s_2) =
    sigmoid(mean(D)) and out = F_2 + w_1 D.
    """
    if len(features) == 2:
        first, second = features
        if first.shape[1] != second.shape[1]:  # broadcast: the means of each map
            weight = torch.sigmoid(_channel_mean(first) - _channel_mean(second))
            return torch.lerp(second, first, weight)
        diff = first - second
        return torch.addcmul(second, torch.sigmoid(_channel_mean(diff)), diff)
    scores = torch.stack([_channel_mean(f) for f in features], dim=0)
    weights = torch.softmax(scores, dim=0)
    return sum(w * f for w, f in zip(weights, features))  # type: ignore[return-value]


def _channel_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean over channels, N x 1 x H x W (a one-channel map is its own mean: no copy). On
    channels-last maps a 1 x 1 convolution with weights 1/C, about twice as fast as ``mean``."""
    c = x.shape[1]
    if c == 1:
        return x
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return F.conv2d(x, x.new_full((1, c, 1, 1), 1.0 / c))
    return x.mean(dim=1, keepdim=True)


def max_pool2(x: torch.Tensor) -> torch.Tensor:
    """2 x 2 max pooling with stride 2 (odd last rows/columns dropped, as ``F.max_pool2d``):
    the maximum of rows 2i and 2i+1, then of columns 2j and 2j+1. The same values as
    ``F.max_pool2d(x, 2)``, about twice as fast on channels-last maps (benchmarks/speed.py)."""
    h, w = x.shape[-2:]
    x = x[..., : h - h % 2, : w - w % 2]
    rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def upsample(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear up-sampling to ``size`` (``align_corners=False``, as ``F.interpolate``).

    For an even integer factor s in both directions it is a depthwise transposed convolution: each
    input pixel spreads over 2s output pixels with the tent weights 1 - |t - (s - 1/2)| / s,
    t = 0 .. 2s-1 (the same sums as the interpolation, in another order: equal up to float
    rounding), after one replicated pixel on every side (the interpolation's clamping at the
    edges); about 1.5x faster on channels-last maps. Other sizes use ``F.interpolate``.
    """
    (h, w), (oh, ow) = x.shape[-2:], tuple(size)
    s = oh // h
    if s < 2 or s % 2 or oh != s * h or ow != s * w:
        return F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
    tent = torch.tensor([1 - abs(t - (s - 0.5)) / s for t in range(2 * s)], dtype=x.dtype,
                        device=x.device)
    c = x.shape[1]
    kernel = torch.outer(tent, tent).expand(c, 1, 2 * s, 2 * s).contiguous()
    # the transposed convolution's padding crops the 3s/2 extra pixels on each side
    return F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, stride=s,
                              padding=3 * s // 2, groups=c)


def conv2d_one_channel(x: torch.Tensor, conv: nn.Conv2d, bands: int = 8) -> torch.Tensor:
    """``conv(x)`` for a one-channel to one-channel convolution with "same" padding (odd
    square kernel, stride 1, zero padding), computed as a depthwise convolution over ``bands``
    horizontal bands of the image stacked as channels (each with the kernel's halo of rows).

    The same sums as ``conv(x)`` (tests/model/test_layers.py); about 3x faster on this CPU, where
    a convolution with a single output channel does not vectorise but a depthwise one over
    several channels does. Falls back to ``conv(x)`` where the height is not a multiple of
    ``bands``, or for any other kind of convolution.
    """
    k = conv.kernel_size[0]
    n, _, height, width = x.shape
    if (conv.in_channels, conv.out_channels, conv.groups) != (1, 1, 1) or height % bands \
            or conv.kernel_size != (k, k) or conv.padding != (k // 2, k // 2) \
            or conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
        return conv(x)
    h, r = height // bands, k // 2
    padded = F.pad(x, (r, r, r, r))[:, 0]  # N x (H + 2r) x (W + 2r)
    stacked = padded.unfold(1, h + 2 * r, h).transpose(2, 3)  # N x bands x (h + 2r) x (W + 2r)
    stacked = stacked.contiguous(memory_format=torch.channels_last)
    weight = conv.weight.expand(bands, 1, k, k)
    bias = conv.bias.expand(bands) if conv.bias is not None else None
    out = F.conv2d(stacked, weight, bias, groups=bands)  # N x bands x h x W
    return out.contiguous().view(n, 1, height, width)


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
