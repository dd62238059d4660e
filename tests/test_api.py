"""The README's Python API: ``msgfusion.fuse`` and what it calls, on real atlas pairs."""

from __future__ import annotations

import numpy as np
import pytest

import msgfusion
from msgfusion.io.color import DEFAULT_COLOR_MODE, restore_color
from msgfusion.io.images import read_image
from msgfusion.methods.registry import get_method
from msgfusion.pair import load_pair


@pytest.fixture(scope="module")
def pet_files(aanlib_dir):
    d = aanlib_dir / "PET-MRI" / "test"
    return d / "MRI" / "25015.png", d / "PET" / "25015.png"


def test_fuse_defaults_to_msgfusion_with_the_default_colour(pet_files):
    """``msgfusion.fuse(mr, func)`` is the MsgFusion network of the pair's modality, restored
    with the default colour mode."""
    fused = msgfusion.fuse(*pet_files)
    pair = load_pair(*pet_files)
    network = get_method("msgfusion").fuse([pair])[0]
    np.testing.assert_array_equal(fused, restore_color(network, pair.func, DEFAULT_COLOR_MODE))
    average = restore_color(get_method("average").fuse([pair])[0], pair.func,
                            DEFAULT_COLOR_MODE)
    assert np.abs(fused - average).mean() > 0.01


def test_fuse_from_arrays_equals_fuse_from_files(pet_files):
    mr, func = (read_image(p) for p in pet_files)
    np.testing.assert_array_equal(msgfusion.fuse(mr, func, method="max"),
                                  msgfusion.fuse(*pet_files, method="max"))
    with pytest.raises(TypeError, match="as arrays or both as file paths"):
        msgfusion.fuse(mr, pet_files[1])


def test_fuse_modality_and_colour_arguments(pet_files):
    """``modality="SPECT"`` sends the pair to the SPECT network; ``color`` picks the restore."""
    pair = load_pair(*pet_files)
    as_spect = msgfusion.fuse(*pet_files, color="gray", modality="SPECT")
    as_pet = msgfusion.fuse(*pet_files, color="gray")
    assert as_spect.ndim == 2 and np.abs(as_spect - as_pet).mean() > 0.005
    spect_pair = load_pair(*pet_files, modality="SPECT")
    np.testing.assert_array_equal(as_spect, get_method("msgfusion").fuse([spect_pair])[0])
    (intensity,) = msgfusion.fuse_intensity([pair], "max")
    np.testing.assert_array_equal(msgfusion.fuse(pair, method="max", color="ycbcr"),
                                  restore_color(intensity, pair.func, "ycbcr"))
