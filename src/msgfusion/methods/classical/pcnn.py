"""WPADCPCNN: weighted parameter-adaptive dual-channel PCNN fusion (Panigrahy, Seal, Mahato 2020).

The paper decomposes the sources with the non-subsampled shearlet transform (NSST, 4 levels with
8, 8, 16, 16 directions, "maxflat" pyramid filters). NSST is not in any library we can install,
so :func:`decompose` builds the same kind of redundant multiscale-directional decomposition
itself: a non-subsampled (a trous) Laplacian pyramid, each band-pass level split into
directional sub-bands by a smooth angular partition of unity in the Fourier domain (the
shearlet filters are also directional band-pass filters applied without subsampling). Every
other step follows the authors' released MATLAB code
(github.com/Chinmaya-Panigrahy/MRI-and-SPECT-Image-Fusion-Using-a-Weighted-Parameter-Adaptive-Dual-Channel-PCNN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from msgfusion.methods.classical.filters import (
    BURT_KERNEL,
    IMAGE_AXES,
    local_range,
    separable_filter,
    to_unit_range,
)
from msgfusion.methods.registry import FusionMethod, stack_sources
from msgfusion.pair import FusionPair

#: Directional sub-bands per band-pass level, finest level first (NSST's dcomp = [3, 3, 4, 4]).
DIRECTIONS = (16, 16, 8, 8)
#: Weighted Laplacian applied to the multi-scale morphological gradient of the low-pass band.
WEIGHTED_LAPLACIAN = np.array([[-1.0, -4.0, -1.0], [-4.0, 20.0, -4.0], [-1.0, -4.0, -1.0]])


@lru_cache(maxsize=16)
def _wedges(height: int, width: int, count: int) -> np.ndarray:
    """``count`` angular windows on the rfft2 grid, count x H x (W//2 + 1), summing to 1.

    Window k is cos^2(count * d / 2) for |d| < pi / count, d the angle of the frequency vector
    minus k pi / count, taken modulo pi (so each window is symmetric about the origin and the
    filtered band stays real). Neighbouring windows overlap as cos^2 + sin^2 = 1; the DC term
    is shared equally. One direction is the whole band.
    """
    if count == 1:
        return np.ones((1, height, width // 2 + 1), dtype=np.float32)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    theta = np.arctan2(fy, fx)
    centres = np.arange(count)[:, None, None] * np.pi / count
    d = np.mod(theta[None] - centres + np.pi / 2, np.pi) - np.pi / 2
    w = np.where(np.abs(d) < np.pi / count, np.cos(count * d / 2) ** 2, 0.0)
    w[:, 0, 0] = 1.0 / count
    return w.astype(np.float32)


def decompose(x: np.ndarray, directions: Sequence[int] = DIRECTIONS
              ) -> tuple[np.ndarray, np.ndarray]:
    """Non-subsampled multiscale-directional decomposition of ... x H x W images (NSST stand-in).

    Level j (finest first) of the a trous pyramid: low_{j+1} = low_j filtered by the 5-tap
    kernel dilated by 2^j, band_j = low_j - low_{j+1}; band_j is split into ``directions[j]``
    sub-bands by :func:`_wedges`. Returns (low-pass ... x H x W, sub-bands ... x S x H x W,
    S = sum(directions), finest level first). Nothing is subsampled and the split is a partition
    of unity, so x = low + sum of the sub-bands (up to rounding).
    """
    height, width = x.shape[-2:]
    low = x
    bands = []
    for level, count in enumerate(directions):
        smoother = separable_filter(low, BURT_KERNEL, dilation=2**level)
        spectrum = np.fft.rfft2(low - smoother, axes=IMAGE_AXES)[..., None, :, :]
        wedges = _wedges(height, width, count)
        bands.append(np.fft.irfft2(spectrum * wedges, s=(height, width), axes=IMAGE_AXES))
        low = smoother
    return low, np.concatenate(bands, axis=-3).astype(x.dtype)


def fractal_dimension(image: np.ndarray) -> float:
    """Box-counting fractal dimension of an 8-bit image (the authors' ``IDBC.m``).

    For each box size s = 2 .. min(H, W)/2 (at least 2, 3) the image is cut into s x s blocks and
    N_s = sum over blocks of (max - min + 1), the minimum of the partial blocks at the right and
    bottom edge taken as 0 (as in their code); the dimension is the least-squares slope of
    log N_s against log(1/s). ``image`` holds grey values 0..255.
    """
    height, width = image.shape
    sizes = np.arange(2, max(3, min(height, width) // 2) + 1)
    counts = np.empty(len(sizes))
    for i, s in enumerate(sizes):
        nh, nw = -(-height // s), -(-width // s)
        top = np.full((nh * s, nw * s), -np.inf)
        top[:height, :width] = image
        bottom = np.full((nh * s, nw * s), np.inf)
        bottom[:height, :width] = image
        block_max = top.reshape(nh, s, nw, s).max(axis=(1, 3))
        block_min = bottom.reshape(nh, s, nw, s).min(axis=(1, 3))
        if height % s:
            block_min[-1, :] = 0
        if width % s:
            block_min[:, -1] = 0
        counts[i] = (block_max - block_min + 1).sum()
    return float(np.polyfit(-np.log(sizes), np.log(counts), 1)[0])


def otsu_level(x: np.ndarray) -> np.ndarray:
    """Otsu's threshold of each S x H x W slice, in [0, 1], as MATLAB's ``graythresh``.

    Values are clipped to [0, 1] and binned into 256 levels; the level maximising the
    between-class variance (mean of the maximisers on ties) is returned as (k - 1) / 255;
    0 when the slice has a single grey level.
    """
    bins = np.rint(np.clip(x, 0, 1) * 255).astype(np.int64).reshape(len(x), -1)
    offsets = 256 * np.arange(len(x))[:, None]
    hist = np.bincount((bins + offsets).ravel(), minlength=256 * len(x)).reshape(len(x), 256)
    p = hist / hist.sum(axis=1, keepdims=True)
    omega = np.cumsum(p, axis=1)
    mu = np.cumsum(p * np.arange(1, 257), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_b = (mu[:, -1:] * omega - mu) ** 2 / (omega * (1 - omega))
    sigma_b = np.where(np.isfinite(sigma_b), sigma_b, -np.inf)
    best = sigma_b.max(axis=1, keepdims=True)
    ties = (sigma_b == best) & np.isfinite(best)
    k = (ties * np.arange(1, 257)).sum(axis=1) / np.maximum(ties.sum(axis=1), 1)
    return np.where(ties.any(axis=1), (k - 1) / 255.0, 0.0)


def msmg(x: np.ndarray, scales: int = 5) -> np.ndarray:
    """Multi-scale morphological gradient sum_t (dilate_t(x) - erode_t(x)) / (2t + 1), t = 1..5.

    Square structuring elements of side 2t + 1 (Zhang, Bai, Wang, Information Fusion 35, 2017).
    """
    return sum(local_range(x, 2 * t + 1) / (2 * t + 1) for t in range(1, scales + 1))


def low_pass_activity(low: np.ndarray) -> np.ndarray:
    """|MSMG(low) * weighted Laplacian| (zero padding, as MATLAB ``conv2(..., 'same')``)."""
    return np.abs(ndimage.correlate(msmg(low), WEIGHTED_LAPLACIAN, mode="constant",
                                    axes=IMAGE_AXES))


@dataclass(frozen=True)
class PCNNResult:
    """Output of :func:`wpadcpcnn`: the per-coefficient choice and the firing counts."""

    choose_a: np.ndarray  # bool, S x H x W: True where channel A wins
    firing_counts: np.ndarray  # int, S x H x W: how often each neuron fired (0..iterations)


def wpadcpcnn(a: np.ndarray, b: np.ndarray, weight_a: float, iterations: int = 150
              ) -> PCNNResult:
    """Run the weighted parameter-adaptive dual-channel PCNN on S pairs of H x W feeding inputs.

    ``a``, ``b`` (S x H x W, non-negative: absolute sub-band coefficients) feed the two
    channels; ``weight_a`` (w_A, with w_B = 1 - w_A) weights the two sources' statistics in the
    shared parameters, per sub-band (Yin et al.'s PA-PCNN settings, weighted):
        alpha_u = log10(1 / (w_A std(A) + w_B std(B)))
        x_A = max(A) / otsu(A), x_B likewise, S' = w_A otsu(A) + w_B otsu(B)
        V_E = exp(-alpha_u) + w_A x_A + w_B x_B
        alpha_e = ln(V_E / (S' [(1 - e^{-3 alpha_u}) / (1 - e^{-alpha_u})
                                 + (w_A x_A + w_B x_B - 1) e^{-alpha_u}]))
        beta_A = 1 - exp(-0.02 (max - min of A over 3 x 3)), beta_B likewise (per coefficient)
    and for n = 1..iterations, with Y[0] = 0, U[0] = 0, E[0] = 1, V_L = 1:
        K = W * Y[n-1]  (W = [[.5, 1, .5], [1, 0, 1], [.5, 1, .5]], zero padding)
        U_A = A (1 + beta_A K), U_B = B (1 + beta_B K)
        U[n] = e^{-alpha_u} U[n-1] + max(U_A, U_B)
        Y[n] = U[n] > E[n-1],  E[n] = e^{-alpha_e} E[n-1] + V_E Y[n]
    The fusion decision is U_A >= U_B at the last iteration, as in the authors' code; the
    firing counts sum_n Y[n] are returned alongside. An Otsu level of 0 (a sub-band whose
    magnitudes all round to grey level 0) is raised to 1/255 so that x_A stays finite.
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    weight_b = 1.0 - weight_a

    def per_band(v: np.ndarray) -> np.ndarray:
        return v.reshape(-1, 1, 1)

    ddof = 1 if a[0].size > 1 else 0  # MATLAB's std2 (n - 1), defined for one pixel too
    spread = (weight_a * a.std(axis=IMAGE_AXES, ddof=ddof)
              + weight_b * b.std(axis=IMAGE_AXES, ddof=ddof))
    alpha_u = np.log10(1.0 / np.maximum(spread, np.finfo(np.float32).tiny))
    otsu_a = np.maximum(otsu_level(a), 1 / 255)
    otsu_b = np.maximum(otsu_level(b), 1 / 255)
    x = weight_a * a.max(axis=IMAGE_AXES) / otsu_a + weight_b * b.max(axis=IMAGE_AXES) / otsu_b
    decay = np.exp(-alpha_u)
    v_e = decay + x
    geometric = (1 - np.exp(-3 * alpha_u)) / (1 - decay) + (x - 1) * decay
    alpha_e = np.log(v_e / ((weight_a * otsu_a + weight_b * otsu_b) * geometric))
    decay_u = per_band(decay).astype(np.float32)
    decay_e = per_band(np.exp(-alpha_e)).astype(np.float32)
    v_e = per_band(v_e).astype(np.float32)
    gain_a = a * (1 - np.exp(-0.02 * local_range(a, 3)))  # A beta_A
    gain_b = b * (1 - np.exp(-0.02 * local_range(b, 3)))

    # K = W * Y on the binary Y in small integers: 2 K = [1 2 1]^T [1 2 1] * Y - 4 Y (0..12).
    half_gain_a, half_gain_b = gain_a / 2, gain_b / 2
    u = np.zeros_like(a)
    e = np.ones_like(a)
    fired = np.zeros(a.shape, dtype=bool)
    padded = np.zeros(a.shape[:-2] + (a.shape[-2] + 2, a.shape[-1] + 2), dtype=np.uint8)
    counts = np.zeros(a.shape, dtype=np.uint16)
    u_a, u_b = np.empty_like(a), np.empty_like(a)
    # With alpha_e < 0 (tiny or noise-like sub-bands) E grows without bound and may reach inf:
    # the neuron then stops firing, which is the model's own limit.
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(iterations):
            padded[..., 1:-1, 1:-1] = fired
            rows = padded[..., :-2] + padded[..., 2:]
            rows += padded[..., 1:-1]
            rows += padded[..., 1:-1]
            link = rows[..., :-2, :] + rows[..., 2:, :]
            link += rows[..., 1:-1, :]
            link += rows[..., 1:-1, :]
            link -= 4 * padded[..., 1:-1, 1:-1]
            np.multiply(half_gain_a, link, out=u_a)
            u_a += a
            np.multiply(half_gain_b, link, out=u_b)
            u_b += b
            u *= decay_u
            u += np.maximum(u_a, u_b)
            np.greater(u, e, out=fired)
            e *= decay_e
            e += v_e * fired
            counts += fired
    return PCNNResult(choose_a=u_a >= u_b, firing_counts=counts)


class WPADCPCNNFusion(FusionMethod):
    """WPADCPCNN fusion (Panigrahy, Seal, Mahato 2020) on an NSST-like decomposition.

    1. Both sources are decomposed by :func:`decompose` (4 levels, 16, 16, 8, 8 directions from
       fine to coarse, as the paper's NSST).
    2. Low-pass: keep the source with the larger activity |MSMG(low) * weighted Laplacian|
       (:func:`low_pass_activity`), per coefficient.
    3. High-pass: per sub-band, the WPADCPCNN (:func:`wpadcpcnn`) fed with the absolute
       coefficients decides which source's coefficient to keep; w_MR = FD_MR / (FD_MR + FD_func)
       with FD the box-counting fractal dimension of each 8-bit source (:func:`fractal_dimension`).
    4. The fused image is the fused low-pass plus the sum of the fused sub-bands.
    """

    name = "wpadcpcnn"

    directions = DIRECTIONS
    iterations = 150

    def fuse(self, pairs: Sequence[FusionPair]) -> np.ndarray:
        mr, func = stack_sources(pairs)
        fused = np.empty(mr.shape, dtype=np.float32)
        for i in range(len(mr)):
            sources = np.stack([mr[i], func[i]])
            fd = [fractal_dimension(np.rint(255 * s)) for s in sources]
            low, bands = decompose(sources, self.directions)
            activity = low_pass_activity(low)
            fused_low = np.where(activity[0] >= activity[1], low[0], low[1])
            result = wpadcpcnn(np.abs(bands[0]), np.abs(bands[1]), fd[0] / (fd[0] + fd[1]),
                               self.iterations)
            fused[i] = fused_low + np.where(result.choose_a, bands[0], bands[1]).sum(axis=0)
        return to_unit_range(fused)
