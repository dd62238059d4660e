"""Registration: recovery of known transforms on real pairs (2-D atlas slices, downsampled SPM
volumes), determinism, .tfm round trip, the QA figure, failure warnings and every bad input."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from msgfusion.cli import main
from msgfusion.errors import MsgFusionWarning, RegistrationError
from msgfusion.io.images import read_image
from msgfusion.register import (
    RegistrationSettings,
    qa_figure,
    read_transform,
    register,
    register_images,
    register_pair,
    register_volumes,
    resample,
    write_transform,
)
from msgfusion.register.engine import DEFAULTS_2D, foreground_points, check_result
from msgfusion.register.transforms import homogeneous
from msgfusion.volume import Volume

# the 3-D tests run on the SPM templates at 4 mm (46 x 55 x 46) with two levels: fast
FAST_3D = RegistrationSettings(shrink=(2, 1), smoothing=(1.0, 0.0))


@pytest.fixture(scope="module")
def spect_pair(aanlib_dir):
    d = aanlib_dir / "SPECT-MRI" / "test"
    return read_image(d / "MRI" / "11010.png"), read_image(d / "SPECT" / "11010.png")


@pytest.fixture(scope="module")
def spm(aanlib_dir):
    folder = aanlib_dir.parent / "volumes" / "spm_oldnorm"

    def read(name: str) -> Volume:
        image = sitk.ReadImage(str(folder / f"{name}.nii.gz"), sitk.sitkFloat32)
        return Volume.from_sitk(sitk.Shrink(sitk.SmoothingRecursiveGaussian(image, 2.0), [2] * 3))

    return read("T1"), read("T2")


@pytest.fixture(scope="module")
def spect_result(spect_pair):
    """The default 2-D registration of the unmoved SPECT pair (shared by several tests; the
    detector's verdict is tested apart)."""
    return _quiet(register_images, *spect_pair, accept_doubtful=True)


@pytest.fixture(scope="module")
def spm_result(spm):
    """The fast 3-D registration of the unmoved SPM T2 -> T1 (shared by several tests)."""
    return _quiet(register_volumes, *spm, settings=FAST_3D)


def _tre(t_moved, t_unmoved, a, points) -> float:
    """Mean distance between T_moved and A^-1 o T_unmoved over the points (the protocol of
    docs/registration.md)."""
    expected = np.linalg.inv(homogeneous(a)) @ homogeneous(t_unmoved)
    got = homogeneous(t_moved)
    d = points.shape[1]
    return float(np.linalg.norm(points @ (got - expected)[:d, :d].T + (got - expected)[:d, d],
                                axis=1).mean())


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MsgFusionWarning)
        return fn(*args, **kw)


def test_2d_recovers_a_known_similarity(spect_pair, spect_result):
    mr, spect = spect_pair
    unmoved = spect_result
    a = sitk.Similarity2DTransform(1.06, np.radians(6.0), (-7.0, 9.0), (127.5, 127.5))
    moved = resample(spect, mr, a)  # moved(q) = spect(A(q)): A^-1 o T_unmoved is the truth
    result = _quiet(register_images, mr, moved, accept_doubtful=True)
    points = foreground_points(sitk.GetImageFromArray(mr))
    assert _tre(result.transform, unmoved.transform, a, points) < 1.0
    assert result.metric_final < result.metric_initial


def test_3d_recovers_a_known_rigid_transform(spm, spm_result):
    t1, t2 = spm
    unmoved = spm_result
    image = t2.to_sitk()
    centre = image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])
    a = sitk.Euler3DTransform(centre, np.radians(8.0), np.radians(-5.0), np.radians(4.0),
                              (6.0, -8.0, 5.0))
    grid = sitk.ConstantPad(image, [8] * 3, [8] * 3, 0.0)  # nothing cut off
    moved = Volume.from_sitk(sitk.Resample(image, grid, a, sitk.sitkBSpline, 0.0))
    result = _quiet(register_volumes, t1, moved, settings=FAST_3D)
    points = foreground_points(t1.to_sitk())
    assert _tre(result.transform, unmoved.transform, a, points) < 1.0  # mm; voxels are 4 mm
    assert isinstance(result.transform, sitk.Euler3DTransform)


def test_deterministic_bit_for_bit(spect_pair, spect_result):
    one = spect_result
    two = _quiet(register_images, *spect_pair, accept_doubtful=True)
    assert one.transform.GetParameters() == two.transform.GetParameters()
    assert one.metric_final == two.metric_final


