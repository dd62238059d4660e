"""FusionPair and its derived views."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from msgfusion.errors import ShapeMismatchError, UnknownModalityError
from msgfusion.pair import FusionPair, load_pair


def test_load_pet_pair_func_gray_is_reference_y(aanlib_dir, reference_metrics_dir):
    pair = load_pair(aanlib_dir / "PET-MRI/test/MRI/25015.png", aanlib_dir / "PET-MRI/test/PET/25015.png")
    assert pair.modality == "PET" and pair.name == "25015" and pair.is_color
    y_ref = np.asarray(Image.open(reference_metrics_dir / "inputs/PET-MRI_25015_B_PET_Y.png"))
    np.testing.assert_array_equal(np.round(pair.func_gray * 255).astype(np.uint8), y_ref)
    assert pair.v_prime.shape == (256, 256)
    assert pair.v_prime.min() == 0.0 and pair.v_prime.max() == 1.0


def test_ct_pair_inferred_and_func_gray_is_the_image(aanlib_dir):
    pair = load_pair(aanlib_dir / "CT-MRI/test/MRI/16009.png", aanlib_dir / "CT-MRI/test/CT/16009.png")
    assert pair.modality == "CT" and not pair.is_color
    assert pair.func_gray is pair.func


def test_modality_override_and_errors(aanlib_dir):
    mr, spect = aanlib_dir / "SPECT-MRI/test/MRI/10018.png", aanlib_dir / "SPECT-MRI/test/SPECT/10018.png"
    assert load_pair(mr, spect, modality="spect").modality == "SPECT"
    with pytest.raises(UnknownModalityError, match="XRAY"):
        load_pair(mr, spect, modality="XRAY")


def test_shape_mismatch_names_both_files(tmp_path, aanlib_dir):
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(tmp_path / "small.png")
    mr = aanlib_dir / "CT-MRI/test/MRI/16009.png"
    with pytest.raises(ShapeMismatchError, match=r"16009.png is 256x256 but .*small.png is 10x12"):
        load_pair(mr, tmp_path / "small.png")
    with pytest.raises(ShapeMismatchError):
        FusionPair(mr=np.zeros((4, 4)), func=np.zeros((4, 5)), modality="CT")
