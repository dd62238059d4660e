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
from collections.abc import Sequence
from functools import cached_property
from importlib import resources

import numpy as np

from msgfusion.errors import WeightsError
from msgfusion.methods.registry import FusionMethod
from msgfusion.pair import FusionPair

SHIPPED = "msgfusion_lite"


class MsgFusion(FusionMethod):
    """The MsgFusion network; ``weights``: a file from ``msgfusion train`` (default: shipped)."""

    name = "msgfusion"

    # Pairs per forward pass: 16 pairs of 256 x 256 with 4-8 feature channels overflow the CPU
    # caches; chunks of 1-4 pairs measured about 3x faster per pair than one batch of 16.
    chunk = 4

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        self.weights = weights

    @cached_property
    def model(self):  # type: ignore[no-untyped-def]
        """The network for inference, BatchNorm folded (loaded on first use: importing torch
        takes a second). A bad weights file raises :class:`WeightsError` naming it."""
        from msgfusion.model.layers import fold_batchnorm
        from msgfusion.model.msgfusion import load_pretrained, load_weights

        if not self.weights:
            return fold_batchnorm(load_pretrained(SHIPPED))
        if not os.path.isfile(self.weights):
            raise WeightsError(f"{self.weights}: no such weights file")
        try:
            return fold_batchnorm(load_weights(self.weights))
        except Exception as exc:  # pickle, zip and key errors alike: not our weights file
            raise WeightsError(f"{self.weights}: not a MsgFusion weights file from `msgfusion "
                               f"train` ({type(exc).__name__} while loading it)") from None

    def fuse(self, pairs: Sequence[FusionPair]) -> np.ndarray:
        """Fused intensities, N x H x W in [0, 1]: the pairs of each modality go to that
        modality's network, in forward passes of :attr:`chunk` pairs."""
        import torch

        from msgfusion.model.inputs import batch_from_pairs

        out = np.empty((len(pairs), *pairs[0].shape), dtype=np.float32)
        groups: dict[str, list[int]] = {}
        for i, pair in enumerate(pairs):
            groups.setdefault(pair.modality, []).append(i)
        with torch.inference_mode():
            for modality, indices in groups.items():
                try:
                    net = self.model.net(modality)
                except ValueError as exc:
                    raise WeightsError(f"{self.weights or SHIPPED}: {exc}") from None
                for start in range(0, len(indices), self.chunk):
                    part = indices[start: start + self.chunk]
                    fused = net.forward_batch(batch_from_pairs([pairs[i] for i in part]))
                    out[part] = fused[:, 0].clamp(0.0, 1.0).numpy()
        return out

    def fingerprint_data(self) -> bytes:
        """The weights file: cached results follow retraining."""
        if self.weights:
            with open(self.weights, "rb") as fh:
                return fh.read()
        return resources.files("msgfusion.model.weights").joinpath(f"{SHIPPED}.pt").read_bytes()