def test_affine_3d_and_rigid_2d_kinds(spm, spect_pair):
    t1, t2 = spm
    affine = _quiet(register_volumes, t1, t2, kind="affine", settings=FAST_3D)
    assert isinstance(affine.transform, sitk.AffineTransform)
    rigid = _quiet(register_images, *spect_pair, kind="rigid", accept_doubtful=True)
    assert isinstance(rigid.transform, sitk.Euler2DTransform)


def test_transform_file_round_trip(tmp_path, spm_result):
    result = spm_result
    path = write_transform(tmp_path / "t.tfm", result.transform)
    back = read_transform(path)
    assert type(back) is type(result.transform)
    assert back.GetParameters() == pytest.approx(result.transform.GetParameters(), abs=1e-12)
    assert back.GetFixedParameters() == pytest.approx(result.transform.GetFixedParameters())
    p = (10.0, -20.0, 30.0)
    assert back.TransformPoint(p) == pytest.approx(result.transform.TransformPoint(p), abs=1e-9)
    with pytest.raises(Exception, match="already exists"):
        write_transform(path, result.transform)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["t.tfm"]  # no temporary left
    with pytest.raises(Exception, match="not a readable ITK transform"):
        (tmp_path / "bad.tfm").write_text("not a transform")
        read_transform(tmp_path / "bad.tfm")


def test_qa_figure_written(tmp_path, spm_result, spect_result):
    for name, result in (("qa3d.png", spm_result), ("qa2d.png", spect_result)):
        path = qa_figure(result, tmp_path / name)
        with Image.open(path) as im:
            assert im.size[0] >= 800 and im.size[1] >= 600
        assert np.asarray(Image.open(path).convert("L")).std() > 20  # not blank


def test_colour_pet_onto_larger_mr_resamples_every_channel(aanlib_dir):
    d = aanlib_dir / "PET-MRI" / "test"
    mr = np.asarray(Image.open(d / "MRI" / "41054.png").resize((300, 300), Image.BICUBIC),
                    dtype=np.float32) / 255
    pet = read_image(d / "PET" / "41054.png")
    pair, result = _quiet(register_pair, mr, pet)
    assert pair.func.shape == (300, 300, 3) and pair.modality == "PET"
    scale = np.sqrt(abs(np.linalg.det(homogeneous(result.transform)[:2, :2])))
    assert scale == pytest.approx(256 / 300, abs=0.03)  # MR point -> PET point: shrinks
    assert not np.allclose(pair.func[..., 0], pair.func[..., 2])


# ----------------------------------------------------------------------------- doubts
def test_noise_is_doubtful_little_information(spect_pair):
    mr, _ = spect_pair
    noise = np.random.default_rng(0).random(mr.shape).astype(np.float32)
    with pytest.warns(MsgFusionWarning, match="share little information"):
        result = register_images(mr, noise, accept_doubtful=True)
    assert any("little information" in w for w in result.warnings)


def test_extreme_scale_and_little_overlap_are_doubtful(spect_pair):
    result = _quiet(register_images, *spect_pair, accept_doubtful=True)
    scaled = sitk.Similarity2DTransform(result.transform)
    scaled.SetScale(1.8)
    result.transform = scaled
    result.overlap = 0.3
    result.doubts.clear()
    check_result(result, DEFAULTS_2D)
    text = " ".join(result.warnings)
    assert "scaled the image by 1.80" in text and "covers only 30%" in text
    assert "--type rigid" in text


# ----------------------------------------------------------------------------- bad input
def test_constant_image_is_an_error(spect_pair):
    mr, _ = spect_pair
    with pytest.raises(RegistrationError, match="constant"):
        register_images(mr, np.zeros_like(mr))


def test_2d_with_3d_is_an_error(spm, spect_pair):
    with pytest.raises(RegistrationError, match="2-D"):
        register_images(spect_pair[0], spm[0].data)
    with pytest.raises(RegistrationError, match="2-D"):
        register(sitk.GetImageFromArray(spect_pair[0]), spm[0].to_sitk())


def test_disjoint_volumes_are_an_error(spm):
    t1, t2 = spm
    far = Volume(t2.data, t2.spacing, tuple(np.add(t2.origin, 1000.0)), t2.direction)
    with pytest.raises(RegistrationError, match="do not overlap"):
        register_volumes(t1, far, settings=replace(FAST_3D, init="header"))


def test_empty_overlap_after_transform_is_an_error(spect_pair):
    mr, spect = spect_pair
    away = sitk.TranslationTransform(2, (1000.0, 0.0))
    with pytest.raises(RegistrationError, match="empty overlap"):
        resample(spect, mr, away)


