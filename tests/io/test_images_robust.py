"""Reading and writing under hostile conditions (issue 14): decompression bombs, FIFOs and
devices, NaN/inf float TIFFs, flipped PNG bits, multi-page TIFFs, library messages on stderr,
write errors, umask, no-clobber under concurrency."""

from __future__ import annotations

import io
import os
import random
import stat
import struct
import threading
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from msgfusion.errors import (
    ImageReadError,
    ImageTooLargeError,
    MsgFusionError,
    OutputExistsError,
    OutputWriteError,
)
from msgfusion.io import images
from msgfusion.io.files import atomic_write
from msgfusion.io.images import check_image, read_image, set_max_pixels, write_image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG with valid CRCs whose header claims width x height (the data holds 4 rows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\0" * (width + 1) * 4)) + _chunk(b"IEND", b""))


@pytest.fixture
def limit():
    """Restore the pixel limit (and Pillow's) after a test that changes it."""
    pillow = Image.MAX_IMAGE_PIXELS
    yield
    set_max_pixels(images.DEFAULT_MAX_PIXELS)
    Image.MAX_IMAGE_PIXELS = pillow


@pytest.mark.parametrize("w,h", [(100_000, 100_000), (20_000, 20_000), (10_000, 10_000)])
def test_bomb_is_refused_from_its_header_without_warnings(tmp_path, w, h):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(w, h))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageTooLargeError, match="bomb.png"):
            read_image(path)
        with pytest.raises(ImageTooLargeError, match="bomb.png"):
            check_image(path)
    assert caught == []  # Pillow's DecompressionBombWarning lines used to leak


def test_max_pixels_is_documented_and_can_be_raised(tmp_path, aanlib_dir, limit):
    mr = aanlib_dir / "CT-MRI/test/MRI/16009.png"
    set_max_pixels(256 * 255)
    with pytest.raises(ImageTooLargeError,
                       match="65,536 pixels, above the limit of 65,280.*--max-pixels"):
        read_image(mr)
    set_max_pixels(256 * 256)
    assert read_image(mr).shape == (256, 256)
    set_max_pixels(300_000_000)  # above Pillow's own hard limit: raised with it
    assert Image.MAX_IMAGE_PIXELS >= 300_000_000


@pytest.mark.timeout(20)
def test_fifo_and_devices_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "f.png"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero", "/dev/null"):
        with pytest.raises(ImageReadError, match="not a regular file"):
            read_image(path)
        with pytest.raises(ImageReadError, match="not a regular file"):
            check_image(path)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_float_tiff_with_nan_or_inf_is_refused(tmp_path, value):
    arr = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    arr[2, 3] = value
    Image.fromarray(arr, "F").save(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match=r"f.tif: 1 pixel\(s\) are NaN or infinite"):
        read_image(tmp_path / "f.tif")
    arr[2, 3] = 0.5  # finite float TIFFs still read, min-max scaled
    Image.fromarray(arr * 1000, "F").save(tmp_path / "ok.tif")
    np.testing.assert_allclose(read_image(tmp_path / "ok.tif"), arr, atol=1e-6)


def test_flipped_bit_in_png_data_is_an_error(tmp_path, aanlib_dir):
    data = bytearray((aanlib_dir / "PET-MRI/test/MRI/25015.png").read_bytes())
    data[data.find(b"IDAT") + 4 + 200] ^= 1  # used to decode with 8,678 pixels changed
    (tmp_path / "flip.png").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="flip.png: corrupt PNG .bad CRC in chunk IDAT"):
        read_image(tmp_path / "flip.png")
    with pytest.raises(ImageReadError, match="CRC"):
        check_image(tmp_path / "flip.png")


def test_every_single_bit_flip_of_a_png_is_detected(tmp_path, aanlib_dir):
    data = (aanlib_dir / "CT-MRI/test/CT/16009.png").read_bytes()
    rng = random.Random(3)
    for bit in rng.sample(range(len(data) * 8), 40):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        (tmp_path / "x.png").write_bytes(bytes(damaged))
        with pytest.raises(ImageReadError):
            read_image(tmp_path / "x.png")


