"""The registry of fusion methods: every method, ours and the baselines, behind one signature.

A method is a :class:`FusionMethod` subclass with a ``name``, a one-line ``description``, a
``reference`` (the paper it implements), the smallest image side it can fuse (``min_size``) and
``fuse(pairs) -> N x H x W`` float32 intensities in [0, 1] for a batch of same-size
:class:`FusionPair`. :func:`fuse_pairs` is the one place methods are called: it refuses pairs
below a method's ``min_size`` and turns running out of memory into one clear error. Methods
fuse intensity only; colour is restored afterwards by :func:`msgfusion.io.color.restore_color`,
the same for every method.

Methods register themselves with :func:`register`; the modules that hold the built-in methods
are imported on first use of the registry, so ``import msgfusion`` stays fast.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, TypeVar

import numpy as np

from msgfusion.errors import InvalidImageError, OutOfMemoryError, UnknownMethodError
from msgfusion.pair import FusionPair, check_same_size

# Modules whose import registers built-in methods (in listing order).
BUILTIN_MODULES: tuple[str, ...] = (
    "msgfusion.methods.msgfusion",
    "msgfusion.methods.classical.pixel",
    "msgfusion.methods.classical.pca",
    "msgfusion.methods.classical.pyramid",
    "msgfusion.methods.classical.wavelet",
    "msgfusion.methods.classical.guided",
    "msgfusion.methods.classical.lowrank",
    "msgfusion.methods.classical.pcnn",
    "msgfusion.methods.deep.ifcnn",
    "msgfusion.methods.deep.nestfuse",
    "msgfusion.methods.deep.fusiondn",
    "msgfusion.methods.deep.fusiongan",
    "msgfusion.methods.deep.funfusean",
)
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
_REGISTRY: dict[str, type[FusionMethod]] = {}
_INSTANCES: dict[str, FusionMethod] = {}
_loaded = False


def register(cls: M) -> M:
    """Class decorator: add a method to the registry under ``cls.name``."""
    for attr in ("name", "description", "reference"):
        if not getattr(cls, attr, ""):
            raise TypeError(f"{cls.__name__} must define a non-empty class attribute {attr!r}")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"a method named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def list_methods() -> list[type[FusionMethod]]:
    """All registered method classes, in registration order."""
    _load_builtins()
    return list(_REGISTRY.values())


def get_method(name: str) -> FusionMethod:
    """The (cached) instance of the method registered as ``name``."""
    _load_builtins()
    if name not in _REGISTRY:
        raise UnknownMethodError(
            f"unknown method {name!r}; available: {', '.join(_REGISTRY)} (see `msgfusion methods`)"
        )
    if name not in _INSTANCES:
        _INSTANCES[name] = _REGISTRY[name]()
    return _INSTANCES[name]


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
