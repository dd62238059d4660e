"""Single DICOM files as 2-D images: every photometric interpretation, rescale and window,
compressed transfer syntaxes, several frames, and the Secondary Capture written back."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_helpers import dciodvfy_errors, png_uint8, secondary_capture
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from msgfusion.errors import ImageReadError
from msgfusion.io.images import check_image, read_image, write_image
from msgfusion.io.volumes import is_volume_path

MR_PNG = "PET-MRI/test/MRI/25038.png"
PET_PNG = "PET-MRI/test/PET/25038.png"


@pytest.fixture
def mr_png(aanlib_dir: Path) -> Path:
    return aanlib_dir / MR_PNG


@pytest.fixture
def pet_png(aanlib_dir: Path) -> Path:
    return aanlib_dir / PET_PNG


def save(ds, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def test_monochrome2_and_monochrome1_read_as_the_png(tmp_path, mr_png):
    grey = png_uint8(mr_png)
    expected = read_image(mr_png)
    m2 = save(secondary_capture(grey), tmp_path / "mr m2 (1).dcm")
    np.testing.assert_array_equal(read_image(m2), expected)
    m1 = save(secondary_capture(255 - grey, "MONOCHROME1"), tmp_path / "mr_m1.dcm")
    np.testing.assert_allclose(read_image(m1), expected, atol=1e-6)  # inverted back
    assert check_image(m2) == grey.shape


def test_rgb_and_ybr_read_as_the_png(tmp_path, pet_png):
    rgb = png_uint8(pet_png, rgb=True)
    expected = read_image(pet_png)
    path = save(secondary_capture(rgb), tmp_path / "pet_rgb.dcm")
    np.testing.assert_array_equal(read_image(path), expected)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    path = save(secondary_capture(ybr, "YBR_FULL"), tmp_path / "pet_ybr.dcm")
    np.testing.assert_allclose(read_image(path), expected, atol=2 / 255)  # 8-bit YCbCr rounding


def test_palette_colour_goes_through_its_lookup_tables(tmp_path, pet_png):
    with Image.open(pet_png) as img:
        indexed = img.convert("RGB").quantize(64)
    palette = np.array(indexed.getpalette()[: 3 * 256], dtype=np.uint16).reshape(-1, 3)
    palette = np.pad(palette, ((0, 256 - len(palette)), (0, 0)))
    ds = secondary_capture(np.asarray(indexed), "PALETTE COLOR")
    for i, colour in enumerate(("Red", "Green", "Blue")):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        # 16-bit entries: the 8-bit palette value in the high byte, as scanners write them
        lut = (palette[:, i] * 257).astype("<u2")
        setattr(ds, f"{colour}PaletteColorLookupTableData", lut.tobytes())
    path = save(ds, tmp_path / "pet_palette.dcm")
    expected = np.asarray(indexed.convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_allclose(read_image(path), expected, atol=1e-6)


def test_rescale_and_window_of_the_header(tmp_path, mr_png):
    stored = png_uint8(mr_png).astype(np.uint16) * 16  # a 12-bit range
    ds = secondary_capture(stored)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.RescaleSlope, ds.RescaleIntercept = 0.5, -100  # values -100 .. 1940
    path = save(ds, tmp_path / "rescaled.dcm")
    values = stored * 0.5 - 100
    np.testing.assert_allclose(read_image(path), (values - values.min()) / np.ptp(values),
                               atol=1e-6)  # no window: its own range
    ds.WindowCenter, ds.WindowWidth = 400, 801
    path = save(ds, tmp_path / "windowed.dcm")
    expected = np.clip((values - 399.5) / 800 + 0.5, 0, 1)  # PS3.3 C.11.2.1.2.1
    np.testing.assert_allclose(read_image(path), expected, atol=1e-6)
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = save(ds, tmp_path / "windowed_m1.dcm")
    np.testing.assert_allclose(read_image(path), 1 - expected, atol=1e-6)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGBaseline8Bit],
                         ids=["rle", "jpeg2000", "jpeg-baseline"])
def test_compressed_transfer_syntaxes(tmp_path, mr_png, pet_png, syntax):
    for png, rgb in ((mr_png, False), (pet_png, True)):
        pixels = png_uint8(png, rgb)
        ds = secondary_capture(pixels)
        if syntax == JPEGBaseline8Bit:  # encoded by Pillow (libjpeg), as a camera or PACS does
            buffer = io.BytesIO()
            # 4:4:4 (no chroma subsampling), so that decoders' upsampling cannot differ
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, subsampling=0)
            ds.PixelData = encapsulate([buffer.getvalue()])
            ds["PixelData"].VR = "OB"
            ds.file_meta.TransferSyntaxUID = syntax
            if rgb:
                ds.PhotometricInterpretation = "YBR_FULL"
            ds.LossyImageCompression = "01"
        else:
            ds.compress(syntax)
        path = save(ds, tmp_path / f"{png.parent.name}.dcm")
        assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
        if syntax == JPEGBaseline8Bit:  # lossy: what Pillow decodes from the same stream
            with Image.open(buffer) as img:
                expected = np.asarray(img, dtype=np.float32) / 255
            # YCbCr -> RGB rounded in 8 bits by each decoder: 3 levels apart at most
            np.testing.assert_allclose(read_image(path), expected, atol=3.5 / 255)
        else:
            np.testing.assert_array_equal(read_image(path), read_image(png))


def test_one_frame_of_a_multiframe_file(tmp_path, mr_png):
    from msgfusion.io.dicom_image import read_dicom_image

    grey = png_uint8(mr_png)
    ds = secondary_capture(np.stack([grey, 255 - grey]))
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    del ds.PlanarConfiguration
    ds.NumberOfFrames = 2
    path = save(ds, tmp_path / "two frames.dcm")
    with pytest.raises(ImageReadError, match=r"two frames.dcm: holds 2 frames.*--frame"):
        read_image(path)
    np.testing.assert_allclose(read_dicom_image(path, frame=1), 1 - read_image(mr_png),
                               atol=1e-6)


def test_bad_dicom_files_are_one_clear_error(tmp_path, mr_png):
    ds = secondary_capture(png_uint8(mr_png))
    good = save(ds, tmp_path / "good.dcm")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ImageReadError, match="truncated.dcm: cannot decode pixel data"):
        read_image(truncated)
    del ds.PixelData
    del ds.Rows
    no_image = save(ds, tmp_path / "no_image.dcm")
    with pytest.raises(ImageReadError, match="no_image.dcm: a DICOM file without an image"):
        check_image(no_image)
    text = tmp_path / "notes.dcm"
    text.write_text("not DICOM at all")
    with pytest.raises(ImageReadError, match="notes.dcm"):
        read_image(text)


def test_secondary_capture_written_keeps_patient_and_study(tmp_path, mr_png, pet_png):
    source = secondary_capture(png_uint8(mr_png), patient="DOE^JANE")
    source_path = save(source, tmp_path / "T1_DICOM (3).dcm")
    fused = read_image(pet_png)
    out = write_image(tmp_path / "fused (3).dcm", fused, source=source_path)
    written = pydicom.dcmread(out)
    for name in ("PatientName", "PatientID", "StudyInstanceUID"):
        assert written[name].value == source[name].value
    assert written.SeriesInstanceUID != source.SeriesInstanceUID
    assert written.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert list(written.ImageType) == ["DERIVED", "SECONDARY"]
    assert written.PhotometricInterpretation == "RGB"
    np.testing.assert_array_equal(read_image(out), read_image(pet_png))
    errors = dciodvfy_errors(out)
    assert not errors, errors
    pydicom.dataset.validate_file_meta(written.file_meta)


def test_a_dicom_file_is_an_image_unless_it_is_a_slice_of_a_series_beside_it(tmp_path):
    from conftest import SHARED

    mr_dir = SHARED / "data" / "volumes" / "mridir" / "mr_t2"
    first = sorted(mr_dir.glob("*.dcm"))[0]
    assert is_volume_path(first)  # one file of a series on disk: the series
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(first, alone / "slice.dcm")
    assert not is_volume_path(alone / "slice.dcm")  # the same file on its own: an image
    image = read_image(alone / "slice.dcm")
    ds = pydicom.dcmread(first)
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (1375, 2750)  # its own window
    expected = np.clip((ds.pixel_array - 1374.5) / 2749 + 0.5, 0, 1)
    np.testing.assert_allclose(image, expected, atol=1e-6)
