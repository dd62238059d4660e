"""Registration of arrays and volumes: the functional image moved onto the MR.

2-D images (numpy, as :func:`msgfusion.io.images.read_image` returns them) have no physical
size, so their coordinates are pixels with the origin at the top-left pixel; a 256 x 256 PET
registered to a 300 x 300 MR is found at the right place and scale (``similarity``, the 2-D
default) and resampled onto the MR's grid. Colour PET/SPECT is registered on its luminance and
every channel is resampled. Volumes carry their geometry (:class:`~msgfusion.volume.Volume`),
so the 3-D default is ``rigid``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

from msgfusion.errors import RegistrationError
from msgfusion.io.color import luminance
from msgfusion.pair import FusionPair, check_modality, infer_modality, prepare_images
from msgfusion.register.engine import RegistrationResult, RegistrationSettings, register
from msgfusion.volume import Volume

if TYPE_CHECKING:
    import SimpleITK as sitk

Moving = TypeVar("Moving", np.ndarray, Volume, "sitk.Image")


def image_to_sitk(image: np.ndarray, label: str = "image", scalar: bool = True) -> sitk.Image:
    """A 2-D image (H x W, or H x W x 3 colour) as a SimpleITK image with unit pixel spacing;
    colour becomes its luminance when ``scalar``."""
    import SimpleITK as sitk

    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[2] == 3:
        if scalar:
            image = luminance(image)
        else:
            return sitk.GetImageFromArray(image, isVector=True)
    if image.ndim != 2:
        raise RegistrationError(f"{label} must be a 2-D image (H x W or H x W x 3), got shape "
                                f"{image.shape}")
    return sitk.GetImageFromArray(image)


def volume_to_sitk(volume: Volume, scalar: bool = True) -> sitk.Image:
    """A :class:`Volume` as a SimpleITK image; colour becomes its luminance when ``scalar``."""
    if volume.is_rgb and scalar:
        return Volume(luminance(volume.data.astype(np.float32)), volume.spacing, volume.origin,
                      volume.direction).to_sitk()
    return volume.to_sitk()


def register_images(mr: np.ndarray, func: np.ndarray, kind: str = "similarity",
                    settings: RegistrationSettings | None = None,
                    accept_doubtful: bool = False) -> RegistrationResult:
    """Register a 2-D functional image (grey or colour) onto a 2-D MR image.

    Raises :class:`~msgfusion.errors.RegistrationDoubtful` (with the result attached) when the
    failure detector doubts the result, unless ``accept_doubtful``.

    >>> result = register_images(mr, pet)                      # doctest: +SKIP
    >>> pet_on_mr = resample(pet, mr, result.transform)        # doctest: +SKIP
    """
    mr = np.asarray(mr)
    func = np.asarray(func)
    if mr.ndim == 3 and mr.shape[2] == 3:
        mr = luminance(mr.astype(np.float32))
    for image, label in ((mr, "the MR"), (func, "the functional image")):
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise RegistrationError(f"{label} is not a 2-D image (shape {image.shape}); use "
                                    "register_volumes for volumes")
    return register(image_to_sitk(mr, "the MR"), image_to_sitk(func, "the functional image"),
                    kind, settings, accept_doubtful=accept_doubtful)


def register_volumes(mr: Volume, func: Volume, kind: str = "rigid",
                     settings: RegistrationSettings | None = None,
                     accept_doubtful: bool = False) -> RegistrationResult:
    """Register a functional volume (CT/PET/SPECT) onto the MR volume, in physical space.

    When both name a DICOM frame of reference and the two differ (different scanners), the
    starts include the 180-degree turns (``search_orientation`` left at None). Raises
    :class:`~msgfusion.errors.RegistrationDoubtful` unless ``accept_doubtful``."""
    for volume, label in ((mr, "the MR"), (func, "the functional volume")):
        if not isinstance(volume, Volume):
            raise RegistrationError(f"{label} is not a Volume; use register_images for 2-D "
                                    "images")
    frames = (mr.meta.get("frame_of_reference"), func.meta.get("frame_of_reference"))
    return register(volume_to_sitk(mr), volume_to_sitk(func), kind, settings,
                    labels=("the MR volume", "the functional volume"),
                    frames_differ=all(frames) and frames[0] != frames[1],
                    accept_doubtful=accept_doubtful)


def _as_sitk(image: np.ndarray | Volume | sitk.Image, label: str, scalar: bool) -> sitk.Image:
    if isinstance(image, np.ndarray):
        return image_to_sitk(image, label, scalar=scalar)
    if isinstance(image, Volume):
        return volume_to_sitk(image, scalar=scalar)
    return image


def coverage(moving: np.ndarray | Volume | sitk.Image, fixed: np.ndarray | Volume | sitk.Image,
             transform: sitk.Transform) -> np.ndarray:
    """Where on ``fixed``'s grid the resampled ``moving`` has data (boolean array, the grid's
    shape): outside, there is no signal, and a fusion shows the MR alone."""
    import SimpleITK as sitk

    source = _as_sitk(moving, "the functional image", scalar=True)
    ones = sitk.Image(source.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(source)
    reference = _as_sitk(fixed, "the MR", scalar=True)
    return sitk.GetArrayFromImage(
        sitk.Resample(ones, reference, transform, sitk.sitkNearestNeighbor, 0)) > 0


def resample(moving: Moving, fixed: np.ndarray | Volume | sitk.Image,
             transform: sitk.Transform, default: float = 0.0) -> Moving:
    """``moving`` resampled onto ``fixed``'s grid through ``transform`` (MR point -> moving
    point), with linear interpolation; returned as the type of ``moving`` (a 2-D array keeps
    its channels, a Volume takes the MR's geometry). Outside ``moving``'s field of view the
    result is ``default`` (no signal: 0 for images in [0, 1]; the minimum, air or no activity,
    for a CT or PET volume; :func:`coverage` says where).

    Raises :class:`RegistrationError` when no voxel of the result comes from ``moving`` (the
    transform leaves an empty overlap), instead of returning a blank image.
    """
    import SimpleITK as sitk

    reference = _as_sitk(fixed, "the MR", scalar=True)
    source = _as_sitk(moving, "the functional image", scalar=False)
    if source.GetDimension() != reference.GetDimension() \
            or transform.GetDimension() != reference.GetDimension():
        raise RegistrationError(
            f"cannot resample a {source.GetDimension()}-D image onto a "
            f"{reference.GetDimension()}-D grid with a {transform.GetDimension()}-D transform")
    if not np.any(coverage(source, reference, transform)):
        raise RegistrationError("the transform moves the functional image entirely outside the "
                                "MR's grid (empty overlap); nothing to fuse")
    moved = sitk.Resample(source, reference, transform, sitk.sitkLinear, default,
                          sitk.sitkFloat32 if source.GetNumberOfComponentsPerPixel() == 1
                          else sitk.sitkVectorFloat32)
    if isinstance(moving, np.ndarray):
        return sitk.GetArrayFromImage(moved)
    if isinstance(moving, Volume):
        return Volume.from_sitk(moved, **moving.meta)
    return moved


def register_pair(mr: np.ndarray, func: np.ndarray, modality: str | None = None,
                  kind: str = "similarity", settings: RegistrationSettings | None = None,
                  name: str = "", cmap: str | None = None, accept_doubtful: bool = False
                  ) -> tuple[FusionPair, RegistrationResult]:
    """A :class:`FusionPair` of 2-D images that need not be aligned or of one size: the images
    are prepared as for fusion (:func:`msgfusion.pair.prepare_images`), the functional image is
    registered onto the MR and resampled onto its grid (every channel of a colour image).
    Returns the pair and the registration result; a doubtful registration raises
    :class:`~msgfusion.errors.RegistrationDoubtful` unless ``accept_doubtful``."""
    func = np.asarray(func, dtype=np.float32)
    modality = check_modality(modality) if modality else infer_modality(func)
    mr, func = prepare_images(np.asarray(mr, dtype=np.float32), func, modality, cmap)
    result = register_images(mr, func, kind, settings, accept_doubtful)
    moved = resample(func, mr, result.transform)
    return FusionPair(mr=mr, func=np.clip(moved, 0.0, 1.0), modality=modality, name=name), result
