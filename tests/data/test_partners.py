"""Both directions of a missing partner are reported by name; nothing is skipped silently."""

from __future__ import annotations

import shutil

import pytest

from msgfusion.data.datasets import PairFolder
from msgfusion.errors import DatasetError


def _copy_pairs(aanlib_dir, root, n=3):
    src = aanlib_dir / "PET-MRI" / "test"
    for sub in ("MRI", "PET"):
        (root / sub).mkdir()
        for f in sorted((src / sub).iterdir())[:n]:
            shutil.copy(f, root / sub / f.name)
    return root


def test_functional_file_without_its_mr_is_reported(aanlib_dir, tmp_path):
    root = _copy_pairs(aanlib_dir, tmp_path)
    (root / "MRI" / "25022.png").unlink()
    with pytest.raises(DatasetError, match=r"1 file\(s\) in .*PET have no partner in .*MRI: "
                                           r"25022\.png"):
        PairFolder(root)


def test_both_directions_in_one_message(aanlib_dir, tmp_path):
    root = _copy_pairs(aanlib_dir, tmp_path)
    (root / "MRI" / "25022.png").unlink()
    (root / "PET" / "25015.png").unlink()
    with pytest.raises(DatasetError) as info:
        PairFolder(root)
    message = str(info.value)
    assert "MRI have no partner in" in message and "25015.png" in message
    assert "PET have no partner in" in message and "25022.png" in message


def test_long_lists_of_names_are_cut_after_eight(aanlib_dir, tmp_path):
    root = _copy_pairs(aanlib_dir, tmp_path, n=12)
    lonely = sorted(p.name for p in (root / "PET").iterdir())[2:]
    for name in lonely:
        (root / "PET" / name).unlink()
    with pytest.raises(DatasetError) as info:
        PairFolder(root)
    message = str(info.value)
    assert message.startswith(f"10 file(s) in {root / 'MRI'} have no partner")
    assert message.endswith(", ".join(lonely[:8]) + " and 2 more")


def test_non_images_and_hidden_files_are_not_pairs(aanlib_dir, tmp_path):
    root = _copy_pairs(aanlib_dir, tmp_path, n=2)
    (root / "MRI" / "notes.txt").write_text("scanner settings")
    (root / "MRI" / ".25015.png").write_bytes((root / "MRI" / "25015.png").read_bytes())
    (root / "PET" / "extra").mkdir()
    folder = PairFolder(root)
    assert [f.name for f in folder.files] == ["25015.png", "25022.png"]


def test_split_selects_the_folders_of_that_split(aanlib_dir):
    from msgfusion.data.datasets import find_pair_folders

    assert [f.label for f in find_pair_folders(aanlib_dir, split="train")] == [
        "CT-MRI/train", "PET-MRI/train", "SPECT-MRI/train"]
    assert [len(f) for f in find_pair_folders(aanlib_dir, split="test")] == [24, 24, 24]
