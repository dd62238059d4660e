"""The colour rule (MSGFUSION.md section 5): where the functional image has no signal (below its
noise floor), the fused picture is grey, in every colour mode, on every PET/SPECT test pair of
the atlas and on JPEG-compressed copies of them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from msgfusion.data.datasets import load_aanlib
from msgfusion.io.color import (
    COLOR_MODES,
    MIN_NOISE_FLOOR,
    luminance,
    noise_floor,
    restore_color,
    to_uint8,
)
from msgfusion.methods.registry import fuse_pairs, get_method
from msgfusion.pair import FusionPair

GREY = 8.0 / 255.0  # largest chroma (max - min of R, G, B) that still counts as grey


def chroma(rgb: np.ndarray) -> np.ndarray:
    return rgb.max(axis=-1) - rgb.min(axis=-1) if rgb.ndim == 3 else np.zeros(rgb.shape)


def jpeg_copy(func: np.ndarray, quality: int = 75) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(func)).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0


@pytest.fixture(scope="module")
def functional_pairs(aanlib_dir) -> list[FusionPair]:
    folders = load_aanlib(aanlib_dir, "test", pairs=("PET-MRI", "SPECT-MRI"))
    pairs = [folder[i] for folder in folders for i in range(len(folder))]
    assert len(pairs) == 48 and all(p.is_color for p in pairs)
    return pairs


@pytest.mark.parametrize("method", ["max", "average"])
def test_no_colour_below_the_noise_floor_on_every_test_pair_and_its_jpeg(functional_pairs,
                                                                          method):
    for pair, fused in zip(functional_pairs, fuse_pairs(get_method(method), functional_pairs)):
        jpeg = jpeg_copy(pair.func)
        # independent of our floor: what is black in the atlas PNG has no signal in its JPEG
        originally_black = pair.func.max(axis=-1) == 0
        for func, no_signal in ((pair.func, None), (jpeg, originally_black)):
            below = luminance(func) <= noise_floor(func)
            assert below.any()
            for mode in COLOR_MODES:
                picture = chroma(restore_color(fused, func, mode))
                coloured = picture[below] > GREY
                assert not coloured.any(), (
                    f"{pair.modality} {pair.name} ({'JPEG' if no_signal is not None else 'PNG'}),"
                    f" {mode}: {coloured.sum()} coloured pixels below the noise floor")
                if no_signal is not None:  # JPEG chroma bleed into the black background
                    assert (picture[no_signal] > GREY).mean() < 0.002, (pair.name, mode)


def test_near_black_pet_pixel_gives_grey_not_blue(aanlib_dir):
    """The issue's case: PET (0, 0, 8) is pure blue at full HSV saturation; where the MR is bright
    it became saturated blue, e.g. (0, 0, 223). Now every mode gives grey there."""
    pet = np.asarray(Image.open(aanlib_dir / "PET-MRI/test/PET/25015.png").convert("RGB"))
    mr = np.asarray(Image.open(aanlib_dir / "PET-MRI/test/MRI/25015.png"), dtype=np.float32) / 255
    near_black = np.all(pet == (0, 0, 8), axis=-1)
    func = pet.astype(np.float32) / 255.0
    assert luminance(func)[near_black].max() < MIN_NOISE_FLOOR
    bright = near_black & (mr > 0.5)
    assert bright.sum() > 50
    for mode in COLOR_MODES:
        out = restore_color(mr, func, mode)
        assert chroma(out)[near_black].max() <= GREY, mode
        if mode != "viridis":  # the grey level is the fused intensity itself
            np.testing.assert_allclose(out[bright] if out.ndim == 2 else out[bright].mean(-1),
                                       mr[bright], atol=1 / 255)
    # a lone (0, 0, 8) pixel on black, fused bright
    func = np.zeros((32, 32, 3), dtype=np.float32)
    func[10:20, 10:20] = np.array([0, 0, 8]) / 255.0
    for mode in COLOR_MODES:
        assert chroma(restore_color(np.full((32, 32), 0.9), func, mode)).max() <= GREY, mode
