"""FusionPair: the one data type that flows from reading to fusing to evaluating (DESIGN.md)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from msgfusion.errors import (
    ImageTypeError,
    InvalidImageError,
    ShapeMismatchError,
    UnknownModalityError,
)
from msgfusion.io.color import luminance, v_prime
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


def infer_modality(func: np.ndarray) -> str:
    """A grey functional image is CT, a colour one PET (PET and SPECT are processed alike)."""
    return "PET" if func.ndim == 3 else "CT"


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
) -> FusionPair:
    """Read an MR file and a CT/PET/SPECT file into a :class:`FusionPair`.

    The modality is inferred when not given (grey -> CT, colour -> PET). A CT given as colour is
    reduced to its luminance. Size mismatches raise :class:`ShapeMismatchError` naming both files.
    """
    mr = read_image(mr_path)
    func = read_image(func_path)
    modality = check_modality(modality) if modality else infer_modality(func)
    if mr.ndim == 3:
        mr = luminance(mr)
    if modality == "CT" and func.ndim == 3:
        func = luminance(func)
    if mr.shape[:2] != func.shape[:2]:
        raise ShapeMismatchError(
            f"{mr_path} is {mr.shape[0]}x{mr.shape[1]} but {func_path} is "
            f"{func.shape[0]}x{func.shape[1]} (height x width); the pair must be co-registered "
            "to the same size"
        )
    stem = name if name is not None else os.path.splitext(os.path.basename(mr_path))[0]
    return FusionPair(mr=mr, func=func, modality=modality, name=stem,
                      meta={"mr_path": str(mr_path), "func_path": str(func_path)})
