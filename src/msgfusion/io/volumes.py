"""Reading and writing volumes (NIfTI, DICOM series, MetaImage, NRRD), all as one :class:`Volume`.

Every reader returns a :class:`~msgfusion.volume.Volume` in ITK's LPS convention (see
``msgfusion/volume.py``); every writer takes one. Formats, by name:

- **NIfTI** ``.nii`` / ``.nii.gz`` (nibabel). The RAS affine (sform when set, else qform) becomes
  LPS by negating its first two rows. Scaled data (``scl_slope``/``scl_inter``) is returned as
  float32 real values; unscaled data keeps its type. RGB24 data reads as ``(z, y, x, 3)`` uint8.
  Written as NIfTI-1 with sform = qform (code kept from a NIfTI input, else 1, scanner); NIfTI-1
  stores the affine in float32, about 1e-5 mm at 100 mm from the origin.
- **DICOM** series: a folder, or any file of it (which selects its series). Files are read with
  pydicom; files that are not DICOM are ignored. Slices are sorted by their position along the
  slice normal (ImageOrientationPatient's row x column), not by file name or InstanceNumber;
  RescaleSlope/RescaleIntercept are applied per slice (CT in HU). A folder holding several series
  is an error listing them; ``series`` chooses one by SeriesInstanceUID. A missing slice (a gap of a
  whole multiple of the spacing), unevenly spaced, tilted or differently sized slices are errors.
  A series with several images at every position (time points, echoes) is 4-D.
- **MetaImage** ``.mha`` / ``.mhd`` and **NRRD** ``.nrrd`` / ``.nhdr`` (SimpleITK), written
  compressed.

4-D inputs are refused unless ``frame`` picks one (0-based): NIfTI's 4th dimension, a 4-D
MetaImage/NRRD, or the images sharing a position in a DICOM series ordered by
TemporalPositionIdentifier, then AcquisitionTime, then InstanceNumber.

Writing is atomic (everything is written into a temporary folder beside the target, then renamed
into place) and never replaces an existing file or folder unless ``overwrite``. A DICOM output is a
folder holding one Secondary Capture image per slice, see :func:`write_dicom_series`.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from msgfusion.errors import ImageReadError, MsgFusionError, OutputExistsError, OutputWriteError
from msgfusion.io.dicom_image import PATIENT_STUDY_FIELDS, derived_header, source_reference
from msgfusion.io.files import atomic_write, check_output
from msgfusion.volume import Volume

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
DICOM_SUFFIXES = (".dcm",)
_LPS_RAS = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS, its own inverse


def volume_suffix(path: str | os.PathLike) -> str:
    """The volume format suffix of a file name (``.nii.gz``, ``.mha``, ...), or ``""``."""
    name = Path(path).name.lower()
    return next((s for s in NIFTI_SUFFIXES + ITK_SUFFIXES + DICOM_SUFFIXES if name.endswith(s)), "")


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether a file starts with the DICOM preamble and ``DICM`` marker."""
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:] == b"DICM"
    except OSError:
        return False


def is_volume_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a volume: a NIfTI/MetaImage/NRRD file, a DICOM file that is one
    slice of a series beside it (:func:`msgfusion.io.dicom_image.is_series_slice`; any other
    DICOM file is a 2-D image), or a folder (a DICOM series; reading it says so clearly when it
    holds none) not named like a 2-D image."""
    from msgfusion.io.dicom_image import is_series_slice
    from msgfusion.io.images import READ_EXTENSIONS

    p = Path(path)
    if p.is_dir():
        return p.suffix.lower() not in READ_EXTENSIONS
    if volume_suffix(p) in DICOM_SUFFIXES or (not volume_suffix(p) and p.is_file()
                                              and is_dicom_file(p)):
        return p.is_file() and is_series_slice(p)
    return bool(volume_suffix(p))


def read_volume(path: str | os.PathLike, series: Sequence[str] = (),
                frame: int | None = None) -> Volume:
    """Read a volume in any supported format (see the module doc).

    ``series``: SeriesInstanceUIDs to choose from when a DICOM folder holds several series.
    ``frame``: the frame of a 4-D input (ignored for 3-D ones). Raises :class:`ImageReadError`
    naming the file and the problem.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: file not found")
    suffix = volume_suffix(p)
    if p.is_dir() or suffix in DICOM_SUFFIXES or (not suffix and is_dicom_file(p)):
        return read_dicom_series(p, series, frame)
    if suffix in NIFTI_SUFFIXES:
        return read_nifti(p, frame)
    if suffix in ITK_SUFFIXES:
        return read_itk(p, frame)
    raise ImageReadError(f"{p}: not a volume; use NIfTI (.nii, .nii.gz), a DICOM series (folder "
                         "or .dcm), MetaImage (.mha, .mhd) or NRRD (.nrrd, .nhdr)")


