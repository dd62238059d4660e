"""msgfusion.io.images.encode_png: files any PNG reader decodes to the same pixels."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msgfusion.io.color import to_uint8
from msgfusion.io.images import encode_png, read_image, write_image


def decoded(data: bytes, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with Image.open(path) as img:
        img.verify()  # chunk CRCs and structure
    with Image.open(path) as img:
        return np.asarray(img)


@pytest.mark.parametrize("shape", [(256, 256, 3), (256, 256), (1, 7, 3), (9, 1), (3, 300, 3)])
def test_round_trip_random(shape: tuple[int, ...], tmp_path: Path) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(decoded(encode_png(pixels), tmp_path), pixels)


def test_round_trip_real_slices(aanlib_dir: Path, tmp_path: Path) -> None:
    """Every PET-MRI test image (RGB PET, grey MR) reads back identical, through write_image
    and read_image too."""
    files = sorted((aanlib_dir / "PET-MRI" / "test").rglob("*.png"))
    assert files
    for i, f in enumerate(files):
        image = read_image(f)
        pixels = to_uint8(image)
        np.testing.assert_array_equal(decoded(encode_png(pixels), tmp_path), pixels)
        out = write_image(tmp_path / f"{i}.png", image)
        np.testing.assert_array_equal(read_image(out), image)


def test_compresses_like_pillow(aanlib_dir: Path, tmp_path: Path) -> None:
    """Within 10 % of Pillow's size at the same zlib level, on a real RGB slice."""
    f = next(iter(sorted((aanlib_dir / "PET-MRI" / "test").rglob("*.png"))))
    pixels = to_uint8(read_image(f))
    ours = len(encode_png(pixels, level=1))
    Image.fromarray(pixels).save(tmp_path / "p.png", compress_level=1)
    assert ours <= 1.1 * (tmp_path / "p.png").stat().st_size


def test_refuses_other_arrays() -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="non-empty"):
        encode_png(np.zeros((0, 4), dtype=np.uint8))
