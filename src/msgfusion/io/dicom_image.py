"""Single DICOM images: a DICOM file read as a 2-D picture, like a PNG, and written back as a
DICOM Secondary Capture image.

A DICOM file is a 2-D image (not a slice of a volume) when it has no slice geometry
(ImagePositionPatient, ImageOrientationPatient, PixelSpacing: an exported Secondary Capture),
when it holds several frames (one is picked), or when no other file of its series lies beside it
(:func:`is_series_slice` says which; :mod:`msgfusion.io.volumes` reads the series otherwise).

Reading (:func:`read_dicom_image`) follows the DICOM display pipeline (PS3.4 N.2):

- pixel data is decoded by pydicom's handlers: uncompressed, deflated, RLE, JPEG baseline and
  extended, JPEG lossless, JPEG-LS and JPEG 2000 (the last through pylibjpeg's plugins);
- MONOCHROME1/MONOCHROME2: the Modality LUT (RescaleSlope/RescaleIntercept, or a Modality LUT
  Sequence), then the VOI transform of the header: the first Window Center/Width (LINEAR,
  LINEAR_EXACT or SIGMOID, PS3.3 C.11.2.1.2) or a VOI LUT Sequence, to [0, 1]. Without a VOI
  transform an 8-bit image is divided by 255 (as a PNG is) and any other by its own value range.
  MONOCHROME1 (low values white) is inverted, so that bright means dense or active as in a PNG;
- RGB and YBR_* (converted to RGB by pydicom) are divided by their largest stored value
  (2**BitsStored - 1); PALETTE COLOR goes through its lookup tables to RGB;
- as for PNGs, an RGB image whose channels are equal is returned grey (H x W).

Writing (:func:`encode_dicom_image`): an 8-bit MONOCHROME2 or RGB Secondary Capture image
(DERIVED\\SECONDARY), keeping the patient and study of the ``source`` DICOM file (the MR the
image was fused from) and referencing it (SourceImageSequence); a new series and SOP instance.
"""

from __future__ import annotations

import datetime
import io
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from msgfusion.errors import ImageReadError

#: Header fields of the source image copied into a derived 2-D image: whose image it is and
#: which study it belongs to (so that a PACS files it with its source).
PATIENT_STUDY_FIELDS: tuple[str, ...] = (
    "SpecificCharacterSet",
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "PatientAge", "PatientIdentityRemoved", "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription",
)
_GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
_COLOR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")


def is_dicom_path(path: str | os.PathLike) -> bool:
    """A ``.dcm`` file, or a file starting with the DICOM preamble and ``DICM`` marker."""
    from msgfusion.io.volumes import is_dicom_file

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        return False
    return suffix == ".dcm" or (p.is_file() and is_dicom_file(p))


@contextmanager
def _quiet() -> Iterator[None]:
    """pydicom's warnings about odd files (the errors say what matters) silenced; warnings
    filters are process-wide, so this holds the image decoding lock."""
    from msgfusion.io.images import _DECODE_LOCK

    with _DECODE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _read(path: Path, header_only: bool) -> Any:
    """A DICOM file read with pydicom (only its header with ``header_only``), or
    :class:`ImageReadError` naming it."""
    import pydicom

    from msgfusion.io.images import _open_regular
    from msgfusion.io.volumes import is_dicom_file

    with _open_regular(path) as f, _quiet():
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=header_only, force=True)
        except Exception as exc:
            raise ImageReadError(f"{path}: not a readable DICOM file ({_short(exc)})") from None
    if "SOPClassUID" not in ds and not is_dicom_file(path):
        raise ImageReadError(f"{path}: not a DICOM file (no DICM marker, no SOP class)")
    return ds


def _header(path: Path) -> Any:
    """The header of a DICOM file (no pixel data), or :class:`ImageReadError`."""
    return _read(path, header_only=True)


def _short(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())[:200]


