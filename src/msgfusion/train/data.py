"""Training data: folders of :class:`FusionPair` preloaded once into memory as tensors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from msgfusion.io.color import luminance, v_prime
from msgfusion.model.inputs import Batch, batch_from_pairs
from msgfusion.pair import FusionPair
from msgfusion.progress import progress_bar


def preload(pairs: Iterable[FusionPair], chunk: int = 64, desc: str = "loading pairs") -> Batch:
    """Read every pair once and stack them: ``{key: N x C x H x W}`` (see ``batch_from_pairs``).

    All pairs must have one size (the AANLIB slices are 256 x 256); 738 such pairs take about
    1.4 GB as float32.
    """
    parts: list[Batch] = []
    buffer: list[FusionPair] = []
    for pair in progress_bar(iterable=pairs, desc=desc, unit="pair"):
        buffer.append(pair)
        if len(buffer) == chunk:
            parts.append(batch_from_pairs(buffer))
            buffer = []
    if buffer:
        parts.append(batch_from_pairs(buffer))
    if not parts:
        raise ValueError("no training pairs")
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def subset(data: Batch, indices: Sequence[int] | torch.Tensor) -> Batch:
    """The pairs at ``indices`` of a preloaded batch."""
    idx = torch.as_tensor(indices, dtype=torch.long)
    return {key: value[idx] for key, value in data.items()}


def random_crop_flip(batch: Batch, size: int, flip: bool, generator: torch.Generator,
                     transpose: bool = False) -> Batch:
    """The same random ``size`` x ``size`` crop (and flips) of every tensor, chosen per sample;
    ``transpose`` also swaps the axes of half the samples (with both flips: the 8 symmetries of
    the square). No random number is drawn for a switch that is off, so runs without it keep
    their random stream."""
    n, _, h, w = next(iter(batch.values())).shape
    out: dict[str, list[torch.Tensor]] = {key: [] for key in batch}
    for i in range(n):
        top = int(torch.randint(0, h - size + 1, (1,), generator=generator)) if size else 0
        left = int(torch.randint(0, w - size + 1, (1,), generator=generator)) if size else 0
        dims = [d for d, p in ((-1, 0.5), (-2, 0.5)) if flip and
                float(torch.rand(1, generator=generator)) < p]
        swap = transpose and float(torch.rand(1, generator=generator)) < 0.5
        for key, value in batch.items():
            x = value[i, :, top: top + size, left: left + size] if size else value[i]
            x = x.flip(dims) if dims else x
            out[key].append(x.transpose(-1, -2) if swap else x)
    return {key: torch.stack(values) for key, values in out.items()}


def jitter_intensity(batch: Batch, amount: float, generator: torch.Generator) -> Batch:
    """What differs between cases in the grey levels: each sample's MR and functional image get
    their own gamma ``exp(u)`` and gain ``exp(-|w|)``, u, w ~ U(-amount, amount) (a gain below 1:
    a scan that does not reach the top of the range), ``x -> gain * x ** gamma`` on every
    channel; ``func_gray`` and ``v_prime`` are then recomputed from the changed functional image
    exactly as :class:`~msgfusion.pair.FusionPair` computes them, so the whole-image min-max of
    V' holds (call before cropping). ``amount`` 0 draws no random number."""
    if not amount:
        return batch
    out = {key: value.clone() for key, value in batch.items()}
    for i in range(len(out["mr"])):
        u = (torch.rand(4, generator=generator) * 2 - 1) * amount
        gamma_mr, gamma_func = float(u[0].exp()), float(u[1].exp())
        gain_mr, gain_func = float((-u[2].abs()).exp()), float((-u[3].abs()).exp())
        out["mr"][i] = gain_mr * batch["mr"][i].clamp(0, 1) ** gamma_mr
        func = gain_func * batch["func"][i].clamp(0, 1) ** gamma_func
        out["func"][i] = func
        rgb = func.permute(1, 2, 0).numpy()
        grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all())
        out["func_gray"][i, 0] = torch.from_numpy(luminance(rgb))
        out["v_prime"][i, 0] = torch.from_numpy(v_prime(rgb[..., 0] if grey else rgb))
    return out
