"""Colour against the standards, not against the module's own matrices.

The YCbCr restore must use BT.601 luma (the one :func:`luminance` and every metric use), and V'
must be min-max normalised per image (MSGFUSION.md section 2) even when the raw values do not
span 0..255. Checked on real PET/SPECT images; pixels near black are left out, where the colour
rule may treat the restore specially.
"""

from __future__ import annotations

import numpy as np
import pytest

from msgfusion.io.color import (
    chroma_weight,
    luminance,
    restore_color,
    rgb_to_hsv,
    rgb_to_ycbcr,
    to_uint8,
    v_prime,
)
from msgfusion.io.images import read_image


@pytest.fixture(scope="module")
def colour_images(aanlib_dir) -> list[np.ndarray]:
    return [read_image(aanlib_dir / "PET-MRI" / "test" / "PET" / "25015.png"),
            read_image(aanlib_dir / "SPECT-MRI" / "test" / "SPECT" / "15009.png")]


def test_ycbcr_luma_row_is_bt601():
    """Pure primaries give the BT.601 weights (BT.709 would give 0.2126, 0.7152, 0.0722)."""
    primaries = np.eye(3).reshape(1, 3, 3)
    np.testing.assert_allclose(rgb_to_ycbcr(primaries)[0, :, 0], [0.299, 0.587, 0.114], atol=1e-12)


def test_ycbcr_restore_makes_the_luminance_the_fused_intensity(colour_images):
    """After ``ycbcr`` restoration the picture's BT.601 luminance (:func:`luminance`, as the
    metrics read it) is the fused intensity, to 8-bit rounding, wherever nothing is clipped."""
    rng = np.random.default_rng(7)
    for func in colour_images:
        fused = rng.random(func.shape[:2]).astype(np.float32)
        rgb = restore_color(fused, func, "ycbcr")
        coloured = func.max(axis=-1) > 0.2  # clearly coloured, away from black
        unclipped = ((rgb > 0.005) & (rgb < 0.995)).all(axis=-1)
        sel = coloured & unclipped
        assert sel.sum() > 1000
        y = to_uint8(luminance(rgb)).astype(np.int16) - to_uint8(fused).astype(np.int16)
        assert np.abs(y[sel]).max() <= 1


def test_ycbcr_restore_keeps_chroma(colour_images):
    """Where the colour rule lets the colour through in full (chroma weight 1)."""
    rng = np.random.default_rng(8)
    for func in colour_images:
        fused = rng.random(func.shape[:2]).astype(np.float32)
        rgb = restore_color(fused, func, "ycbcr")
        sel = (chroma_weight(func) == 1) & ((rgb > 0.005) & (rgb < 0.995)).all(axis=-1)
        assert sel.sum() > 1000
        np.testing.assert_allclose(rgb_to_ycbcr(rgb)[sel][:, 1:], rgb_to_ycbcr(func)[sel][:, 1:],
                                   atol=1e-5)


def test_v_prime_is_min_max_normalised_per_image(colour_images):
    """Raw values 0..195 (CT, max grey 150) and 35..70 (colour) still span [0, 1]."""
    ct = np.array([[0, 85, 100, 150]]) / 255.0  # raw max(3g - 255, 0): 0, 0, 45, 195
    np.testing.assert_allclose(v_prime(ct), [[0, 0, 45 / 195, 1]], atol=1e-6)
    rgb = np.array([[[100, 50, 20], [50, 25, 10], [60, 40, 20]]]) / 255.0  # raw 70, 35, 60
    np.testing.assert_allclose(v_prime(rgb), [[1.0, 0.0, 25 / 35]], atol=1e-6)
    for func in colour_images:
        vp = v_prime(func)
        assert vp.min() == 0.0 and vp.max() == pytest.approx(1.0)
        half = v_prime(func * 0.5)  # a dimmer image has the same normalised V'
        np.testing.assert_allclose(half, vp, atol=2e-6)


def test_to_uint8_clips_and_rounds_half_to_even():
    values = np.array([-0.2, 0.0, 0.5, 1.5 / 255, 2.5 / 255, 1.0, 1.7])
    np.testing.assert_array_equal(to_uint8(values), [0, 0, 128, 2, 2, 255, 255])


def test_greys_have_hue_and_saturation_zero():
    greys = np.array([[[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]])
    np.testing.assert_array_equal(rgb_to_hsv(greys), [[[0, 0, 0], [0, 0, 0.5], [0, 0, 1]]])