def _pick_frame(path: Path, n_frames: int, frame: int | None) -> int:
    if frame is None:
        raise ImageReadError(f"{path}: a 4-D volume with {n_frames} frames; choose one with "
                             f"--frame N (0..{n_frames - 1})")
    if not 0 <= frame < n_frames:
        raise ImageReadError(f"{path}: --frame {frame} is out of range; it has {n_frames} frames "
                             f"(0..{n_frames - 1})")
    return frame


def _geometry(path: Path, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spacing and direction of a 3 x 3 index-to-LPS matrix; rejects degenerate or sheared ones."""
    spacing = np.linalg.norm(matrix, axis=0)
    if not np.all(np.isfinite(matrix)) or np.any(spacing <= 0):
        raise ImageReadError(f"{path}: broken header (degenerate voxel-to-world matrix, "
                             f"voxel sizes {np.round(spacing, 6).tolist()})")
    direction = matrix / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise ImageReadError(f"{path}: sheared voxel-to-world matrix (not supported)")
    return spacing, direction


# --- NIfTI ---------------------------------------------------------------------------------------

_RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


def read_nifti(path: Path, frame: int | None = None) -> Volume:
    """Read a NIfTI-1/2 file (see the module doc)."""
    import nibabel as nib

    try:
        img = nib.load(path)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise ImageReadError(f"{path}: not a NIfTI image")
        proxy = img.dataobj
        shape = img.shape
        if len(shape) > 3:
            extra = shape[3:]
            if int(np.prod(extra[1:])) != 1:
                raise ImageReadError(f"{path}: a {len(shape)}-D NIfTI of shape {shape} is not "
                                     "supported")
            if extra[0] == 1:
                raw = np.asarray(proxy.get_unscaled()).reshape(shape[:3])
            else:
                raw = np.asarray(proxy.get_unscaled())[..., _pick_frame(path, extra[0], frame)]
                raw = raw.reshape(shape[:3])
        else:
            raw = np.asarray(proxy.get_unscaled())
            if raw.ndim == 2:  # one slice
                raw = raw[:, :, None]
        slope, inter = float(proxy.slope), float(proxy.inter)
        affine = img.affine
    except ImageReadError:
        raise
    except Exception as exc:  # nibabel raises many types for broken files (EOF, zlib, header)
        raise ImageReadError(f"{path}: cannot read NIfTI ({type(exc).__name__}: {exc})") from None
    if raw.ndim != 3:
        raise ImageReadError(f"{path}: expected a 3-D image, got shape {raw.shape}")
    if raw.dtype.names:
        if raw.dtype.names[:3] != ("R", "G", "B"):
            raise ImageReadError(f"{path}: unsupported structured data type {raw.dtype}")
        data = np.stack([raw[c] for c in "RGB"], axis=-1).transpose(2, 1, 0, 3)
    else:
        data = raw.transpose(2, 1, 0)
        if (slope, inter) != (1.0, 0.0):
            data = data.astype(np.float32) * np.float32(slope) + np.float32(inter)
    data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("="))
    if affine is None:
        raise ImageReadError(f"{path}: broken header (no voxel-to-world affine)")
    lps = _LPS_RAS @ affine[:3]
    spacing, direction = _geometry(path, lps[:, :3])
    header = img.header
    meta = {"path": str(path), "format": "nifti",
            "descrip": header["descrip"].item().decode("latin-1").strip("\x00 "),
            "nifti_code": int(header["sform_code"]) or int(header["qform_code"]) or 1}
    return Volume(data, tuple(spacing), tuple(lps[:, 3]), direction, meta)


def _write_nifti(target: Path, volume: Volume) -> None:
    import nibabel as nib

    data = volume.data
    if volume.is_rgb:
        rgb = np.ascontiguousarray(_as_uint8(data))
        data = rgb.view(_RGB24).reshape(rgb.shape[:3])
    ras = np.eye(4)
    ras[:3] = _LPS_RAS @ volume.affine[:3]
    img = nib.Nifti1Image(np.asarray(data).transpose(2, 1, 0), ras)
    code = int(volume.meta.get("nifti_code", 1))
    img.set_sform(ras, code)
    img.set_qform(ras, code)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = str(volume.meta.get("descrip", "msgfusion"))[:79].encode("latin-1",
                                                                                      "replace")
    nib.save(img, target)


# --- MetaImage / NRRD ----------------------------------------------------------------------------

def read_itk(path: Path, frame: int | None = None) -> Volume:
    """Read a MetaImage or NRRD file with SimpleITK (see the module doc)."""
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise ImageReadError(f"{path}: cannot read ({reason[:200]})") from None
    dim = image.GetDimension()
    if dim == 4:
        n = image.GetSize()[3]
        size = list(image.GetSize()[:3]) + [0]
        image = sitk.Extract(image, size, [0, 0, 0, _pick_frame(path, n, frame) if n > 1 else 0])
    elif dim == 2:
        image = sitk.JoinSeries(image)
    elif dim != 3:
        raise ImageReadError(f"{path}: a {dim}-D image is not supported")
    if image.GetNumberOfComponentsPerPixel() not in (1, 3):
        raise ImageReadError(f"{path}: {image.GetNumberOfComponentsPerPixel()} components per "
                             "voxel; a volume is scalar or RGB")
    matrix = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    spacing, direction = _geometry(path, matrix)
    return Volume(sitk.GetArrayFromImage(image), tuple(spacing), image.GetOrigin(), direction,
                  {"path": str(path), "format": "itk"})


def _write_itk(target: Path, volume: Volume) -> None:
    import SimpleITK as sitk

    sitk.WriteImage(volume.to_sitk(), str(target), useCompression=True)


# --- DICOM ---------------------------------------------------------------------------------------

def _dicom_headers(folder: Path) -> list[tuple[Path, Any]]:
    """(file, header without pixels) of every DICOM image file of a folder (not recursive)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ImageReadError(f"{folder}: empty folder (expected a DICOM series)")
    headers = []
    for f in files:
        dicom_like = f.suffix.lower() in DICOM_SUFFIXES or is_dicom_file(f)
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=dicom_like)
        except InvalidDicomError:
            continue  # not a DICOM file (a README, a licence): ignored
        except Exception as exc:
            raise ImageReadError(f"{f}: truncated or corrupt DICOM file ({exc})") from None
        if "SeriesInstanceUID" in ds and "ImagePositionPatient" in ds:
            headers.append((f, ds))
        elif dicom_like and "SOPClassUID" not in ds:
            raise ImageReadError(f"{f}: truncated or corrupt DICOM file (no SOP Class UID)")
    if not headers:
        images = [f for f in files if f.suffix.lower() in DICOM_SUFFIXES or is_dicom_file(f)]
        if images:
            raise ImageReadError(
                f"{folder}: its {len(images)} DICOM file(s) do not form a series (no slice "
                f"positions): they are single images; give one file, e.g. '{images[0]}', to "
                "use it as a 2-D image")
        raise ImageReadError(f"{folder}: no DICOM image series in this folder")
    return headers


