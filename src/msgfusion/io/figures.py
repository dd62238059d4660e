"""Side-by-side comparison figures (MR | functional | fused), drawn with Pillow."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from msgfusion.io.color import colorize, to_uint8


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def side_by_side(images: Sequence[np.ndarray], labels: Sequence[str], gap: int = 4,
                 title_height: int = 18) -> np.ndarray:
    """Panels of equal height in a row with a caption above each; returns H x W x 3 in [0, 1]."""
    if len(images) != len(labels):
        raise ValueError("one label per image")
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, height + title_height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    x = 0
    for img, label in zip(images, labels):
        canvas.paste(Image.fromarray(to_uint8(_rgb(img))), (x, title_height))
        draw.text((x + 4, 3), label, fill="black", font=font)
        x += img.shape[1] + gap
    return np.asarray(canvas, dtype=np.float32) / 255.0


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """An image in [0, 1] resized (bilinear) to ``height`` x ``width``, e.g. to square voxels."""
    pil = Image.fromarray(to_uint8(img)).resize((max(width, 1), max(height, 1)),
                                                Image.Resampling.BILINEAR)
    return np.asarray(pil, dtype=np.float32) / 255.0


def stack_rows(rows: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Figures (H x W x 3) one below the other, left-aligned on white; returns H x W x 3."""
    width = max(r.shape[1] for r in rows)
    height = sum(r.shape[0] for r in rows) + gap * (len(rows) - 1)
    canvas = np.ones((height, width, 3), dtype=np.float32)
    y = 0
    for r in rows:
        canvas[y:y + r.shape[0], :r.shape[1]] = _rgb(r)
        y += r.shape[0] + gap
    return canvas


def colour_bar(cmap: str, width: int, low: float, high: float, caption: str,
               height: int = 14) -> np.ndarray:
    """A horizontal colour bar of ``cmap`` from ``low`` (left) to ``high`` (right), with those
    values under its ends and ``caption`` between them: what each colour of a figure means.
    Returns H x W x 3 in [0, 1]."""
    strip = colorize(np.repeat(np.linspace(0.0, 1.0, width)[None], height, axis=0), cmap)
    text_height = 16
    canvas = Image.new("RGB", (width, height + text_height), "white")
    canvas.paste(Image.fromarray(to_uint8(strip)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    right = f"{high:.4g}"
    draw.text((2, height + 2), f"{low:.4g}", fill="black", font=font)
    draw.text((width - 2 - draw.textlength(right, font=font), height + 2), right, fill="black",
              font=font)
    middle = (width - draw.textlength(caption, font=font)) / 2
    draw.text((max(middle, 40), height + 2), caption, fill="black", font=font)
    return np.asarray(canvas, dtype=np.float32) / 255.0
