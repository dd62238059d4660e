"""The Python API: fuse a pair in one call, from arrays, files or a :class:`FusionPair`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from msgfusion.io.color import DEFAULT_COLOR_MODE, restore_color
from msgfusion.methods.registry import DEFAULT_METHOD, fuse_pairs, get_method
from msgfusion.pair import FusionPair, check_modality, infer_modality, load_pair, prepare_images

ImageLike = np.ndarray | str | os.PathLike


def make_pair(mr: ImageLike, func: ImageLike, modality: str | None = None,
              cmap: str | None = None) -> FusionPair:
    """A :class:`FusionPair` from two arrays (float in [0, 1]) or two file paths.

    The modality is inferred when not given (:func:`msgfusion.pair.infer_modality`: grey is CT,
    colour PET or SPECT by its colour scale); a scalar PET/SPECT is rendered with ``cmap``
    (default: the atlas's scale of that modality), as :func:`msgfusion.pair.prepare_images` says.
    """
    if not isinstance(mr, np.ndarray) and not isinstance(func, np.ndarray):
        return load_pair(mr, func, modality, cmap=cmap)
    if not isinstance(mr, np.ndarray) or not isinstance(func, np.ndarray):
        raise TypeError("give both images as arrays or both as file paths")
    modality = check_modality(modality) if modality else infer_modality(func)
    mr, func = prepare_images(np.asarray(mr, dtype=np.float32), np.asarray(func, np.float32),
                              modality, cmap)
    return FusionPair(mr=mr, func=func, modality=modality)


def fuse_intensity(pairs: Sequence[FusionPair], method: str = DEFAULT_METHOD,
                   batch_size: int = 16) -> list[np.ndarray]:
    """Fused intensities (H x W float32 in [0, 1]) of many pairs with the named method."""
    return fuse_pairs(get_method(method), pairs, batch_size=batch_size)


def fuse(
    mr: ImageLike | FusionPair,
    func: ImageLike | None = None,
    method: str = DEFAULT_METHOD,
    color: str = DEFAULT_COLOR_MODE,
    modality: str | None = None,
    cmap: str | None = None,
) -> np.ndarray:
    """Fuse an MR image with a CT/PET/SPECT image; returns the fused picture in [0, 1].

    ``mr`` and ``func`` are arrays (grey H x W / RGB H x W x 3, float in [0, 1]) or file paths;
    or pass a :class:`FusionPair` as ``mr``. The result is grey for CT and in the functional
    image's colour scale for PET/SPECT (``color``: ycbcr (default), hsv, gray or viridis; grey
    wherever the PET/SPECT has no signal). A scalar PET/SPECT (give ``modality``) is first
    rendered with the colour map ``cmap`` (default: the atlas's own PET or SPECT scale).

    >>> fused = fuse("mr.png", "pet.png", method="average")   # doctest: +SKIP
    """
    pair = mr if isinstance(mr, FusionPair) else make_pair(mr, func, modality, cmap)  # type: ignore[arg-type]
    (intensity,) = fuse_intensity([pair], method)
    return restore_color(intensity, pair.func, color)
