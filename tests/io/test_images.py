"""Image reading and writing on real atlas files and synthetic edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from msgfusion.errors import ImageReadError, OutputExistsError
from msgfusion.io.images import read_image, write_image


def test_reads_real_grey_mr_and_ct(aanlib_dir):
    for path in (aanlib_dir / "CT-MRI/test/MRI/16009.png", aanlib_dir / "CT-MRI/test/CT/16009.png"):
        img = read_image(path)
        raw = np.asarray(Image.open(path))
        assert img.shape == (256, 256) and img.dtype == np.float32
        np.testing.assert_array_equal(np.round(img * 255).astype(np.uint8), raw)


@pytest.mark.parametrize("pair,mod", [("PET-MRI", "PET"), ("SPECT-MRI", "SPECT")])
def test_reads_real_pseudocolour_as_rgb(aanlib_dir, pair, mod):
    path = next((aanlib_dir / pair / "test" / mod).glob("*.png"))
    img = read_image(path)
    assert img.shape == (256, 256, 3)
    raw = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(np.round(img * 255).astype(np.uint8), raw)


def test_16bit_grey_is_scaled_by_its_true_range(tmp_path):
    data = np.array([[100, 1100], [2100, 4195]], dtype=np.uint16)  # a 12-bit scan in 16-bit PNG
    Image.fromarray(data).save(tmp_path / "scan.png")
    assert Image.open(tmp_path / "scan.png").mode.startswith("I")
    img = read_image(tmp_path / "scan.png")
    np.testing.assert_allclose(img, (data - 100.0) / (4195.0 - 100.0), atol=1e-6)


def test_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((3, 4, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 7
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert img.shape == (3, 4, 3)
    np.testing.assert_allclose(img[0, 0], np.array([200, 100, 50]) / 255, atol=1e-7)


def test_palette_images_expand_to_rgb_or_grey(tmp_path):
    colour = Image.new("P", (5, 2))
    colour.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    colour.putpixel((1, 1), 1)
    colour.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    assert img.shape == (2, 5, 3)
    np.testing.assert_array_equal(img[1, 1], [1.0, 0.0, 0.0])
    grey = Image.fromarray(np.arange(10, dtype=np.uint8).reshape(2, 5)).convert("P")
    grey.save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png").shape == (2, 5)


def test_one_pixel_image(tmp_path):
    Image.fromarray(np.array([[77]], dtype=np.uint8)).save(tmp_path / "one.png")
    img = read_image(tmp_path / "one.png")
    assert img.shape == (1, 1) and img[0, 0] == pytest.approx(77 / 255)


def test_rgb_with_equal_channels_is_grey(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (8, 9), dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png").shape == (8, 9)


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp"])
def test_lossless_round_trip(tmp_path, ext):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (7, 5)) / 255.0
    rgb = rng.integers(0, 256, (7, 5, 3)) / 255.0
    for img in (grey, rgb):
        out = write_image(tmp_path / f"x{img.ndim}{ext}", img)
        np.testing.assert_allclose(read_image(out), img, atol=1e-7)


def test_jpeg_reads_close(tmp_path):
    img = np.full((16, 16), 0.5)
    write_image(tmp_path / "x.jpg", img)
    np.testing.assert_allclose(read_image(tmp_path / "x.jpg"), img, atol=2 / 255)


def test_corrupt_missing_and_folder_give_clear_errors(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(bad)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageReadError, match="notes.png.*not a readable image"):
        read_image(text)
    with pytest.raises(ImageReadError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


def test_truncated_png_is_an_error(tmp_path, aanlib_dir):
    data = (aanlib_dir / "CT-MRI/test/MRI/16009.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(tmp_path / "cut.png")


def test_write_refuses_to_overwrite_and_leaves_no_partial_file(tmp_path):
    out = write_image(tmp_path / "f.png", np.zeros((4, 4)))
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="f.png: already exists"):
        write_image(out, np.ones((4, 4)))
    assert out.read_bytes() == before
    write_image(out, np.ones((4, 4)), overwrite=True)
    assert read_image(out).min() == 1.0
    with pytest.raises(ValueError):
        write_image(tmp_path / "bad.png", np.zeros((4, 4, 2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]
