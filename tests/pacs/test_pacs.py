"""``msgfusion pacs`` against a real Orthanc (tests/pacs/conftest.py): list, fuse a study and
store the result as a new series of it, and the ways it fails. What the PACS holds afterwards is
checked through Orthanc's own REST API, not through the client under test."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from cli_helpers import assert_one_line_error, run
from conftest import SHARED
from dicom_helpers import dciodvfy_errors, new_study, spm_study
from net_helpers import free_port
from orthanc_server import REFUSED_DESCRIPTION

from msgfusion.errors import PacsError


@pytest.fixture(scope="module")
def spm(orthanc):
    """A study of the SPM T1 (MR) and PET templates, one frame of reference."""
    series = spm_study(new_study("DOE^JANE", "SPM-001"))
    for s in series:
        orthanc.upload(s)
    return series


def fuse(capsys, orthanc, study: str, *extra) -> tuple[int, str, str]:
    return run(capsys, "pacs", "fuse", "--url", orthanc.dicomweb, "--study", study,
               "--method", "average", *extra)


def test_list_shows_studies_and_their_series(capsys, orthanc, spm, credentials):
    study = spm[0][0].StudyInstanceUID
    code, out, err = run(capsys, "pacs", "list", "--url", orthanc.dicomweb)
    assert code == 0, err
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if study in line)
    assert "SPM-001" in lines[head] and "DOE^JANE" in lines[head]
    mr_line, pet_line = lines[head + 1], lines[head + 2]
    assert spm[0][0].SeriesInstanceUID in mr_line and " MR " in mr_line
    assert "91 images" in mr_line and "T1 (SPM template)" in mr_line
    assert spm[1][0].SeriesInstanceUID in pet_line and " PT " in pet_line
    code, out, err = run(capsys, "pacs", "list", "--url", orthanc.dicomweb, "--study", study)
    assert code == 0 and out.count("study ") == 1 and out.count("series ") == 2


def test_fuse_stores_one_new_series_in_the_study_with_the_mr_geometry(
        capsys, orthanc, spm, credentials, tmp_path):
    import SimpleITK as sitk

    study = str(spm[0][0].StudyInstanceUID)
    before = orthanc.snapshot()
    code, out, err = fuse(capsys, orthanc, study)
    assert code == 0, err
    new_uid = out.strip().splitlines()[-1]
    # what the PACS holds: everything it had, unchanged, plus the 91 images of one new series
    after = orthanc.snapshot()
    assert {k: after[k] for k in before} == before
    added = orthanc.find("Instance", SeriesInstanceUID=new_uid)
    assert len(added) == len(after) - len(before) == 91
    series = orthanc.find("Series", StudyInstanceUID=study)
    assert len(series) == 3
    mr = {str(ds.SOPInstanceUID): ds for ds in spm[0]}
    folder = tmp_path / "stored"
    folder.mkdir()
    for item in added:
        (folder / f"{item['ID']}.dcm").write_bytes(orthanc.file(item["ID"]))
    stored = [pydicom.dcmread(f) for f in sorted(folder.iterdir())]
    for ds in stored:
        assert ds.StudyInstanceUID == study and ds.PatientID == "SPM-001"
        assert ds.FrameOfReferenceUID == spm[0][0].FrameOfReferenceUID
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        source = mr[ds.SourceImageSequence[0].ReferencedSOPInstanceUID]  # an MR slice
        assert [float(v) for v in ds.ImagePositionPatient] == \
            [float(v) for v in source.ImagePositionPatient]
        assert [float(v) for v in ds.PixelSpacing] == [float(v) for v in source.PixelSpacing]
        assert ds.PhotometricInterpretation == "RGB" and ds.Rows == source.Rows
        assert spm[1][0].SeriesInstanceUID in ds.DerivationDescription
    errors = dciodvfy_errors(next(folder.iterdir()))
    assert not errors, errors
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), new_uid))
    image = reader.Execute()
    assert image.GetSize() == (91, 109, 91)
    assert image.GetSpacing() == pytest.approx((2.0, 2.0, 2.0))
    assert image.GetOrigin() == pytest.approx((-90.0, -90.0, -72.0))
    colour = sitk.GetArrayFromImage(image)  # PET in colour over the grey MR
    assert colour.shape[-1] == 3 and np.ptp(colour[45, ..., 0].astype(int) - colour[45, ..., 2]) > 50


def test_pacs_down_is_one_line(capsys, credentials):
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    code, _, err = run(capsys, "pacs", "list", "--url", url, "--retries", "1")
    assert_one_line_error(code, err, url, "cannot be reached", "Connection refused")


def test_wrong_or_no_credentials_are_refused(capsys, orthanc, spm, monkeypatch):
    study = str(spm[0][0].StudyInstanceUID)
    before = orthanc.snapshot()
    monkeypatch.setenv("MSGFUSION_PACS_USER", "radiology")
    monkeypatch.setenv("MSGFUSION_PACS_PASSWORD", "wrong")
    code, _, err = fuse(capsys, orthanc, study)
    assert_one_line_error(code, err, orthanc.dicomweb, "refused the credentials (HTTP 401)",
                          "MSGFUSION_PACS_PASSWORD")
    monkeypatch.delenv("MSGFUSION_PACS_PASSWORD")
    code, _, err = run(capsys, "pacs", "list", "--url", orthanc.dicomweb)
    assert_one_line_error(code, err, "set both MSGFUSION_PACS_USER and MSGFUSION_PACS_PASSWORD")
    monkeypatch.delenv("MSGFUSION_PACS_USER")
    code, _, err = run(capsys, "pacs", "list", "--url", orthanc.dicomweb)
    assert_one_line_error(code, err, "HTTP 401")
    assert orthanc.snapshot() == before


def test_study_without_mr_and_unknown_study(capsys, orthanc, credentials):
    pet, spect = spm_study(new_study("ROE^RICHARD", "SPM-002"), mr=False, spect=True)
    orthanc.upload(pet)
    orthanc.upload(spect)
    study = str(pet[0].StudyInstanceUID)
    before = orthanc.snapshot()
    code, _, err = fuse(capsys, orthanc, study)
    assert_one_line_error(code, err, study, "has no MR series", pet[0].SeriesInstanceUID, "PT",
                          spect[0].SeriesInstanceUID, "NM")
    code, _, err = fuse(capsys, orthanc, "1.2.3.4.5")
    assert_one_line_error(code, err, "has no study 1.2.3.4.5")
    code, _, err = run(capsys, "pacs", "fuse", "--url", orthanc.dicomweb, "--study", study,
                       "--method", "no-such-method")
    assert_one_line_error(code, err, "no-such-method")
    assert orthanc.snapshot() == before


def test_two_candidate_pet_series_are_listed_then_chosen(capsys, orthanc, credentials):
    series = spm_study(new_study("POE^EDGAR", "SPM-003"), pets=2)
    for s in series:
        orthanc.upload(s)
    study = str(series[0][0].StudyInstanceUID)
    pets = [str(s[0].SeriesInstanceUID) for s in series[1:]]
    before = orthanc.snapshot()
    code, _, err = fuse(capsys, orthanc, study)
    assert_one_line_error(code, err, study, "2 CT, PET or SPECT series", *pets, "--func")
    assert orthanc.snapshot() == before
    code, out, err = fuse(capsys, orthanc, study, "--func", pets[1], "--color", "hsv")
    assert code == 0, err
    new_uid = out.strip().splitlines()[-1]
    stored = orthanc.find("Instance", SeriesInstanceUID=new_uid)
    assert len(stored) == 91
    header = pydicom.dcmread(io.BytesIO(orthanc.file(stored[0]["ID"])), stop_before_pixels=True)
    assert pets[1] in header.DerivationDescription and pets[0] not in header.DerivationDescription


def test_a_refused_store_leaves_no_half_series(orthanc, credentials):
    """Orthanc's filter refuses the new series' images: one error saying so and what is left;
    the PACS holds no image of it."""
    from msgfusion.pacs import PacsClient

    (mr,) = spm_study(new_study("LOE^LENA", "SPM-004"), pets=0)
    orthanc.upload(mr)
    client = PacsClient(orthanc.dicomweb)
    refused = [pydicom.dcmread(io.BytesIO(_bytes(ds))) for ds in mr[:5]]
    uid = pydicom.uid.generate_uid()
    for ds in refused:
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesDescription = REFUSED_DESCRIPTION
    before = orthanc.snapshot()
    with pytest.raises(PacsError, match=r"4 of the 5 images.*were deleted again"):
        client.store(str(mr[0].StudyInstanceUID), refused)
    assert orthanc.snapshot() == before and not orthanc.find("Series", SeriesInstanceUID=uid)


def _bytes(ds) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.slow
def test_mri_dir_phantom_series_are_registered_before_fusion(capsys, orthanc, credentials):
    """The MRI-DIR phantom's MR and CT (different frames of reference) put into one study:
    fused after registration, or refused as doubtful with nothing stored."""
    folder = SHARED / "data" / "volumes" / "mridir"
    study = new_study("MRI-DIR-zzmeatphantom", "MRI-DIR-zzmeatphantom")
    for sub in ("mr_t2", "ct"):
        datasets = []
        for f in sorted((folder / sub).glob("*.dcm")):
            ds = pydicom.dcmread(f)
            ds.StudyInstanceUID = study.StudyInstanceUID
            datasets.append(ds)
        orthanc.upload(datasets)
    before = orthanc.snapshot()
    code, out, err = fuse(capsys, orthanc, str(study.StudyInstanceUID))
    if code == 0:
        assert "registered CT onto MR (different frames of reference)" in out
        new_uid = out.strip().splitlines()[-1]
        assert len(orthanc.find("Instance", SeriesInstanceUID=new_uid)) == 16
    else:  # the registration rules: exit 3, one line, nothing stored
        lines = err.strip().splitlines()
        assert code == 3 and len(lines) == 1 and "doubtful" in lines[0], err
        assert "nothing was stored" in lines[0] and orthanc.snapshot() == before


def test_a_url_that_is_not_the_dicomweb_root_is_one_line(capsys, orthanc, credentials):
    code, _, err = run(capsys, "pacs", "list", "--url", orthanc.url)  # Orthanc's own REST root
    assert_one_line_error(code, err, "the answer is not DICOMweb JSON", "DICOMweb root")
    code, _, err = run(capsys, "pacs", "list", "--url", "ftp://127.0.0.1/dicom-web")
    assert_one_line_error(code, err, "starts with http:// or https://")


def test_a_series_that_is_not_a_volume_is_named(capsys, orthanc, credentials):
    """Exported single images (Secondary Capture, no geometry) filed as the study's MR."""
    from conftest import AANLIB
    from dicom_helpers import png_uint8, secondary_capture

    study = new_study("HOE^HANS", "SC-001")
    (pet,) = spm_study(study, mr=False)
    images = []
    for name in ("16009", "16010"):
        ds = secondary_capture(png_uint8(AANLIB / "CT-MRI" / "test" / "MRI" / f"{name}.png"))
        for field in ("PatientName", "PatientID", "StudyInstanceUID"):
            ds[field] = study[field]
        ds.Modality, ds.SeriesInstanceUID = "MR", images[0].SeriesInstanceUID if images else \
            ds.SeriesInstanceUID
        images.append(ds)
    orthanc.upload(images)
    orthanc.upload(pet)
    before = orthanc.snapshot()
    code, _, err = fuse(capsys, orthanc, str(study.StudyInstanceUID))
    line = assert_one_line_error(code, err, f"series {images[0].SeriesInstanceUID} of study",
                                 "do not form a series", "single images")
    assert "give one file" not in line
    assert "msgfusion-pacs-" not in err and orthanc.snapshot() == before
