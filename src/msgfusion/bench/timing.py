"""Runtime and size of fusion methods: warm time per pair, parameters, multiply-adds."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from msgfusion.methods.registry import FusionMethod
from msgfusion.pair import FusionPair


@dataclass
class MethodCost:
    """Median warm time per pair (batch 1), and for networks the parameter and MAC counts."""

    seconds_per_pair: float
    repeats: int
    parameters: int | None = None
    macs: int | None = None


def time_fuse(method: FusionMethod, pairs: Sequence[FusionPair], repeats: int = 5) -> float:
    """Median wall time per pair of ``method.fuse(pairs)`` (one batch) over ``repeats`` runs
    after one warm-up run."""
    method.fuse(pairs)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        method.fuse(pairs)
        times.append((time.perf_counter() - start) / len(pairs))
    return float(np.median(times))


def network_size(method: FusionMethod, pair: FusionPair) -> tuple[int | None, int | None]:
    """(parameters, multiply-adds for one pair) of a method backed by a torch network.

    A method exposes its network as the attribute ``model`` (a ``torch.nn.Module``); others
    return (None, None). A model with one network per modality (``model.net(modality)``, as
    MsgFusion's) counts the parameters of the network that fuses ``pair``. Multiply-adds are half the floating-point operations counted by
    ``torch.utils.flop_counter`` (convolutions and matrix products; FFTs are not counted).
    """
    model = getattr(method, "model", None)
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover - torch is a core dependency
        return None, None
    if not isinstance(model, torch.nn.Module):
        return None, None
    net = model.net(pair.modality) if hasattr(model, "net") else model
    params = sum(p.numel() for p in net.parameters())
    counter = FlopCounterMode(display=False)
    with counter:
        method.fuse([pair])
    return params, counter.get_total_flops() // 2


def measure_cost(method: FusionMethod, pair: FusionPair, repeats: int = 5) -> MethodCost:
    seconds = time_fuse(method, [pair], repeats)
    params, macs = network_size(method, pair)
    return MethodCost(seconds, repeats, params, macs)