def _describe(uid: str, group: list[tuple[Path, Any]]) -> str:
    ds = group[0][1]
    what = " ".join(str(v) for v in (ds.get("Modality", ""), ds.get("SeriesDescription", "")) if v)
    return f"{uid} ({what or 'no description'}, {len(group)} files)"


def _select_series(where: Path, headers: list[tuple[Path, Any]], series: Sequence[str],
                   file_uid: str | None) -> tuple[str, list[tuple[Path, Any]]]:
    groups: dict[str, list[tuple[Path, Any]]] = {}
    for f, ds in headers:
        groups.setdefault(str(ds.SeriesInstanceUID), []).append((f, ds))
    chosen = [uid for uid in groups if uid in series]
    if file_uid is not None and not chosen:
        chosen = [file_uid]
    if len(chosen) == 1:
        return chosen[0], groups[chosen[0]]
    if len(chosen) > 1:
        raise ImageReadError(f"{where}: {len(chosen)} of the chosen series are in this folder; "
                             "give one file of the series you mean instead of the folder")
    if len(groups) == 1 and not chosen:
        uid = next(iter(groups))
        return uid, groups[uid]
    listed = "; ".join(_describe(uid, g) for uid, g in groups.items())
    raise ImageReadError(f"{where}: {len(groups)} DICOM series in one folder: {listed}; choose "
                         "one with --series UID")


