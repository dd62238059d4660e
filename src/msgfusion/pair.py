"""FusionPair: the one data type that flows from reading to fusing to evaluating (DESIGN.md)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from msgfusion.errors import (
    ImageTypeError,
    InvalidImageError,
    MsgFusionWarning,
    ShapeMismatchError,
    UnknownModalityError,
)
from msgfusion.io.color import colorize, default_cmap, luminance, scale_distance, v_prime
from msgfusion.io.images import minmax_scale, read_image

MODALITIES: tuple[str, ...] = ("CT", "PET", "SPECT")


def check_modality(modality: str) -> str:
    """Normalise a modality name (case-insensitive) or raise :class:`UnknownModalityError`."""
    upper = str(modality).upper()
    if upper not in MODALITIES:
        raise UnknownModalityError(
            f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}"
        )
    return upper


#: How far a float image may stray outside [0, 1] (rounding) before it is refused; it is clipped.
FLOAT_TOLERANCE = 1e-6


def as_image(image: Any, what: str = "image") -> np.ndarray:
    """An image array as float32 in [0, 1], scaled the way :func:`read_image` scales files.

    - ``bool``: False/True -> 0/1; ``uint8``: divided by 255 (as scikit-image's ``img_as_float``);
    - any other integer type (uint16, int32, ...): min-max to [0, 1], as the reader does for 16-
      and 32-bit files, so a file and the array read from it give one result;
    - floats must already be in [0, 1] and finite.

    Raises :class:`ImageTypeError` (a TypeError) for a non-numeric array and
    :class:`InvalidImageError` (a ValueError) for an empty one, NaN/infinity or floats outside
    [0, 1]; ``what`` names the image in the message.
    """
    try:
        arr = np.asarray(image)
    except Exception as exc:  # ragged lists, objects numpy cannot convert
        raise ImageTypeError(f"{what}: not an image array ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise ImageTypeError(f"{what}: expected a numeric image array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise InvalidImageError(f"{what}: is empty (shape {arr.shape})")
    if arr.dtype.kind == "b":
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype.kind in "iu":
        return minmax_scale(arr)
    if not np.isfinite(arr).all():
        raise InvalidImageError(f"{what}: {int(np.count_nonzero(~np.isfinite(arr)))} value(s) "
                                "are NaN or infinite")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -FLOAT_TOLERANCE or hi > 1.0 + FLOAT_TOLERANCE:
        raise InvalidImageError(
            f"{what}: float values must lie in [0, 1], got {lo:.4g}..{hi:.4g}; divide by the "
            "maximum (e.g. 255) or pass integer arrays, which are scaled by their type")
    return np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)


def check_same_size(pairs: Sequence[FusionPair]) -> None:
    """Raise :class:`ShapeMismatchError` unless a batch holds pairs of one size."""
    shapes = {p.shape for p in pairs}
    if len(shapes) != 1:
        raise ShapeMismatchError(f"a batch must hold pairs of one size, got {sorted(shapes)}")


#: A colour image is told to be PET or SPECT when its colours lie this close (mean distance in
#: 8-bit RGB units, :func:`msgfusion.io.color.scale_distance`) to that atlas scale and closer
#: than to the other. Measured (docs/colour.md): own scale <= 0.24 on every atlas PNG, <= 12.5
#: on JPEG (quality 75) copies; the other scale >= 53.
SCALE_FIT = 20.0


def infer_modality(func: np.ndarray, path: str | os.PathLike | None = None) -> str:
    """The modality of a functional image given without one.

    A grey image is CT. A colour image is PET or SPECT: the name of a folder on its ``path``
    (``.../SPECT/x.png``) says it; otherwise its colours are compared with the atlas's PET and
    SPECT scales and the one that fits (:data:`SCALE_FIT`) wins. If neither fits (another colour
    scale), it is taken as PET with a :class:`MsgFusionWarning`.
    """
    if func.ndim == 2:
        return "CT"
    if path is not None:
        for folder in reversed(Path(path).parent.parts):
            if folder.upper() in ("PET", "SPECT"):
                return folder.upper()
    distance = {m: scale_distance(func, default_cmap(m)) for m in ("PET", "SPECT")}
    best = min(distance, key=distance.__getitem__)
    if distance[best] <= SCALE_FIT:
        return best
    where = f"{path}: " if path is not None else ""
    warnings.warn(f"{where}the colours match neither the atlas's PET nor its SPECT scale; "
                  "treated as PET (give --modality SPECT for a SPECT image)", MsgFusionWarning,
                  stacklevel=2)
    return "PET"


def prepare_images(mr: np.ndarray, func: np.ndarray, modality: str, cmap: str | None = None,
                   mr_label: str = "MR image", func_label: str = "functional image"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The MR and functional images of a pair as the methods expect them.

    A colour MR, or a colour image given as CT, is reduced to its luminance, with a
    :class:`MsgFusionWarning`. A scalar (grey) PET or SPECT, as scanners store activity, is
    rendered with the colour map ``cmap`` (default: the atlas's own scale of that modality,
    :func:`msgfusion.io.color.default_cmap`), so that the networks see what they were trained on.
    ``cmap`` is ignored, with a warning, for an image that is already colour.
    """
    modality = check_modality(modality)
    if mr.ndim == 3:
        warnings.warn(f"{mr_label} is a colour image; it is fused as grey (its luminance)",
                      MsgFusionWarning, stacklevel=3)
        mr = luminance(mr)
    if modality == "CT" and func.ndim == 3:
        warnings.warn(f"{func_label} is a colour image given as CT; it is fused as grey (its "
                      "luminance). Give --modality PET or SPECT to keep its colour",
                      MsgFusionWarning, stacklevel=3)
        func = luminance(func)
    elif modality != "CT" and func.ndim == 2:
        func = colorize(func, cmap or default_cmap(modality))
    elif cmap is not None and modality != "CT":
        warnings.warn(f"{func_label} is already in colour; the colour map {cmap!r} is not used",
                      MsgFusionWarning, stacklevel=3)
    return mr, func


@dataclass(frozen=True, repr=False)
class FusionPair:
    """An MR slice and the co-registered functional/structural slice of the same brain.

    Attributes:
        mr: H x W float32 in [0, 1].
        func: the other modality as read: grey H x W (CT) or RGB H x W x 3 (PET/SPECT), in [0, 1].
        modality: "CT", "PET" or "SPECT".
        name: optional identifier (the file stem), used to name outputs.
        meta: optional spatial metadata (affine, spacing) for slices of volumes.

    Derived views are computed once, here: :attr:`func_gray` (BT.601 luminance, identical to
    OpenCV's Y on 8-bit input) and :attr:`v_prime` (MsgFusion's brightness feature V').
    """

    mr: np.ndarray
    func: np.ndarray
    modality: str
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "modality", check_modality(self.modality))
        label = f"{self.name}: " if self.name else ""
        mr = as_image(self.mr, f"{label}MR image")
        func = as_image(self.func, f"{label}{self.modality} image")
        if mr.ndim == 3 and mr.shape[2] == 3:
            mr = luminance(mr)
        if mr.ndim != 2:
            raise ShapeMismatchError(f"{label}MR image must be 2-D (H x W), got shape {mr.shape}")
        if not (func.ndim == 2 or (func.ndim == 3 and func.shape[2] == 3)):
            raise ShapeMismatchError(
                f"{label}functional image must be H x W or H x W x 3, got shape {func.shape}"
            )
        if func.shape[:2] != mr.shape:
            raise ShapeMismatchError(
                f"{label}MR is {mr.shape[0]}x{mr.shape[1]} but the {self.modality} image is "
                f"{func.shape[0]}x{func.shape[1]} (height x width); the pair must be co-registered "
                "to the same size"
            )
        object.__setattr__(self, "mr", mr)
        object.__setattr__(self, "func", func)

    def __repr__(self) -> str:  # the arrays themselves would fill a screen
        kind = "RGB" if self.is_color else "grey"
        return (f"FusionPair(name={self.name!r}, modality={self.modality!r}, "
                f"shape={self.shape[0]}x{self.shape[1]}, func={kind})")

    @property
    def label(self) -> str:
        """What names the pair in messages: its MR file when read from files, else its name."""
        return str(self.meta.get("mr_path") or self.name or "pair")

    @property
    def shape(self) -> tuple[int, int]:
        return self.mr.shape  # type: ignore[return-value]

    @property
    def is_color(self) -> bool:
        return self.func.ndim == 3

    @cached_property
    def func_gray(self) -> np.ndarray:
        """Luminance of the functional image (the image itself when it is grey), H x W float32."""
        return luminance(self.func) if self.is_color else self.func

    @cached_property
    def v_prime(self) -> np.ndarray:
        """MsgFusion's brightness V' of the functional image (MSGFUSION.md section 2), H x W."""
        return v_prime(self.func)


