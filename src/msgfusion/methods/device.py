"""Which torch device a network method runs on (``--device``), and the one thread per GPU that
runs its passes there."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from msgfusion.errors import MsgFusionError

if TYPE_CHECKING:
    import torch

R = TypeVar("R")
_LANES: dict[str, ThreadPoolExecutor] = {}
_LANES_LOCK = threading.Lock()
_IN_LANE = threading.local()  # .device: the device whose lane this thread is


def torch_device(spec: str | None) -> torch.device:
    """The device named by ``spec`` ("cpu", "cuda", "cuda:1", "mps"; ``None``: the CPU),
    checked to be present here; :class:`MsgFusionError` otherwise."""
    import torch

    try:
        device = torch.device(spec or "cpu")
    except RuntimeError:
        raise MsgFusionError(f"unknown device {spec!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise MsgFusionError(f"device {spec!r}: no CUDA GPU is available here "
                                 f"(torch {torch.__version__})")
        if device.index is not None and device.index >= count:
            raise MsgFusionError(f"device {spec!r}: only {count} CUDA GPU(s) here")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise MsgFusionError(f"device {spec!r}: no Apple GPU (MPS) is available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise MsgFusionError(f"device {spec!r}: not supported; use cpu, cuda, cuda:N or mps")
    return device


def on_device_thread(device: torch.device, fn: Callable[[], R]) -> R:
    """``fn()`` run in the one thread of this process that drives ``device``, for a GPU;
    in the calling thread for the CPU.

    A thread's first network pass on a CUDA GPU sets up its own cuDNN and cuBLAS state (about
    0.3 s for MsgFusion, measured on an H100), so that fuse-dir's workers, each a thread
    of its own, paid it once per worker and per run (130 ms per pair with 16 workers, 30 ms
    with one). Passes on one GPU run one after the other anyway: they now all go through one
    long-lived thread per device, which pays it once per process, while the workers read,
    colour and write in parallel."""
    key = str(device)
    if device.type != "cuda" or getattr(_IN_LANE, "device", None) == key:
        return fn()  # (already in the lane: a nested call runs here, it must not wait on it)
    with _LANES_LOCK:
        lane = _LANES.get(key)
        if lane is None:
            lane = _LANES[key] = ThreadPoolExecutor(max_workers=1,
                                                    thread_name_prefix=f"msgfusion-{key}")

    def in_lane() -> R:
        _IN_LANE.device = key
        return fn()

    return lane.submit(in_lane).result()
