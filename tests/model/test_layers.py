"""The fast forms of MsgFusion's layers (msgfusion.model.layers) give torch's reference values:
bilinear up-sampling, 2 x 2 max pooling, one-channel convolutions, the two-map soft merge."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from msgfusion.model.layers import conv2d_one_channel, max_pool2, soft_weighted_merge, upsample

LAYOUTS = [torch.contiguous_format, torch.channels_last]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("factor", [2, 3, 4, 8])
@pytest.mark.parametrize("size", [(64, 64), (16, 33), (1, 5)])
def test_upsample_is_bilinear_interpolation(layout, factor, size):
    torch.manual_seed(factor)
    x = torch.rand(2, 8, *size).contiguous(memory_format=layout)
    out_size = (size[0] * factor, size[1] * factor)
    reference = F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
    out = upsample(x, out_size)
    assert out.shape == reference.shape
    torch.testing.assert_close(out, reference, atol=3e-7, rtol=0)


def test_upsample_other_sizes_and_gradients():
    """A size that is no even multiple goes through F.interpolate; the transposed convolution
    passes the same gradient back as the interpolation (training uses it)."""
    x = torch.rand(1, 4, 10, 12, requires_grad=True)
    torch.testing.assert_close(upsample(x, (25, 31)), F.interpolate(
        x, size=(25, 31), mode="bilinear", align_corners=False))
    weights = torch.rand(1, 4, 40, 48)
    (grad,) = torch.autograd.grad((upsample(x, (40, 48)) * weights).sum(), x)
    (reference,) = torch.autograd.grad((F.interpolate(
        x, size=(40, 48), mode="bilinear", align_corners=False) * weights).sum(), x)
    torch.testing.assert_close(grad, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("size", [(256, 256), (9, 7), (2, 3)])
def test_max_pool2_is_max_pooling(layout, size):
    x = torch.randn(2, 8, *size).contiguous(memory_format=layout)
    torch.testing.assert_close(max_pool2(x), F.max_pool2d(x, 2), atol=0, rtol=0)


@pytest.mark.parametrize("kernel", [3, 7])
@pytest.mark.parametrize("shape", [(1, 1, 256, 256), (3, 1, 64, 40), (1, 1, 12, 9),
                                   (1, 1, 13, 9)])
def test_one_channel_convolution_equals_the_convolution(kernel, shape):
    """Bands stacked as channels: the same sums as the convolution, every band edge included;
    a height that is no multiple of the bands, and other convolutions, fall back to it."""
    torch.manual_seed(kernel)
    conv = nn.Conv2d(1, 1, kernel, padding=kernel // 2)
    x = torch.rand(*shape)
    with torch.no_grad():
        torch.testing.assert_close(conv2d_one_channel(x, conv), conv(x), atol=1e-6, rtol=0)
    other = nn.Conv2d(1, 2, 3, padding=1)
    with torch.no_grad():
        torch.testing.assert_close(conv2d_one_channel(x, other), other(x))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_two_map_merge_is_the_softmax_rule(layout):
    """The closed form from the difference of the maps equals the rule's softmax of channel
    means, for equal channel counts (both layouts) and a one-channel map against eight."""
    torch.manual_seed(0)
    a, b = (torch.randn(2, 8, 16, 16).contiguous(memory_format=layout) for _ in range(2))
    one = torch.randn(2, 1, 16, 16)
    for first, second in ((a, b), (one, b), (a, one)):
        scores = torch.stack([first.mean(1, keepdim=True), second.mean(1, keepdim=True)])
        w = torch.softmax(scores, dim=0)
        torch.testing.assert_close(soft_weighted_merge(first, second),
                                   w[0] * first + w[1] * second, atol=1e-6, rtol=1e-6)