def _order_frames(path: Path, stacks: list[list[Any]], frame: int | None) -> list[Any]:
    """One image per position: the only one, or the ``frame``-th of a 4-D series."""
    counts = {len(s) for s in stacks}
    if counts == {1}:
        return [s[0] for s in stacks]
    if len(counts) > 1:
        raise ImageReadError(f"{path}: some slice positions hold several images and others one "
                             f"({sorted(counts)} images per position): duplicated or incomplete "
                             "files")
    n = counts.pop()
    index = _pick_frame(path, n, frame)

    def key(item: tuple[Path, Any]) -> tuple:
        ds = item[1]
        return (int(ds.get("TemporalPositionIdentifier", 0) or 0),
                str(ds.get("AcquisitionTime", "")), int(ds.get("InstanceNumber", 0) or 0))

    return [sorted(s, key=key)[index] for s in stacks]


def _check_spacing(path: Path, positions: np.ndarray) -> float:
    """The slice spacing of sorted positions along the normal; errors on gaps and unevenness."""
    steps = np.diff(positions)
    if steps.size == 0:
        return 0.0
    step = float(np.median(steps))
    tol = max(1e-3, 1e-3 * step)
    bad = np.flatnonzero(np.abs(steps - step) > tol)
    if bad.size == 0:
        return float(np.mean(steps))
    i = int(bad[0])
    ratio = steps[i] / step
    if abs(ratio - round(ratio)) * step <= tol and round(ratio) >= 2:
        raise ImageReadError(
            f"{path}: missing slice(s): a gap of {steps[i]:.4g} mm between the slices at "
            f"{positions[i]:.4g} and {positions[i + 1]:.4g} mm along the normal, where the "
            f"spacing is {step:.4g} mm ({round(ratio) - 1} slice(s) missing)")
    raise ImageReadError(
        f"{path}: unevenly spaced slices (steps from {steps.min():.4g} to {steps.max():.4g} mm "
        f"along the normal, typically {step:.4g} mm)")


