"""Guided filtering based fusion (GFF) of Li, Kang and Hu (2013)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from msgfusion.methods.classical.filters import IMAGE_AXES, box_mean, guided_filter, to_unit_range
from msgfusion.methods.registry import FusionMethod, stack_sources
from msgfusion.pair import FusionPair

LAPLACIAN_3X3 = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def saliency(x: np.ndarray, radius: int = 5, sigma: float = 5.0) -> np.ndarray:
    """S = |x * L| * g: absolute 3 x 3 Laplacian, smoothed by a (2r+1)^2 Gaussian of std sigma."""
    high = np.abs(ndimage.correlate(x, LAPLACIAN_3X3, mode="nearest", axes=IMAGE_AXES))
    return ndimage.gaussian_filter(high, sigma=sigma, truncate=radius / sigma, mode="nearest",
                                   axes=IMAGE_AXES)


class GuidedFilterFusion(FusionMethod):
    """GFF: two-scale fusion with guided-filter-refined saliency weights (Li, Kang, Hu 2013).

    For each source I_n (n = MR, functional):
    1. two-scale decomposition: base B_n = I_n * Z (31 x 31 average), detail D_n = I_n - B_n;
    2. saliency S_n = |I_n * L| * g_{5,5} (3 x 3 Laplacian, 11 x 11 Gaussian, sigma 5);
    3. binary weight maps P_n = 1 where S_n is the largest saliency at that pixel (ties: both 1);
    4. refined weights W^B_n = G_{r1, eps1}(P_n, I_n) and W^D_n = G_{r2, eps2}(P_n, I_n), guided
       filters with the source as guide, r1 = 45, eps1 = 0.3, r2 = 7, eps2 = 1e-6, normalised
       to sum to 1 at every pixel (the guided filter is linear and keeps constants, so the sum
       is G(P_1 + P_2), P_1 + P_2 being 1, or 2 on ties: close to 1 or 2, never near 0);
    5. F = sum_n W^B_n B_n + W^D_n D_n.
    Box filters are cut at the image border (He et al.'s formulation). With identical inputs
    the weights are 1/2 each and the output equals the input.
    """

    name = "gff"

    average_radius = 15  # 31 x 31 average filter
    base_radius, base_eps = 45, 0.3
    detail_radius, detail_eps = 7, 1e-6

    def fuse(self, pairs: Sequence[FusionPair]) -> np.ndarray:
        mr, func = stack_sources(pairs)
        sources = np.stack([mr, func]).astype(np.float64)  # 2 x N x H x W
        base = box_mean(sources, self.average_radius)
        detail = sources - base
        sal = saliency(sources)
        binary = (sal == sal.max(axis=0, keepdims=True)).astype(np.float64)
        fused = np.zeros(sources.shape[1:])
        for layer, radius, eps in ((base, self.base_radius, self.base_eps),
                                   (detail, self.detail_radius, self.detail_eps)):
            w = guided_filter(sources, binary, radius, eps)
            fused += (w * layer).sum(axis=0) / w.sum(axis=0)
        return to_unit_range(fused)
