"""The command line: the happy paths and every error path (exit code 2, one line, no output)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from msgfusion.data.datasets import sample_folders
from msgfusion.io.color import rgb_to_hsv
from msgfusion.io.images import read_image
from msgfusion.methods.registry import DEFAULT_METHOD

from cli_helpers import assert_one_line_error, run


@pytest.fixture
def ct(aanlib_dir):
    d = aanlib_dir / "CT-MRI" / "test"
    return d / "MRI" / "16009.png", d / "CT" / "16009.png"


@pytest.fixture
def pet(aanlib_dir):
    d = aanlib_dir / "PET-MRI" / "test"
    return d / "MRI" / "25015.png", d / "PET" / "25015.png"


def test_fuse_pet_keeps_colour_and_ct_is_grey(capsys, tmp_path, ct, pet):
    code, out, _ = run(capsys, "fuse", "--mr", pet[0], "--func", pet[1], "--method", "average",
                       "-o", tmp_path / "pet.png")
    assert code == 0 and "PET-MRI" in out
    fused = read_image(tmp_path / "pet.png")
    assert fused.shape == (256, 256, 3)
    code, _, _ = run(capsys, "fuse", "--mr", ct[0], "--func", ct[1], "-o", tmp_path / "ct.png")
    assert code == 0 and read_image(tmp_path / "ct.png").shape == (256, 256)


def test_modality_override_labels_output(capsys, tmp_path, pet):
    code, out, _ = run(capsys, "fuse", "--mr", pet[0], "--func", pet[1], "--modality", "spect",
                       "--method", "max", "--color", "ycbcr", "-o", tmp_path / "s.tif")
    assert code == 0 and "SPECT-MRI" in out and (tmp_path / "s.tif").exists()


def test_missing_file(capsys, tmp_path, ct):
    code, _, err = run(capsys, "fuse", "--mr", tmp_path / "nope.png", "--func", ct[1], "-o", tmp_path / "o.png")
    assert_one_line_error(code, err, "nope.png", "not found")
    assert not (tmp_path / "o.png").exists()


def test_unreadable_file(capsys, tmp_path, ct):
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    code, _, err = run(capsys, "fuse", "--mr", ct[0], "--func", tmp_path / "bad.png", "-o", tmp_path / "o.png")
    assert_one_line_error(code, err, "bad.png", "not a readable image")
    assert not (tmp_path / "o.png").exists()


def test_size_mismatch(capsys, tmp_path, ct):
    Image.fromarray(np.zeros((100, 80), dtype=np.uint8)).save(tmp_path / "small.png")
    code, _, err = run(capsys, "fuse", "--mr", ct[0], "--func", tmp_path / "small.png", "-o", tmp_path / "o.png")
    assert_one_line_error(code, err, "16009.png is 256x256", "small.png is 100x80")
    assert not (tmp_path / "o.png").exists()


def test_unknown_method(capsys, tmp_path, ct):
    code, _, err = run(capsys, "fuse", "--mr", ct[0], "--func", ct[1], "--method", "magic", "-o", tmp_path / "o.png")
    assert_one_line_error(code, err, "unknown method 'magic'", "average")
    assert not (tmp_path / "o.png").exists()


def test_unknown_modality(capsys, tmp_path, ct):
    code, _, err = run(capsys, "fuse", "--mr", ct[0], "--func", ct[1], "--modality", "XRAY", "-o", tmp_path / "o.png")
    assert_one_line_error(code, err, "unknown modality 'XRAY'", "CT, PET, SPECT")


def test_unknown_output_format(capsys, tmp_path, ct):
    code, _, err = run(capsys, "fuse", "--mr", ct[0], "--func", ct[1], "-o", tmp_path / "o.gif")
    assert_one_line_error(code, err, "o.gif", "cannot write this format")


def test_output_exists_needs_overwrite(capsys, tmp_path, ct):
    out = tmp_path / "o.png"
    out.write_bytes(b"precious")
    code, _, err = run(capsys, "fuse", "--mr", ct[0], "--func", ct[1], "-o", out)
    assert_one_line_error(code, err, "o.png", "already exists", "--overwrite")
    assert out.read_bytes() == b"precious"
    code, _, _ = run(capsys, "fuse", "--mr", ct[0], "--func", ct[1], "-o", out, "--overwrite")
    assert code == 0 and read_image(out).shape == (256, 256)


def test_usage_error_is_one_line(capsys):
    code, _, err = run(capsys, "fuse", "--mr", "x.png")
    assert_one_line_error(code, err, "required")


def _pairs_dir(aanlib_dir, tmp_path, pair="SPECT-MRI", mod="SPECT", n=3):
    root = tmp_path / "pairs"
    for sub in ("MRI", mod):
        (root / sub).mkdir(parents=True)
        for f in sorted((aanlib_dir / pair / "test" / sub).iterdir())[:n]:
            shutil.copy(f, root / sub / f.name)
    return root


def test_fuse_dir_writes_same_file_names(capsys, tmp_path, aanlib_dir):
    root = _pairs_dir(aanlib_dir, tmp_path)
    code, out, _ = run(capsys, "fuse-dir", root, "-o", tmp_path / "out", "--method", "max")
    assert code == 0 and "3 fused SPECT-MRI" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in (root / "MRI").iterdir())
    assert read_image(next((tmp_path / "out").iterdir())).shape == (256, 256, 3)
    code, _, err = run(capsys, "fuse-dir", root, "-o", tmp_path / "out")
    assert_one_line_error(code, err, "already exist")


def test_fuse_dir_missing_partner(capsys, tmp_path, aanlib_dir):
    root = _pairs_dir(aanlib_dir, tmp_path)
    missing = sorted((root / "SPECT").iterdir())[0]
    missing.unlink()
    code, _, err = run(capsys, "fuse-dir", root, "-o", tmp_path / "out")
    assert_one_line_error(code, err, missing.name, "no partner")
    assert not (tmp_path / "out").exists()


def test_methods_lists_registry(capsys):
    code, out, _ = run(capsys, "methods")
    assert code == 0
    for name in ("average", "max", DEFAULT_METHOD):
        assert name in out
    assert "reference:" in out


def test_demo_end_to_end(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "-o", tmp_path)
    assert code == 0
    sample_dir = sample_folders()[0].root.parent
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 8  # 3 pairs x (fused, figure) + the SPM T1+PET volume and its preview
    volume = nib.load(tmp_path / "volume_PET-MRI_fused.nii.gz")
    assert volume.shape == (91, 109, 91) and volume.get_data_dtype().names == ("R", "G", "B")
    assert read_image(tmp_path / "volume_PET-MRI_preview.png").shape[0] > 3 * 200
    ct = read_image(tmp_path / "CT-MRI_16012_fused.png")
    pet = read_image(tmp_path / "PET-MRI_25038_fused.png")
    spect = read_image(tmp_path / "SPECT-MRI_15009_fused.png")
    assert ct.ndim == 2 and pet.shape == (256, 256, 3) and spect.shape == (256, 256, 3)
    assert read_image(tmp_path / "PET-MRI_25038_figure.png").shape[1] > 3 * 256
    # PET/SPECT keep their own colour scale: hue unchanged wherever the source is clearly coloured
    for fused, src in ((pet, "PET-MRI/PET/25038.png"), (spect, "SPECT-MRI/SPECT/15009.png")):
        source = rgb_to_hsv(read_image(sample_dir / src))
        hsv = rgb_to_hsv(fused)
        mask = (source[..., 1] > 0.5) & (source[..., 2] > 0.3) & (hsv[..., 2] > 0.3)
        assert mask.sum() > 1000
        dh = np.abs(hsv[..., 0] - source[..., 0])[mask]
        assert np.median(np.minimum(dh, 1 - dh)) < 0.01
    code, _, err = run(capsys, "demo", "-o", tmp_path)
    assert_one_line_error(code, err, "already exists")


def test_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "msgfusion.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for cmd in ("fuse", "fuse-dir", "methods", "demo"):
        assert cmd in proc.stdout


def test_weights_option_uses_a_trained_file_and_rejects_bad_ones(capsys, tmp_path, pet,
                                                                 aanlib_dir):
    from msgfusion.model.msgfusion import PerModality, load_pretrained, save_weights

    pet_only = tmp_path / "pet_only.pt"  # the shipped PET network alone, as `train` writes it
    save_weights(PerModality({"PET": load_pretrained().net("PET")}), pet_only)
    common = ["--mr", pet[0], "--func", pet[1], "--color", "ycbcr"]
    assert run(capsys, "fuse", *common, "-o", tmp_path / "a.png")[0] == 0
    assert run(capsys, "fuse", *common, "--weights", pet_only, "-o", tmp_path / "b.png")[0] == 0
    assert np.array_equal(read_image(tmp_path / "a.png"), read_image(tmp_path / "b.png"))

    root = _pairs_dir(aanlib_dir, tmp_path)  # SPECT pairs: this file has no SPECT network
    code, _, err = run(capsys, "fuse-dir", root, "-o", tmp_path / "out", "--weights", pet_only)
    assert_one_line_error(code, err, str(pet_only), "no network for SPECT")
    assert not any((tmp_path / "out").glob("*.png"))
    code, _, err = run(capsys, "fuse", *common, "--weights", tmp_path / "nope.pt",
                       "-o", tmp_path / "c.png")
    assert_one_line_error(code, err, "nope.pt", "no such weights file")
    not_weights = tmp_path / "not_weights.pt"
    not_weights.write_text("hello")
    code, _, err = run(capsys, "fuse", *common, "--weights", not_weights, "-o", tmp_path / "c.png")
    assert_one_line_error(code, err, "not_weights.pt", "not a MsgFusion weights file")
    code, _, err = run(capsys, "fuse", *common, "--method", "max", "--weights", pet_only,
                       "-o", tmp_path / "c.png")
    assert_one_line_error(code, err, "--method msgfusion")
    assert not (tmp_path / "c.png").exists()
