"""The command line with exported DICOM slices (the issue's three patients): single DICOM files
are 2-D images wherever PNGs are (fuse, register, fuse-dir), output as PNG or DICOM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from cli_helpers import assert_one_line_error, run
from dicom_helpers import dciodvfy_errors, png_uint8, secondary_capture

from msgfusion.io.images import read_image

NAMES = ("16009", "16010", "16011")


@pytest.fixture
def exported(tmp_path: Path, aanlib_dir: Path) -> Path:
    """Three patients' exported slices, one T1 and one CT each: Secondary Capture, RGB,
    512 x 512, no geometry, names with spaces and parentheses."""
    from PIL import Image

    folder = tmp_path / "export (hospital)"
    folder.mkdir()
    for i, name in enumerate(NAMES, 1):
        for sub, prefix in (("MRI", "T1_DICOM"), ("CT", "CT_DICOM")):
            with Image.open(aanlib_dir / "CT-MRI" / "test" / sub / f"{name}.png") as img:
                rgb = np.asarray(img.convert("RGB").resize((512, 512), Image.NEAREST))
            ds = secondary_capture(rgb, patient=f"PATIENT^{i}")
            ds.save_as(folder / f"{prefix} ({i}).dcm", enforce_file_format=True)
    return folder


def test_exported_slices_fuse_and_register_as_images(capsys, tmp_path, exported):
    mr, ct = exported / "T1_DICOM (3).dcm", exported / "CT_DICOM (3).dcm"
    code, out, err = run(capsys, "register", "--mr", mr, "--func", ct, "-o", tmp_path / "t.tfm")
    assert code == 0, err
    png = tmp_path / "fused (3).png"
    code, out, err = run(capsys, "fuse", "--mr", mr, "--func", ct, "-o", png,
                         "--method", "average")
    assert code == 0, err
    assert "CT-MRI" in out
    expected = (read_image(mr) + read_image(ct)) / 2  # grey RGB files read as grey
    np.testing.assert_allclose(read_image(png), expected, atol=1 / 255 + 1e-6)
    dcm = tmp_path / "fused (3).dcm"
    code, out, err = run(capsys, "fuse", "--mr", mr, "--func", ct, "-o", dcm,
                         "--method", "average")
    assert code == 0, err
    written, source = pydicom.dcmread(dcm), pydicom.dcmread(mr)
    assert written.PatientName == "PATIENT^3"
    assert written.StudyInstanceUID == source.StudyInstanceUID
    np.testing.assert_array_equal(read_image(dcm), read_image(png))
    errors = dciodvfy_errors(dcm)
    assert not errors, errors


def test_a_folder_of_exported_slices_is_not_a_series(capsys, tmp_path, exported):
    code, _, err = run(capsys, "fuse", "--mr", exported, "--func",
                       exported / "CT_DICOM (1).dcm", "-o", tmp_path / "out.nii.gz")
    assert_one_line_error(code, err, str(exported), "do not form a series", "single images")


def test_fuse_dir_with_dicom_pairs_writes_dicom(capsys, tmp_path, exported):
    pairs = tmp_path / "pairs"
    for sub, prefix in (("MRI", "T1_DICOM"), ("CT", "CT_DICOM")):
        (pairs / sub).mkdir(parents=True)
        for i in range(1, 4):
            (pairs / sub / f"patient {i}.dcm").write_bytes(
                (exported / f"{prefix} ({i}).dcm").read_bytes())
    out = tmp_path / "fused"
    code, stdout, err = run(capsys, "fuse-dir", pairs, "-o", out, "--method", "average", "-q")
    assert code == 0, err
    assert "wrote 3 fused CT-MRI images" in stdout
    for i in range(1, 4):
        written = pydicom.dcmread(out / f"patient {i}.dcm")
        assert written.PatientName == f"PATIENT^{i}"
        mr = pydicom.dcmread(pairs / "MRI" / f"patient {i}.dcm")
        assert written.StudyInstanceUID == mr.StudyInstanceUID
        assert written.SourceImageSequence[0].ReferencedSOPInstanceUID == mr.SOPInstanceUID


def test_one_frame_of_a_multiframe_dicom_file_is_fused(capsys, tmp_path, aanlib_dir):
    folder = aanlib_dir / "CT-MRI" / "test"
    mr, ct = png_uint8(folder / "MRI" / "16009.png"), png_uint8(folder / "CT" / "16009.png")
    ds = secondary_capture(np.stack([ct, mr]))  # frame 1 is the MR
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    del ds.PlanarConfiguration
    ds.Rows, ds.Columns, ds.NumberOfFrames = *mr.shape, 2
    frames = tmp_path / "two frames.dcm"
    ds.save_as(frames, enforce_file_format=True)
    ct_file = tmp_path / "ct.dcm"
    secondary_capture(ct).save_as(ct_file, enforce_file_format=True)
    out = tmp_path / "fused.png"
    code, _, err = run(capsys, "fuse", "--mr", frames, "--func", ct_file, "-o", out,
                       "--method", "max")
    assert_one_line_error(code, err, "two frames.dcm: holds 2 frames", "--frame N")
    code, _, err = run(capsys, "fuse", "--mr", frames, "--func", ct_file, "-o", out,
                       "--method", "max", "--frame", "1")
    assert code == 0, err
    np.testing.assert_allclose(read_image(out), np.maximum(mr, ct) / 255, atol=1 / 255 + 1e-6)


def test_cohort_manifests_take_a_dicom_file_as_a_slice(exported):
    from conftest import SHARED

    from msgfusion.cohort.manifest import input_kind

    assert input_kind(exported / "T1_DICOM (1).dcm") == "slice"
    series_file = sorted((SHARED / "data" / "volumes" / "mridir" / "ct").glob("*.dcm"))[0]
    assert input_kind(series_file) == "volume"
