"""MsgFusion as a registered fusion method, with the trained ``lite`` weights shipped in the package.

Wen et al., "MsgFusion: Medical Semantic Guided Two-Branch Network for Multimodal Brain Image
Fusion", IEEE TMM 26:944-957, 2024. The network is :class:`msgfusion.model.MsgFusionNet`;
the shipped weights hold one per functional modality (:class:`msgfusion.model.PerModality`).
This adapter sends each pair to the network of its modality, batches pairs, runs them in eval
mode under ``torch.inference_mode`` and returns N x H x W intensities in [0, 1]. Colour is
restored afterwards by the shared path (:func:`msgfusion.io.color.restore_color`), as for every
method.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from functools import cached_property
from importlib import resources

import numpy as np

from msgfusion.errors import WeightsError
from msgfusion.methods.device import on_device_thread
from msgfusion.methods.registry import FusionMethod
from msgfusion.pair import FusionPair

SHIPPED = "msgfusion_lite"


class MsgFusion(FusionMethod):
    """The MsgFusion network; ``weights``: a file from ``msgfusion train`` (default: shipped);
    ``device``: where it runs ("cpu" by default, "cuda", "cuda:N"; see
    :func:`msgfusion.methods.device.torch_device`)."""

    name = "msgfusion"

    # Pairs per forward pass. The network's full-resolution tensors of 8 channels (2 MB per
    # 256 x 256 pair) exceed the CPU caches as soon as several pairs share a pass: one pair per
    # pass measured fastest (benchmarks/speed.py), and 16 about 3x slower per pair.
    chunk = 1
    # Pairs of more pixels than this are fused in tiles of ``tile`` x ``tile`` pixels
    # (:meth:`MsgFusionNet.forward_tiled`, the same result up to float rounding): a 4096 x 4096
    # pair in one pass needs about 7 GB.
    tile_above = 1024 * 1024
    tile = 512
    # A network's forward pass on one input shape is traced to TorchScript (torch.jit.trace)
    # on its ``trace_after``-th call: the traced graph runs the same operations without
    # Python between them, and without holding the GIL, so that fuse-dir's workers overlap
    # better (network 10.5 -> 9.4 ms per 256 x 256 pair, docs/speed.md; fuse-dir about 1.5 ms
    # per pair less). Tracing costs about 0.1-0.2 s once per network and shape, so one-off
    # shapes (a single `msgfusion fuse`) never pay it; 0 turns tracing off. At most
    # ``traces_kept`` traced graphs are kept (the oldest dropped).
    trace_after = 2
    traces_kept = 8

    def __init__(self, weights: str | os.PathLike | None = None,
                 device: str | None = None) -> None:
        self.weights = weights
        self.device = device
        self._traced: OrderedDict[tuple, Callable] = OrderedDict()
        self._calls: Counter[tuple] = Counter()
        self._trace_lock = threading.Lock()

    @cached_property
    def model(self):  # type: ignore[no-untyped-def]
        """The network for inference (:func:`~msgfusion.model.layers.fold_for_inference`), its
        weights in the channels-last layout (loaded on first use: importing torch takes a
        second). A bad weights file raises
        :class:`WeightsError` naming it, an absent device :class:`MsgFusionError`."""
        import torch

        from msgfusion.methods.device import torch_device
        from msgfusion.model.layers import fold_for_inference
        from msgfusion.model.msgfusion import load_pretrained, load_weights

        device = torch_device(self.device)
        if not self.weights:
            model = load_pretrained(SHIPPED)
        elif not os.path.isfile(self.weights):
            raise WeightsError(f"{self.weights}: no such weights file")
        else:
            try:
                model = load_weights(self.weights)
            except Exception as exc:  # pickle, zip and key errors alike: not our weights file
                raise WeightsError(f"{self.weights}: not a MsgFusion weights file from "
                                   f"`msgfusion train` ({type(exc).__name__} while loading "
                                   "it)") from None
        return fold_for_inference(model).to(device, memory_format=torch.channels_last)

    def fuse(self, pairs: Sequence[FusionPair]) -> np.ndarray:
        """Fused intensities, N x H x W in [0, 1]: the pairs of each modality go to that
        modality's network, :attr:`chunk` pairs per forward pass (large pairs one by one, in
        tiles)."""
        from msgfusion.model.inputs import batch_from_pairs

        model = self.model
        device = next(model.parameters()).device
        out = np.empty((len(pairs), *pairs[0].shape), dtype=np.float32)
        tiled = pairs[0].mr.size > self.tile_above
        groups: dict[str, list[int]] = {}
        for i, pair in enumerate(pairs):
            groups.setdefault(pair.modality, []).append(i)
        for modality, indices in groups.items():
            try:
                net = model.net(modality)
            except ValueError as exc:
                raise WeightsError(f"{self.weights or SHIPPED}: {exc}") from None
            step = 1 if tiled else self.chunk
            for start in range(0, len(indices), step):
                part = indices[start: start + step]
                batch = batch_from_pairs([pairs[i] for i in part], ("mr", "func", "v_prime"),
                                         channels_last=True)
                out[part] = on_device_thread(device, lambda: self._forward(
                    modality, net, tuple(batch.values()), device, tiled))
        return out

    def _forward(self, modality: str, net, batch: tuple, device,  # type: ignore[no-untyped-def]
                 tiled: bool) -> np.ndarray:
        """One forward pass on ``device``: N x H x W fused intensities in [0, 1]."""
        import torch

        with torch.inference_mode():
            mr, func, v_prime = (t.to(device) for t in batch)
            if tiled:
                fused = net.forward_tiled(mr, func, v_prime, self.tile)
            else:
                fused = self._runner(modality, net, (mr, func, v_prime))(mr, func, v_prime)
            return fused[:, 0].clamp(0.0, 1.0).cpu().numpy()

    def _runner(self, modality: str, net, inputs: tuple) -> Callable:  # type: ignore[no-untyped-def]
        """The traced forward pass of ``net`` for inputs of these shapes, strides and device
        when it exists or this call is the ``trace_after``-th; otherwise ``net`` itself."""
        import torch

        key = (modality, *((t.shape, t.stride(), t.device) for t in inputs))
        with self._trace_lock:
            if key in self._traced:
                return self._traced[key]
            if len(self._calls) > 64:  # many one-off shapes (a web server): forget them
                self._calls.clear()
            self._calls[key] += 1
            if not self.trace_after or self._calls[key] < self.trace_after:
                return net
            # The shapes the forward pass branches on are part of the key, so the tracer's
            # warnings about them are expected; torch.jit is deprecated (torch 2.13) but kept.
            # (Filters added, not a catch_warnings block: that one is not thread-safe.)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning,
                                    module=r"msgfusion\.")
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace",
                                    category=DeprecationWarning)
            # Outside inference mode: tracing records operations on ordinary tensors. Where
            # tracing fails, the key keeps the Python forward pass.
            with torch.inference_mode(False), torch.no_grad():
                try:
                    traced = torch.jit.trace(net, tuple(t.clone() for t in inputs),
                                             check_trace=False)
                except Exception:  # noqa: BLE001 (any failure: the eager pass stays correct)
                    traced = net
            self._traced[key] = traced
            del self._calls[key]
            while len(self._traced) > self.traces_kept:
                self._traced.popitem(last=False)
            return traced

    def fingerprint_data(self) -> bytes:
        """The weights file: cached results follow retraining."""
        if self.weights:
            with open(self.weights, "rb") as fh:
                return fh.read()
        return resources.files("msgfusion.model.weights").joinpath(f"{SHIPPED}.pt").read_bytes()
