"""Colour spaces, luminance, V' and colour restoration."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from PIL import Image

from msgfusion.errors import MsgFusionError
from msgfusion.io.color import (
    COLORMAPS,
    MIN_NOISE_FLOOR,
    chroma_weight,
    noise_floor,
    colorize,
    default_cmap,
    estimate_colour_scale,
    hsv_to_rgb,
    luminance,
    restore_color,
    rgb_to_hsv,
    rgb_to_ycbcr,
    to_uint8,
    v_prime,
    ycbcr_to_rgb,
)


@pytest.fixture(scope="module")
def all_8bit_colours() -> np.ndarray:
    """Every 4th level of each channel plus 255: 65^3 colours on the 1/255 grid."""
    levels = np.r_[np.arange(0, 256, 4), 255] / 255.0
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    return np.stack([r, g, b], axis=-1).reshape(-1, 1, 3)


def test_hsv_round_trip_exact_to_8_bits(all_8bit_colours):
    back = hsv_to_rgb(rgb_to_hsv(all_8bit_colours))
    np.testing.assert_array_equal(to_uint8(back), to_uint8(all_8bit_colours))


def test_ycbcr_round_trip_exact_to_8_bits(all_8bit_colours):
    back = ycbcr_to_rgb(rgb_to_ycbcr(all_8bit_colours))
    np.testing.assert_array_equal(to_uint8(back), to_uint8(all_8bit_colours))


def test_hsv_matches_colorsys():
    rng = np.random.default_rng(0)
    rgb = rng.random((50, 3))
    ours = rgb_to_hsv(rgb)
    ref = np.array([colorsys.rgb_to_hsv(*c) for c in rgb])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_luminance_equals_reference_y_pngs(reference_metrics_dir):
    """func_gray ground truth: OpenCV RGB2YCrCb channel 0 as stored by the metric references."""
    rgb_files = sorted((reference_metrics_dir / "inputs").glob("*_rgb.png"))
    assert len(rgb_files) == 6
    for rgb_path in rgb_files:
        y_ref = np.asarray(Image.open(str(rgb_path).replace("_rgb.png", "_Y.png")))
        rgb = np.asarray(Image.open(rgb_path).convert("RGB")) / 255.0
        np.testing.assert_array_equal(to_uint8(luminance(rgb)), y_ref)


def test_v_prime_colour_on_known_pixels():
    # (R, G, B) -> V'raw = R + G + B - max: 255+255+0-255 = 255; 255,0,0 -> 0; 100,50,20 -> 70;
    # 255,255,255 -> 510 clipped to 255
    rgb = np.array([[[255, 255, 0], [255, 0, 0], [100, 50, 20], [255, 255, 255]]]) / 255.0
    np.testing.assert_allclose(v_prime(rgb), [[1.0, 0.0, 70 / 255, 1.0]], atol=1e-6)


def test_v_prime_ct_on_known_pixels():
    # g -> max(3g - 255, 0): 0 -> 0, 85 -> 0, 100 -> 45, 170 -> 255, 255 -> 510 -> clipped 255
    g = np.array([[0, 85, 100, 170, 255]]) / 255.0
    np.testing.assert_allclose(v_prime(g), [[0, 0, 45 / 255, 1, 1]], atol=1e-6)
    assert not v_prime(np.zeros((3, 3))).any()


def _bright_random_colours(seed: int, shape: tuple[int, int]) -> np.ndarray:
    """Patches of 16 x 16 pixels of random 8-bit colours, all well above the noise floor
    (luminance >= 0.3); ``shape`` counts patches."""
    rng = np.random.default_rng(seed)
    func = rng.integers(0, 256, (*shape, 3)) / 255.0
    func = np.where((luminance(func) >= 0.3)[..., None], func, 1.0 - func * 0.5)
    return func.repeat(16, axis=0).repeat(16, axis=1)


def test_restore_color_identity_and_modes():
    func = _bright_random_colours(2, (6, 7))
    assert (chroma_weight(func) == 1).all()
    np.testing.assert_allclose(restore_color(func.max(axis=-1), func, "hsv"), func, atol=1e-6)
    y = rgb_to_ycbcr(func)[..., 0]
    np.testing.assert_allclose(restore_color(y, func, "ycbcr"), func, atol=1e-6)
    fused = np.random.default_rng(2).random((96, 112))
    assert restore_color(fused, func, "gray").shape == (96, 112)
    assert restore_color(fused, func, "viridis").shape == (96, 112, 3)
    hsv = rgb_to_hsv(restore_color(fused, func, "hsv"))
    np.testing.assert_allclose(hsv[..., 2], fused, atol=1e-6)
    with pytest.raises(ValueError, match="unknown colour mode"):
        restore_color(fused, func, "pink")


def test_restore_color_equals_the_colour_space_round_trip_where_there_is_signal():
    func = _bright_random_colours(3, (9, 8))
    fused = np.random.default_rng(3).random((144, 128))
    hsv = rgb_to_hsv(func)
    hsv[..., 2] = fused
    np.testing.assert_allclose(restore_color(fused, func, "hsv"), hsv_to_rgb(hsv), atol=1e-6)
    ycc = rgb_to_ycbcr(func)
    ycc[..., 0] = fused
    np.testing.assert_allclose(restore_color(fused, func, "ycbcr"),
                               np.clip(ycbcr_to_rgb(ycc), 0, 1), atol=1e-6)


def test_chroma_weight_scales_saturation_and_chroma():
    """Between the noise floor and twice it, hsv keeps hue and scales S by w; ycbcr scales
    (Cb, Cr) around grey by w and keeps Y := fused."""
    base = np.array([0.2, 0.4, 1.0])
    floor = noise_floor(np.zeros((8, 8, 3)))
    levels = np.linspace(0.5, 2.5, 8) * floor / luminance(base.reshape(1, 1, 3))[0, 0]
    func = np.clip(base[None, None] * levels[None, :, None], 0, 1).repeat(8, axis=0)
    w = chroma_weight(func)
    assert w[0, 0] == 0 and w[0, -1] == 1 and 0 < w[0, 4] < 1
    fused = np.full((8, 8), 0.7)
    hsv_in, hsv_out = rgb_to_hsv(func), rgb_to_hsv(restore_color(fused, func, "hsv"))
    np.testing.assert_allclose(hsv_out[..., 1], w * hsv_in[..., 1], atol=1e-5)
    ycc_in = rgb_to_ycbcr(func)
    ycc_out = rgb_to_ycbcr(restore_color(fused, func, "ycbcr"))
    np.testing.assert_allclose(ycc_out[..., 0], fused, atol=1e-5)
    np.testing.assert_allclose(ycc_out[..., 1:] - 0.5, w[..., None] * (ycc_in[..., 1:] - 0.5),
                               atol=1e-5)


def test_noise_floor_estimate():
    """The floor is MIN_NOISE_FLOOR on a clean image and 3 sigma of added Gaussian noise."""
    clean = np.zeros((128, 128))
    assert noise_floor(clean) == MIN_NOISE_FLOOR
    noisy = np.random.default_rng(4).normal(0.5, 0.05, (128, 128))
    assert noise_floor(noisy) == pytest.approx(3 * 0.05, rel=0.05)


def test_grey_functional_stays_grey():
    ct = np.linspace(0, 1, 12).reshape(3, 4)
    fused = np.full((3, 4), 0.25)
    for mode in ("hsv", "ycbcr", "gray"):
        np.testing.assert_allclose(restore_color(fused, ct, mode), fused)


def test_viridis_endpoints():
    lut = colorize(np.array([[0.0, 1.0]]), "viridis")
    np.testing.assert_allclose(lut[0, 0], np.array([68, 1, 84]) / 255, atol=1e-6)
    np.testing.assert_allclose(lut[0, 1], np.array([253, 231, 37]) / 255, atol=1e-6)


def test_colormap_registry_tables():
    assert {"atlas-pet", "atlas-spect", "hot", "jet", "viridis"} <= set(COLORMAPS)
    for name, table in COLORMAPS.items():
        assert table.shape == (256, 3), name
        assert table.dtype == np.float32 and 0.0 <= table.min() and table.max() <= 1.0, name
        assert not table.flags.writeable, name
    np.testing.assert_allclose(COLORMAPS["hot"][-1], [1, 1, 1])
    np.testing.assert_allclose(COLORMAPS["jet"][0], [0, 0, 0.5], atol=0.01)


def test_colorize_shapes_interpolation_and_errors():
    table = COLORMAPS["atlas-pet"]
    k = np.arange(256)
    # on the 1/255 grid colorize is the table itself, for any input shape
    np.testing.assert_allclose(colorize((k / 255.0).reshape(16, 16), "atlas-pet"),
                               table.reshape(16, 16, 3), atol=1e-6)
    mid = colorize(np.array([10.5 / 255]), "atlas-pet")[0]
    np.testing.assert_allclose(mid, (table[10] + table[11]) / 2, atol=1e-6)
    assert colorize(np.zeros((2, 3, 4)), "hot").shape == (2, 3, 4, 3)
    np.testing.assert_allclose(colorize(np.array([-1.0, 2.0]), "gray"), [[0] * 3, [1] * 3])
    with pytest.raises(ValueError, match="unknown colour map"):
        colorize(np.zeros(3), "rainbow")
    with pytest.raises(ValueError, match="NaN"):
        colorize(np.array([np.nan]), "hot")


def test_default_cmap_per_modality():
    assert default_cmap("PET") == "atlas-pet"
    assert default_cmap("spect") == "atlas-spect"
    assert default_cmap("CT") == "gray"
    with pytest.raises(MsgFusionError, match="unknown modality"):
        default_cmap("MR")


def _train_images(aanlib_dir, modality, step=1):
    files = sorted((aanlib_dir / f"{modality}-MRI" / "train" / modality).glob("*.png"))[::step]
    return [np.asarray(Image.open(f).convert("RGB"), dtype=np.float64) for f in files]


@pytest.mark.parametrize("modality", ["PET", "SPECT"])
def test_atlas_scale_covers_every_atlas_colour_in_order(aanlib_dir, modality):
    """Every colour of the atlas's images lies on the shipped scale (within 8-bit rounding of a
    palette entry), black is its start, and it grows brighter at first (low activity is dark)."""
    table = COLORMAPS[f"atlas-{modality.lower()}"] * 255.0
    colours = np.unique(np.concatenate([i.reshape(-1, 3) for i in
                                        _train_images(aanlib_dir, modality, step=10)]), axis=0)
    assert len(colours) > 100
    a, b = table[:-1], table[1:]  # distance to the polyline through the table's entries
    t = np.clip(((colours[:, None] - a) * (b - a)).sum(-1)
                / np.maximum(((b - a) ** 2).sum(-1), 1e-12), 0, 1)
    dist = np.sqrt(((colours[:, None] - a - t[..., None] * (b - a)) ** 2).sum(-1)).min(axis=1)
    assert dist.max() < 2.5
    np.testing.assert_allclose(table[0], 0.0)
    assert np.all(np.diff(table[:40].max(axis=1)) >= 0) and table[40].max() > 60


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["PET", "SPECT"])
def test_shipped_atlas_scale_is_the_estimate_from_the_train_split(aanlib_dir, modality):
    images = [i / 255.0 for i in _train_images(aanlib_dir, modality)]
    np.testing.assert_allclose(estimate_colour_scale(images),
                               COLORMAPS[f"atlas-{modality.lower()}"], atol=1e-6)


def test_estimate_colour_scale_recovers_a_known_scale():
    """A synthetic image of the hot map, pixels shuffled: the estimate is hot again."""
    rng = np.random.default_rng(5)
    values = rng.permutation(np.repeat(np.arange(256), 40)).reshape(160, 64) / 255.0
    np.testing.assert_allclose(estimate_colour_scale([colorize(values, "hot")]),
                               COLORMAPS["hot"], atol=1 / 255)
