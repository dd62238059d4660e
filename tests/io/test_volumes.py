"""Reading and writing volumes on the real files of ../shared/data/volumes: geometry against
nibabel's and SimpleITK's readings, round trips, DICOM sorting, rescale, several series, gaps,
4-D, and bad input."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from msgfusion.errors import ImageReadError, OutputExistsError
from msgfusion.io.volumes import (
    MR_HEADER_FIELDS,
    guess_modality,
    is_volume_path,
    read_volume,
    write_volume,
)
from msgfusion.volume import Volume

VOLUMES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "volumes"
SPM = VOLUMES / "spm_oldnorm"
RIRE = VOLUMES / "rire" / "training_001_mr_T1.mha"
MR_DIR = VOLUMES / "mridir" / "mr_t2"
CT_DIR = VOLUMES / "mridir" / "ct"


@pytest.fixture(scope="module", autouse=True)
def _data():
    if not VOLUMES.is_dir():
        pytest.fail(f"{VOLUMES} is missing: the tests need ../shared beside the repository")


def sorted_by_z(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"),
                  key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                      .ImagePositionPatient[2]))


def assert_same_geometry(a: Volume, b: Volume, tol: float = 1e-6) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a.spacing, b.spacing, atol=tol, rtol=0)
    np.testing.assert_allclose(a.origin, b.origin, atol=tol, rtol=0)
    np.testing.assert_allclose(a.direction, b.direction, atol=tol, rtol=0)


def sitk_volume(image: sitk.Image) -> Volume:
    return Volume.from_sitk(image)


@pytest.fixture
def mr_subset(tmp_path) -> Path:
    """Six consecutive MR T2 slices (2.5 mm apart), copied under their original names."""
    folder = tmp_path / "mr"
    folder.mkdir()
    for f in sorted_by_z(MR_DIR)[5:11]:
        shutil.copy(f, folder / f.name)
    return folder


# --- NIfTI ---------------------------------------------------------------------------------------

def test_nifti_is_read_in_lps_like_simpleitk_reads_it():
    t1 = read_volume(SPM / "T1.nii.gz")
    assert t1.shape == (91, 109, 91)
    assert t1.spacing == (2.0, 2.0, 2.0)
    # RAS affine [[-2,0,0,90],[0,2,0,-126],[0,0,2,-72]] -> LPS: x flips back, y flips
    assert t1.origin == (-90.0, 126.0, -72.0)
    np.testing.assert_array_equal(t1.direction, np.diag([1.0, -1.0, 1.0]))
    ref = sitk_volume(sitk.ReadImage(str(SPM / "T1.nii.gz")))
    assert_same_geometry(t1, ref)
    # scl_slope applied: real values, as nibabel's get_fdata gives them (x, y, z -> z, y, x)
    expected = nib.load(SPM / "T1.nii.gz").get_fdata().transpose(2, 1, 0)
    np.testing.assert_allclose(t1.data, expected, rtol=1e-6)
    assert t1.data.max() == pytest.approx(0.8745, abs=1e-4)


def test_big_endian_spect_keeps_its_integer_values():
    spect = read_volume(SPM / "SPECT.nii.gz")
    assert spect.data.dtype == np.dtype("int16") and spect.data.dtype.isnative
    assert (spect.data.min(), spect.data.max()) == (0, 1929)
    assert guess_modality(spect) == "SPECT"  # from the header's description
    assert guess_modality(read_volume(SPM / "PET.nii.gz")) == "PET"  # from the file name


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".mhd", ".nrrd"])
def test_round_trip_keeps_geometry_and_voxels(tmp_path, suffix):
    for source in (SPM / "SPECT.nii.gz", RIRE):
        vol = read_volume(source)
        out = write_volume(tmp_path / f"{source.name.split('.')[0]}{suffix}", vol)
        back = read_volume(out)
        assert_same_geometry(back, vol)
        assert back.data.dtype == vol.data.dtype
        np.testing.assert_array_equal(back.data, vol.data)
    assert not list(tmp_path.glob(".*")), "no temporary files left"


def test_rgb_round_trip_nifti_rgb24_and_metaimage(tmp_path):
    t1 = read_volume(SPM / "T1.nii.gz")
    rgb = np.stack([t1.data * 255, 255 - t1.data * 255, np.full(t1.shape, 7)], -1).astype(np.uint8)
    vol = t1.with_data(rgb)
    for name in ("rgb.nii.gz", "rgb.mha"):
        back = read_volume(write_volume(tmp_path / name, vol))
        assert back.is_rgb and back.data.dtype == np.uint8
        np.testing.assert_array_equal(back.data, rgb)
        assert_same_geometry(back, t1)
    assert nib.load(tmp_path / "rgb.nii.gz").get_data_dtype().names == ("R", "G", "B")


def test_metaimage_geometry():
    vol = read_volume(RIRE)
    assert vol.shape == (26, 256, 256) and vol.spacing == (1.25, 1.25, 4.0)
    assert vol.data.dtype == np.int16 and (vol.data.min(), vol.data.max()) == (2, 1626)


def test_four_d_needs_a_frame(tmp_path):
    t1 = nib.load(SPM / "T1.nii.gz")
    frames = np.stack([np.asarray(t1.dataobj) + k for k in range(3)], axis=-1).astype(np.int16)
    nib.save(nib.Nifti1Image(frames, t1.affine), tmp_path / "fmri.nii.gz")
    with pytest.raises(ImageReadError, match=r"4-D volume with 3 frames.*--frame"):
        read_volume(tmp_path / "fmri.nii.gz")
    with pytest.raises(ImageReadError, match="out of range"):
        read_volume(tmp_path / "fmri.nii.gz", frame=3)
    vol = read_volume(tmp_path / "fmri.nii.gz", frame=2)
    np.testing.assert_array_equal(vol.data, frames[..., 2].transpose(2, 1, 0))
    # the same for a 4-D MetaImage
    image = sitk.JoinSeries([sitk.ReadImage(str(RIRE))] * 2)
    sitk.WriteImage(image, str(tmp_path / "4d.mha"))
    with pytest.raises(ImageReadError, match="2 frames"):
        read_volume(tmp_path / "4d.mha")
    assert read_volume(tmp_path / "4d.mha", frame=1).shape == (26, 256, 256)


# --- DICOM ---------------------------------------------------------------------------------------

def test_dicom_series_matches_simpleitk(tmp_path):
    for folder in (MR_DIR, CT_DIR):
        vol = read_volume(folder)
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        ref = sitk_volume(reader.Execute())
        assert_same_geometry(vol, ref)
        np.testing.assert_array_equal(vol.data, ref.data)
    assert vol.meta["frame_of_reference"] and guess_modality(vol) == "CT"


def test_dicom_one_file_reads_its_series_and_ct_is_in_hounsfield_units():
    any_file = next(CT_DIR.glob("*.dcm"))
    ct = read_volume(any_file)
    assert ct.shape == (32, 512, 512) and ct.spacing == pytest.approx((0.390625, 0.390625, 1.25))
    first = pydicom.dcmread(sorted_by_z(CT_DIR)[0])
    assert float(first.RescaleIntercept) == -1024
    np.testing.assert_array_equal(ct.data[0], first.pixel_array.astype(np.int32) - 1024)
    assert ct.data.min() == -2048 and ct.data.max() == 3071


def test_dicom_sorted_by_position_not_name_or_instance_number(tmp_path, mr_subset):
    expected = read_volume(mr_subset)
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    files = sorted_by_z(mr_subset)
    order = [3, 0, 5, 1, 4, 2]
    for new_name, i in enumerate(order):  # names in scrambled order, InstanceNumbers reversed
        ds = pydicom.dcmread(files[i])
        ds.InstanceNumber = 100 - i
        ds.save_as(shuffled / f"IMG{new_name:03d}")  # no .dcm suffix: found by the DICM marker
    vol = read_volume(shuffled)
    np.testing.assert_array_equal(vol.data, expected.data)
    assert_same_geometry(vol, expected)
    z = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in files]
    assert vol.origin[2] == pytest.approx(min(z)) and vol.spacing[2] == pytest.approx(2.5)


def test_dicom_rescale_slope_and_intercept_applied(tmp_path, mr_subset):
    raw = read_volume(mr_subset).data.astype(np.float64)
    for slope, intercept, dtype in ((2, -100, np.int16), (0.5, 10.25, np.float32)):
        folder = tmp_path / f"rescaled_{slope}"
        folder.mkdir()
        for f in mr_subset.iterdir():
            ds = pydicom.dcmread(f)
            ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
            ds.save_as(folder / f.name)
        vol = read_volume(folder)
        assert vol.data.dtype == dtype
        np.testing.assert_allclose(vol.data, raw * slope + intercept, rtol=1e-6)


def test_several_series_listed_and_chosen(tmp_path, mr_subset):
    mixed = tmp_path / "mixed"
    shutil.copytree(mr_subset, mixed)
    for f in sorted_by_z(CT_DIR)[:4]:
        shutil.copy(f, mixed / f"ct_{f.name}")
    (mixed / "notes.txt").write_text("not DICOM")  # ignored
    mr_uid = str(pydicom.dcmread(next(mr_subset.iterdir())).SeriesInstanceUID)
    ct_uid = str(pydicom.dcmread(next(CT_DIR.iterdir())).SeriesInstanceUID)
    with pytest.raises(ImageReadError) as err:
        read_volume(mixed)
    message = str(err.value)
    assert "2 DICOM series" in message and mr_uid in message and ct_uid in message
    assert "--series" in message and "6 files" in message and "4 files" in message
    assert read_volume(mixed, series=[ct_uid]).shape == (4, 512, 512)
    assert read_volume(mixed, series=["1.2.3", mr_uid]).shape == (6, 512, 512)
    assert read_volume(mixed / "ct_" f"{sorted_by_z(CT_DIR)[0].name}").shape == (4, 512, 512)


def test_missing_and_unevenly_spaced_slices_are_reported(tmp_path, mr_subset):
    gap = tmp_path / "gap"
    shutil.copytree(mr_subset, gap)
    sorted_by_z(gap)[2].unlink()
    with pytest.raises(ImageReadError, match=r"missing slice.*gap of 5 mm.*spacing is 2\.5 mm.*"
                                             r"\(1 slice\(s\) missing\)"):
        read_volume(gap)
    uneven = tmp_path / "uneven"
    shutil.copytree(mr_subset, uneven)
    f = sorted_by_z(uneven)[3]
    ds = pydicom.dcmread(f)
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 0.7
    ds.save_as(f)
    with pytest.raises(ImageReadError, match="unevenly spaced"):
        read_volume(uneven)


def test_dicom_time_series_needs_a_frame(tmp_path, mr_subset):
    folder = tmp_path / "dynamic"
    folder.mkdir()
    for t in (1, 2):
        for f in mr_subset.iterdir():
            ds = pydicom.dcmread(f)
            ds.TemporalPositionIdentifier = t
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            if t == 2:
                ds.PixelData = (ds.pixel_array + 1).astype(ds.pixel_array.dtype).tobytes()
            ds.save_as(folder / f"t{t}_{f.name}")
    with pytest.raises(ImageReadError, match=r"2 frames.*--frame"):
        read_volume(folder)
    first, second = read_volume(folder, frame=0), read_volume(folder, frame=1)
    np.testing.assert_array_equal(second.data, first.data + 1)
    np.testing.assert_array_equal(first.data, read_volume(mr_subset).data)


def test_dicom_output_is_one_series_on_the_mr_geometry(tmp_path):
    mr = read_volume(MR_DIR)
    fused = mr.with_data(np.linspace(0, 1, mr.data.size, dtype=np.float32).reshape(mr.shape))
    out = write_volume(tmp_path / "fused_dicom", fused, source=mr, derivation="test fusion")
    files = sorted(out.iterdir())
    assert len(files) == 16
    headers = [pydicom.dcmread(f) for f in files]
    mr_headers = {round(float(h.ImagePositionPatient[2]), 3): h for h in mr.meta["dicom"]}
    assert len({h.SeriesInstanceUID for h in headers}) == 1
    assert headers[0].SeriesInstanceUID != mr.meta["series_uid"]
    for h in headers:
        src = mr_headers[round(float(h.ImagePositionPatient[2]), 3)]
        assert h.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert h.FrameOfReferenceUID == src.FrameOfReferenceUID
        assert h.StudyInstanceUID == src.StudyInstanceUID and h.PatientID == src.PatientID
        # on the volume's regular grid; the MR's own headers deviate from it by up to 2e-6 mm
        np.testing.assert_allclose([float(v) for v in h.ImagePositionPatient],
                                   [float(v) for v in src.ImagePositionPatient], atol=1e-5)
        np.testing.assert_allclose([float(v) for v in h.ImageOrientationPatient],
                                   [float(v) for v in src.ImageOrientationPatient], atol=1e-6)
        assert [float(v) for v in h.PixelSpacing] == [float(v) for v in src.PixelSpacing]
        assert h.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert list(h.ImageType) == ["DERIVED", "SECONDARY"]
        assert h.DerivationDescription == "test fusion"
        assert h.SOPInstanceUID not in {m.SOPInstanceUID for m in mr.meta["dicom"]}
    for name in ("PatientName", "StudyDate", "SliceThickness"):
        assert name in MR_HEADER_FIELDS
        assert headers[0][name].value == mr.meta["dicom"][0][name].value
    back = read_volume(out)
    assert_same_geometry(back, mr)
    np.testing.assert_array_equal(back.data, np.round(fused.data * 255).astype(np.uint8))
    reader = sitk.ImageSeriesReader()
    assert len(reader.GetGDCMSeriesIDs(str(out))) == 1
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(out)))
    assert_same_geometry(sitk_volume(reader.Execute()), mr)


def test_dicom_round_trip_keeps_voxels_and_colour(tmp_path):
    ct = read_volume(CT_DIR)
    back = read_volume(write_volume(tmp_path / "ct", ct, source=ct))
    assert_same_geometry(back, ct)
    np.testing.assert_array_equal(back.data, ct.data)
    t1 = read_volume(SPM / "T1.nii.gz")
    rgb = t1.with_data(np.repeat((t1.data[..., None] * 255).astype(np.uint8), 3, axis=-1))
    out = write_volume(tmp_path / "rgb", rgb)
    assert pydicom.dcmread(next(out.iterdir())).PhotometricInterpretation == "RGB"
    back = read_volume(out)  # the same voxels in space (DICOM stacks along row x column)
    assert back.is_rgb and back.shape == rgb.shape
    np.testing.assert_allclose(back.affine[:3, 3] + back.affine[:3, 2] * (back.shape[0] - 1),
                               rgb.origin, atol=1e-6)
    np.testing.assert_array_equal(back.data[::-1], rgb.data)


# --- Writing safely and bad input ----------------------------------------------------------------

def test_no_overwrite_without_asking_and_atomic_replacement(tmp_path):
    vol = read_volume(SPM / "PET.nii.gz")
    out = write_volume(tmp_path / "pet.nii.gz", vol)
    with pytest.raises(OutputExistsError, match="already exists"):
        write_volume(out, vol)
    write_volume(out, vol.with_data(vol.data * 0), overwrite=True)
    assert read_volume(out).data.max() == 0
    folder = write_volume(tmp_path / "series", vol.with_data((vol.data * 100).astype(np.int16)))
    with pytest.raises(OutputExistsError):
        write_volume(folder, vol)
    bad = vol.with_data(vol.data.astype(np.int64))  # not storable as DICOM: fails mid-way
    with pytest.raises(ValueError):
        write_volume(folder, bad, overwrite=True)
    with pytest.raises(ValueError):
        write_volume(tmp_path / "never", bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pet.nii.gz", "series"]
    assert len(list(folder.iterdir())) == 91


def test_bad_inputs_are_one_clear_error(tmp_path, mr_subset):
    truncated = tmp_path / "truncated"
    shutil.copytree(mr_subset, truncated)
    victim = sorted(truncated.iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:200_000])
    with pytest.raises(ImageReadError, match=f"{victim.name}: truncated"):
        read_volume(truncated)
    header_cut = tmp_path / "header_cut.dcm"
    header_cut.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(ImageReadError, match="header_cut.dcm"):
        read_volume(header_cut)

    broken = tmp_path / "broken.nii"
    raw = bytearray(gzip.decompress((SPM / "PET.nii.gz").read_bytes()))
    raw[344:348] = b"xx1\x00"  # the magic string
    broken.write_bytes(bytes(raw))
    with pytest.raises(ImageReadError, match="broken.nii: cannot read NIfTI"):
        read_volume(broken)
    zero_voxels = tmp_path / "zero_voxels.nii"
    raw = bytearray(gzip.decompress((SPM / "PET.nii.gz").read_bytes()))
    raw[252:256] = np.array([0, 2], "<i2").tobytes()  # qform_code 0, sform_code 2
    raw[280:296] = np.zeros(4, "<f4").tobytes()  # srow_x: a zero voxel size along x
    zero_voxels.write_bytes(bytes(raw))
    with pytest.raises(ImageReadError, match="zero_voxels.nii: broken header"):
        read_volume(zero_voxels)
    cut_gz = tmp_path / "cut.nii.gz"
    cut_gz.write_bytes((SPM / "PET.nii.gz").read_bytes()[:100_000])
    with pytest.raises(ImageReadError, match="cut.nii.gz"):
        read_volume(cut_gz)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageReadError, match="empty folder"):
        read_volume(empty)
    no_dicom = tmp_path / "no_dicom"
    no_dicom.mkdir()
    (no_dicom / "LICENSE").write_text("text")
    with pytest.raises(ImageReadError, match="no DICOM image series"):
        read_volume(no_dicom)
    with pytest.raises(ImageReadError, match="file not found"):
        read_volume(tmp_path / "nothing.nii.gz")
    (tmp_path / "table.csv").write_text("a,b")
    with pytest.raises(ImageReadError, match="not a volume"):
        read_volume(tmp_path / "table.csv")


def test_volume_paths_are_recognised(tmp_path):
    assert is_volume_path(SPM / "T1.nii.gz") and is_volume_path(RIRE) and is_volume_path(MR_DIR)
    renamed = tmp_path / "slice"
    files = sorted(MR_DIR.glob("*.dcm"))
    shutil.copy(files[0], renamed)
    assert not is_volume_path(renamed)  # on its own: a 2-D image (io/dicom_image.py)
    shutil.copy(files[1], tmp_path / "other")
    assert is_volume_path(renamed)  # beside another file of its series (found by DICM): a slice
    (tmp_path / "scan.png").mkdir()  # a folder named like an image is not a DICOM series
    assert not is_volume_path(tmp_path / "scan.png")
    assert not is_volume_path(Path(__file__).parents[2].parent / "shared" / "data" / "aanlib"
                              / "CT-MRI" / "test" / "CT" / "16009.png")
