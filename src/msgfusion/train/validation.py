"""Held-out validation pairs, scored every epoch, to keep the weights of the best epoch.

The AANLIB test split takes every few slices of each atlas case (the split is by slice);
:func:`split_validation` carves a validation split out of the train split the same way, so that
choosing a network never looks at the test pairs. :class:`Validator` fuses the validation pairs
with the network in training, restores colour and scores the result exactly as the benchmark
does (8-bit luminance, :func:`msgfusion.metrics.evaluate_images`), and compares it with pixel
average and pixel maximum on the same pairs: the issue's bar is to beat both on Q_S, VIFF and
Qabf. Its ``score`` is the smallest of those margins, so the best epoch is the one furthest
above both baselines on the metric where it is closest to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from msgfusion.io.color import DEFAULT_COLOR_MODE, restore_color
from msgfusion.methods.registry import fuse_pairs, get_method
from msgfusion.metrics import evaluate_images
from msgfusion.model.inputs import Batch, batch_from_pairs
from msgfusion.pair import FusionPair

VAL_METRICS = ("Q_S", "VIFF", "Qabf")
VAL_BASELINES = ("average", "max")


def split_validation(pairs: Sequence[FusionPair], n: int) -> tuple[list[FusionPair],
                                                                   list[FusionPair]]:
    """``(train, val)``: ``n`` evenly spaced pairs of the (name-sorted) ``pairs`` are held out.

    Each pair is read once (a :class:`~msgfusion.data.datasets.PairFolder` reads on access).
    """
    if not 0 <= n < len(pairs):
        raise ValueError(f"cannot hold out {n} of {len(pairs)} pairs for validation")
    held = set(np.linspace(0, len(pairs) - 1, n).round().astype(int).tolist()) if n else set()
    train: list[FusionPair] = []
    val: list[FusionPair] = []
    for i, pair in enumerate(pairs):
        (val if i in held else train).append(pair)
    return train, val


def _mean_scores(pairs: Sequence[FusionPair], fused: np.ndarray, color: str,
                 metrics: Sequence[str]) -> dict[str, float]:
    rows = [evaluate_images(p.mr, p.func, restore_color(f, p.func, color), metrics)
            for p, f in zip(pairs, fused)]
    return {m: float(np.mean([r[m] for r in rows])) for m in metrics}


class Validator:
    """``Validator(pairs, forward)(model)`` -> ``{metric: mean, ..., "score": margin}``.

    ``forward(model, batch)`` is the trainer's forward (N x 1 x H x W output, clamped to [0, 1]
    here as the fusion method does); ``metrics`` are averaged over the pairs (``report``: more
    metrics averaged alongside, not scored); ``score`` is min over ``metrics`` and ``baselines``
    of (model - baseline), all higher-is-better metrics. ``references``: more methods fused and
    averaged like the baselines but not scored against. ``baselines`` holds the means of
    ``metrics`` and ``report`` of the baselines and references.
    """

    def __init__(self, pairs: Sequence[FusionPair],
                 forward: Callable[[nn.Module, Batch], torch.Tensor],
                 metrics: Sequence[str] = VAL_METRICS, baselines: Sequence[str] = VAL_BASELINES,
                 color: str = DEFAULT_COLOR_MODE, chunk: int = 8,
                 report: Sequence[str] = (), references: Sequence[str] = ()) -> None:
        if not pairs:
            raise ValueError("no validation pairs")
        self.pairs, self.forward, self.metrics = list(pairs), forward, tuple(metrics)
        self.measured = self.metrics + tuple(m for m in report if m not in self.metrics)
        self.color = color
        self.batches = [batch_from_pairs(self.pairs[i: i + chunk])
                        for i in range(0, len(self.pairs), chunk)]
        self.scored_against = tuple(baselines)
        self.baselines = {name: _mean_scores(self.pairs, fuse_pairs(get_method(name), self.pairs),
                                             color, self.measured)
                          for name in dict.fromkeys((*baselines, *references))}

    def fuse(self, model: nn.Module) -> np.ndarray:
        """The model's fused intensities of the validation pairs, N x H x W in [0, 1]."""
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        parts = []
        with torch.no_grad():
            for batch in self.batches:
                out = self.forward(model, {k: v.to(device) for k, v in batch.items()})
                parts.append(out[:, 0].clamp(0.0, 1.0).cpu().numpy())
        model.train(was_training)
        return np.concatenate(parts)

    def __call__(self, model: nn.Module) -> dict[str, float]:
        scores = _mean_scores(self.pairs, self.fuse(model), self.color, self.measured)
        margin = min(scores[m] - self.baselines[name][m] for name in self.scored_against
                     for m in self.metrics)
        return {**scores, "score": margin}
