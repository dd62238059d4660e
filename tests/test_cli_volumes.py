"""The command line with volumes: fuse and fuse-dir on the real volumes, and every bad input
(one line, exit code 2, nothing written)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from msgfusion.io.images import read_image
from msgfusion.io.volumes import read_volume

from cli_helpers import assert_one_line_error, run

VOLUMES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "volumes"
SPM = VOLUMES / "spm_oldnorm"
MR_DIR = VOLUMES / "mridir" / "mr_t2"
CT_DIR = VOLUMES / "mridir" / "ct"


def test_fuse_nifti_writes_rgb_intensity_and_preview(capsys, tmp_path):
    out, inten, preview = tmp_path / "fused.nii.gz", tmp_path / "i.nii.gz", tmp_path / "p.png"
    code, stdout, _ = run(capsys, "fuse", "--mr", SPM / "T1.nii.gz", "--func", SPM / "PET.nii.gz",
                          "--method", "average", "-o", out, "--intensity", inten,
                          "--preview", preview)
    assert code == 0 and "PET-MRI" in stdout and "91x109x91" in stdout
    t1 = nib.load(SPM / "T1.nii.gz")
    fused = nib.load(out)
    assert fused.get_data_dtype().names == ("R", "G", "B") and fused.shape == t1.shape
    np.testing.assert_allclose(fused.affine, t1.affine, atol=1e-6)
    assert fused.header["sform_code"] == 4  # the MR's MNI code is kept
    intensity = read_volume(inten)
    assert intensity.data.dtype == np.float32
    assert 0 <= intensity.data.min() < intensity.data.max() <= 1
    assert read_image(preview).shape[2] == 3
    # nothing is replaced without --overwrite, and nothing is touched then
    before = out.read_bytes()
    code, _, err = run(capsys, "fuse", "--mr", SPM / "T1.nii.gz", "--func", SPM / "PET.nii.gz",
                       "-o", out)
    assert_one_line_error(code, err, "already exists", "--overwrite")
    assert out.read_bytes() == before


def test_fuse_dicom_ct_with_a_transform_into_a_dicom_series(capsys, tmp_path):
    tfm = tmp_path / "ct_to_mr.tfm"
    readme = sitk.AffineTransform(3)  # the README's rigid relation of the phantom's CT and MR
    readme.SetMatrix((-1, 0, 0, 0, 1, 0, 0, 0, -1))
    readme.SetTranslation((-11.0, -18.0, -17.0))
    sitk.WriteTransform(readme, str(tfm))
    out = tmp_path / "fused_series"
    code, stdout, err = run(capsys, "fuse", "--mr", MR_DIR, "--func", next(CT_DIR.iterdir()),
                            "--method", "max", "--transform", tfm, "--window", "1000,200",
                            "--axis", "coronal", "-o", out)
    assert code == 0, err
    assert "CT-MRI" in stdout
    mr = read_volume(MR_DIR)
    back = read_volume(out)
    assert back.shape == mr.shape and back.data.dtype == np.uint8
    np.testing.assert_allclose(back.origin, mr.origin, atol=1e-6)
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in out.iterdir()]
    assert {h.FrameOfReferenceUID for h in headers} == {mr.meta["frame_of_reference"]}
    assert "CT-MRI fused with max" in headers[0].DerivationDescription


def test_fuse_dir_over_volume_pairs(capsys, tmp_path):
    pairs = tmp_path / "pairs"
    for sub, src in (("MRI", "T1"), ("SPECT", "SPECT")):
        (pairs / sub).mkdir(parents=True)
        for name in ("a.nii.gz", "b.nii.gz"):
            (pairs / sub / name).symlink_to(SPM / f"{src}.nii.gz")
    code, stdout, err = run(capsys, "fuse-dir", pairs, "-o", tmp_path / "out", "--method",
                            "average", "--format", ".mha")
    assert code == 0, err
    assert "2 fused SPECT-MRI volumes" in stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mha", "b.mha"]
    assert read_volume(tmp_path / "out" / "a.mha").is_rgb
    (tmp_path / "out" / "b.mha").unlink()  # an interrupted run, resumed
    code, stdout, err = run(capsys, "fuse-dir", pairs, "-o", tmp_path / "out", "--method",
                            "average", "--format", ".mha", "--skip-existing")
    assert code == 0 and "wrote 1 fused SPECT-MRI volumes" in stdout and "kept 1" in stdout
    (pairs / "SPECT" / "b.nii.gz").unlink()
    code, _, err = run(capsys, "fuse-dir", pairs, "-o", tmp_path / "out2")
    assert_one_line_error(code, err, "without a partner", "b.nii.gz")
    assert not (tmp_path / "out2").exists()


@pytest.fixture
def bad_inputs(tmp_path) -> dict[str, tuple[Path, Path, str]]:
    """name -> (MR, functional, expected fragment of the error line)."""
    mr_files = sorted(MR_DIR.iterdir(), key=lambda f: float(
        pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]))
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for f in mr_files[:4]:
        shutil.copy(f, truncated / f.name)
    victim = truncated / mr_files[1].name
    victim.write_bytes(victim.read_bytes()[:100_000])
    broken = tmp_path / "broken.nii"
    raw = bytearray(gzip.decompress((SPM / "PET.nii.gz").read_bytes()))
    raw[344:348] = b"xx1\x00"
    broken.write_bytes(bytes(raw))
    t1 = nib.load(SPM / "T1.nii.gz")
    four_d = tmp_path / "dynamic_pet.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([np.asarray(t1.dataobj)] * 2, -1), t1.affine), four_d)
    empty = tmp_path / "empty"
    empty.mkdir()
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    for f in mr_files[:2] + sorted(CT_DIR.iterdir())[:2]:
        shutil.copy(f, unrelated / f"{f.parent.name}_{f.name}")
    far = tmp_path / "far_pet.nii.gz"
    moved = t1.affine.copy()
    moved[2, 3] += 400
    nib.save(nib.Nifti1Image(np.asarray(nib.load(SPM / "PET.nii.gz").dataobj), moved), far)
    pet = SPM / "PET.nii.gz"
    return {
        "truncated DICOM": (truncated, CT_DIR, f"{victim.name}: truncated"),
        "broken NIfTI header": (SPM / "T1.nii.gz", broken, "broken.nii: cannot read NIfTI"),
        "4-D without --frame": (SPM / "T1.nii.gz", four_d, "--frame N (0..1)"),
        "empty folder": (empty, pet, "empty: empty folder"),
        "unrelated DICOMs": (unrelated, pet, "2 DICOM series in one folder"),
        "disjoint space": (SPM / "T1.nii.gz", far, "do not overlap in physical space"),
        "other frame of reference": (MR_DIR, CT_DIR, "different DICOM frames of reference"),
    }


def test_every_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, bad_inputs):
    for name, (mr, func, fragment) in bad_inputs.items():
        out = tmp_path / "out" / "fused.nii.gz"
        code, _, err = run(capsys, "fuse", "--mr", mr, "--func", func, "--modality", "PET",
                           "--method", "average", "-o", out,
                           "--preview", tmp_path / "out" / "p.png")
        assert_one_line_error(code, err, fragment)
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), name


def test_bad_options_are_one_line(capsys, tmp_path):
    t1, pet = SPM / "T1.nii.gz", SPM / "PET.nii.gz"
    for extra, fragment in ((["--window", "wide"], "CT window 'wide'"),
                            (["--transform", tmp_path / "none.tfm"], "transform file not found"),
                            (["--axis", "oblique"], "invalid choice")):
        code, _, err = run(capsys, "fuse", "--mr", t1, "--func", pet, "--modality", "CT",
                           "-o", tmp_path / "f.nii.gz", *extra)
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run(capsys, "fuse", "--mr", t1, "--func", pet, "-o", tmp_path / "f.png")
    assert_one_line_error(code, err, "f.png: cannot write this format")
    pngs = VOLUMES.parent / "aanlib" / "PET-MRI" / "test"
    code, _, err = run(capsys, "fuse", "--mr", pngs / "MRI" / "25015.png", "--func",
                       pngs / "PET" / "25015.png", "--preview", tmp_path / "p.png",
                       "-o", tmp_path / "f.png")
    assert_one_line_error(code, err, "--preview: for volumes")
    assert not list(tmp_path.iterdir())
