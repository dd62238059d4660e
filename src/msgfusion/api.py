"""The Python API: fuse a pair in one call, from arrays, files or a :class:`FusionPair`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from msgfusion.io.color import DEFAULT_COLOR, restore_color
from msgfusion.methods.registry import DEFAULT_METHOD, fuse_pairs, get_method
from msgfusion.pair import FusionPair, check_modality, infer_modality, load_pair

ImageLike = np.ndarray | str | os.PathLike


def make_pair(mr: ImageLike, func: ImageLike, modality: str | None = None) -> FusionPair:
    """A :class:`FusionPair` from two arrays (float in [0, 1]) or two file paths."""
    if not isinstance(mr, np.ndarray) and not isinstance(func, np.ndarray):
        return load_pair(mr, func, modality)
    if not isinstance(mr, np.ndarray) or not isinstance(func, np.ndarray):
        raise TypeError("give both images as arrays or both as file paths")
    modality = check_modality(modality) if modality else infer_modality(func)
    return FusionPair(mr=mr, func=func, modality=modality)


def fuse_intensity(pairs: Sequence[FusionPair], method: str = DEFAULT_METHOD,
                   batch_size: int = 16) -> list[np.ndarray]:
    """Fused intensities (H x W float32 in [0, 1]) of many pairs with the named method."""
    return fuse_pairs(get_method(method), pairs, batch_size=batch_size)


def fuse(
    mr: ImageLike | FusionPair,
    func: ImageLike | None = None,
    method: str = DEFAULT_METHOD,
    color: str = DEFAULT_COLOR,
    modality: str | None = None,
) -> np.ndarray:
    """Fuse an MR image with a CT/PET/SPECT image; returns the fused picture in [0, 1].

    ``mr`` and ``func`` are arrays (grey H x W / RGB H x W x 3, float in [0, 1]) or file paths;
    or pass a :class:`FusionPair` as ``mr``. The result is grey for CT and in the functional
    image's colour scale for PET/SPECT (``color``: hsv, ycbcr, gray or viridis).

    >>> fused = fuse("mr.png", "pet.png", method="average")   # doctest: +SKIP
    """
    pair = mr if isinstance(mr, FusionPair) else make_pair(mr, func, modality)  # type: ignore[arg-type]
    (intensity,) = fuse_intensity([pair], method)
    return restore_color(intensity, pair.func, color)
