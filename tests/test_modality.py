"""Modality inference (PET vs SPECT by the atlas colour scales), scalar PET/SPECT rendered with
a colour map, warnings for inputs made grey, and the one default colour mode."""

from __future__ import annotations

import inspect
import io
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

import msgfusion
from msgfusion.bench.config import BenchConfig
from msgfusion.cli import build_parser, main
from msgfusion.errors import MsgFusionWarning
from msgfusion.io.color import COLORMAPS, DEFAULT_COLOR_MODE, colorize, to_uint8
from msgfusion.io.images import read_image
from msgfusion.pair import infer_modality, load_pair


def _test_functional_files(aanlib_dir, split="test"):
    return [(m, f) for m in ("PET", "SPECT")
            for f in sorted((aanlib_dir / f"{m}-MRI" / split / m).glob("*.png"))]


def _jpeg(rgb: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(rgb)).save(buffer, format="JPEG", quality=75)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0


def test_pet_and_spect_told_apart_on_all_48_test_pairs_and_their_jpegs(aanlib_dir):
    files = _test_functional_files(aanlib_dir)
    assert len(files) == 48
    with warnings.catch_warnings():
        warnings.simplefilter("error", MsgFusionWarning)
        for modality, path in files:
            image = read_image(path)  # the array alone: no folder name to go by
            assert infer_modality(image) == modality, path
            assert infer_modality(_jpeg(image)) == modality, f"{path} as JPEG"


@pytest.mark.slow
def test_pet_and_spect_told_apart_on_all_train_pairs(aanlib_dir):
    files = _test_functional_files(aanlib_dir, "train")
    assert len(files) == 245 + 333
    wrong = [p for m, p in files if infer_modality(read_image(p)) != m]
    assert not wrong


def test_folder_name_says_the_modality_and_unknown_scale_warns(aanlib_dir, tmp_path):
    spect = read_image(aanlib_dir / "SPECT-MRI/test/SPECT/10018.png")
    assert infer_modality(spect, tmp_path / "pet" / "x.png") == "PET"  # the folder wins
    assert infer_modality(np.zeros((8, 8))) == "CT"
    hot = colorize(read_image(aanlib_dir / "PET-MRI/test/MRI/25015.png"), "hot")
    with pytest.warns(MsgFusionWarning, match="neither the atlas's PET nor its SPECT"):
        assert infer_modality(hot) == "PET"


def test_spect_without_modality_uses_the_spect_network(capsys, tmp_path, aanlib_dir):
    """The issue: a SPECT given without --modality ran the PET network. A copy outside any
    SPECT/ folder is recognised by its colours; the output equals the --modality SPECT one."""
    d = aanlib_dir / "SPECT-MRI/test"
    func = shutil.copy(d / "SPECT/10018.png", tmp_path / "func.png")
    assert main(["fuse", "--mr", str(d / "MRI/10018.png"), "--func", str(func),
                 "-o", str(tmp_path / "a.png")]) == 0
    out = capsys.readouterr().out
    assert "SPECT-MRI" in out and "inferred" in out and "SPECT network" in out
    assert main(["fuse", "--mr", str(d / "MRI/10018.png"), "--func", str(func), "--modality",
                 "SPECT", "-o", str(tmp_path / "b.png")]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), read_image(tmp_path / "b.png"))


def _scalar_from_atlas_colours(rgb: np.ndarray, cmap: str) -> np.ndarray:
    """The activity an atlas image shows: the index of the nearest colour of its scale, 8-bit."""
    table = COLORMAPS[cmap] * 255.0
    flat = to_uint8(rgb).reshape(-1, 3).astype(np.float64)
    index = np.argmin(((flat[:, None] - table[None]) ** 2).sum(-1), axis=1)
    return index.reshape(rgb.shape[:2]).astype(np.uint8)


def test_scalar_pet_is_rendered_with_the_atlas_scale(capsys, tmp_path, aanlib_dir):
    """A grey PET (activity as a scanner stores it) with --modality PET is rendered with the
    atlas PET scale before fusion: close to the atlas's own colour PET, and the fused picture
    is in colour (it came out grey before)."""
    d = aanlib_dir / "PET-MRI/test"
    pet = read_image(d / "PET/25015.png")
    scalar = tmp_path / "scalar.png"
    Image.fromarray(_scalar_from_atlas_colours(pet, "atlas-pet")).save(scalar)
    pair = load_pair(d / "MRI/25015.png", scalar, modality="PET")
    assert pair.func.shape == (256, 256, 3)
    assert np.abs(pair.func - pet).max() < 8 / 255
    assert main(["fuse", "--mr", str(d / "MRI/25015.png"), "--func", str(scalar), "--modality",
                 "PET", "--method", "average", "-o", str(tmp_path / "f.png")]) == 0
    assert "colour" in capsys.readouterr().out
    fused = read_image(tmp_path / "f.png")
    assert fused.ndim == 3 and (fused.max(-1) - fused.min(-1) > 0.25).sum() > 2000
    hot = load_pair(d / "MRI/25015.png", scalar, modality="SPECT", cmap="hot")
    np.testing.assert_allclose(hot.func, colorize(read_image(scalar), "hot"))
    arrays = msgfusion.make_pair(read_image(d / "MRI/25015.png"), read_image(scalar), "PET")
    np.testing.assert_allclose(arrays.func, pair.func)


def test_colour_mr_and_colour_ct_warn_on_one_line(capsys, tmp_path, aanlib_dir):
    d = aanlib_dir / "SPECT-MRI/test"
    spect = d / "SPECT/10018.png"
    code = main(["fuse", "--mr", str(spect), "--func", str(spect), "--modality", "CT",
                 "--method", "max", "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0 and len(err) == 2, err
    assert err[0].startswith("msgfusion: warning: ") and str(spect) in err[0] and "MR" in err[0]
    assert err[1].startswith("msgfusion: warning: ") and "given as CT" in err[1]
    with pytest.warns(MsgFusionWarning, match="colour image"):
        msgfusion.make_pair(read_image(spect), read_image(d / "MRI/10018.png"), "SPECT")


def test_one_default_colour_mode_everywhere():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("fuse", "fuse-dir", "demo", "bench"):
        assert sub[command].get_default("color") == DEFAULT_COLOR_MODE, command
    assert inspect.signature(msgfusion.fuse).parameters["color"].default == DEFAULT_COLOR_MODE
    assert BenchConfig().color == DEFAULT_COLOR_MODE
