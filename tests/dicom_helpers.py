"""Building DICOM test files with pydicom from the repository's real images and volumes (shared
by the DICOM image tests, the PACS tests and benchmarks/dicom.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (CTImageStorage, ExplicitVRLittleEndian, MRImageStorage,
                         PositronEmissionTomographyImageStorage, SecondaryCaptureImageStorage,
                         generate_uid)

_SOP_CLASSES = {"MR": MRImageStorage, "PT": PositronEmissionTomographyImageStorage,
                "CT": CTImageStorage, "NM": "1.2.840.10008.5.1.4.1.1.20"}


def _file_meta(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = syntax


def secondary_capture(pixels: np.ndarray, photometric: str | None = None,
                      patient: str = "MSGFUSION^TEST") -> Dataset:
    """An exported Secondary Capture image (no slice geometry) of ``pixels``: uint8/uint16
    H x W (MONOCHROME2 unless ``photometric`` says otherwise) or uint8 H x W x 3 (RGB)."""
    ds = Dataset()
    ds.PatientName, ds.PatientID = patient, patient.split("^")[0]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    ds.Modality, ds.ConversionType = "OT", "WSD"
    ds.Rows, ds.Columns = pixels.shape[:2]
    if pixels.ndim == 3:
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.PhotometricInterpretation = photometric or "RGB"
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric or "MONOCHROME2"
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    _file_meta(ds)
    return ds


def png_uint8(path: Path, rgb: bool = False) -> np.ndarray:
    """An 8-bit image file as uint8 (grey, or RGB with ``rgb``)."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB" if rgb else "L"))


def volume_series(data: np.ndarray, spacing: tuple[float, float, float], modality: str,
                  study: Dataset, frame_of_reference: str, description: str,
                  series_number: int, origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
                  ) -> list[Dataset]:
    """A scanner-like DICOM series (MR, PT, CT or NM Image Storage) of a (z, y, x) volume of
    int16 values, axial slices in ``study`` (patient and study fields copied from it)."""
    series_uid = generate_uid()
    out = []
    for k in range(data.shape[0]):
        ds = Dataset()
        for name in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                     "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                     "ReferringPhysicianName", "StudyDescription"):
            ds[name] = study[name]
        ds.SOPClassUID, ds.SOPInstanceUID = _SOP_CLASSES[modality], generate_uid()
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = modality, series_uid, series_number
        ds.SeriesDescription, ds.InstanceNumber = description, k + 1
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference, ""
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * spacing[2]]
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.SliceThickness = spacing[2]
        ds.Rows, ds.Columns = data.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.ascontiguousarray(data[k], dtype="<i2").tobytes()
        _file_meta(ds)
        out.append(ds)
    return out


def new_study(patient: str = "MSGFUSION^PHANTOM", patient_id: str = "MSGF-001") -> Dataset:
    """Patient and study fields of a new study."""
    ds = Dataset()
    ds.PatientName, ds.PatientID = patient, patient_id
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20260101", "120000", "1"
    ds.AccessionNumber, ds.ReferringPhysicianName = "ACC1", ""
    ds.StudyDescription = "msgfusion test study"
    return ds


def spm_study(study: Dataset | None = None, pets: int = 1, mr: bool = True,
              spect: bool = False) -> list[list[Dataset]]:
    """The SPM12 T1 template as an MR series and its PET (``pets`` copies) and SPECT
    templates as PT/NM series of one frame of reference, in one study."""
    import nibabel as nib

    from conftest import SHARED

    spm = SHARED / "data" / "volumes" / "spm_oldnorm"
    study = study or new_study()
    frame = generate_uid()

    def scanner(name: str) -> np.ndarray:  # (z, y, x) int16 of the stored values
        img = nib.load(spm / f"{name}.nii.gz")
        raw = np.asarray(img.dataobj.get_unscaled()).astype(np.int16)
        # (i, j, k) of the LAS affine: x_LPS = 2i - 90, y_LPS = 126 - 2j, z = 2k - 72; rows
        # run along +y (posterior): j reversed
        return raw.transpose(2, 1, 0)[:, ::-1, :].copy()

    origin = (-90.0, -90.0, -72.0)
    series = []
    if mr:
        series.append(volume_series(scanner("T1"), (2.0, 2.0, 2.0), "MR", study, frame,
                                    "T1 (SPM template)", 1, origin))
    for i in range(pets):
        series.append(volume_series(scanner("PET"), (2.0, 2.0, 2.0), "PT", study, frame,
                                    f"PET (SPM template){' copy' * i}", 2 + i, origin))
    if spect:
        series.append(volume_series(scanner("SPECT"), (2.0, 2.0, 2.0), "NM", study, frame,
                                    "SPECT (SPM template)", 9, origin))
    return series


def dciodvfy_errors(path: Path) -> list[str] | None:
    """The error lines dciodvfy (dicom3tools) prints for a file, or None without dciodvfy."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        return None
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (done.stdout + done.stderr).splitlines()
            if line.startswith("Error")]