# ----------------------------------------------------------------------------- command line
def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_register_2d_writes_transform_resampled_and_qa(capsys, tmp_path, aanlib_dir):
    d = aanlib_dir / "SPECT-MRI" / "test"
    code, out, err = _run(capsys, "register", "--mr", d / "MRI" / "11010.png", "--func",
                          d / "SPECT" / "11010.png", "-o", tmp_path / "t.tfm", "--resampled",
                          tmp_path / "moved.png", "--qa", tmp_path / "qa.png",
                          "--accept-doubtful")
    assert code == 0, err
    assert isinstance(read_transform(tmp_path / "t.tfm"), sitk.Similarity2DTransform)
    assert read_image(tmp_path / "moved.png").shape == (256, 256, 3)
    assert (tmp_path / "qa.png").is_file() and "Mattes MI" in out


def test_cli_fuse_register_accepts_different_sizes(capsys, tmp_path, aanlib_dir):
    d = aanlib_dir / "PET-MRI" / "test"
    Image.open(d / "MRI" / "41054.png").resize((300, 300), Image.BICUBIC).save(tmp_path / "mr.png")
    args = ("fuse", "--mr", tmp_path / "mr.png", "--func", d / "PET" / "41054.png",
            "--method", "average", "-o", tmp_path / "fused.png")
    code, _, err = _run(capsys, *args)
    assert code == 2 and "--register" in err
    code, _, err = _run(capsys, *args, "--register")
    assert code == 0, err
    assert read_image(tmp_path / "fused.png").shape == (300, 300, 3)


@pytest.mark.parametrize("case", ["2d-3d", "constant", "exists", "missing"])
def test_cli_bad_input_one_line_exit_2(capsys, tmp_path, aanlib_dir, case):
    mr = aanlib_dir / "SPECT-MRI" / "test" / "MRI" / "11010.png"
    func = aanlib_dir / "SPECT-MRI" / "test" / "SPECT" / "11010.png"
    volume = aanlib_dir.parent / "volumes" / "spm_oldnorm" / "PET.nii.gz"
    out = tmp_path / "t.tfm"
    expected = {"2d-3d": "is a 2-D image but", "constant": "constant",
                "exists": "already exists", "missing": "file not found"}[case]
    if case == "2d-3d":
        func = volume
    elif case == "constant":
        Image.fromarray(np.zeros((256, 256), dtype=np.uint8)).save(tmp_path / "zero.png")
        func = tmp_path / "zero.png"
    elif case == "exists":
        out.write_text("keep me")
    else:
        func = tmp_path / "nothing.png"
    code, _, err = _run(capsys, "register", "--mr", mr, "--func", func, "-o", out)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("msgfusion: error:") and expected in err
    assert "Traceback" not in err
    if case == "exists":
        assert out.read_text() == "keep me"
    else:
        assert not out.exists()


def test_cli_register_volumes_writes_transform_and_resampled_volume(capsys, tmp_path, spm):
    t1, t2 = spm
    sitk.WriteImage(t1.to_sitk(), str(tmp_path / "t1.nii.gz"))
    sitk.WriteImage(t2.to_sitk(), str(tmp_path / "t2.mha"))
    code, out, err = _run(capsys, "register", "--mr", tmp_path / "t1.nii.gz", "--func",
                          tmp_path / "t2.mha", "-o", tmp_path / "t.tfm", "--resampled",
                          tmp_path / "t2_on_t1.nii.gz")
    assert code == 0, err
    assert isinstance(read_transform(tmp_path / "t.tfm"), sitk.Euler3DTransform)
    moved = sitk.ReadImage(str(tmp_path / "t2_on_t1.nii.gz"))
    assert moved.GetSize() == t1.to_sitk().GetSize()
    assert moved.GetSpacing() == pytest.approx(t1.spacing)


def test_cli_fuse_register_volumes(capsys, tmp_path, spm):
    t1, t2 = spm
    sitk.WriteImage(t1.to_sitk(), str(tmp_path / "t1.nii.gz"))
    moved = Volume(t2.data, t2.spacing, tuple(np.add(t2.origin, (12.0, -8.0, 6.0))), t2.direction)
    sitk.WriteImage(moved.to_sitk(), str(tmp_path / "ct.nii.gz"))
    code, out, err = _run(capsys, "fuse", "--mr", tmp_path / "t1.nii.gz", "--func",
                          tmp_path / "ct.nii.gz", "--modality", "CT", "--method", "average",
                          "--register", "-o", tmp_path / "fused.nii.gz")
    assert code == 0, err
    shift = float(re.search(r"shift ([0-9.]+) mm", out).group(1))
    assert shift == pytest.approx(np.hypot(12.0, np.hypot(8.0, 6.0)), abs=2.0)  # 15.6 mm moved
    assert sitk.ReadImage(str(tmp_path / "fused.nii.gz")).GetSize() == t1.to_sitk().GetSize()