def read_dicom_series(path: Path, series: Sequence[str] = (), frame: int | None = None) -> Volume:
    """Read a DICOM series from a folder or one of its files (see the module doc).

    The returned volume's ``meta`` holds ``frame_of_reference``, ``modality`` and ``dicom``:
    the headers (no pixels) of the slices in volume order, which the DICOM writer copies from.
    """
    import pydicom

    folder = path if path.is_dir() else path.parent
    file_uid = None
    if not path.is_dir():
        try:
            file_uid = str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
        except Exception as exc:
            raise ImageReadError(f"{path}: not a readable DICOM image ({exc})") from None
    uid, group = _select_series(path, _dicom_headers(folder), series, file_uid)
    where = folder if path.is_dir() else path
    first = group[0][1]
    for f, ds in group:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise ImageReadError(f"{f}: multi-frame DICOM images are not supported (convert the "
                                 "series to NIfTI, e.g. with dcm2niix)")
        if "ImageOrientationPatient" not in ds or "PixelSpacing" not in ds:
            raise ImageReadError(f"{f}: no ImageOrientationPatient/PixelSpacing: not a slice of "
                                 "a volume")
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    for f, ds in group:
        other = np.array([float(v) for v in ds.ImageOrientationPatient])
        if not np.allclose(other, iop, atol=1e-4):
            raise ImageReadError(f"{f}: orientation {other.round(4).tolist()} differs from the "
                                 f"series' {iop.round(4).tolist()}")
        if (ds.Rows, ds.Columns) != (first.Rows, first.Columns) or not np.allclose(
                [float(v) for v in ds.PixelSpacing], [float(v) for v in first.PixelSpacing]):
            raise ImageReadError(f"{f}: slice size or pixel spacing differs from the series'")
    stacks: dict[float, list[tuple[Path, Any]]] = {}
    for f, ds in group:
        d = round(float(np.dot([float(v) for v in ds.ImagePositionPatient], normal)), 4)
        stacks.setdefault(d, []).append((f, ds))
    ordered_d = np.array(sorted(stacks))
    slices = _order_frames(where, [stacks[d] for d in ordered_d], frame)
    step = _check_spacing(where, ordered_d)
    ipp = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in slices])
    if len(slices) > 1:
        drift = (ipp - ipp[0]) - np.outer(ordered_d - ordered_d[0], normal)
        if np.abs(drift).max() > 1e-2:
            raise ImageReadError(f"{where}: slice positions do not follow the slice normal "
                                 "(gantry tilt or sheared series), not supported")
    else:
        step = float(first.get("SpacingBetweenSlices", 0) or first.get("SliceThickness", 0) or 1)
    dy, dx = (float(v) for v in first.PixelSpacing)
    rgb = int(first.get("SamplesPerPixel", 1)) == 3
    shape = (len(slices), int(first.Rows), int(first.Columns)) + ((3,) if rgb else ())
    data = np.empty(shape, dtype=np.uint8 if rgb else np.float32)
    headers = []
    integral = True
    for k, (f, _) in enumerate(slices):
        try:
            ds = pydicom.dcmread(f)
            pixels = ds.pixel_array
        except Exception as exc:
            raise ImageReadError(f"{f}: truncated or unreadable pixel data ({exc})") from None
        if pixels.shape != data.shape[1:] or (rgb and pixels.dtype != np.uint8):
            raise ImageReadError(f"{f}: pixel data of shape {pixels.shape} ({pixels.dtype}) does "
                                 f"not fit the series' {' x '.join(map(str, data.shape[1:]))}")
        if rgb:
            data[k] = pixels
        else:
            slope = float(ds.get("RescaleSlope", 1) or 1)
            intercept = float(ds.get("RescaleIntercept", 0) or 0)
            integral &= slope == int(slope) and intercept == int(intercept)
            data[k] = pixels * slope + intercept  # exact in float32 for integer values < 2**24
        del ds.PixelData
        headers.append(ds)
    if rgb:
        volume_data = data
    elif integral and np.all((data >= 0) & (data <= 255)) and pixels.dtype == np.uint8:
        volume_data = data.astype(np.uint8)
    elif integral and -32768 <= data.min() and data.max() <= 32767:
        volume_data = data.astype(np.int16)
    else:
        volume_data = data
    del data
    direction = np.column_stack([row, col, normal])
    meta = {"path": str(where), "format": "dicom", "series_uid": uid,
            "frame_of_reference": str(first.get("FrameOfReferenceUID", "")) or None,
            "modality": str(first.get("Modality", "")), "dicom": headers}
    return Volume(volume_data, (dx, dy, step), tuple(ipp[0]), direction, meta)


#: Header fields copied from the MR's slices into a derived DICOM series. Patient and study
#: identify whose scan it is (so PACS files it with the MR); the frame of reference and the
#: geometry make viewers overlay it on the MR. Nothing else of the MR is copied.
MR_HEADER_FIELDS: tuple[str, ...] = (
    *PATIENT_STUDY_FIELDS,
    # Frame of Reference, patient position
    "FrameOfReferenceUID", "PositionReferenceIndicator", "PatientPosition",
    # Slice thickness of the MR (the derived image has the MR's resolution)
    "SliceThickness",
)


def _orientation_letters(axis: np.ndarray) -> str:
    """The Patient Orientation code of an image axis (LPS direction): its main directions, the
    strongest first (PS3.3 C.7.6.1.1.1), e.g. ``L`` or ``PH`` for an oblique one."""
    order = np.argsort(-np.abs(axis))
    return "".join(("LPH" if axis[i] > 0 else "RAF")[i] for i in order
                   if abs(axis[i]) > 1e-4) or "L"


