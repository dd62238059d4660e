"""Compare the colour modes on the atlas's PET- and SPECT-MRI test pairs: ``docs/colour.md`` and
``docs/figures/colour_modes.png``.

For every mode of :data:`msgfusion.io.color.COLOR_MODES` and every chosen method, each test pair
is fused, restored to colour, quantised to 8 bits (as written) and scored:

- the paper's metrics Q_S, VIFF, Qabf, EN, MI on the picture's luminance (what ``bench`` and
  ``evaluate`` score);
- what a reader sees, on the pixels where the functional image has signal (chroma weight 1) and
  colour (chroma >= 0.1): the hue error against the functional image (degrees, circular mean),
  the chroma kept (chroma of the picture / chroma of the functional image), and how far the
  picture's luminance is from the fused intensity (mean |Y - fused| in grey levels, the anatomy
  the fusion computed but the picture does not show);
- the colour rule: pixels below the functional image's noise floor with chroma above 8/255,
  also on JPEG (quality 75) copies of the functional images.

    python benchmarks/colour_modes.py                        # MsgFusion and the Laplacian pyramid
    python benchmarks/colour_modes.py --methods msgfusion average --output docs/colour.md
"""

from __future__ import annotations

import argparse
import io
import os
import platform
from pathlib import Path

import numpy as np
from PIL import Image

from msgfusion.data.datasets import load_aanlib
from msgfusion.io.color import (
    COLOR_MODES,
    DEFAULT_COLOR_MODE,
    chroma_weight,
    luminance,
    noise_floor,
    restore_color,
    rgb_to_hsv,
    to_uint8,
)
from msgfusion.io.figures import side_by_side
from msgfusion.io.images import write_image
from msgfusion.methods.registry import fuse_pairs, get_method
from msgfusion.metrics.registry import evaluate_images
from msgfusion.pair import FusionPair

REPO = Path(__file__).resolve().parents[1]
AANLIB = REPO.parent / "shared" / "data" / "aanlib"
METRICS = ("Q_S", "VIFF", "Qabf", "EN", "MI")
COLOURED_CHROMA = 8.0 / 255.0


