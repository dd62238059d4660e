"""Reading and writing 2-D image slices (PNG, JPEG, TIFF, BMP) with Pillow.

Every image is returned as float32 in [0, 1]: H x W for grey, H x W x 3 for colour.

- 8-bit grey/RGB: divided by 255 (exact on the 1/255 grid).
- RGBA / LA: alpha is dropped. Palette ('P'): expanded to RGB (or grey if the palette is grey).
- 16-bit and 32-bit integer or float grey: scaled by the image's true value range
  (min-max to [0, 1]); a 12-bit scan stored in a 16-bit PNG is therefore not darkened 16-fold,
  and nothing is clipped. A constant image becomes all zeros. A float image holding NaN or
  infinity is refused.
- An RGB image whose three channels are identical is grey and is returned as H x W
  (so a CT saved as RGB is still recognised as CT).

What is checked before anything is decoded (:func:`check_image`, also used to check a whole
folder of pairs before any output is written):

- the path is a regular file (a FIFO or a device would block or never end);
- the header parses, and width x height is at most the pixel limit (:data:`DEFAULT_MAX_PIXELS`,
  raised with :func:`set_max_pixels` or the CLI's ``--max-pixels``), so a decompression bomb is
  refused from its header and never decoded;
- the file holds one image: a multi-page TIFF or animated PNG is refused (msgfusion fuses 2-D
  slices; read stacks with the volume readers);
- for PNG, every chunk's CRC-32 is verified, so a flipped bit or a truncation is an error rather
  than silently different pixels.

JPEG, BMP and uncompressed TIFF carry no checksum: corruption there is detected only when the
decoder fails (truncation, broken markers); a flipped bit in pixel data reads as a different
image. Decoder warnings (libtiff messages, Pillow's "Corrupt EXIF data") never reach stderr; when
decoding fails the libtiff message is part of the one-line error.

Writing: grey (H x W) or RGB (H x W x 3) float images in [0, 1] as 8-bit files; the format
follows the extension, via :func:`msgfusion.io.files.atomic_write` (no clobbering unless asked,
atomic, umask respected, nothing half-written).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from msgfusion.errors import ImageReadError, ImageTooLargeError
from msgfusion.io.color import to_uint8
from msgfusion.io.dicom_image import (check_dicom_image, encode_dicom_image, is_dicom_path,
                                      read_dicom_image)
from msgfusion.io.files import atomic_write, check_output

READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm")
WRITE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG",
                 ".bmp": "BMP", ".dcm": "DICOM"}
#: zlib level of the PNGs written: a fused 256 x 256 RGB slice of the PET-MRI test pairs
#: compresses in about 1.8 ms at level 1 (76 kB) against 2.6 ms at level 3 (73 kB).
PNG_LEVEL = 1

#: Largest image read by default, in pixels (8192 x 4096; a 256 x 256 atlas slice is 65,536).
#: Decoding a 100-megapixel image takes gigabytes; a bigger header is refused unread.
DEFAULT_MAX_PIXELS = 8192 * 4096
_max_pixels = DEFAULT_MAX_PIXELS
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Decoding is serialised: catching warnings and redirecting file descriptor 2 are process-wide.
_DECODE_LOCK = threading.RLock()


def set_max_pixels(limit: int) -> None:
    """Set the pixel limit of every later read (and raise Pillow's own bomb limit to match)."""
    global _max_pixels
    if limit < 1:
        raise ValueError(f"the pixel limit must be positive, got {limit}")
    _max_pixels = int(limit)
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit


def check_size(path: Path, width: int, height: int, limit: bool = True) -> None:
    """Refuse an empty image, or (with ``limit``) one above the pixel limit, from its header's
    size."""
    if width * height == 0:
        raise ImageReadError(f"{path}: image is empty ({width} x {height} pixels)")
    if limit and width * height > _max_pixels:
        raise ImageTooLargeError(
            f"{path}: image is {width} x {height} = {width * height:,} pixels, above the limit "
            f"of {_max_pixels:,} (raise it with --max-pixels if the file is genuine)")


def minmax_scale(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the array's own range (all zeros when constant), as float32."""
    x = x.astype(np.float64)
    lo, hi = x.min(), x.max()
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def _to_array(img: Image.Image, path: Path) -> np.ndarray:
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("1", "L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
        if mode in ("1", "LA"):
            img = img.convert("L")
        elif mode not in ("L", "RGB"):
            img = img.convert("RGB")
        raw = np.asarray(img)  # uint8: the grey test and the scaling are cheaper before floats
        if raw.ndim == 3 and (raw[..., 0] == raw[..., 1]).all() \
                and (raw[..., 0] == raw[..., 2]).all():
            raw = raw[..., 0]
        return np.divide(raw, np.float32(255.0), dtype=np.float32)
    elif mode.startswith("I") or mode == "F":
        raw = np.asarray(img)
        if raw.dtype.kind == "f" and not np.isfinite(raw).all():
            bad = int(np.count_nonzero(~np.isfinite(raw)))
            raise ImageReadError(f"{path}: {bad} pixel(s) are NaN or infinite; msgfusion needs "
                                 "finite intensities")
        arr = minmax_scale(raw)
    else:  # pragma: no cover - exotic modes Pillow may add
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    if arr.ndim == 3:
        arr = arr[..., :3]
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            arr = arr[..., 0]
    return np.ascontiguousarray(arr, dtype=np.float32)


def _open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading; FIFOs, sockets and devices are refused unopened."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot open ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(f"{path}: is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError(f"{path}: not a regular file (a FIFO, socket or device); "
                             "give an image file")
    try:  # non-blocking, and checked again, in case the path was swapped for a FIFO meanwhile
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot open ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImageReadError(f"{path}: not a regular file")
    return os.fdopen(fd, "rb")


def _check_png_chunks(f: BinaryIO, path: Path) -> None:
    """Verify the CRC-32 of every PNG chunk up to IEND (Pillow checks only some of them)."""
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(len(_PNG_SIGNATURE))
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise ImageReadError(f"{path}: truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", head)
        if length > size - f.tell() - 4:
            raise ImageReadError(f"{path}: truncated PNG (chunk {kind.decode('latin-1')} runs "
                                 "past the end)")
        data = f.read(length)
        (crc,) = struct.unpack(">I", f.read(4))
        if zlib.crc32(data, zlib.crc32(kind)) != crc:
            raise ImageReadError(f"{path}: corrupt PNG (bad CRC in chunk "
                                 f"{kind.decode('latin-1')})")
        if kind == b"IEND":
            return


def encode_png(pixels: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """An 8-bit grey (H x W) or RGB (H x W x 3) image as PNG file bytes.

    One IHDR, one IDAT and IEND chunk (PNG specification, ISO/IEC 15948, W3C 2003); every row
    filtered with filter type 2 "Up" (each byte minus the byte above it, modulo 256), which a
    single vectorised subtraction computes, then deflated by zlib at ``level``. Pillow's encoder
    tries the five filter types on every row, which cost more than the deflating itself: it
    took 3.4 ms per fused 256 x 256 RGB slice at level 1, this 1.8 ms, for files 3 % larger
    (``python benchmarks/speed.py``). The files read back identical (tests/io/test_png.py).
    """
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3
                                                             and pixels.shape[2] == 3)) \
            or not pixels.size:
        raise ValueError(f"encode_png takes a non-empty H x W or H x W x 3 uint8 array, got "
                         f"{pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    rows = np.empty((height, 1 + pixels[0].size), dtype=np.uint8)
    rows[:, 0] = 2  # filter type Up
    flat = pixels.reshape(height, -1)
    rows[0, 1:] = flat[0]  # the row above the first is zero
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])  # wraps modulo 256

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(data, zlib.crc32(kind)))

    colour_type = 0 if pixels.ndim == 2 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"".join((_PNG_SIGNATURE, chunk(b"IHDR", header),
                     chunk(b"IDAT", zlib.compress(rows.data, level)), chunk(b"IEND", b"")))


