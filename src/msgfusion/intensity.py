"""Intensities per modality: a volume's physical values to the [0, 1] the fusion methods expect.

The networks were trained on the atlas's 8-bit slices, so each modality is brought to what those
slices look like:

- **MR**: robust min-max. Values between the 0.5th and 99.5th percentiles of all voxels map
  linearly to [0, 1] and are clipped beyond (a few hot voxels or a dark background corner do not
  set the contrast). The percentiles are :data:`MR_PERCENTILES`.
- **CT**: a window in Hounsfield units, ``(width, level)``: ``level - width/2`` is black and
  ``level + width/2`` white. Presets in :data:`CT_WINDOWS` (the usual radiology settings) or any
  ``"W,L"``. The default, :data:`DEFAULT_CT_WINDOW` = ``brain`` (W 80, L 40), puts brain tissue
  (20..45 HU) at 0.25..0.56 of grey and bone white, the grey levels of the atlas CT slices the CT
  network was trained on (intracranial median 0.40, bone saturated; measured by
  ``benchmarks/volumes.py``, see docs/volumes.md).
- **PET / SPECT**: activity scaled by a robust maximum, the 99.5th percentile of the positive
  voxels (:data:`FUNCTIONAL_PERCENTILE`), so one hot spot does not darken the whole volume;
  zero and below stay 0, the top 0.5 % saturate. The scaled activity is then rendered with the
  modality's colour map (:func:`msgfusion.io.color.default_cmap`), the atlas's own PET/SPECT
  scale, because the PET and SPECT networks were trained on those pseudo-colour pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msgfusion.errors import MsgFusionError

MR_PERCENTILES: tuple[float, float] = (0.5, 99.5)
FUNCTIONAL_PERCENTILE: float = 99.5
#: What a modality's values measure, for the labels of colour bars.
UNITS = {"CT": "HU", "PET": "uptake", "SPECT": "perfusion"}

#: CT windows ``name: (width, level)`` in HU (Radiopaedia's "windowing (CT)" values).
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (80.0, 40.0),
    "subdural": (200.0, 75.0),
    "bone": (2800.0, 600.0),
}
DEFAULT_CT_WINDOW = "brain"


@dataclass(frozen=True)
class IntensityScale:
    """``(x - low) / (high - low)`` clipped to [0, 1], as float32."""

    low: float
    high: float

    def __call__(self, values: np.ndarray) -> np.ndarray:
        span = self.high - self.low
        if span <= 0:  # a constant volume: all black
            return np.zeros(np.shape(values), dtype=np.float32)
        out = np.subtract(values, self.low, dtype=np.float32)
        out *= np.float32(1.0 / span)
        return np.clip(out, 0.0, 1.0, out=out)


def parse_window(spec: str | tuple[float, float] | None) -> tuple[float, float]:
    """``(width, level)`` of a preset name, of ``"W,L"``, or of a pair; None is the default."""
    if spec is None:
        spec = DEFAULT_CT_WINDOW
    if isinstance(spec, tuple):
        width, level = spec
    elif spec.lower() in CT_WINDOWS:
        width, level = CT_WINDOWS[spec.lower()]
    else:
        try:
            width, level = (float(v) for v in spec.split(","))
        except ValueError:
            raise MsgFusionError(
                f"CT window {spec!r}: give a preset ({', '.join(CT_WINDOWS)}) or width,level in "
                "HU, e.g. 80,40") from None
    if not width > 0:
        raise MsgFusionError(f"CT window {spec!r}: the width must be positive")
    return float(width), float(level)


def mr_scale(data: np.ndarray) -> IntensityScale:
    """The robust MR scale of a whole volume (see the module doc)."""
    low, high = np.percentile(data, MR_PERCENTILES)
    return IntensityScale(float(low), float(high))


def ct_scale(window: str | tuple[float, float] | None = None) -> IntensityScale:
    """The CT window as a scale (see :func:`parse_window`)."""
    width, level = parse_window(window)
    return IntensityScale(level - width / 2, level + width / 2)


def functional_scale(data: np.ndarray) -> IntensityScale:
    """PET/SPECT: 0 to the robust maximum of the positive voxels (see the module doc)."""
    positive = data[data > 0]
    high = float(np.percentile(positive, FUNCTIONAL_PERCENTILE)) if positive.size else 0.0
    return IntensityScale(0.0, high)


def modality_scale(data: np.ndarray, modality: str,
                   window: str | tuple[float, float] | None = None) -> IntensityScale:
    """The scale of a functional/structural volume of ``modality`` (CT, PET or SPECT)."""
    if modality == "CT":
        return ct_scale(window)
    if window is not None:
        raise MsgFusionError(f"--window is for CT; this volume is {modality}")
    return functional_scale(data)
