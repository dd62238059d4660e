"""Colour handling, in one place: colour spaces, luminance, MsgFusion's V', colour maps,
colour restoration.

Every fusion method works on intensities (H x W in [0, 1]); this module is the single path that
turns a fused intensity back into a picture in the functional image's own colour scale, so that
all methods' colour outputs are comparable (DESIGN.md, "Colour"). That path never invents
colour: where the functional image is below its noise floor the picture is grey
(:func:`chroma_weight`, MSGFUSION.md section 5). Colour maps (:data:`COLORMAPS`, among them
the atlas's own PET and SPECT scales) render scalar activity before fusion.

All functions take and return float arrays in [0, 1]; RGB arrays are H x W x 3.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np

ColorMode = Literal["hsv", "ycbcr", "gray", "viridis"]
COLOR_MODES: tuple[str, ...] = ("hsv", "ycbcr", "gray", "viridis")
#: The colour mode of every entry point (CLI fuse, fuse-dir, demo, bench; the Python API), chosen
#: by measurement (docs/colour.md, ``python benchmarks/colour_modes.py``).
DEFAULT_COLOR_MODE: str = "ycbcr"


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Quantise an image in [0, 1] to uint8 with round-half-to-even (values are clipped first)."""
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B of an RGB image in [0, 1].

    Computed exactly as OpenCV's ``cvtColor(RGB2YCrCb)`` channel 0 on uint8 input: the RGB values
    are quantised to 8 bits and combined with OpenCV's 14-bit fixed-point coefficients
    (4899, 9617, 1868, rounding offset 2^13), so that metrics computed on our Y agree bit for bit
    with the field's evaluation code. (Rounding the float formula differs on 0.2 % of the 2^24
    colours.) Returns H x W float32 in [0, 1] on the 1/255 grid.

    The fixed-point sum is at most 255 * 2^14 < 2^24, so float32 holds it exactly and the shift
    by 14 bits is an exact ``floor(sum / 2^14)``: the integer formula without integer arrays.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype not in (np.float32, np.float64):
        rgb = rgb.astype(np.float32)
    q = np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.float32)  # as to_uint8, exact
    y = q @ _LUMA_FIXED
    y += np.float32(8192.0)
    y *= np.float32(1.0 / 16384.0)
    np.floor(y, out=y)
    y /= np.float32(255.0)
    return y


_LUMA_FIXED = np.array([4899.0, 9617.0, 1868.0], dtype=np.float32)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB -> HSV (all channels in [0, 1]; hue 0 for greys), as ``colorsys`` per pixel, vectorised."""
    rgb = np.asarray(rgb, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    delta = v - rgb.min(axis=-1)
    s = np.divide(delta, v, out=np.zeros_like(v), where=v > 0)
    safe = np.where(delta > 0, delta, 1.0)
    h = np.where(v == r, (g - b) / safe, np.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = np.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    return np.stack([h, s, v], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV -> RGB, the inverse of :func:`rgb_to_hsv`."""
    hsv = np.asarray(hsv, dtype=np.float64)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    h6 = (h % 1.0) * 6.0
    sector = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices_r = [v, q, p, p, t, v]
    choices_g = [t, v, v, q, p, p]
    choices_b = [p, p, t, v, v, q]
    conds = [sector == k for k in range(6)]
    return np.stack(
        [np.select(conds, choices_r), np.select(conds, choices_g), np.select(conds, choices_b)],
        axis=-1,
    )