def _as_uint8(data: np.ndarray) -> np.ndarray:
    """uint8 voxels: kept when already so; floats in [0, 1] quantised like PNG output."""
    if data.dtype == np.uint8:
        return data
    if np.issubdtype(data.dtype, np.floating):
        from msgfusion.io.color import to_uint8

        return to_uint8(data)
    raise ValueError(f"cannot store {data.dtype} voxels as 8-bit colour")


def _pixel_module(ds: Any, volume: Volume) -> Callable[[int], bytes]:
    """Set the Image Pixel attributes for ``volume``; returns slice index -> pixel bytes."""
    data = volume.data
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
    if volume.is_rgb:
        data = _as_uint8(data)
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        bits, signed = 8, False
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        if np.issubdtype(data.dtype, np.floating):  # fused intensities in [0, 1]
            data = _as_uint8(data)
        if data.dtype not in (np.uint8, np.int8, np.uint16, np.int16):
            raise ValueError(f"DICOM output holds 8/16-bit voxels or intensities in [0, 1], got "
                             f"{data.dtype}")
        bits, signed = data.dtype.itemsize * 8, np.issubdtype(data.dtype, np.signedinteger)
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = int(signed)
    little = data.astype(data.dtype.newbyteorder("<"), copy=False)
    return lambda k: np.ascontiguousarray(little[k]).tobytes()


