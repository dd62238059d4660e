"""Registration you can trust: multi-start recovery of poses a single start misses (2-D and
3-D), a doubtful registration stops (API exception, CLI exit 3, no fused output), its advice
names only options of the command that prints it, no signal outside the moved image, and the
MRI-DIR phantom's known pose with default options (slow)."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from msgfusion.cli import build_parser, doubtful_line, main
from msgfusion.errors import MsgFusionError, MsgFusionWarning, RegistrationDoubtful
from msgfusion.io.images import read_image
from msgfusion.register import (
    Doubt,
    coverage,
    read_transform,
    register_images,
    register_volumes,
    resample,
)
from msgfusion.register.engine import _CLI, DEFAULTS_2D, DEFAULTS_3D, foreground_points
from msgfusion.register.transforms import homogeneous
from msgfusion.volume import Volume


@pytest.fixture(scope="module")
def pet_pair(aanlib_dir):
    d = aanlib_dir / "PET-MRI" / "train"
    return read_image(d / "MRI" / "25030.png"), read_image(d / "PET" / "25030.png")


@pytest.fixture(scope="module")
def noise_files(tmp_path_factory, aanlib_dir):
    """An MR slice and a noise image that shares nothing with it (always doubtful)."""
    folder = tmp_path_factory.mktemp("noise")
    mr = read_image(aanlib_dir / "SPECT-MRI" / "test" / "MRI" / "11010.png")
    Image.fromarray((mr * 255).astype(np.uint8)).save(folder / "mr.png")
    noise = np.random.default_rng(0).random((256, 256))
    Image.fromarray((noise * 255).astype(np.uint8)).save(folder / "noise.png")
    return folder / "mr.png", folder / "noise.png"


def _mean_distance(t, reference: np.ndarray, points: np.ndarray) -> float:
    m = homogeneous(t) - reference
    d = points.shape[1]
    return float(np.linalg.norm(points @ m[:d, :d].T + m[:d, d], axis=1).mean())


# ----------------------------------------------------------------------------- multi-start
def test_2d_multi_start_recovers_a_turn_one_start_misses(pet_pair):
    """A PET slice turned by 40 degrees and shifted: the single centred start settles in a wrong
    optimum, starts at several angles (and both centrings) find the truth (the pair is
    aligned, so the truth is the inverse of the move)."""
    mr, pet = pet_pair
    a = sitk.Euler2DTransform((127.5, 127.5), np.radians(40.0), (6.0, -5.0))
    moved = resample(pet, mr, a)
    points = foreground_points(sitk.GetImageFromArray(mr))
    truth = np.linalg.inv(homogeneous(a))
    single = register_images(mr, moved, "rigid", replace(DEFAULTS_2D, angles=(0.0,),
                                                         init="geometry"),
                             accept_doubtful=True)
    assert _mean_distance(single.transform, truth, points) > 20.0
    wide = replace(DEFAULTS_2D, angles=(-40.0, -20.0, 0.0, 20.0, 40.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MsgFusionWarning)
        result = register_images(mr, moved, "rigid", wide, accept_doubtful=True)
    assert result.starts == 10
    assert _mean_distance(result.transform, truth, points) < 2.5


def test_3d_turned_volume_found_by_the_orientation_starts(aanlib_dir):
    """SPM T2 turned 180 degrees about y (head-first against feet-first): with different frames
    of reference the 180-degree starts are tried by default and the turn is undone."""
    folder = aanlib_dir.parent / "volumes" / "spm_oldnorm"

    def read(name: str) -> sitk.Image:
        image = sitk.ReadImage(str(folder / f"{name}.nii.gz"), sitk.sitkFloat32)
        return sitk.Shrink(sitk.SmoothingRecursiveGaussian(image, 2.0), [2] * 3)

    t1, t2 = read("T1"), read("T2")
    centre = t2.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in t2.GetSize()])
    a = sitk.Euler3DTransform(centre, 0.0, np.pi, 0.0, (4.0, -3.0, 2.0))
    moved = sitk.Resample(t2, sitk.ConstantPad(t2, [4] * 3, [4] * 3, 0.0), a, sitk.sitkLinear)
    fast = replace(DEFAULTS_3D, shrink=(2, 1), smoothing=(1.0, 0.0))
    mr = Volume.from_sitk(t1, frame_of_reference="1.2.3")
    func = Volume.from_sitk(moved, frame_of_reference="1.2.4")
    result = register_volumes(mr, func, settings=fast, accept_doubtful=True)
    assert result.oriented
    points = foreground_points(t1)
    assert _mean_distance(result.transform, np.linalg.inv(homogeneous(a)), points) < 2.0


# ----------------------------------------------------------------------------- doubtful
def test_api_raises_doubtful_unless_accepted(noise_files):
    mr, noise = (read_image(p) for p in noise_files)
    with pytest.raises(RegistrationDoubtful) as caught:
        register_images(mr, noise)
    exc = caught.value
    assert isinstance(exc, MsgFusionError) and exc.doubts and exc.result.transform is not None
    assert "accept_doubtful=True" in str(exc) and "--" not in str(exc)  # Python spelling
    with pytest.warns(MsgFusionWarning, match="registration:"):
        result = register_images(mr, noise, accept_doubtful=True)
    assert result.doubts


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _help_options(command: str) -> set[str]:
    """The options the command's own --help lists."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(re.findall(r"--[a-z][a-z-]*", sub.choices[command].format_help()))