def test_multi_page_tiff_is_refused_as_documented(tmp_path, aanlib_dir):
    img = Image.open(aanlib_dir / "CT-MRI/test/MRI/16009.png")
    img.save(tmp_path / "two.tif", save_all=True, append_images=[img])
    with pytest.raises(ImageReadError, match="two.tif: holds 2 images"):
        read_image(tmp_path / "two.tif")
    assert "multi-page TIFF" in images.__doc__ and "refused" in images.__doc__


def test_libtiff_messages_do_not_leak_to_stderr(tmp_path, aanlib_dir, capfd):
    buf = io.BytesIO()
    Image.open(aanlib_dir / "PET-MRI/test/PET/25015.png").convert("RGB").save(
        buf, format="TIFF", compression="tiff_lzw")
    data = bytearray(buf.getvalue())
    rng = random.Random(1)
    for _ in range(20):
        data[rng.randrange(8, len(data) - 400)] ^= 0xFF
    (tmp_path / "lzw.tif").write_bytes(bytes(data))
    capfd.readouterr()
    with pytest.raises(ImageReadError, match="lzw.tif: cannot read image .*Using code not yet"):
        read_image(tmp_path / "lzw.tif")
    assert capfd.readouterr().err == ""  # libtiff printed "...: Using code not yet in table."


def test_parent_path_being_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputWriteError, match="file is a file, not a folder"):
        write_image(tmp_path / "file" / "out.png", np.zeros((4, 4)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_write_that_fails_midway_leaves_nothing(tmp_path):
    """A real failure in the middle of writing: Pillow cannot encode a 2-channel image as PNG."""
    with pytest.raises(OSError, match="out.png"):
        atomic_write(tmp_path / "out.png",
                     lambda f: (f.write(b"partial"), Image.new("LA", (4, 4)).save(f, "JPEG")))
    assert list(tmp_path.iterdir()) == []


def test_warnings_about_corrupt_tiff_metadata_do_not_leak(tmp_path, aanlib_dir):
    from PIL import TiffImagePlugin

    buf = io.BytesIO()
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[270] = "d" * 100  # ImageDescription, stored out of line
    Image.open(aanlib_dir / "CT-MRI/test/MRI/16009.png").save(buf, format="TIFF", tiffinfo=info)
    data = bytearray(buf.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    for k in range(struct.unpack("<H", data[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack("<H", data[entry:entry + 2])[0] == 270:  # point it past the end
            data[entry + 8:entry + 12] = struct.pack("<I", len(data) - 20)
    (tmp_path / "meta.tif").write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageReadError, match="meta.tif"):
            read_image(tmp_path / "meta.tif")
    assert caught == []  # Pillow's "Truncated File Read" warning used to print two lines


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        out = write_image(tmp_path / "f.png", np.zeros((4, 4)))
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # was 0600 (mkstemp)


def test_concurrent_writers_of_one_path_exactly_one_wins(tmp_path):
    target = tmp_path / "f.png"
    barrier = threading.Barrier(8)
    results: list[str] = []

    def writer(value: float) -> None:
        barrier.wait()
        try:
            write_image(target, np.full((64, 64), value))
            results.append("won")
        except OutputExistsError:
            results.append("exists")

    threads = [threading.Thread(target=writer, args=(i / 8,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["exists"] * 7 + ["won"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_api_messages_do_not_mention_cli_options(tmp_path):
    out = write_image(tmp_path / "f.png", np.zeros((4, 4)))
    with pytest.raises(OutputExistsError) as info:
        write_image(out, np.zeros((4, 4)))
    assert "--overwrite" not in str(info.value)
    assert isinstance(info.value, MsgFusionError)


def test_a_folder_as_output_is_a_write_error(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OutputWriteError, match="dir.png: is a folder, not a file"):
        write_image(tmp_path / "dir.png", np.zeros((4, 4)))
