"""FusionPair from arrays: an RGB MR becomes its luminance, other shapes are refused."""

from __future__ import annotations

import numpy as np
import pytest

from msgfusion.errors import ShapeMismatchError
from msgfusion.io.color import luminance
from msgfusion.io.images import read_image
from msgfusion.pair import FusionPair


def test_rgb_mr_array_is_reduced_to_its_luminance(aanlib_dir):
    pet = read_image(aanlib_dir / "PET-MRI" / "test" / "PET" / "25015.png")
    mr = read_image(aanlib_dir / "PET-MRI" / "test" / "MRI" / "25015.png")
    as_rgb = np.stack([mr, mr * 0.5, mr * 0.25], axis=-1)
    pair = FusionPair(mr=as_rgb, func=pet, modality="PET")
    assert pair.mr.shape == (256, 256) and pair.mr.dtype == np.float32
    np.testing.assert_array_equal(pair.mr, luminance(as_rgb))


def test_mr_with_four_channels_or_bad_functional_is_refused():
    with pytest.raises(ShapeMismatchError, match="MR image must be 2-D"):
        FusionPair(mr=np.zeros((4, 4, 4)), func=np.zeros((4, 4)), modality="CT", name="x")
    with pytest.raises(ShapeMismatchError, match="x: functional image must be H x W or H x W x 3"):
        FusionPair(mr=np.zeros((4, 4)), func=np.zeros((4, 4, 2)), modality="PET", name="x")


def test_load_pair_size_mismatch_names_height_and_width(aanlib_dir, tmp_path):
    from PIL import Image

    from msgfusion.pair import load_pair

    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(tmp_path / "mr.png")
    func = aanlib_dir / "PET-MRI" / "test" / "PET" / "25015.png"
    with pytest.raises(ShapeMismatchError, match=r"mr.png is 10x12 but .*25015.png is 256x256"):
        load_pair(tmp_path / "mr.png", func)


def test_unknown_colour_scale_warning_names_the_file(aanlib_dir, tmp_path):
    from msgfusion.errors import MsgFusionWarning
    from msgfusion.io.color import colorize
    from msgfusion.pair import infer_modality

    hot = colorize(read_image(aanlib_dir / "PET-MRI" / "test" / "MRI" / "25015.png"), "hot")
    path = tmp_path / "scans" / "hot.png"
    with pytest.warns(MsgFusionWarning, match=f"^{path}: the colours match neither"):
        assert infer_modality(hot, path) == "PET"


def test_colour_mr_file_is_fused_as_its_luminance(aanlib_dir, tmp_path):
    from PIL import Image

    from msgfusion.errors import MsgFusionWarning
    from msgfusion.pair import load_pair

    d = aanlib_dir / "SPECT-MRI" / "test"
    mr = read_image(d / "MRI" / "10018.png")
    rgb = np.stack([mr, mr * 0.5, mr * 0.25], axis=-1)
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(tmp_path / "mr_rgb.png")
    with pytest.warns(MsgFusionWarning, match="colour image"):
        pair = load_pair(tmp_path / "mr_rgb.png", d / "SPECT" / "10018.png", modality="SPECT")
    np.testing.assert_array_equal(pair.mr, luminance(read_image(tmp_path / "mr_rgb.png")))


def test_pairs_are_immutable():
    import dataclasses

    pair = FusionPair(mr=np.zeros((4, 4)), func=np.zeros((4, 4)), modality="CT")
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.modality = "PET"  # type: ignore[misc]


def test_warnings_point_at_the_callers_line(aanlib_dir, tmp_path):
    """The modality and colour-MR warnings are attributed to the code that called the API."""
    from PIL import Image

    from msgfusion.errors import MsgFusionWarning
    from msgfusion.io.color import colorize
    from msgfusion.pair import infer_modality, load_pair

    hot = colorize(read_image(aanlib_dir / "PET-MRI" / "test" / "MRI" / "25015.png"), "hot")
    with pytest.warns(MsgFusionWarning) as record:
        infer_modality(hot)
    assert record[0].filename == __file__
    d = aanlib_dir / "SPECT-MRI" / "test"
    mr = read_image(d / "MRI" / "10018.png")
    rgb = np.stack([mr, mr * 0.5, mr * 0.25], axis=-1)
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(tmp_path / "mr_rgb.png")
    with pytest.warns(MsgFusionWarning) as record:
        load_pair(tmp_path / "mr_rgb.png", d / "SPECT" / "10018.png", modality="SPECT")
    assert record[0].filename == __file__
    for modality, cmap in (("CT", None), ("SPECT", "hot")):  # colour as CT; cmap on colour
        with pytest.warns(MsgFusionWarning) as record:
            load_pair(d / "MRI" / "10018.png", d / "SPECT" / "10018.png", modality=modality,
                      cmap=cmap)
        assert [r.filename for r in record] == [__file__], (modality, cmap)