def test_cli_register_doubtful_exit_3_writes_transform_and_qa(capsys, tmp_path, noise_files):
    mr, noise = noise_files
    code, out, err = _run(capsys, "register", "--mr", mr, "--func", noise, "-o",
                          tmp_path / "t.tfm")
    assert code == 3
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("msgfusion register: doubtful: ")
    assert set(re.findall(r"--[a-z][a-z-]*", lines[0])) <= _help_options("register")
    assert read_transform(tmp_path / "t.tfm") is not None and (tmp_path / "t_qa.png").is_file()
    code, _, err = _run(capsys, "register", "--mr", mr, "--func", noise, "-o",
                        tmp_path / "t2.tfm", "--accept-doubtful", "--qa", tmp_path / "qa.png")
    assert code == 0 and (tmp_path / "qa.png").is_file() and "doubtful" not in err


def test_cli_fuse_register_doubtful_writes_no_fused_output(capsys, tmp_path, noise_files):
    mr, noise = noise_files
    args = ("fuse", "--mr", mr, "--func", noise, "--modality", "CT", "--method", "average",
            "--register", "-o", tmp_path / "fused.png")
    code, _, err = _run(capsys, *args)
    assert code == 3 and err.startswith("msgfusion fuse: doubtful: ") and err.count("\n") == 1
    assert set(re.findall(r"--[a-z][a-z-]*", err)) <= _help_options("fuse")
    assert "--accept-doubtful" in err
    assert not (tmp_path / "fused.png").exists() and (tmp_path / "fused_qa.png").is_file()
    code, out, err = _run(capsys, *args, "--accept-doubtful", "--overwrite", "--save-transform",
                          tmp_path / "t.tfm")
    assert code == 0, err
    assert (tmp_path / "fused.png").is_file() and "registered" in out
    assert isinstance(read_transform(tmp_path / "t.tfm"), sitk.Similarity2DTransform)


def test_cli_registration_options_need_register(capsys, tmp_path, noise_files):
    mr, noise = noise_files
    code, _, err = _run(capsys, "fuse", "--mr", mr, "--func", noise, "--type", "rigid", "-o",
                        tmp_path / "f.png")
    assert code == 2 and "--type" in err and "--register" in err


