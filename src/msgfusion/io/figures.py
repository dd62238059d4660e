"""Side-by-side comparison figures (MR | functional | fused), drawn with Pillow."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from msgfusion.io.color import to_uint8


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
