"""Regenerate the colour-map tables shipped in ``src/msgfusion/io/colormaps/``.

- ``atlas-pet`` and ``atlas-spect``: the Whole Brain Atlas's own PET and SPECT pseudo-colour
  scales, estimated by :func:`msgfusion.io.color.estimate_colour_scale` from every image of the
  atlas's train split (``../shared/data/aanlib/{PET,SPECT}-MRI/train``);
- ``hot``, ``jet``, ``viridis``: matplotlib's maps sampled at 256 values and rounded to 8 bits;
- ``gray``: the identity ramp.

    python benchmarks/colour_scales.py                          # rewrites the tables
    python benchmarks/colour_scales.py --data DIR --out OUT_DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np

from msgfusion.io.color import MATPLOTLIB_COLORMAPS, estimate_colour_scale
from msgfusion.io.images import read_image

REPO = Path(__file__).resolve().parents[1]


def atlas_scale(data: Path, modality: str) -> np.ndarray:
    """The estimated colour scale of one modality's train images."""
    files = sorted((data / f"{modality}-MRI" / "train" / modality).glob("*.png"))
    if not files:
        raise SystemExit(f"no {modality} images under {data}")
    return estimate_colour_scale(read_image(f) for f in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "aanlib")
    ap.add_argument("--out", type=Path, default=REPO / "src" / "msgfusion" / "io" / "colormaps")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    grid = np.linspace(0.0, 1.0, 256)
    tables = {f"atlas-{m.lower()}": atlas_scale(args.data, m) for m in ("PET", "SPECT")}
    for name in MATPLOTLIB_COLORMAPS:
        tables[name] = np.round(matplotlib.colormaps[name](grid)[:, :3] * 255.0) / 255.0
    tables["gray"] = np.repeat(grid[:, None], 3, axis=1)
    for name, table in tables.items():
        np.save(args.out / f"{name}.npy", table.astype(np.float32))
        print(f"wrote {args.out / name}.npy")


if __name__ == "__main__":
    main()
