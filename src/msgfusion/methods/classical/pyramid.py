"""Laplacian pyramid fusion (Burt & Adelson 1983)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from msgfusion.methods.classical.filters import (
    BURT_KERNEL,
    select_max_abs,
    separable_filter,
    to_unit_range,
)
from msgfusion.methods.registry import FusionMethod, stack_sources
from msgfusion.pair import FusionPair


def reduce(x: np.ndarray) -> np.ndarray:
    """REDUCE: low-pass with the generating kernel, then keep every second row and column."""
    return separable_filter(x, BURT_KERNEL)[..., ::2, ::2]


def expand(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """EXPAND to ``shape`` (H x W): insert zeros between samples, interpolate with 4 w (x) w."""
    up = np.zeros(x.shape[:-2] + (2 * x.shape[-2], 2 * x.shape[-1]), dtype=x.dtype)
    up[..., ::2, ::2] = x
    return separable_filter(up, 2.0 * BURT_KERNEL)[..., : shape[0], : shape[1]]


def laplacian_pyramid(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """[L_0, ..., L_{levels-1}, G_levels] with L_k = G_k - EXPAND(G_{k+1}), G_0 = x.

    Works on the last two axes (any size, odd sizes included); the last entry is the coarsest
    Gaussian level (the base). Exactly invertible by :func:`collapse`.
    """
    pyramid = []
    g = x
    for _ in range(levels):
        smaller = reduce(g)
        pyramid.append(g - expand(smaller, g.shape[-2:]))
        g = smaller
    pyramid.append(g)
    return pyramid


def collapse(pyramid: Sequence[np.ndarray]) -> np.ndarray:
    """Invert :func:`laplacian_pyramid`: G_k = L_k + EXPAND(G_{k+1}) from the base up."""
    g = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        g = detail + expand(g, detail.shape[-2:])
    return g


class LaplacianPyramidFusion(FusionMethod):
    """Laplacian pyramid fusion (Burt & Adelson 1983; rule as in Burt & Kolczynski 1993).

    Both sources are decomposed into ``levels`` band-pass levels L_k = G_k - EXPAND(G_{k+1}) and a
    Gaussian base G_K (5-tap kernel, a = 0.375). Detail levels are fused by the max-abs rule
    (keep the coefficient of larger magnitude), the bases are averaged, and the fused pyramid is
    collapsed. With identical inputs the output equals the input.
    """

    name = "lp"

    levels = 4

    def fuse(self, pairs: Sequence[FusionPair]) -> np.ndarray:
        mr, func = stack_sources(pairs)
        pa = laplacian_pyramid(mr.astype(np.float64), self.levels)
        pb = laplacian_pyramid(func.astype(np.float64), self.levels)
        fused = [select_max_abs(a, b) for a, b in zip(pa[:-1], pb[:-1])]
        fused.append((pa[-1] + pb[-1]) / 2.0)
        return to_unit_range(collapse(fused))