@pytest.mark.parametrize("command", ["register", "fuse"])
def test_advice_names_only_options_of_the_command(command):
    """Every setting a doubt can suggest, rendered for the command, names only options of
    that command's --help; and every setting a doubt can suggest exists on both commands."""
    every = Doubt("test", tuple((k, None) for k in _CLI))
    options = _help_options(command)
    assert set(_CLI.values()) <= options
    parser = build_parser()
    args = parser.parse_args([command, "--mr", "a.png", "--func", "b.png", "-o", "c.tfm"])
    line = doubtful_line(args, RegistrationDoubtful([every], None))
    assert line.startswith(f"msgfusion {command}: doubtful: test; try ")
    assert set(re.findall(r"--[a-z][a-z-]*", line)) <= options
    limited = every.render("cli", {"--init"})
    assert re.findall(r"--[a-z][a-z-]*", limited) == ["--init"]


# ----------------------------------------------------------------------------- no signal
def test_outside_the_field_of_view_is_no_signal(pet_pair):
    mr, pet = pet_pair
    shift = sitk.TranslationTransform(2, (60.0, 0.0))
    covered = coverage(pet, mr, shift)
    assert covered[:, :190].all() and not covered[:, 200:].any()
    moved = resample(pet, mr, shift)
    assert np.all(moved[:, 200:] == 0.0)


# ----------------------------------------------------------------------------- the phantom
@pytest.mark.slow
def test_phantom_pose_with_default_options(aanlib_dir):
    """MRI-DIR phantom CT -> T2 MR (DICOM, different scanners and frames of reference) with
    the default options: the README's pose (about 180 degrees about y; x_CT = -x_MR - 11 mm,
    y_CT = y_MR - 18 mm, z_CT = -z_MR - 17 mm) within 10 degrees and 8 mm at the MR's centre
    (about two minutes of CPU)."""
    from msgfusion.api import load_volume

    folder = aanlib_dir.parent / "volumes" / "mridir"
    mr, ct = load_volume(folder / "mr_t2"), load_volume(folder / "ct")
    result = register_volumes(mr, ct)  # not doubtful: no exception
    readme = np.array([[-1.0, 0, 0, -11.0], [0, 1.0, 0, -18.0], [0, 0, -1.0, -17.0], [0, 0, 0, 1]])
    m = homogeneous(result.transform)
    rotation = m[:3, :3] @ readme[:3, :3].T
    angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
    image = result.fixed
    centre = np.asarray(image.TransformContinuousIndexToPhysicalPoint(
        [(s - 1) / 2 for s in image.GetSize()]))
    distance = np.linalg.norm(m[:3, :3] @ centre + m[:3, 3] - (readme[:3, :3] @ centre
                                                                + readme[:3, 3]))
    assert angle < 10.0 and distance < 8.0


def test_volume_fusion_outside_the_ct_is_the_mr_alone(aanlib_dir):
    """A CT-like volume that covers only the upper half of the MR: below it the fused intensity
    is the MR's, not a fusion with mid-grey (0 HU), and the resampled CT there is its minimum (air)."""
    from msgfusion.api import fuse_volume

    folder = aanlib_dir.parent / "volumes" / "spm_oldnorm"
    t1 = Volume.from_sitk(sitk.Shrink(sitk.ReadImage(str(folder / "T1.nii.gz"),
                                                     sitk.sitkFloat32), [3] * 3))
    ct_hu = (t1.data * 2000.0 - 1000.0).astype(np.float32)  # -1000 HU (air) .. 1000 HU
    half = t1.shape[0] // 2
    top = Volume(ct_hu[half:], t1.spacing,
                 tuple(np.asarray(t1.origin) + half * t1.spacing[2] * t1.direction[:, 2]),
                 t1.direction)
    fused = fuse_volume(t1, top, "CT", "average")
    mr_alone = fused.mr_scale(t1.data)
    assert np.allclose(fused.intensity.data[: half - 1], mr_alone[: half - 1], atol=1e-6)
    assert not np.allclose(fused.intensity.data[half + 1:], mr_alone[half + 1:], atol=1e-3)
    assert fused.func.data[: half - 1].max() == pytest.approx(float(top.data.min()))
