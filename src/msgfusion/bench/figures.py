"""Benchmark figures: the paper-style chart per modality pair and the figure grids with a zoom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from msgfusion.bench.runner import INPUT, BenchResult
from msgfusion.bench.tables import group_stats
from msgfusion.data.datasets import find_pair_folders
from msgfusion.io.files import atomic_write
from msgfusion.io.images import read_image
from msgfusion.pair import FusionPair


def _save_figure(fig: object, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically (:func:`msgfusion.io.files.atomic_write`)."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110),  # type: ignore[attr-defined]
                 overwrite=True)


def write_chart(result: BenchResult, group: str, path: Path) -> None:
    """The paper's style: each metric rescaled linearly to [0, 1] across methods (1 = best)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols, stats = group_stats(result, group)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(cols) + 3), 4.2))
    x = np.arange(len(cols))
    for method, s in stats.items():
        ys = []
        for c in cols:
            vals = np.array([st[c.label][0] for st in stats.values() if c.label in st])
            lo, hi = np.nanmin(vals), np.nanmax(vals)
            y = (s[c.label][0] - lo) / (hi - lo) if hi > lo else 1.0
            ys.append(y if c.direction == "higher" else 1.0 - y)
        ax.plot(x, ys, marker="o", lw=1.4, label=method)
    ax.set_xticks(x, [c.label for c in cols], rotation=45, ha="right")
    ax.set_ylabel("rescaled value (1 = best method)")
    ax.set_title(f"{group}: every metric rescaled to [0, 1] across methods")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left", bbox_to_anchor=(1.01, 0))
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _roi(func_gray: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` x ``size`` region around the strongest functional signal."""
    smooth = gaussian_filter(func_gray.astype(np.float64), sigma=size / 4)
    cy, cx = np.unravel_index(np.argmax(smooth), smooth.shape)
    h, w = func_gray.shape
    size = min(size, h, w)
    return int(np.clip(cy - size // 2, 0, h - size)), int(np.clip(cx - size // 2, 0, w - size))


def write_figure_grid(result: BenchResult, group: str, pair: FusionPair, path: Path) -> None:
    """Sources and every method's fused image side by side, with a zoomed region of interest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fused_root = result.config.out_dir / "fused"
    panels = [("MR", pair.mr), (pair.modality, pair.func)]
    for method in result.methods:
        f = fused_root / method / group / f"{pair.name}.png"
        if f.exists():
            panels.append((method, read_image(f)))
    size = min(result.config.roi_size, *pair.shape)
    y0, x0 = _roi(pair.func_gray, size)
    fig, axes = plt.subplots(2, len(panels), figsize=(1.7 * len(panels), 3.7), squeeze=False)
    for k, (title, img) in enumerate(panels):
        cmap = "gray" if img.ndim == 2 else None
        axes[0, k].imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        axes[0, k].add_patch(Rectangle((x0, y0), size, size, fill=False, ec="yellow", lw=1))
        axes[1, k].imshow(img[y0:y0 + size, x0:x0 + size], cmap=cmap, vmin=0, vmax=1,
                          interpolation="nearest")
        axes[0, k].set_title(title, fontsize=8)
        for ax in axes[:, k]:
            ax.set_axis_off()
    fig.suptitle(f"{group} {pair.name} (bottom row: zoom of the yellow box)", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def figure_pairs(result: BenchResult) -> list[tuple[str, FusionPair]]:
    """(group, pair) for the figure grids: the configured names, else the first readable pair
    per group (pairs that could not be read are failures of the run, never drawn)."""
    chosen = []
    wanted = set(result.config.figure_pairs)
    unreadable = {f.pair for f in result.failures if f.method == INPUT}
    for folder in find_pair_folders(result.config.data, split=result.config.split,
                                    check_sizes=False):
        group = f"{folder.modality}-MRI"
        if group not in result.groups:
            continue
        stems = [f.stem for f in folder.files]
        readable = [i for i, s in enumerate(stems) if f"{group}/{s}" not in unreadable]
        picks = [i for i in readable if stems[i] in wanted] if wanted else readable[:1]
        chosen += [(group, folder[i]) for i in picks]
    return chosen
