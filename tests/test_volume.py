"""Volume geometry (orientation, overlap, resampling), per-modality intensities and fuse_volume,
on the real volumes of ../shared/data/volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import msgfusion
from msgfusion.api import colorize, default_cmap, fuse_volume, load_volume, volume_preview
from msgfusion.errors import MsgFusionError, SpaceMismatchError, UnknownModalityError
from msgfusion.intensity import (
    CT_WINDOWS,
    IntensityScale,
    ct_scale,
    functional_scale,
    mr_scale,
    parse_window,
)
from msgfusion.io.color import luminance
from msgfusion.volume import AXES, Orientation, Volume, check_same_space, plane, resample_to

VOLUMES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "volumes"
SPM = VOLUMES / "spm_oldnorm"


@pytest.fixture(scope="module")
def t1() -> Volume:
    return load_volume(SPM / "T1.nii.gz")


@pytest.fixture(scope="module")
def pet() -> Volume:
    return load_volume(SPM / "PET.nii.gz")


def shifted(volume: Volume, offset: tuple[float, float, float]) -> Volume:
    return Volume(volume.data, volume.spacing, tuple(np.add(volume.origin, offset)),
                  volume.direction, {"path": "shifted"})


# --- Orientation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["LPS", "RAS", "PIR", "SLA", "IRP"])
def test_canonical_view_does_not_depend_on_storage_order(t1, code):
    reoriented = Volume.from_sitk(sitk.DICOMOrient(t1.to_sitk(), code))
    assert reoriented.shape != t1.shape or code in ("LPS", "RAS")
    a = Orientation.of(t1).view(t1.data)
    b = Orientation.of(reoriented).view(reoriented.data)
    np.testing.assert_array_equal(a, b)


def test_planes_are_displayed_radiologically(t1):
    """Axial: anterior at the top, the patient's right on the left; coronal/sagittal: superior
    at the top. Checked with the world coordinates of the displayed corners."""
    orient = Orientation.of(t1)
    z, y, x = np.meshgrid(*(np.arange(n) for n in t1.shape), indexing="ij")
    world = np.stack([x, y, z, np.ones_like(x)], -1) @ t1.affine.T  # LPS of every voxel
    view = orient.view(world)
    axial, coronal, sagittal = (plane(view, a, 20) for a in AXES)
    assert axial[0, 0, 1] < axial[-1, 0, 1]  # P grows downwards: anterior at the top
    assert axial[0, 0, 0] < axial[0, -1, 0]  # L grows rightwards: patient's right on the left
    assert coronal[0, 0, 2] > coronal[-1, 0, 2] and sagittal[0, 0, 2] > sagittal[-1, 0, 2]
    assert sagittal[0, 0, 1] < sagittal[0, -1, 1]  # anterior on the left
    # a view: writing into a plane writes into the volume
    data = np.zeros(t1.shape, np.float32)
    plane(orient.view(data), "coronal", 5)[...] = 1
    assert data.sum() == t1.shape[0] * t1.shape[2] and data[:, -6, :].all()


# --- Space ---------------------------------------------------------------------------------------

def test_resampling_follows_the_physical_geometry(t1, pet):
    assert resample_to(pet, t1).data is not None
    np.testing.assert_array_equal(resample_to(pet, t1).data, pet.data)
    # the PET moved 2 mm (one voxel) to the patient's left: resampled back onto the T1 grid,
    # each T1 voxel finds the PET value of its neighbour (x index + 1 ... minus 1)
    moved = shifted(pet, (2.0, 0.0, 0.0))
    on_grid = resample_to(moved, t1)
    np.testing.assert_allclose(on_grid.data[:, :, 1:], pet.data[:, :, :-1], atol=1e-6)
    assert np.all(on_grid.data[:, :, 0] == 0)  # outside the moved PET
    assert on_grid.spacing == t1.spacing and on_grid.origin == t1.origin
    # the same through a transform (MR point -> functional point), the registration hook
    back = resample_to(moved, t1, sitk.TranslationTransform(3, (2.0, 0.0, 0.0)))
    np.testing.assert_allclose(back.data, pet.data, atol=1e-6)
    # onto a coarser grid of the same space: a 4 mm grid samples every other voxel
    coarse = Volume(np.zeros((45, 54, 45), np.float32), (4.0, 4.0, 4.0), t1.origin, t1.direction)
    np.testing.assert_allclose(resample_to(pet, coarse).data, pet.data[:90:2, :108:2, :90:2],
                               atol=1e-6)


def test_disjoint_space_and_foreign_frames_of_reference_are_refused(t1, pet):
    with pytest.raises(SpaceMismatchError, match=r"shifted .* do not overlap .*register"):
        resample_to(shifted(pet, (0.0, 0.0, 500.0)), t1)
    check_same_space(t1, shifted(pet, (150.0, 0.0, 0.0)))  # a corner still overlaps
    mr = load_volume(VOLUMES / "mridir" / "mr_t2")
    ct = load_volume(VOLUMES / "mridir" / "ct")
    with pytest.raises(SpaceMismatchError, match="different DICOM frames of reference"):
        check_same_space(mr, ct)
    check_same_space(mr, ct, sitk.Euler3DTransform())  # a registration relates them


# --- Intensities ---------------------------------------------------------------------------------

def test_intensity_scales(t1, pet):
    scale = mr_scale(t1.data)
    assert (scale.low, scale.high) == tuple(np.percentile(t1.data, [0.5, 99.5]))
    unit = scale(t1.data)
    assert unit.dtype == np.float32 and unit.min() == 0 and unit.max() == 1
    assert np.mean(unit == 1) == pytest.approx(0.005, abs=0.002)
    assert functional_scale(pet.data).high == pytest.approx(
        np.percentile(pet.data[pet.data > 0], 99.5))
    brain = ct_scale()  # default: brain window, 0..80 HU
    np.testing.assert_allclose(brain(np.array([-1000.0, 0.0, 40.0, 80.0, 1000.0])),
                               [0, 0, 0.5, 1, 1])
    assert parse_window("bone") == CT_WINDOWS["bone"] == (2800.0, 600.0)
    assert parse_window("350,50") == (350.0, 50.0)
    for bad in ("wide", "0,40", "1,2,3"):
        with pytest.raises(MsgFusionError, match="window"):
            parse_window(bad)
    assert IntensityScale(3.0, 3.0)(np.ones(4)).max() == 0


# --- Fusion --------------------------------------------------------------------------------------

def test_fuse_volume_workers_and_batches_give_the_same_volume(t1, pet):
    """Slice batches fused side by side in worker threads fill the same voxels as one thread
    fusing them in turn (the network, ycbcr colour, uneven last batch)."""
    serial = fuse_volume(t1, pet, workers=1, batch_size=91)
    for workers, batch in ((2, 8), (3, 5)):
        parallel = fuse_volume(t1, pet, workers=workers, batch_size=batch)
        np.testing.assert_array_equal(parallel.intensity.data, serial.intensity.data)
        np.testing.assert_array_equal(parallel.picture.data, serial.picture.data)


def test_fuse_volume_is_the_slice_method_on_every_slice_along_any_axis(t1, pet):
    """The pixel average fuses (MR + luminance of the rendered PET) / 2 on every voxel, so the
    result is known, and slicing along any axis must give the same volume."""
    results = {axis: fuse_volume(t1, pet, method="average", axis=axis, batch_size=40)
               for axis in AXES}
    result = results["axial"]
    assert result.modality == "PET" and result.cmap == default_cmap("PET")
    mr_unit = mr_scale(t1.data)(t1.data)
    pet_rgb = colorize(functional_scale(pet.data)(pet.data), default_cmap("PET"))
    expected = (mr_unit + luminance(pet_rgb)) / 2
    np.testing.assert_allclose(result.intensity.data, expected, atol=1e-6)
    for axis in ("coronal", "sagittal"):
        np.testing.assert_allclose(results[axis].intensity.data, expected, atol=1e-6)
        np.testing.assert_array_equal(results[axis].picture.data, result.picture.data)
    picture = result.picture
    assert picture.is_rgb and picture.data.dtype == np.uint8
    assert (picture.spacing, picture.origin) == (t1.spacing, t1.origin)
    np.testing.assert_array_equal(picture.direction, t1.direction)
    mr_plane, func_plane, fused_plane = result.planes("axial", 45)
    assert mr_plane.shape == (109, 91) and func_plane.shape == fused_plane.shape == (109, 91, 3)
    figure = volume_preview(result)
    assert figure.ndim == 3 and figure.shape[0] > 3 * 200
    # the colour bar under the montage: the PET scale from its lowest to its highest colour
    bar = figure[-30:-16, : figure.shape[1]]
    expected = colorize(np.linspace(0.0, 1.0, bar.shape[1]), default_cmap("PET"))
    np.testing.assert_allclose(bar[0], expected, atol=1 / 255 + 1e-6)


def test_fuse_volume_ct_on_another_grid_through_a_transform():
    """The phantom's CT onto its MR with the README's rigid relation (180 degrees about y and a
    shift): the hook for registration. The result is grey and on the MR grid."""
    mr = load_volume(VOLUMES / "mridir" / "mr_t2")
    ct = load_volume(VOLUMES / "mridir" / "ct")
    with pytest.raises(SpaceMismatchError):
        fuse_volume(mr, ct, method="average")
    readme = sitk.AffineTransform(3)
    readme.SetMatrix((-1, 0, 0, 0, 1, 0, 0, 0, -1))
    readme.SetTranslation((-11.0, -18.0, -17.0))
    result = fuse_volume(mr, ct, method="max", transform=readme, window="bone")
    assert result.modality == "CT" and not result.picture.is_rgb
    assert result.picture.data is result.intensity.data and result.intensity.shape == mr.shape
    # the maximum keeps the brighter of MR and windowed CT: never below the MR itself
    mr_unit = mr_scale(mr.data)(mr.data)
    assert np.all(result.intensity.data >= mr_unit - 1e-6)
    ct_unit = ct_scale("bone")(result.func.data)
    np.testing.assert_allclose(result.intensity.data, np.maximum(mr_unit, ct_unit), atol=1e-6)
    assert (ct_unit > 0).mean() > 0.3  # the CT covers most of the MR grid


def test_modality_is_read_from_the_volume_or_asked_for(t1, pet, tmp_path):
    spect = load_volume(SPM / "SPECT.nii.gz")
    assert fuse_volume(t1, spect, method="average", batch_size=91).modality == "SPECT"
    anonymous = Volume(pet.data, pet.spacing, pet.origin, pet.direction, {"path": "scan.nii"})
    with pytest.raises(UnknownModalityError, match="scan.nii: cannot tell"):
        fuse_volume(t1, anonymous, method="average")
    with pytest.raises(MsgFusionError, match="--window is for CT"):
        fuse_volume(t1, pet, method="average", window="brain")
    assert msgfusion.fuse_volume is fuse_volume and msgfusion.load_volume is load_volume


def test_repr_is_one_short_line_with_the_geometry():
    """A DICOM series' repr once printed every voxel and header (470 000 characters)."""
    import nibabel as nib

    dicom = load_volume(VOLUMES / "mridir" / "mr_t2")
    text = repr(dicom)
    assert len(text) < 300 and "\n" not in text
    assert text.startswith("Volume(shape=(16, 512, 512), dtype=int16, spacing=0.5 x 0.5 x 2.5 mm")
    assert "modality='MR'" in text and "mr_t2" in text
    nifti = SPM / "T1.nii.gz"
    assert load_volume(nifti).axcodes == "".join(nib.aff2axcodes(nib.load(nifti).affine))
    flipped = Volume(np.zeros((2, 2, 2)), direction=np.diag([-1.0, 1.0, -1.0]))
    assert flipped.axcodes == "RPI" and "axes=RPI" in repr(flipped)