def jpeg_copy(func: np.ndarray, quality: int = 75) -> np.ndarray:
    """The functional image after a round trip through JPEG at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(func)).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0


def chroma(rgb: np.ndarray) -> np.ndarray:
    return rgb.max(axis=-1) - rgb.min(axis=-1) if rgb.ndim == 3 else np.zeros(rgb.shape)


def invented(picture: np.ndarray, func: np.ndarray) -> int:
    """Pixels with colour where the functional image is below its noise floor."""
    return int(((chroma(picture) > COLOURED_CHROMA) & (luminance(func) <= noise_floor(func))).sum())


def reader_scores(picture: np.ndarray, func: np.ndarray, fused: np.ndarray) -> dict[str, float]:
    signal = (chroma_weight(func) >= 1.0) & (chroma(func) >= 0.1)
    hue_error = float("nan")  # a grey picture has no hue
    if picture.ndim == 3 and signal.any():
        dh = rgb_to_hsv(picture)[..., 0][signal] - rgb_to_hsv(func)[..., 0][signal]
        hue_error = np.degrees(np.abs(np.angle(np.mean(np.exp(2j * np.pi * dh)))))
    y = luminance(picture) if picture.ndim == 3 else picture
    kept = chroma(picture)[signal].sum() / max(chroma(func)[signal].sum(), 1e-9)
    return {"hue error (deg)": float(hue_error), "chroma kept": float(kept),
            "|Y - fused|": float(np.abs(y - fused).mean() * 255.0)}


def score(method: str, pairs: list[FusionPair]) -> dict[str, dict[str, float]]:
    """Mean scores of every colour mode for one method on some pairs (one modality)."""
    fused = fuse_pairs(get_method(method), pairs)
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in COLOR_MODES}
    for pair, f in zip(pairs, fused):
        jpeg = jpeg_copy(pair.func)
        for mode in COLOR_MODES:
            picture = to_uint8(restore_color(f, pair.func, mode)) / 255.0
            row = evaluate_images(pair.mr, pair.func, picture, METRICS)
            row.update(reader_scores(picture, pair.func, f))
            row["invented (PNG)"] = invented(picture, pair.func)
            row["invented (JPEG)"] = invented(restore_color(f, jpeg, mode), jpeg)
            rows[mode].append(row)
    return {m: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for m, rs in rows.items()}


def figure(pairs: list[FusionPair], method: str, path: Path) -> None:
    """One row per pair (the last row a JPEG copy of the first): MR, functional, every mode."""
    rows = []
    jpeg_pair = FusionPair(pairs[0].mr, jpeg_copy(pairs[0].func), pairs[0].modality,
                           name=f"{pairs[0].name} JPEG q75")
    for pair in [*pairs, jpeg_pair]:
        (f,) = fuse_pairs(get_method(method), [pair])
        panels = [pair.mr, pair.func] + [restore_color(f, pair.func, m) for m in COLOR_MODES]
        labels = ["MR", f"{pair.modality} {pair.name}"] + list(COLOR_MODES)
        rows.append(side_by_side(panels, labels))
    gap = np.ones((6, rows[0].shape[1], 3), dtype=np.float32)
    write_image(path, np.concatenate([r for row in rows for r in (row, gap)][:-1]), overwrite=True)


def markdown(results: dict[str, dict[str, dict[str, dict[str, float]]]], figure_path: str,
             command: str) -> str:
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    lines = [
        "# Colour modes compared",
        "",
        f"Generated by `{command}` (machine: {platform.machine()}, {os.cpu_count()} cores{load}).",
        "Means over the atlas test pairs (24 PET-MRI, 24 SPECT-MRI), every picture quantised to",
        "8 bits. Q_S, VIFF, Qabf, EN, MI score the picture's luminance, as `bench` does. Reader",
        "columns are measured where the functional image has signal and colour: hue error against",
        "the PET/SPECT (degrees), chroma kept (picture / PET-SPECT), and |Y - fused| (grey levels",
        "by which the picture's luminance misses the fused intensity). *Invented* counts pixels",
        "with chroma above 8/255 where the functional image is below its noise floor (per pair,",
        "also for JPEG quality 75 copies of the functional images).",
        "",
        f"The default mode is **{DEFAULT_COLOR_MODE}**.",
        "",
    ]
    for method, per_modality in results.items():
        for modality, per_mode in per_modality.items():
            keys = list(next(iter(per_mode.values())))
            lines += [f"## {method}, {modality}-MRI", "",
                      "| mode | " + " | ".join(keys) + " |",
                      "| --- |" + " ---: |" * len(keys)]
            for mode, row in per_mode.items():
                cells = ["-" if np.isnan(row[k]) else f"{row[k]:.0f}" if k.startswith("invented")
                         else f"{row[k]:.3f}" for k in keys]
                lines.append(f"| {mode} | " + " | ".join(cells) + " |")
            lines.append("")
    lines += [f"![colour modes]({figure_path})", "",
              "Rows: two PET and two SPECT test pairs, then the first PET pair's PET as a JPEG "
              "(quality 75); columns: MR, the functional image, the fused picture in each mode.",
              ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["msgfusion", "lp"])
    ap.add_argument("--data", type=Path, default=AANLIB)
    ap.add_argument("--output", type=Path, default=REPO / "docs" / "colour.md")
    args = ap.parse_args()
    folders = load_aanlib(args.data, "test", pairs=("PET-MRI", "SPECT-MRI"))
    pairs = {f.modality: [f[i] for i in range(len(f))] for f in folders}
    results = {m: {mod: score(m, ps) for mod, ps in pairs.items()} for m in args.methods}
    fig = args.output.parent / "figures" / "colour_modes.png"
    figure(pairs["PET"][:2] + pairs["SPECT"][:2], args.methods[0], fig)
    command = "python benchmarks/colour_modes.py " + " ".join(f"--methods {' '.join(args.methods)}".split())
    args.output.write_text(markdown(results, os.path.relpath(fig, args.output.parent), command),
                           encoding="utf-8")
    print(f"wrote {args.output} and {fig}")


if __name__ == "__main__":
    main()