def is_series_slice(path: str | os.PathLike) -> bool:
    """Whether a DICOM file is one slice of a series on disk: a single-frame image with slice
    geometry, and another file of its series (same SeriesInstanceUID) in its folder."""
    import pydicom

    p = Path(path)
    try:
        with _quiet():
            ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
    except Exception:
        return True  # the series reader says what is wrong with it
    if any(name not in ds for name in _GEOMETRY) or "SeriesInstanceUID" not in ds \
            or int(ds.get("NumberOfFrames", 1) or 1) > 1:
        return False
    uid = str(ds.SeriesInstanceUID)
    from msgfusion.io.volumes import is_dicom_file

    for other in sorted(p.parent.iterdir()):
        if other == p or other.name.startswith(".") or not other.is_file():
            continue
        if other.suffix.lower() != ".dcm" and not is_dicom_file(other):
            continue
        try:
            with _quiet():
                sibling = pydicom.dcmread(other, stop_before_pixels=True, force=True,
                                          specific_tags=["SeriesInstanceUID"])
        except Exception:
            continue
        if str(sibling.get("SeriesInstanceUID", "")) == uid:
            return True
    return False


def check_dicom_image(path: str | os.PathLike, limit: bool = True) -> tuple[int, int]:
    """(height, width) of a DICOM image after the checks that need no decoding: a regular
    file, a DICOM header with image pixel attributes, one frame, a decodable transfer syntax,
    and (with ``limit``) within the pixel limit (:func:`msgfusion.io.images.set_max_pixels`)."""
    path = Path(path)
    ds = _header(path)
    _check_header(path, ds, frame=None, limit=limit)
    return int(ds.Rows), int(ds.Columns)


def _check_header(path: Path, ds: Any, frame: int | None, limit: bool = True) -> int:
    """Check an image header (see :func:`check_dicom_image`); returns the frame to read."""
    from pydicom.pixels import get_decoder

    from msgfusion.io.images import check_size

    missing = [n for n in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation")
               if n not in ds]
    if missing:
        kind = str(ds.get("SOPClassUID", "")) and getattr(ds.SOPClassUID, "name", "")
        raise ImageReadError(f"{path}: a DICOM file without an image ({kind or 'no SOP class'}; "
                             f"no {', '.join(missing)})")
    check_size(path, int(ds.Columns), int(ds.Rows), limit)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1:  # ``frame`` picks among several frames only
        frame = None
    elif frame is None:
        raise ImageReadError(f"{path}: holds {frames} frames; msgfusion reads one 2-D image, "
                             f"choose one with --frame N (0..{frames - 1})")
    index = frame or 0
    if not 0 <= index < frames:
        raise ImageReadError(f"{path}: --frame {index} is out of range; it has {frames} frames "
                             f"(0..{frames - 1})")
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None and syntax.is_compressed:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            decoder = None
        if decoder is None or not decoder.is_available:
            raise ImageReadError(f"{path}: pixel data compressed as {syntax.name}, which no "
                                 "installed decoder reads")
    kind = str(ds.PhotometricInterpretation)
    if kind not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", *_COLOR):
        raise ImageReadError(f"{path}: photometric interpretation {kind} is not supported")
    return index


