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
  also on JPEG (quality 75) copies of the functional images, and on those copies the pixels
  that are black in the atlas PNG but coloured in the picture (JPEG chroma bleed);
- how well PET and SPECT are told apart by the atlas colour scales
  (:func:`msgfusion.pair.infer_modality` on the arrays, without folder names), on the train and
  test splits and on JPEG copies of the test split.

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
    MIN_NOISE_FLOOR,
    chroma_weight,
    colorize,
    default_cmap,
    luminance,
    noise_floor,
    restore_color,
    rgb_to_hsv,
    scale_distance,
    to_uint8,
)
from msgfusion.io.figures import side_by_side
from msgfusion.io.images import read_image, write_image
from msgfusion.methods.registry import fuse_pairs, get_method
from msgfusion.metrics.registry import evaluate_images
from msgfusion.pair import SCALE_FIT, FusionPair, infer_modality

REPO = Path(__file__).resolve().parents[1]
AANLIB = REPO.parent / "shared" / "data" / "aanlib"
METRICS = ("Q_S", "VIFF", "Qabf", "EN", "MI")
COLOURED_CHROMA = 8.0 / 255.0
COUNTS = ("invented (PNG)", "invented (JPEG)", "coloured black (JPEG)")  # pixels per pair


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
            "Y error": float(np.abs(y - fused).mean() * 255.0)}


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
            jpeg_picture = restore_color(f, jpeg, mode)
            row["invented (JPEG)"] = invented(jpeg_picture, jpeg)
            row["coloured black (JPEG)"] = int((chroma(jpeg_picture) > COLOURED_CHROMA)[
                pair.func.max(axis=-1) == 0].sum())
            rows[mode].append(row)
    return {m: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for m, rs in rows.items()}


def floor_rows(data: Path) -> list[str]:
    """Markdown rows: luminance Y and HSV value V (8-bit) that JPEG (quality 75) gives the pixels
    that are black in the atlas's test PET/SPECT PNGs, and the darkest colours of the scales."""
    rows = []
    for modality in ("PET", "SPECT"):
        ys, vs = [], []
        for f in sorted((data / f"{modality}-MRI" / "test" / modality).glob("*.png")):
            png = read_image(f)
            black = png.max(axis=-1) == 0
            jpeg = jpeg_copy(png)
            ys.append(luminance(jpeg)[black] * 255.0)
            vs.append(jpeg.max(axis=-1)[black] * 255.0)
        y, v = np.concatenate(ys), np.concatenate(vs)
        q = [99, 99.9, 100]
        table = np.round(colorize(np.arange(1, 4) / 255.0, default_cmap(modality)) * 255)
        darkest = ", ".join(str(tuple(int(c) for c in rgb)) for rgb in table)
        rows.append(f"| {modality} | {' / '.join(f'{x:.1f}' for x in np.percentile(y, q))} | "
                    f"{' / '.join(f'{x:.0f}' for x in np.percentile(v, q))} | {darkest} |")
    return rows


def inference(data: Path) -> list[str]:
    """Markdown rows: accuracy of PET/SPECT inference and the distances it rests on."""
    rows = []
    for split, jpeg in (("train", False), ("test", False), ("test", True)):
        for modality in ("PET", "SPECT"):
            other = "SPECT" if modality == "PET" else "PET"
            files = sorted((data / f"{modality}-MRI" / split / modality).glob("*.png"))
            images = [read_image(f) for f in files]
            images = [jpeg_copy(i) for i in images] if jpeg else images
            right = sum(infer_modality(i) == modality for i in images)
            own = max(scale_distance(i, default_cmap(modality)) for i in images)
            far = min(scale_distance(i, default_cmap(other)) for i in images)
            rows.append(f"| {split}{' (JPEG q75)' if jpeg else ''} | {modality} | {right}/"
                        f"{len(images)} | {own:.2f} | {far:.1f} |")
    return rows


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
             command: str, inference_rows: list[str], floor: list[str]) -> str:
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    lines = [
        "# Colour modes compared",
        "",
        f"Generated by `{command}` (machine: {platform.machine()}, {os.cpu_count()} cores{load}).",
        "Means over the atlas test pairs (24 PET-MRI, 24 SPECT-MRI), every picture quantised to",
        "8 bits. Q_S, VIFF, Qabf, EN, MI score the picture's luminance, as `bench` does. Reader",
        "columns are measured where the functional image has signal and colour: hue error against",
        "the PET/SPECT (degrees), chroma kept (picture / PET-SPECT), and Y error (mean |Y - fused|,",
        "grey levels by which the picture's luminance misses the fused intensity). *Invented* counts pixels",
        "with chroma above 8/255 where the functional image is below its noise floor (per pair,",
        "also for JPEG quality 75 copies of the functional images); *coloured black (JPEG)* the",
        "pixels black in the atlas PNG that are coloured in the picture made from its JPEG copy.",
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
                cells = ["-" if np.isnan(row[k]) else f"{row[k]:.1f}" if k in COUNTS
                         else f"{row[k]:.3f}" for k in keys]
                lines.append(f"| {mode} | " + " | ".join(cells) + " |")
            lines.append("")
    lines += ["## The noise floor", "",
              "The picture may show the PET/SPECT colour with weight w = clip((Y - floor) / floor,",
              "0, 1), Y the functional image's luminance, floor = max(MIN_NOISE_FLOOR, 3 sigma),",
              "sigma its noise by Immerkaer's estimate (`msgfusion.io.color.noise_floor`;",
              f"MIN_NOISE_FLOOR = {MIN_NOISE_FLOOR * 255:g}/255). On the atlas images sigma is",
              "below 1 grey level, so the floor is MIN_NOISE_FLOOR. Measured on the test images",
              "(8-bit units): what JPEG gives the PNG's black pixels (percentiles 99 / 99.9 /",
              "max) and the darkest entries of the atlas scale; Y stays low where V, the colour,",
              "bleeds.", "",
              "| modality | Y in JPEG at black | V in JPEG at black | scale at 1, 2, 3 / 255 |",
              "| --- | --- | --- | --- |", *floor, ""]
    lines += ["## PET or SPECT? Inference by the atlas colour scales", "",
              "`infer_modality` on the image arrays alone (no folder names). Distances: mean",
              "distance (8-bit RGB) of an image's colours from a scale; *own* the largest from its",
              "own modality's scale, *other* the smallest from the other one (threshold:",
              f"`SCALE_FIT` = {SCALE_FIT:g}).", "",
              "| split | modality | correct | own (max) | other (min) |",
              "| --- | --- | ---: | ---: | ---: |", *inference_rows, ""]
    lines += [f"![colour modes]({figure_path})", "",
              "Rows: the first PET and SPECT test pairs, then the PET pair with its PET as a JPEG "
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
    figure([pairs["PET"][0], pairs["SPECT"][0]], args.methods[0], fig)
    command = f"python benchmarks/colour_modes.py --methods {' '.join(args.methods)}"
    args.output.write_text(markdown(results, os.path.relpath(fig, args.output.parent), command,
                                    inference(args.data), floor_rows(args.data)),
                           encoding="utf-8")
    print(f"wrote {args.output} and {fig}")


if __name__ == "__main__":
    main()