def write_dicom_series(folder: Path, volume: Volume, description: str = "msgfusion",
                       derivation: str = "", source: Volume | None = None) -> None:
    """Write ``volume`` as a DICOM series of Secondary Capture images, one file per slice.

    Each slice carries ImagePositionPatient, ImageOrientationPatient, PixelSpacing and
    SpacingBetweenSlices from the volume's geometry (the MR's, for a fused result), so viewers
    overlay the series on the MR. ``source`` (the MR as read) provides the fields in
    :data:`MR_HEADER_FIELDS` and, when it is a DICOM series on the same grid, the SOP instances
    each slice is derived from (SourceImageSequence). New Series and SOP Instance UIDs; ImageType
    DERIVED\\SECONDARY; ``derivation`` goes into DerivationDescription. Without a DICOM source, a
    new study and frame of reference are made up and the patient fields stay empty.
    Grey voxels are stored as 8 or 16 bits (fused intensities in [0, 1] as 8 bits), RGB as 8 bits.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    from pydicom.valuerep import DSfloat

    mr_headers = (source.meta.get("dicom") if source is not None else None) or []
    per_slice = len(mr_headers) == volume.shape[0]
    template = derived_header(mr_headers[0] if mr_headers else None, MR_HEADER_FIELDS,
                              description, derivation)
    if not mr_headers:
        template.FrameOfReferenceUID, template.PositionReferenceIndicator = generate_uid(), ""
    template.ImageOrientationPatient = [DSfloat(v, auto_format=True)
                                        for v in np.concatenate([volume.direction[:, 0],
                                                                 volume.direction[:, 1]])]
    template.PixelSpacing = [DSfloat(volume.spacing[1], auto_format=True),
                             DSfloat(volume.spacing[0], auto_format=True)]
    template.SpacingBetweenSlices = DSfloat(volume.spacing[2], auto_format=True)
    template.PatientOrientation = [_orientation_letters(volume.direction[:, i]) for i in (0, 1)]
    template.setdefault("SliceThickness", DSfloat(volume.spacing[2], auto_format=True))
    pixels = _pixel_module(template, volume)
    step = volume.direction[:, 2] * volume.spacing[2]
    for k in range(volume.shape[0]):
        ds = copy.deepcopy(template)
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [DSfloat(v, auto_format=True)
                                   for v in np.asarray(volume.origin) + k * step]
        if per_slice:
            ds.SourceImageSequence = source_reference(mr_headers[k])
        ds.PixelData = pixels(k)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"{k + 1:05d}.dcm", enforce_file_format=True)


# --- Writing -------------------------------------------------------------------------------------

def output_format(path: str | os.PathLike) -> str:
    """``nifti``, ``itk`` or ``dicom`` (a name without a volume suffix: a folder of slices)."""
    p = Path(path)
    suffix = volume_suffix(p)
    if suffix in NIFTI_SUFFIXES:
        return "nifti"
    if suffix in ITK_SUFFIXES:
        return "itk"
    if not p.suffix or p.is_dir():
        return "dicom"
    raise ImageReadError(f"{p}: cannot write this format; use .nii, .nii.gz, .mha, .mhd, .nrrd, "
                         ".nhdr, or a folder name (no suffix) for a DICOM series")


def check_volume_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check, before any work, that a volume can be written to ``path`` (a file as
    :func:`msgfusion.io.files.check_output` checks it; a DICOM folder likewise)."""
    p = Path(path)
    if output_format(p) != "dicom":
        try:
            return check_output(p, overwrite)
        except OutputExistsError:
            raise OutputExistsError(f"{p}: already exists (use --overwrite to replace it)") \
                from None
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p}: already exists (use --overwrite to replace it)")
    if p.exists() and not p.is_dir():
        raise OutputWriteError(f"{p}: exists and is a file, not a folder for a DICOM series")
    check_output(p / "00001.dcm", overwrite=True)  # its parent can be created and written
    return p


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target``, removed afterwards whatever happens."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_folder(new: Path, target: Path, overwrite: bool) -> None:
    """Rename folder ``new`` to ``target``; an existing ``target`` (with ``overwrite``) is moved
    aside first and deleted only once the new one is in place."""
    if not target.exists():
        os.rename(new, target)  # fails if a folder of that name appeared meanwhile
        return
    if not overwrite:
        raise OutputExistsError(f"{target}: already exists (use --overwrite to replace it)")
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_volume(path: str | os.PathLike, volume: Volume, overwrite: bool = False,
                 **dicom: Any) -> Path:
    """Write a volume; the format follows the name (see :func:`output_format`).

    Atomic and never clobbering without ``overwrite``. ``dicom`` keyword arguments go to
    :func:`write_dicom_series` (``description``, ``derivation``, ``source``).
    """
    target = check_volume_writable(path, overwrite)
    fmt = output_format(target)
    try:
        with _staging(target) as tmp:
            if fmt == "dicom":
                series = tmp / target.name
                series.mkdir()
                write_dicom_series(series, volume, **dicom)
                _replace_folder(series, target, overwrite)
                return target
            staged = tmp / target.name
            (_write_nifti if fmt == "nifti" else _write_itk)(staged, volume)
            # A .mhd/.nhdr header names its data file: the data first, the header last, each
            # through the one safe file writer (atomic, no clobbering without overwrite).
            for done in sorted(p for p in tmp.iterdir() if p != staged) + [staged]:
                with open(done, "rb") as src:
                    atomic_write(target.with_name(done.name),
                                 lambda f, src=src: shutil.copyfileobj(src, f), overwrite)
    except OSError as exc:  # the file system refused (full, read-only, permissions)
        if isinstance(exc, MsgFusionError):
            raise
        raise OutputWriteError(f"{target}: cannot write ({exc.strerror or exc})") from None
    return target


# --- Modality ------------------------------------------------------------------------------------

_DICOM_MODALITIES = {"CT": "CT", "PT": "PET", "NM": "SPECT", "MR": "MR"}


def guess_modality(volume: Volume) -> str | None:
    """CT, PET, SPECT or MR from a volume's header (DICOM Modality; a NIfTI description) or its
    file name (a word such as ``pet``, ``spect``, ``ct``, BIDS's ``_pet``); None if unsure."""
    from_dicom = _DICOM_MODALITIES.get(str(volume.meta.get("modality", "")).upper())
    if from_dicom:
        return from_dicom
    texts = [str(volume.meta.get("descrip", "")), Path(str(volume.meta.get("path", ""))).name]
    for text in texts:
        words = {w.upper() for w in re.split(r"[^A-Za-z0-9]+", text)}
        for word, modality in (("SPECT", "SPECT"), ("PET", "PET"), ("CT", "CT"),
                               ("T1", "MR"), ("T2", "MR"), ("MRI", "MR"), ("MR", "MR")):
            if word in words:
                return modality
    return None
