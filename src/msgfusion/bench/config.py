"""Benchmark configuration: a small dataclass, written next to every run's results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from msgfusion.io.color import DEFAULT_COLOR_MODE


@dataclass
class BenchConfig:
    """What to compare: methods x paired dataset x metrics.

    Attributes:
        methods: registered method names; empty = every registered method.
        data: a folder of pairs, or an AANLIB-style tree ``<pair>/<split>/``.
        split: the split of an AANLIB tree (ignored for a single folder of pairs).
        metrics: metric labels; empty = every registered metric.
        out: the results folder (also the cache).
        force: recompute everything, ignoring the cache.
        color: colour restoration of the fused PET/SPECT images (metrics use their luminance);
            the default is the one of every entry point, :data:`DEFAULT_COLOR_MODE` (ycbcr:
            the luminance is the fused intensity itself; docs/colour.md).
        batch_size: pairs per fusion call.
        timing_repeats: timed runs per method (median reported), after one warm-up run.
        figure_pairs: pair names (file stems) shown in the figure grids; empty = the first pair of
            every modality.
        roi_size: side of the zoomed region of interest in the figure grids, in pixels.
    """

    methods: list[str] = field(default_factory=list)
    data: str = "../shared/data/aanlib"
    split: str = "test"
    metrics: list[str] = field(default_factory=list)
    out: str = "results"
    force: bool = False
    color: str = DEFAULT_COLOR_MODE
    batch_size: int = 8
    timing_repeats: int = 5
    figure_pairs: list[str] = field(default_factory=list)
    roi_size: int = 64

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
