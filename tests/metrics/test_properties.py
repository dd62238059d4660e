"""Known values of each metric on small constructed images (independent of the references)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from msgfusion.metrics import (
    average_gradient,
    compute_metrics,
    correlation_coefficient,
    entropy,
    mutual_information,
    nabf,
    piella_q,
    piella_qw,
    psnr,
    qabf,
    qcb,
    qcv,
    rsfe,
    scd,
    spatial_frequency,
    ssim,
    standard_deviation,
    vif,
    viff,
)
from msgfusion.metrics.filters import normalize_255, sobel


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    """A 64 x 64 random 8-bit texture (strong gradients everywhere)."""
    return np.random.default_rng(7).integers(0, 256, (64, 64)).astype(np.float64)


@pytest.fixture(scope="module")
def halves() -> np.ndarray:
    """Left half 0, right half 255."""
    img = np.zeros((16, 16))
    img[:, 8:] = 255
    return img


def test_entropy_and_sd(halves) -> None:
    assert entropy(halves) == pytest.approx(1.0)
    assert entropy(np.full((8, 8), 17.0)) == 0.0
    assert entropy(np.arange(256.0).reshape(16, 16)) == pytest.approx(8.0)
    assert standard_deviation(halves) == pytest.approx(127.5)


def test_entropy_counts_rounded_grey_levels() -> None:
    img = np.array([[0.4, 0.6], [1.4, 254.6]])  # levels 0, 1, 1, 255
    assert entropy(img) == pytest.approx(1.5)
    with pytest.raises(ValueError, match=r"0\.\.255"):
        entropy(np.array([[0.0, 256.0]]))


def test_mutual_information(halves, texture) -> None:
    assert mutual_information(halves, halves, halves) == pytest.approx(2.0)
    assert mutual_information(halves, halves, halves, base=math.e) == pytest.approx(2 * math.log(2))
    checker = (np.indices((16, 16)).sum(axis=0) % 2) * 255.0
    assert mutual_information(checker, checker, halves) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="base"):
        mutual_information(halves, halves, halves, base=1.0)


def test_spatial_frequency_and_average_gradient() -> None:
    stripes = np.tile([0.0, 10.0], (4, 2))  # horizontal differences all 10, vertical 0
    assert spatial_frequency(stripes) == pytest.approx(10.0)
    ramp = np.tile(3.0 * np.arange(6), (5, 1))  # gradient (3, 0) everywhere, borders included
    assert average_gradient(ramp) == pytest.approx(30 * 3 / math.sqrt(2) / (4 * 5))


def test_correlations(texture) -> None:
    other = np.random.default_rng(8).integers(0, 256, texture.shape).astype(np.float64)
    assert correlation_coefficient(texture, texture, 2 * texture + 3) == pytest.approx(1.0)
    assert scd(texture, other, texture + other) == pytest.approx(2.0)


def test_psnr(texture) -> None:
    assert psnr(texture, texture, texture) == math.inf
    assert psnr(texture + 10, texture - 10, texture) == pytest.approx(10 * math.log10(255**2 / 100))


def test_identical_images_are_perfect(texture) -> None:
    t = texture
    assert ssim(t, t, t) == pytest.approx(2.0)
    assert piella_q(t, t, t) == pytest.approx(1.0)
    assert piella_qw(t, t, t) == pytest.approx(1.0)
    assert vif(t, t, t) == pytest.approx(2.0, rel=1e-8)
    assert viff(t, t, t) == pytest.approx(1.0, rel=1e-8)
    assert qcb(t, t, t) == pytest.approx(1.0)
    assert qcv(t, t, t) == 0.0
    assert nabf(t, t, t) == 0.0
    assert rsfe(t, np.zeros_like(t), t) == pytest.approx(0.0, abs=1e-15)


def test_rsfe_sign() -> None:
    a = np.tile([0.0, 100.0], (8, 4))
    b = np.zeros_like(a)
    assert rsfe(a, b, np.zeros_like(a)) == -1.0  # all detail lost
    assert rsfe(a, b, a / 2) == pytest.approx(-0.5)  # half the contrast
    assert rsfe(a, b, 2 * a) == pytest.approx(1.0)  # doubled contrast: over-fused


def test_qabf_of_identical_images_follows_the_reference_branch(texture) -> None:
    """F = A = B: orientation agreement 1 everywhere, and the reference code's G = g_F (not 1)
    where g_A == g_F, so Q^AF = 0.9994 / (1 + exp(-15 (g - 0.5))) * 0.9879 / (1 + exp(-4.4))."""
    g = np.hypot(ndimage.sobel(texture, axis=0, mode="constant"),
                 ndimage.sobel(texture, axis=1, mode="constant"))
    q = 0.9994 / (1 + np.exp(-15 * (g - 0.5))) * 0.9879 / (1 + np.exp(-22 * 0.2))
    assert qabf(texture, texture, texture) == pytest.approx((q * g).sum() / g.sum(), rel=1e-12)


def test_nabf_counts_only_new_edges(texture) -> None:
    flat = np.full_like(texture, 100.0)
    assert nabf(texture, flat, texture) == 0.0  # F equals a source: no edge stronger than both
    assert nabf(flat, flat, texture) > 0.5  # every edge of F is an artefact


def test_degenerate_images_give_documented_values_without_warnings(texture) -> None:
    zero = np.zeros_like(texture)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        black = compute_metrics(zero, zero, zero)
        flat_sources = compute_metrics(np.full_like(texture, 9.0), zero, texture)
    assert {k for k, v in black.items() if math.isnan(v)} == {"SCD", "CC", "Qabf", "Qcb", "Qcv"}
    assert black["PSNR"] == math.inf and math.copysign(1.0, black["EN"]) == 1.0
    assert (black["SSIM"], black["Q_S"], black["VIF"], black["VIFF"], black["rSFe"]) == (
        2.0, 1.0, 2.0, 1.0, 0.0)
    assert flat_sources["rSFe"] == math.inf and flat_sources["VIF"] == 2.0  # 0/0 counts as 1


def test_normalize_255_rounds_half_away_from_zero() -> None:
    """Liu's normalize1 with MATLAB's round: 255/6 = 42.5 -> 43 (numpy's round gives 42)."""
    assert normalize_255(np.array([[0.0, 1.0, 6.0]])).tolist() == [[0.0, 43.0, 255.0]]
    assert normalize_255(np.array([[3.0, 5.0, 7.0]])).tolist() == [[0.0, 128.0, 255.0]]
    assert normalize_255(np.full((2, 2), 4.0)).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_sobel_padding() -> None:
    img = np.array([[0.0, 1.0, 4.0], [0.0, 1.0, 4.0]])
    gx, gy = sobel(img, "zero")
    assert gx.tolist() == [[3.0, 12.0, -3.0]] * 2  # zeros beyond the border
    assert gy.tolist() == [[1.0, 6.0, 9.0], [-1.0, -6.0, -9.0]]
    gx, gy = sobel(img, "mirror")  # x[-1] = x[1]: d c b | a b c d
    assert gx.tolist() == [[0.0, 16.0, 0.0]] * 2 and not gy.any()
