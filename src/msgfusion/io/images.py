"""Reading and writing 2-D image slices (PNG, JPEG, TIFF, BMP) with Pillow.

Every image is returned as float32 in [0, 1]: H x W for grey, H x W x 3 for colour.

- 8-bit grey/RGB: divided by 255 (exact on the 1/255 grid).
- RGBA / LA: alpha is dropped. Palette ('P'): expanded to RGB (or grey if the palette is grey).
- 16-bit and 32-bit integer or float grey: scaled by the image's true value range
  (min-max to [0, 1]); a 12-bit scan stored in a 16-bit PNG is therefore not darkened 16-fold,
  and nothing is clipped. A constant image becomes all zeros.
- An RGB image whose three channels are identical is grey and is returned as H x W
  (so a CT saved as RGB is still recognised as CT).

Writing: grey (H x W) or RGB (H x W x 3) float images in [0, 1] as 8-bit files; the format
follows the extension. Writing never overwrites an existing file unless asked, and is atomic
(a temporary file renamed into place), so a failure leaves no partial file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from msgfusion.errors import ImageReadError, OutputExistsError
from msgfusion.io.color import to_uint8

READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
WRITE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG",
                 ".bmp": "BMP"}
#: Encoder options per format. PNG at zlib level 1: a 256 x 256 RGB slice encodes in about
#: 1.1 ms instead of 2.6 ms at Pillow's default level 6, for files about 20 % larger (15 kB
#: against 13 kB on the PET-MRI test pairs; benchmarks/speed.py, docs/speed.md).
SAVE_OPTIONS: dict[str, dict[str, int]] = {"PNG": {"compress_level": 1}}


def _minmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    lo, hi = x.min(), x.max()
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def _to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("1", "L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
        if mode in ("1", "LA"):
            img = img.convert("L")
        elif mode != "L":
            img = img.convert("RGB")
        arr = np.asarray(img, dtype=np.float32) / 255.0
    elif mode.startswith("I") or mode == "F":
        arr = _minmax(np.asarray(img))
    else:  # pragma: no cover - exotic modes Pillow may add
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    if arr.ndim == 3:
        arr = arr[..., :3]
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            arr = arr[..., 0]
    return np.ascontiguousarray(arr, dtype=np.float32)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D image as float32 in [0, 1] (H x W grey or H x W x 3 RGB); see the module doc.

    Raises :class:`ImageReadError` naming the file when it is missing, not an image, corrupt,
    or has more than one frame of different sizes.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    try:
        with Image.open(path) as img:
            img.load()
            arr = _to_array(img)
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{path}: cannot read image ({exc})") from None
    if arr.size == 0:
        raise ImageReadError(f"{path}: image is empty")
    return arr


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc})") from None
    return h, w


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check that an image can be written to ``path`` (known format, no clobbering) before work starts."""
    path = Path(path)
    if path.suffix.lower() not in WRITE_FORMATS:
        raise ImageReadError(
            f"{path}: cannot write this format; use one of {', '.join(sorted(WRITE_FORMATS))}"
        )
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (use --overwrite to replace it)")
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a folder")
    return path


def write_image(path: str | os.PathLike, image: np.ndarray, overwrite: bool = False) -> Path:
    """Write a grey (H x W) or RGB (H x W x 3) float image in [0, 1] as an 8-bit file, atomically."""
    path = check_writable(path, overwrite)
    image = np.asarray(image)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{path}: can only write H x W or H x W x 3 images, got {image.shape}")
    pil = Image.fromarray(to_uint8(image), mode=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        fmt = WRITE_FORMATS[path.suffix.lower()]
        pil.save(tmp, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
