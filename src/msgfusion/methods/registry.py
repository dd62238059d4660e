"""The registry of fusion methods: every method, ours and the baselines, behind one signature.

A method is a :class:`FusionMethod` subclass with a ``name``, the smallest image side it can
fuse (``min_size``) and ``fuse(pairs) -> N x H x W`` float32 intensities in [0, 1] for a batch of
same-size :class:`FusionPair`; the registry lists it with a one-line ``description`` and a
``reference`` (the paper it implements). :func:`fuse_pairs` is the one place methods are called:
it refuses pairs below a method's ``min_size`` and turns running out of memory into one clear
error. Methods fuse intensity only; colour is restored afterwards by
:func:`msgfusion.io.color.restore_color`, the same for every method.

The built-in methods are listed in :mod:`msgfusion.methods.catalogue`, and a method's module is
imported when the method is first used, so listing the methods and ``import msgfusion`` stay
fast (no torch, scipy or PyWavelets). Other methods are added with :func:`register`.
"""

from __future__ import annotations

import hashlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, TypeVar

import numpy as np

from msgfusion.errors import (
    InvalidImageError,
    MsgFusionError,
    OutOfMemoryError,
    UnknownMethodError,
)
from msgfusion.methods.catalogue import BUILTIN_METHODS, MethodInfo
from msgfusion.pair import FusionPair, check_same_size

DEFAULT_METHOD = "msgfusion"


class FusionMethod(ABC):
    """Base class of all fusion methods."""

    name: ClassVar[str]
    description: ClassVar[str]
    reference: ClassVar[str]
    #: The smallest height and width (pixels) the method can fuse: networks whose padding or
    #: pooling needs room declare more (measured: NestFuse 9, FusionDN 2).
    min_size: ClassVar[int] = 1

    @abstractmethod
    def fuse(self, pairs: Sequence[FusionPair]) -> np.ndarray:
        """Fuse a batch of same-size pairs into N x H x W float32 intensities in [0, 1]."""

    def fingerprint_data(self) -> bytes:
        """What besides the method's source determines its results (trained weights); none here."""
        return b""

    def fingerprint(self) -> str:
        """A hash that changes when the method's results may change (used to cache results):
        the source of the module defining the method and :meth:`fingerprint_data`."""
        source = inspect.getsource(inspect.getmodule(type(self)))  # type: ignore[arg-type]
        digest = hashlib.sha256(f"{type(self).__qualname__}\n{source}".encode())
        digest.update(self.fingerprint_data())
        return digest.hexdigest()[:16]


M = TypeVar("M", bound=type[FusionMethod])
_REGISTRY: dict[str, MethodInfo] = {info.name: info for info in BUILTIN_METHODS}
_INSTANCES: dict[tuple[str, str | None], FusionMethod] = {}


def register(cls: M) -> M:
    """Class decorator: add a method (beyond the built-in ones) to the registry under
    ``cls.name``; the class defines ``name``, ``description`` and ``reference``."""
    for attr in ("name", "description", "reference"):
        if not getattr(cls, attr, ""):
            raise TypeError(f"{cls.__name__} must define a non-empty class attribute {attr!r}")
    if cls.name in _REGISTRY and _REGISTRY[cls.name].target is not cls:
        raise ValueError(f"a method named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = MethodInfo(cls.name, cls, cls.description, cls.reference)
    return cls


def list_methods() -> list[MethodInfo]:
    """Every registered method (name, description, reference; ``load()`` gives its class), the
    built-in ones first; no method module is imported."""
    return list(_REGISTRY.values())


def get_method(name: str, device: str | None = None) -> FusionMethod:
    """The (cached) instance of the method registered as ``name``.

    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``): where a network method runs, passed to its
    constructor; ``None`` keeps the method's default, the CPU. Methods without a ``device``
    parameter (the classical ones) run on the CPU and refuse any other device.
    """
    if name not in _REGISTRY:
        raise UnknownMethodError(
            f"unknown method {name!r}; available: {', '.join(_REGISTRY)} (see `msgfusion methods`)"
        )
    key = (name, device)
    if key not in _INSTANCES:
        cls = _REGISTRY[name].load()
        if "device" in inspect.signature(cls).parameters:
            _INSTANCES[key] = cls(device=device) if device else cls()
        elif device in (None, "cpu"):
            _INSTANCES[key] = cls()
        else:
            raise MsgFusionError(f"method {name!r} runs on the CPU only, not on {device!r}")
    return _INSTANCES[key]


def stack_sources(pairs: Sequence[FusionPair]) -> tuple[np.ndarray, np.ndarray]:
    """(MR, functional grey) of a batch of same-size pairs, each N x H x W float32."""
    check_same_size(pairs)
    return np.stack([p.mr for p in pairs]), np.stack([p.func_gray for p in pairs])


def fuse_pairs(
    method: FusionMethod,
    pairs: Iterable[FusionPair],
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Fuse any number of pairs in batches of same-size pairs; results in input order.

    ``on_batch(n)`` is called after each batch with the number of pairs fused (for progress bars).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    pairs = list(pairs)
    for p in pairs:
        if min(p.shape) < method.min_size:
            raise InvalidImageError(
                f"{p.label}: {p.shape[0]}x{p.shape[1]} is too small for {method.name}, "
                f"which needs at least {method.min_size}x{method.min_size} pixels")
    out: list[np.ndarray | None] = [None] * len(pairs)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(pairs):
        by_shape.setdefault(p.shape, []).append(i)
    for indices in by_shape.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            fused = _call(method, [pairs[i] for i in chunk])
            for i, f in zip(chunk, fused):
                out[i] = np.clip(f, 0.0, 1.0)
            if on_batch:
                on_batch(len(chunk))
    return out  # type: ignore[return-value]


def _is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError (numpy), or torch's out-of-memory RuntimeError (CPU allocator or CUDA)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text
                                              or "can't allocate memory" in text
                                              or "failed to allocate" in text)


def _call(method: FusionMethod, batch: list[FusionPair]) -> np.ndarray:
    """``method.fuse(batch)`` as float32; running out of memory is :class:`OutOfMemoryError`."""
    try:
        return np.asarray(method.fuse(batch), dtype=np.float32)
    except Exception as exc:
        if not _is_out_of_memory(exc):
            raise
    h, w = batch[0].shape
    raise OutOfMemoryError(
        f"{batch[0].label}{' ...' if len(batch) > 1 else ''}: not enough memory to fuse "
        f"{len(batch)} pair(s) of {h}x{w} with {method.name}; use a smaller batch, a smaller "
        "image or a lighter method")
