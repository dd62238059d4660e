"""Folders of pairs: the AANLIB layout and user folders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from msgfusion.data.datasets import PairFolder, find_pair_folders, load_aanlib, sample_folders
from msgfusion.errors import DatasetError


def test_aanlib_counts(aanlib_dir):
    train = load_aanlib(aanlib_dir, "train")
    test = load_aanlib(aanlib_dir, "test")
    assert [len(f) for f in train] == [160, 245, 333]
    assert [len(f) for f in test] == [24, 24, 24]
    assert sum(map(len, train)) == 738 and sum(map(len, test)) == 72
    assert [f.modality for f in test] == ["CT", "PET", "SPECT"]
    assert test[1].label == "PET-MRI/test"
    pair = test[2][0]
    assert pair.modality == "SPECT" and pair.name == "10018" and pair.func.shape == (256, 256, 3)


def test_find_pair_folders_on_tree_and_single_folder(aanlib_dir):
    assert len(find_pair_folders(aanlib_dir)) == 6
    assert len(find_pair_folders(aanlib_dir, split="test")) == 3
    (folder,) = find_pair_folders(aanlib_dir / "CT-MRI" / "test")
    assert folder.modality == "CT"


def _copy_pairs(aanlib_dir, tmp_path, n=3):
    src = aanlib_dir / "CT-MRI" / "test"
    for sub in ("MRI", "CT"):
        (tmp_path / sub).mkdir()
        for f in sorted((src / sub).iterdir())[:n]:
            shutil.copy(f, tmp_path / sub / f.name)
    return tmp_path


def test_missing_partner_is_reported_by_name(aanlib_dir, tmp_path):
    root = _copy_pairs(aanlib_dir, tmp_path)
    (root / "CT" / "16010.png").unlink()
    with pytest.raises(DatasetError, match=r"have no partner in .*CT: 16010.png"):
        PairFolder(root)


def test_size_mismatch_is_reported_by_name(aanlib_dir, tmp_path):
    root = _copy_pairs(aanlib_dir, tmp_path)
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(root / "CT" / "16011.png")
    with pytest.raises(DatasetError, match=r"cannot be fused: .*16011.png is 256x256 but .*16011.png is 10x10"):
        PairFolder(root)


def test_bad_layouts(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        PairFolder(tmp_path / "nope")
    (tmp_path / "MRI").mkdir()
    with pytest.raises(DatasetError, match="exactly one of"):
        PairFolder(tmp_path)
    (tmp_path / "CT").mkdir()
    (tmp_path / "PET").mkdir()
    with pytest.raises(DatasetError, match="exactly one of"):
        PairFolder(tmp_path)
    with pytest.raises(DatasetError, match="unknown split"):
        load_aanlib(tmp_path, "valid")


def test_bundled_samples():
    folders = sample_folders()
    assert [f.modality for f in folders] == ["CT", "PET", "SPECT"]
    assert all(len(f) == 1 for f in folders)