def load_pair(
    mr_path: str | os.PathLike,
    func_path: str | os.PathLike,
    modality: str | None = None,
    name: str | None = None,
    cmap: str | None = None,
) -> FusionPair:
    """Read an MR file and a CT/PET/SPECT file into a :class:`FusionPair`.

    The modality is inferred when not given (:func:`infer_modality`); the images are prepared
    by :func:`prepare_images` (grey MR, grey CT, a scalar PET/SPECT rendered with ``cmap``).
    Size mismatches raise :class:`ShapeMismatchError` naming both files.
    """
    mr = read_image(mr_path)
    func = read_image(func_path)
    modality = check_modality(modality) if modality else infer_modality(func, func_path)
    mr, func = prepare_images(mr, func, modality, cmap, str(mr_path), str(func_path))
    if mr.shape[:2] != func.shape[:2]:
        raise ShapeMismatchError(
            f"{mr_path} is {mr.shape[0]}x{mr.shape[1]} but {func_path} is "
            f"{func.shape[0]}x{func.shape[1]} (height x width); the pair must be co-registered "
            "to the same size"
        )
    stem = name if name is not None else os.path.splitext(os.path.basename(mr_path))[0]
    return FusionPair(mr=mr, func=func, modality=modality, name=stem,
                      meta={"mr_path": str(mr_path), "func_path": str(func_path)})