@contextmanager
def _quiet_stderr() -> Iterator[Callable[[], list[str]]]:
    """Collect what C libraries (libtiff) print on file descriptor 2 instead of showing it;
    yields a function returning the lines collected so far."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield list
        return
    with tempfile.TemporaryFile() as sink:
        def messages() -> list[str]:
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            return [line.strip() for line in text.splitlines() if line.strip()]

        os.dup2(sink.fileno(), 2)
        try:
            yield messages
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@contextmanager
def _guarded(f: BinaryIO) -> Iterator[Callable[[], list[str]]]:
    """Serialise and silence what is process-wide while Pillow parses or decodes: warnings,
    and for TIFF (libtiff prints to file descriptor 2) stderr. Yields the messages function."""
    head = f.read(4)
    f.seek(0)
    with _DECODE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Corrupt EXIF data", DecompressionBombWarning, ...
        if head in _TIFF_MAGIC:
            with _quiet_stderr() as messages:
                yield messages
        else:
            yield list


@contextmanager
def _open_image(path: Path) -> Iterator[tuple[Image.Image, Callable[[], list[str]]]]:
    """Open an image file and check it before decoding (see the module doc); yields the
    Pillow image and a function returning the library messages printed so far. A PNG that
    passed its checks is decoded outside the decoding lock (zlib neither warns nor prints), so
    that several threads decode PNGs at once."""
    with _open_regular(path) as f, ExitStack() as guard:
        messages = guard.enter_context(_guarded(f))
        try:
            img = Image.open(f)
        except Image.DecompressionBombError:
            raise ImageTooLargeError(
                f"{path}: image header claims more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, "
                "refused as a possible decompression bomb (raise the limit with --max-pixels if "
                "the file is genuine)") from None
        except UnidentifiedImageError:
            raise ImageReadError(f"{path}: not a readable image (unknown or corrupt format)") \
                from None
        except MemoryError:
            raise
        except Exception as exc:  # any parser failure on a corrupt header is a bad file
            raise ImageReadError(f"{path}: cannot read image ({_one_line(exc, messages)})") \
                from None
        with img:
            check_size(path, *img.size)
            try:
                frames = getattr(img, "n_frames", 1)
            except Exception as exc:
                raise ImageReadError(f"{path}: cannot read image ({_one_line(exc, messages)})") \
                    from None
            if frames > 1:
                raise ImageReadError(f"{path}: holds {frames} images (pages or frames); msgfusion "
                                     "reads single 2-D images, give one page per file")
            if img.format == "PNG":
                _check_png_chunks(f, path)
                f.seek(0)
                guard.close()
            yield img, messages


def _one_line(exc: BaseException, messages: Callable[[], list[str]]) -> str:
    """The exception and the first library message, as one line."""
    text = "; ".join([str(exc) or type(exc).__name__, *messages()[:1]])
    return " ".join(text.split())


def check_image(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file after the checks that need no decoding (module doc):
    regular file, header, pixel limit, one frame, PNG checksums."""
    path = Path(path)
    if is_dicom_path(path):
        return check_dicom_image(path)
    with _open_image(path) as (img, _):
        w, h = img.size
    return h, w


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) that an image file's header declares (PNG, JPEG, TIFF, BMP or DICOM),
    without the pixel limit: for a caller that applies a limit of its own (the web page)."""
    path = Path(path)
    if is_dicom_path(path):
        return check_dicom_image(path, limit=False)
    with _open_regular(path) as f, _DECODE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(f) as img:
                w, h = img.size
        except Exception:  # noqa: BLE001 - Pillow raises many types for bad headers
            raise ImageReadError(f"{path}: not a readable image (unknown or corrupt format)") \
                from None
    check_size(path, w, h, limit=False)
    return h, w


def read_image(path: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """Read a 2-D image as float32 in [0, 1] (H x W grey or H x W x 3 RGB); see the module doc.
    ``frame``: the frame (0-based) of a DICOM file holding several (ignored for other files).

    Raises :class:`ImageReadError` naming the file when it is missing, not a regular file, not
    an image, corrupt, holds several pages or frames, holds NaN or infinity, or
    :class:`ImageTooLargeError` when it has more pixels than the limit.
    """
    path = Path(path)
    if is_dicom_path(path):
        return read_dicom_image(path, frame)
    try:
        with _open_image(path) as (img, messages):
            try:
                img.load()
                return _to_array(img, path)
            except ImageReadError:
                raise
            except MemoryError:
                raise
            except Exception as exc:
                raise ImageReadError(f"{path}: cannot read image "
                                     f"({_one_line(exc, messages)})") from None
    except MemoryError:
        raise ImageReadError(f"{path}: not enough memory to read this image") from None


def _write_format(path: Path) -> str:
    """Pillow's format name for writing ``path``, from its extension."""
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageReadError(
            f"{path}: cannot write this format; use one of {', '.join(sorted(WRITE_FORMATS))}"
        )
    return fmt


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check before work starts that an image can be written to ``path``: a known format, no
    clobbering, a writable folder (:func:`msgfusion.io.files.check_output`)."""
    path = Path(path)
    _write_format(path)
    return check_output(path, overwrite)


def encode_image(path: str | os.PathLike, image: np.ndarray,
                 source: str | os.PathLike | None = None) -> bytes:
    """The bytes of the 8-bit file :func:`write_image` writes for ``image`` (grey H x W or RGB
    H x W x 3, float in [0, 1]) at ``path``, in the format of its extension (not written).
    A ``.dcm`` path is a DICOM Secondary Capture image in the patient and study of ``source``
    (a DICOM file, e.g. the MR it was fused from; ignored when not DICOM)."""
    path = Path(path)
    image = np.asarray(image)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{path}: can only write H x W or H x W x 3 images, got {image.shape}")
    fmt = _write_format(path)
    pixels = to_uint8(image)
    if fmt == "PNG":
        return encode_png(pixels)
    if fmt == "DICOM":
        return encode_dicom_image(pixels, source)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=None).save(buffer, format=fmt)
    return buffer.getvalue()


def write_image(path: str | os.PathLike, image: np.ndarray, overwrite: bool = False,
                source: str | os.PathLike | None = None) -> Path:
    """Write a grey (H x W) or RGB (H x W x 3) float image in [0, 1] as an 8-bit file, atomically.
    ``source``: see :func:`encode_image` (the patient and study of a DICOM output).

    Raises :class:`OutputExistsError` if ``path`` exists and ``overwrite`` is false (also when
    another process creates it meanwhile), :class:`OutputWriteError` if it cannot be written.
    """
    path = check_writable(path, overwrite)
    data = encode_image(path, image, source)
    return atomic_write(path, lambda f: f.write(data), overwrite)