def read_dicom_image(path: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """A DICOM image as float32 in [0, 1], H x W or H x W x 3 (see the module doc): the only
    frame, or ``frame`` (0-based) of a file holding several. Raises :class:`ImageReadError`
    naming the file."""
    from pydicom.pixels import pixel_array

    path = Path(path)
    ds = _read(path, header_only=False)
    index = _check_header(path, ds, frame)
    if not any(n in ds for n in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageReadError(f"{path}: no pixel data")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        with _quiet():
            raw = pixel_array(ds, index=index if frames > 1 else None)
    except MemoryError:
        raise ImageReadError(f"{path}: not enough memory to read this image") from None
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot decode pixel data ({_short(exc)})") from None
    try:
        image = _display(ds, raw)
    except ImageReadError:
        raise
    except Exception as exc:  # a malformed LUT or window
        raise ImageReadError(f"{path}: cannot apply its lookup tables ({_short(exc)})") from None
    if not np.isfinite(image).all():
        raise ImageReadError(f"{path}: pixel values are NaN or infinite; msgfusion needs finite "
                             "intensities")
    if image.ndim == 3 and np.array_equal(image[..., 0], image[..., 1]) \
            and np.array_equal(image[..., 0], image[..., 2]):
        image = image[..., 0]
    return np.ascontiguousarray(image, dtype=np.float32)


def _display(ds: Any, raw: np.ndarray) -> np.ndarray:
    """Stored values -> displayed values in [0, 1] (module doc)."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    from msgfusion.io.images import minmax_scale

    kind = str(ds.PhotometricInterpretation)
    if kind == "PALETTE COLOR":
        rgb = apply_color_lut(raw, ds)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return rgb.astype(np.float32) / np.float32(2 ** bits - 1)
    if kind in _COLOR:
        top = 2 ** int(ds.get("BitsStored", ds.BitsAllocated)) - 1
        return raw.astype(np.float32) / np.float32(top)
    values = apply_modality_lut(raw, ds).astype(np.float64)
    if "VOILUTSequence" in ds and "WindowCenter" not in ds:
        lut = ds.VOILUTSequence[0]
        bits = int(lut.LUTDescriptor[2])
        unit = apply_voi_lut(values, ds, index=0, prefer_lut=True) / float(2 ** bits - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        unit = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth),
                       str(ds.get("VOILUTFunction", "LINEAR")).upper())
    elif raw.dtype == np.uint8 and np.array_equal(values, raw):  # 8 bits, no rescale: as a PNG
        unit = values / 255.0
    else:
        unit = minmax_scale(values)
    unit = np.clip(unit, 0.0, 1.0)
    return 1.0 - unit if kind == "MONOCHROME1" else unit


def _first(value: Any) -> float:
    """The first of a multi-valued window attribute."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """The VOI window of PS3.3 C.11.2.1.2 mapped to [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ImageReadError(f"window width {width} must be positive")
        return (x - center) / width + 0.5
    if width < 1:
        raise ImageReadError(f"window width {width} must be at least 1")
    if width == 1:  # a threshold
        return (x >= center - 0.5).astype(np.float64)
    return (x - (center - 0.5)) / (width - 1) + 0.5


def derived_header(source: Any | None, fields: Sequence[str], description: str,
                   derivation: str = "") -> Any:
    """The header shared by every image of a new derived series (Secondary Capture): ``fields``
    copied from ``source`` (a pydicom header; without one, a new study with empty patient
    fields), a new series numbered 1000 + the source's, ImageType DERIVED\\SECONDARY, the
    ``description`` and ``derivation`` (DerivationDescription), today's series and content
    dates."""
    from pydicom.dataset import Dataset
    from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

    from msgfusion import __version__

    ds = Dataset()
    if source is not None:
        for name in fields:
            if name in source:
                ds[name] = source[name]
    if "StudyInstanceUID" not in ds:
        ds.StudyInstanceUID = generate_uid()
    for name in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID",
                 "AccessionNumber", "ReferringPhysicianName"):
        ds.setdefault(name, "")
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.setdefault("StudyDate", date)
    ds.setdefault("StudyTime", time)
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SeriesInstanceUID = generate_uid()
    number = (source.get("SeriesNumber", 0) or 0) if source is not None else 0
    ds.SeriesNumber = 1000 + int(number)
    ds.SeriesDescription = description[:64]
    ds.Modality, ds.ConversionType = "OT", "WSD"
    ds.Manufacturer, ds.SoftwareVersions = "msgfusion", __version__
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = (derivation or description)[:1024]
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.ContentDate, ds.ContentTime = date, time
    ds.Laterality = ""  # type 2C: unknown
    return ds


def source_reference(source: Any) -> Any:
    """A SourceImageSequence naming the image ``source`` (a pydicom header)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return DicomSequence([ref])


def encode_dicom_image(pixels: np.ndarray, source: str | os.PathLike | None = None,
                       description: str = "msgfusion fused image") -> bytes:
    """The bytes of an 8-bit Secondary Capture image of ``pixels`` (uint8, H x W grey or
    H x W x 3 RGB); with ``source`` (a DICOM file), in its patient and study (module doc)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    src = _header(Path(source)) if source is not None and is_dicom_path(source) else None
    ds = derived_header(src, PATIENT_STUDY_FIELDS, description)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    if src is not None and "SOPInstanceUID" in src and "SOPClassUID" in src:
        ds.SourceImageSequence = source_reference(src)
    ds.Rows, ds.Columns = pixels.shape[:2]
    if pixels.ndim == 3:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