# Full-range BT.601 (JPEG/JFIF) YCbCr; chroma offset 0.5 so that all channels lie in [0, 1].
_RGB2YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)
_YCBCR2RGB = np.linalg.inv(_RGB2YCBCR)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """RGB -> full-range BT.601 YCbCr (JPEG convention), Cb and Cr offset by 0.5 into [0, 1]."""
    ycc = np.asarray(rgb, dtype=np.float64) @ _RGB2YCBCR.T
    ycc[..., 1:] += 0.5
    return ycc


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rgb_to_ycbcr` (not clipped)."""
    centred = np.asarray(ycc, dtype=np.float64).copy()
    centred[..., 1:] -= 0.5
    return centred @ _YCBCR2RGB.T


def v_prime(func: np.ndarray) -> np.ndarray:
    """MsgFusion's brightness feature V' of a functional image (MSGFUSION.md section 2).

    With channel values in 0..255:

    - colour (PET/SPECT, H x W x 3): V = max(R, G, B) is the HSV value channel and
      V'raw = (R + G + B) - V, the sum of the two non-maximal channels. It is high where the
      pseudo-colour is bright and unsaturated, i.e. at high uptake in the usual colour scales.
    - grey (CT, H x W): V'raw = max(3 g - 255, 0), non-zero only for bright structures (bone).

    V' = clip(V'raw, 0, 255), then min-max normalised to [0, 1] per image (all zeros when the
    image is constant). Returns H x W float32.

    Computed in float32 on whole channel planes (7x faster than the float64 formula, which it
    matches within 2e-7 on the atlas test pairs).
    """
    x = np.asarray(func, dtype=np.float32)
    if x.ndim == 3:
        r, g, b = x[..., 0], x[..., 1], x[..., 2]
        raw = (r + g + b - np.maximum(np.maximum(r, g), b)) * np.float32(255.0)
    else:
        raw = np.maximum(x * np.float32(765.0) - np.float32(255.0), np.float32(0.0))
    np.clip(raw, 0.0, 255.0, out=raw)
    lo, hi = raw.min(), raw.max()
    if hi - lo <= 0:
        return np.zeros(raw.shape, dtype=np.float32)
    raw -= lo
    raw /= hi - lo
    return raw


# ---------------------------------------------------------------------------------------------
# Colour maps: scalar activity in [0, 1] -> RGB. Every table is 256 x 3 float in [0, 1], stored
# with the package under io/colormaps/<name>.npy and regenerated by
# ``python benchmarks/colour_scales.py`` (the atlas scales by :func:`estimate_colour_scale` from
# the atlas's train split, the others sampled from matplotlib and rounded to 8 bits).

COLORMAP_NAMES: tuple[str, ...] = ("atlas-pet", "atlas-spect", "hot", "jet", "viridis", "gray")
#: The colour maps matplotlib provides that are shipped as tables (the rest are estimated or trivial).
MATPLOTLIB_COLORMAPS: tuple[str, ...] = ("hot", "jet", "viridis")


class _ColormapRegistry(Mapping[str, np.ndarray]):
    """The shipped colour-map tables, each read from its .npy file on first use (read-only)."""

    def __init__(self) -> None:
        self._tables: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in COLORMAP_NAMES:
            raise KeyError(name)
        if name not in self._tables:
            path = resources.files("msgfusion.io").joinpath("colormaps", f"{name}.npy")
            with path.open("rb") as fh:
                table = np.load(fh).astype(np.float32)
            table.setflags(write=False)
            self._tables[name] = table
        return self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COLORMAP_NAMES)

    def __len__(self) -> int:
        return len(COLORMAP_NAMES)


#: Registry of colour maps: name -> 256 x 3 float32 table (entry k is the colour of value k/255).
#: ``atlas-pet`` and ``atlas-spect`` are the Whole Brain Atlas's own PET and SPECT scales.
COLORMAPS: Mapping[str, np.ndarray] = _ColormapRegistry()


def colorize(values: np.ndarray, cmap: str) -> np.ndarray:
    """Render scalar values in [0, 1] (any shape) with a colour map of :data:`COLORMAPS`.

    Values between two table entries are interpolated linearly (on the 1/255 grid the result is
    the table entry itself); values outside [0, 1] are clipped. Returns ``values.shape + (3,)``
    float32 RGB in [0, 1]. Raises ``ValueError`` for an unknown map or non-finite values.
    """
    table = COLORMAPS.get(cmap)
    if table is None:
        raise ValueError(f"unknown colour map {cmap!r}; choose one of {', '.join(COLORMAPS)}")
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("cannot colour-map NaN or infinite values")
    x = np.clip(x, 0.0, 1.0) * (len(table) - 1)
    lo = np.minimum(np.floor(x).astype(np.intp), len(table) - 2)
    frac = (x - lo)[..., None]
    return (table[lo] * (1.0 - frac) + table[lo + 1] * frac).astype(np.float32)


def default_cmap(modality: str) -> str:
    """The colour map a scalar image of ``modality`` is rendered with by default: the atlas's own
    scale for PET (``atlas-pet``) and SPECT (``atlas-spect``), ``gray`` for CT."""
    from msgfusion.pair import check_modality  # pair imports this module

    return {"PET": "atlas-pet", "SPECT": "atlas-spect", "CT": "gray"}[check_modality(modality)]


def estimate_colour_scale(images: Iterable[np.ndarray], merge_distance: float = 2.0,
                          min_fraction: float = 1e-5) -> np.ndarray:
    """Estimate the pseudo-colour scale a set of PET or SPECT images was rendered with.

    The atlas renders activity through a palette of about 128 colours that lie on one curve in
    RGB from black upwards. The estimate:

    1. counts the distinct 8-bit colours of all images (H x W x 3 float in [0, 1]) and drops the
       rare ones (fewer than ``min_fraction`` of all pixels: stray or interpolated colours);
    2. merges colours closer than ``merge_distance`` (Euclidean, 8-bit units: the same palette
       entry rounded differently) into their count-weighted mean;
    3. orders them along the curve: a nearest-neighbour chain starting at the darkest colour,
       improved by moving single colours to the place in the chain where they lengthen it least
       (Or-opt) until no move shortens it;
    4. spaces the ordered palette entries evenly over [0, 1] (one palette step = one step of
       activity) and samples the piecewise-linear curve at 256 values.

    Returns a 256 x 3 float32 table (entry 0 the darkest colour), usable in :data:`COLORMAPS`.
    """
    colours, counts = _colour_counts(images)
    keep = counts >= min_fraction * counts.sum()
    colours, counts = colours[keep], counts[keep]
    colours = _merge_close(colours, counts, merge_distance)
    order = _order_along_curve(colours)
    palette = colours[order]
    t = np.linspace(0.0, 1.0, len(palette))
    grid = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(grid, t, palette[:, c]) for c in range(3)], axis=-1)
    return (table / 255.0).astype(np.float32)


def _colour_counts(images: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct 8-bit colours (N x 3 int) of some RGB images and how many pixels have each."""
    total: dict[int, int] = {}
    for img in images:
        q = to_uint8(np.asarray(img)).reshape(-1, 3).astype(np.int64)
        codes, n = np.unique((q[:, 0] << 16) | (q[:, 1] << 8) | q[:, 2], return_counts=True)
        for code, k in zip(codes.tolist(), n.tolist()):
            total[code] = total.get(code, 0) + k
    codes = np.array(sorted(total), dtype=np.int64)
    colours = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=-1)
    return colours, np.array([total[c] for c in codes.tolist()], dtype=np.int64)


def _merge_close(colours: np.ndarray, counts: np.ndarray, distance: float) -> np.ndarray:
    """Count-weighted means of the groups of colours linked by steps shorter than ``distance``."""
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial.distance import cdist

    _, label = connected_components(cdist(colours, colours) < distance, directed=False)
    weights = np.bincount(label, weights=counts)
    return np.stack([np.bincount(label, weights=colours[:, c] * counts) / weights
                     for c in range(3)], axis=-1)


def _order_along_curve(points: np.ndarray, max_segment: int = 3) -> np.ndarray:
    """Indices of ``points`` in the order of a short open path from the darkest one: a
    nearest-neighbour chain, then Or-opt (move a run of up to ``max_segment`` points, possibly
    reversed, to wherever the path gets shortest) until no move shortens it."""
    from scipy.spatial.distance import cdist

    d = cdist(points, points)
    start = int(np.argmin(points.sum(axis=1)))
    path, left = [start], set(range(len(points))) - {start}
    while left:
        nxt = min(left, key=lambda j: d[path[-1], j])
        path.append(nxt)
        left.remove(nxt)
    while _or_opt_move(d, path, max_segment):
        pass
    return np.array(path)


def _or_opt_move(d: np.ndarray, path: list[int], max_segment: int) -> bool:
    """Apply the first Or-opt move that shortens ``path`` (in place); False if there is none."""
    for size in range(1, max_segment + 1):
        for pos in range(1, len(path) - size + 1):  # the start point never moves
            segment, rest = path[pos:pos + size], np.array(path[:pos] + path[pos + size:])
            prev = path[pos - 1]
            nxt = path[pos + size] if pos + size < len(path) else None
            saved = d[prev, segment[0]] + (0.0 if nxt is None else
                                           d[segment[-1], nxt] - d[prev, nxt])
            for first, last in ((segment[0], segment[-1]), (segment[-1], segment[0])):
                # cost of inserting the segment after rest[i]; the last entry: at the end
                cost = np.append(d[rest[:-1], first] + d[last, rest[1:]] - d[rest[:-1], rest[1:]],
                                 d[rest[-1], first])
                best = int(np.argmin(cost))
                if cost[best] < saved - 1e-9:
                    seg = segment if first == segment[0] else segment[::-1]
                    path[:] = [*rest[:best + 1].tolist(), *seg, *rest[best + 1:].tolist()]
                    return True
    return False


#: The lowest noise floor of a functional image's luminance (8-bit: 6 grey levels). Below it lie
#: the darkest steps of the atlas scales (PET (0, 0, 8): Y = 0.9/255) and the colour that JPEG
#: chroma subsampling bleeds into a black background (Y <= 6/255 on 99.9 % of the black pixels
#: of the atlas test PET/SPECT images at quality 75); see docs/colour.md.
MIN_NOISE_FLOOR = 6.0 / 255.0
#: The noise floor is at least this many noise standard deviations.
NOISE_FLOOR_SIGMAS = 3.0


def noise_sigma(gray: np.ndarray) -> float:
    """Standard deviation of the noise of a grey image, by Immerkaer's fast estimate ("Fast noise
    variance estimation", CVIU 64(2), 1996): sigma = sqrt(pi/2) / 6 * mean |I * N| with the
    Laplacian-difference mask N = [[1, -2, 1], [-2, 4, -2], [1, -2, 1]] (blind to linear ramps).
    N is the outer product of [1, -2, 1] with itself, so it is applied as second differences
    along each axis, the image mirrored by one pixel at its edges (``scipy.ndimage``'s
    "reflect"), in float32: within 2e-8 (relative) of the float64 filter on the atlas images,
    5x faster."""
    p = np.pad(np.asarray(gray, dtype=np.float32), 1, mode="symmetric")
    rows = p[:-2] - 2 * p[1:-1] + p[2:]
    response = rows[:, :-2] - 2 * rows[:, 1:-1] + rows[:, 2:]
    return float(np.sqrt(np.pi / 2.0) / 6.0 * np.abs(response, out=response).mean(
        dtype=np.float64))


def noise_floor(func: np.ndarray, y: np.ndarray | None = None) -> float:
    """The level of a functional image's luminance Y below which it has no signal:
    ``max(MIN_NOISE_FLOOR, NOISE_FLOOR_SIGMAS * noise_sigma(Y))`` (``y``: Y when already known).

    Luminance rather than hue or HSV value, because the colour of the darkest pixels is the
    least reliable part of a pseudo-colour image: a near-black pixel has a full-saturation hue
    ((0, 0, 8) is pure blue), and JPEG stores chroma at half resolution, so colour bleeds into
    the black background around the head (V up to 88/255 there) while Y stays near 0.
    """
    if y is None:
        y = luminance(func) if func.ndim == 3 else np.asarray(func, dtype=np.float32)
    return max(MIN_NOISE_FLOOR, NOISE_FLOOR_SIGMAS * noise_sigma(y))


def chroma_weight(func: np.ndarray) -> np.ndarray:
    """How much of its colour each pixel of an RGB functional image may show, H x W in [0, 1]:

        w = clip((Y - floor) / floor, 0, 1),   floor = noise_floor(func)

    0 (grey) at or below the noise floor, rising linearly to full colour at twice the floor.
    """
    y = luminance(func)
    floor = noise_floor(func, y)
    y -= np.float32(floor)
    y /= np.float32(floor)
    return np.clip(y, 0.0, 1.0, out=y)


def restore_color(fused: np.ndarray, func: np.ndarray, mode: str = DEFAULT_COLOR_MODE
                  ) -> np.ndarray:
    """Turn a fused intensity back into an image in the functional image's colour scale.

    ``fused`` is H x W in [0, 1]; ``func`` the functional image as read (grey or RGB). Each mode
    first makes a colour picture C:

    - ``hsv``: keep hue and saturation of ``func``, V := fused (MSGFUSION.md section 5);
      identical to ``hsv_to_rgb`` of the modified ``rgb_to_hsv``, computed without the round trip.
    - ``ycbcr``: keep Cb and Cr of ``func``, Y := fused (the usual choice in the fusion
      literature); identical to ``ycbcr_to_rgb`` of the modified ``rgb_to_ycbcr``.
    - ``gray``: the fused intensity itself.
    - ``viridis``: the fused intensity rendered with viridis, as in the paper's released figures.

    and then, for a colour ``func``, never invents colour where ``func`` has no signal
    (MSGFUSION.md section 5): ``out = F + w * (C - F)`` with F the grey fused intensity and
    w = :func:`chroma_weight` (0 below the functional image's noise floor). Mixing with grey
    scales the chroma (max - min of R, G, B) by w and leaves hue alone: for ``hsv`` it is S := w S,
    for ``ycbcr`` (Cb, Cr) := w (Cb, Cr) around grey, so the luminance stays the fused intensity.

    A grey ``func`` (CT) gives a grey result for ``hsv``, ``ycbcr`` and ``gray``, and the viridis
    rendering for ``viridis``. Returns float32, H x W (grey) or H x W x 3, clipped to [0, 1].
    """
    fused = np.clip(np.asarray(fused, dtype=np.float32), 0.0, 1.0)
    if mode not in COLOR_MODES:
        raise ValueError(f"unknown colour mode {mode!r}; choose one of {', '.join(COLOR_MODES)}")
    func = np.asarray(func, dtype=np.float32)
    if func.ndim == 2:
        return colorize(fused, "viridis") if mode == "viridis" else fused
    if mode == "gray":
        return fused
    grey = fused[..., None]
    if mode == "ycbcr":
        # YCbCr -> RGB adds Y with coefficient 1 to every channel, so Y := fused shifts R, G, B
        # by fused - Y(func) (Y from the same full-range BT.601 matrix as rgb_to_ycbcr), and
        # C - F is func - Y(func).
        chroma = func - (func @ _RGB2YCBCR[0].astype(np.float32))[..., None]
    else:
        if mode == "viridis":
            chroma = colorize(fused, "viridis")
        else:
            # HSV -> RGB is linear in V for fixed H and S, so setting V := fused scales the
            # colour by fused / V; where V = 0 (black: H = S = 0) the result is the grey level.
            v = np.maximum(np.maximum(func[..., 0], func[..., 1]), func[..., 2])
            black = v <= 0
            chroma = func * (fused / np.where(black, 1.0, v))[..., None]
            chroma[black] = fused[black, None]
        chroma -= grey  # C - F, in place
    chroma *= chroma_weight(func)[..., None]  # out = F + w (C - F), in place
    chroma += grey
    return np.clip(chroma, 0.0, 1.0, out=chroma)


@lru_cache(maxsize=None)
def _curve_tree(cmap: str):  # type: ignore[no-untyped-def]
    """A k-d tree over a colour map's curve in 8-bit RGB, 16 points per table step (spacing
    below 1 unit for the shipped maps), for nearest-point distances."""
    from scipy.spatial import cKDTree

    table = COLORMAPS[cmap].astype(np.float64) * 255.0
    t = np.linspace(0.0, len(table) - 1.0, 16 * (len(table) - 1) + 1)
    return cKDTree(np.stack([np.interp(t, np.arange(len(table)), table[:, c])
                             for c in range(3)], axis=-1))


def scale_distance(func: np.ndarray, cmap: str) -> float:
    """How far an RGB functional image's colours lie from a colour map's curve: the mean, over
    the pixels above the noise floor, of the Euclidean distance in 8-bit RGB units from the
    pixel's colour to the curve through the map's 256 entries (sampled densely, so within
    1 unit). About 0 when the image was rendered with that map; ``inf`` when no pixel has
    signal."""
    func = np.asarray(func, dtype=np.float32)
    signal = luminance(func) > noise_floor(func)
    if not signal.any():
        return float("inf")
    colours, counts = np.unique(to_uint8(func[signal]).reshape(-1, 3), axis=0, return_counts=True)
    dist, _ = _curve_tree(cmap).query(colours.astype(np.float64))
    return float((dist * counts).sum() / counts.sum())
