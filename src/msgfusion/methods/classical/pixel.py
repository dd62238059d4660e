"""Pixel-wise fusion rules: the simplest baselines every fusion paper compares against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from msgfusion.methods.registry import FusionMethod, stack_sources
from msgfusion.pair import FusionPair


class PixelAverage(FusionMethod):
    """F = (A + B) / 2, with A the MR and B the functional intensity (luminance for colour)."""

    name = "average"

    def fuse(self, pairs: Sequence[FusionPair]) -> np.ndarray:
        mr, func = stack_sources(pairs)
        return (mr + func) / 2.0


class PixelMaximum(FusionMethod):
    """F = max(A, B) per pixel (choose-max rule)."""

    name = "max"

    def fuse(self, pairs: Sequence[FusionPair]) -> np.ndarray:
        mr, func = stack_sources(pairs)
        return np.maximum(mr, func)
