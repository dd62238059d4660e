"""The fusion losses: the paper's loss and the optional terms."""

from __future__ import annotations

import torch

from msgfusion.data.datasets import sample_folders
from msgfusion.metrics import piella_q
from msgfusion.model.inputs import batch_from_pairs
from msgfusion.train.losses import FusionLoss, LossConfig, saliency_ssim, sobel_magnitude, ssim


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mr = torch.rand(2, 1, 32, 32, generator=g)
    return {"mr": mr, "func_gray": torch.rand(2, 1, 32, 32, generator=g)}


def test_ssim_is_one_for_identical_images_and_lower_otherwise() -> None:
    b = _batch()
    assert torch.allclose(ssim(b["mr"], b["mr"]), torch.ones(2), atol=1e-5)
    assert (ssim(b["mr"], b["func_gray"]) < 0.5).all()


def test_paper_loss_value_by_hand() -> None:
    """L = 0.8 [0.5 (1-SSIM(O,A)) + 0.5 (1-SSIM(O,B))] + 0.2 [0.5 MSE(O,A) + 0.5 MSE(O,B)]."""
    b = _batch()
    o = (b["mr"] + b["func_gray"]) / 2
    total, terms = FusionLoss()(o, b)
    s_a, s_b = ssim(o, b["mr"]).mean(), ssim(o, b["func_gray"]).mean()
    mse_a, mse_b = ((o - b["mr"]) ** 2).mean(), ((o - b["func_gray"]) ** 2).mean()
    expected = 0.8 * (0.5 * (1 - s_a) + 0.5 * (1 - s_b)) + 0.2 * (0.5 * mse_a + 0.5 * mse_b)
    assert torch.allclose(total, expected, atol=1e-6)
    assert set(terms) == {"ssim", "mse"}


def test_max_terms_are_zero_at_the_max_rule() -> None:
    b = _batch()
    b["func_gray"] = b["mr"] * 0.5  # max(A, B) = A
    loss = FusionLoss(LossConfig(ssim=0, mse=0, intensity_max=1, gradient_max=1))
    total, _ = loss(b["mr"].clone(), b)
    assert float(total) < 1e-6


def test_floor_counts_negative_output_only_where_a_source_has_signal() -> None:
    """mean of max(0, -O) over pixels with max(A, B) > 0; free below 0 on a black background."""
    a = torch.zeros(1, 1, 4, 4)
    a[..., :2, :] = 0.02  # faint signal on the top half (8 pixels), black below
    b = {"mr": a, "func_gray": torch.zeros_like(a)}
    o = torch.full_like(a, -0.5)  # black everywhere after the clamp
    o[..., 0, :] = 0.1  # first row keeps its signal
    loss = FusionLoss(LossConfig(ssim=0, mse=0, floor=1, clamp=True))
    total, terms = loss(o, b)
    assert abs(float(total) - 0.5 * 4 / 8) < 1e-7  # 4 of the 8 signal pixels are at -0.5
    o[..., :2, :] = 0.0
    assert float(loss(o, b)[0]) == 0.0  # the black half below 0 costs nothing


def test_saliency_ssim_is_the_q_s_metric() -> None:
    """1 - ssim_saliency is Piella's Q_S (metrics.piella_q, on 0..255) of the output."""
    pair = sample_folders()[1][0]
    b = batch_from_pairs([pair])
    o = 0.6 * b["mr"] + 0.4 * b["func_gray"]
    expected = piella_q(pair.mr * 255, pair.func_gray * 255, o[0, 0].numpy() * 255)
    assert abs(float(saliency_ssim(o, b["mr"], b["func_gray"])) - expected) < 1e-3
    loss = FusionLoss(LossConfig(ssim=0, mse=0, ssim_saliency=1))
    assert abs(float(loss(o, b)[0]) - (1 - expected)) < 1e-3


def test_sobel_magnitude_of_a_step() -> None:
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4:] = 1.0
    g = sobel_magnitude(x)
    assert g[0, 0, 4, 3] == 4.0 and g[0, 0, 4, 0] == 0.0
