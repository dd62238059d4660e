"""Principal component analysis (PCA) fusion: a global weighted average of the two sources."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from msgfusion.methods.classical.filters import to_unit_range
from msgfusion.methods.registry import FusionMethod, stack_sources
from msgfusion.pair import FusionPair


def pca_weights(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image fusion weights (w_a, w_b) of two N x H x W stacks, N x 2, each row summing to 1.

    C = cov([a(:), b(:)]) is the 2 x 2 covariance of the two images; v = (v_a, v_b) its
    principal eigenvector (largest eigenvalue); the weights are v / (v_a + v_b). The components
    of v share their sign whenever the two images are positively correlated (the usual case);
    we normalise |v| so that the weights stay in [0, 1] for anti-correlated images too. Two
    constant images (C = 0) get equal weights.
    """
    x = np.stack([a.reshape(len(a), -1), b.reshape(len(b), -1)], axis=1).astype(np.float64)
    x -= x.mean(axis=2, keepdims=True)
    cov = x @ x.transpose(0, 2, 1) / x.shape[2]
    _, vectors = np.linalg.eigh(cov)  # eigenvalues ascending: the last column is principal
    principal = np.abs(vectors[:, :, -1])
    weights = principal / principal.sum(axis=1, keepdims=True)
    flat = np.trace(cov, axis1=1, axis2=2) == 0
    weights[flat] = 0.5
    return weights


class PCAFusion(FusionMethod):
    """PCA fusion (Naidu & Raol 2008): F = w_A A + w_B B with weights from the principal component.

    A is the MR, B the functional intensity (luminance for colour); (w_A, w_B) is the principal
    eigenvector of the 2 x 2 covariance of A and B, normalised to sum to 1
    (:func:`pca_weights`). One pair of weights per image: PCA fusion is a global rule.
    """

    name = "pca"

    def fuse(self, pairs: Sequence[FusionPair]) -> np.ndarray:
        mr, func = stack_sources(pairs)
        w = pca_weights(mr, func)[:, :, None, None]
        return to_unit_range(w[:, 0] * mr + w[:, 1] * func)
