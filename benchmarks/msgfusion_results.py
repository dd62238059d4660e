"""Measure the shipped MsgFusion model and write ``docs/results.md`` and its figure.

Quality: the 72 atlas test pairs (``../shared/data/aanlib/<pair>/test``), fused by ``msgfusion``
and the pixel ``average`` / ``max`` baselines, colour restored by the shared HSV path, quantised
to 8 bits as written to PNG, then scored with the project's metrics (PET/SPECT on the luminance Y),
ranked against the published methods of ``../shared/reference/peers.md``.
Speed: network time per 256 x 256 pair at batch 1 and 16, end-to-end ``msgfusion fuse-dir``
per pair (PNG reading, fusion, colour, PNG writing), and the training time of the shipped
weights (from their committed training log).

    python benchmarks/msgfusion_results.py            # writes docs/results.md, docs/msgfusion_examples.png
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from msgfusion.bench.peers import parse_peers
from msgfusion.data.datasets import load_aanlib
from msgfusion.io.color import restore_color, to_uint8
from msgfusion.io.figures import side_by_side
from msgfusion.io.images import write_image
from msgfusion.methods.registry import fuse_pairs, get_method
from msgfusion.metrics import METRICS, PAPER_METRICS, evaluate_images
from msgfusion.model.inputs import batch_from_pairs
from msgfusion.model.msgfusion import count_parameters
from msgfusion.pair import FusionPair

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
WEIGHTS_DIR = REPO / "src" / "msgfusion" / "model" / "weights"
OURS, BASELINES = "msgfusion", ("average", "max")
PEER_COLUMN = {"rSFe": "|rSFe|"}  # peers.md reports the mean absolute rSFe
LOWER_IS_BETTER = {"rSFe"}


def fused_pictures(method: str, pairs: list[FusionPair], color: str = "hsv") -> list[np.ndarray]:
    """Fused colour pictures as written to PNG (8-bit), back in [0, 1]."""
    intensities = fuse_pairs(get_method(method), pairs, batch_size=16)
    return [to_uint8(restore_color(f, p.func, color)).astype(np.float32) / 255.0
            for f, p in zip(intensities, pairs)]


def mean_scores(pairs: list[FusionPair], pictures: list[np.ndarray]) -> dict[str, float]:
    rows = [evaluate_images(p.mr, p.func, f, PAPER_METRICS) for p, f in zip(pairs, pictures)]
    return {m: float(np.mean([abs(r[m]) if m in LOWER_IS_BETTER else r[m] for r in rows]))
            for m in PAPER_METRICS}


def ycbcr_section(groups: dict[str, list[FusionPair]], peers: dict) -> list[str]:
    """The same network with YCbCr colour restoration (Y := fused), for PET/SPECT.

    HSV keeps hue and saturation, so the luminance the metrics see is O * Y/V of the functional
    colour and can never exceed Y/V (0.11 for pure blue): MR detail inside saturated colour is
    dimmed. This shows how much of the gap to the published methods that costs.
    """
    out = ["## What the HSV colour restoration costs (PET/SPECT)", "",
           "HSV restoration keeps hue and saturation and sets V := fused, so the luminance the "
           "metrics read is fused x (Y/V of the functional colour), at most Y/V (0.30 for pure "
           "red, 0.11 for pure blue): MR detail inside saturated colour is dimmed, whatever the "
           "network outputs (the loss is computed on this luminance, `space = \"y\"`). The "
           "same shipped weights with `--color ycbcr` (Y := fused, chroma kept), for reference "
           "only (the model was trained for HSV):", "",
           "| pair | " + " | ".join("|rSFe|" if m == "rSFe" else m for m in PAPER_METRICS) + " |",
           "|---|" + "---|" * len(PAPER_METRICS)]
    for group in ("PET-MRI", "SPECT-MRI"):
        pairs = groups[group]
        scores = mean_scores(pairs, fused_pictures(OURS, pairs, "ycbcr"))
        cells = []
        for metric in PAPER_METRICS:
            col = PEER_COLUMN.get(metric, metric)
            others = [v[col] for v in peers.get(group, {}).values() if col in v]
            r = f" ({rank(scores[metric], others, metric)})" if others else ""
            cells.append(f"{scores[metric]:.4g}{r}")
        out.append(f"| {group} | " + " | ".join(cells) + " |")
    return out + ["", "(rank among the published methods in brackets)", ""]


def rank(value: float, others: list[float], metric: str) -> int:
    if metric in LOWER_IS_BETTER:
        return 1 + sum(o < value for o in others)
    return 1 + sum(o > value for o in others)


def quality(groups: dict[str, list[FusionPair]]) -> tuple[dict, dict]:
    scores = {g: {m: mean_scores(pairs, fused_pictures(m, pairs)) for m in (OURS, *BASELINES)}
              for g, pairs in groups.items()}
    return scores, parse_peers(SHARED / "reference" / "peers.md")


def quality_section(scores: dict, peers: dict, n_pairs: dict[str, int]) -> list[str]:
    head = ["## Quality on the atlas test split", "",
           "Mean over the test pairs of each modality pair (n below). `rank` is msgfusion's place "
           "among the published methods of `../shared/reference/peers.md` (same pairs, same "
           "metric conventions; PET/SPECT scored on the luminance Y of the HSV-restored colour "
           "image as written to PNG); `-` where peers.md has no value for that metric. "
           "|rSFe|: lower is better; every other column: higher is better.", ""]
    out: list[str] = []
    summary = []
    for group, by_method in scores.items():
        table = peers.get(group, {})
        out += [f"### {group} (n = {n_pairs[group]})", "",
                "| metric | msgfusion | rank | best published | 2nd published | average | max |",
                "|---|---|---|---|---|---|---|"]
        top2 = behind = 0
        ranked = []
        for metric in PAPER_METRICS:
            col = PEER_COLUMN.get(metric, metric)
            others = sorted(((v[col], name) for name, v in table.items() if col in v),
                            reverse=metric not in LOWER_IS_BETTER)
            ours = by_method[OURS][metric]
            if others:
                r = rank(ours, [o for o, _ in others], metric)
                ranked.append(metric)
                top2 += r <= 2
                behind += r > 2
                rank_txt = f"{r} of {len(others) + 1}"
                best = f"{others[0][0]:.4g} ({others[0][1]})"
                second = f"{others[1][0]:.4g} ({others[1][1]})" if len(others) > 1 else "-"
            else:
                rank_txt, best, second = "-", "-", "-"
            label = "|rSFe|" if metric == "rSFe" else metric
            out.append(f"| {label} | {ours:.4g} | {rank_txt} | {best} | {second} | "
                       f"{by_method['average'][metric]:.4g} | {by_method['max'][metric]:.4g} |")
        beats = [m for m in ("Q_S", "VIFF", "Qabf")
                 if all(by_method[OURS][m] > by_method[b][m] for b in BASELINES)]
        summary.append(f"- **{group}**: top two on {top2} of the {len(ranked)} paper metrics "
                       f"that peers.md reports; behind (rank > 2) on {behind}; beats pixel "
                       f"average and maximum on {', '.join(beats) or 'none'} of Q_S, VIFF, Qabf.")
        out.append("")
    return head + ["Summary:", ""] + summary + [""] + out


def time_network(pair: FusionPair, batch: int, repeats: int) -> float:
    """Median seconds per pair of the network alone (inputs prepared, eval, inference mode)."""
    method = get_method(OURS)
    pairs = [pair] * batch
    method.fuse(pairs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        method.fuse(pairs)
        times.append((time.perf_counter() - start) / batch)
    return statistics.median(times)


def time_fuse_dir(folder: Path, repeats: int) -> tuple[float, float]:
    """Seconds per pair of ``msgfusion fuse-dir`` (median of runs), in-process and as a command."""
    from msgfusion.cli import main

    n = len(list((folder / "MRI").iterdir()))
    runs, commands = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            start = time.perf_counter()
            main(["fuse-dir", str(folder), "-o", f"{tmp}/in{i}"])
            runs.append((time.perf_counter() - start) / n)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "msgfusion.cli", "fuse-dir", str(folder),
                        "-o", f"{tmp}/cmd"], check=True, capture_output=True)
        commands.append((time.perf_counter() - start) / n)
    return statistics.median(runs), commands[0]


def training_seconds() -> tuple[float, int]:
    with (WEIGHTS_DIR / "msgfusion_lite_log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return sum(float(r["seconds"]) for r in rows), len(rows)


def speed_section(groups: dict[str, list[FusionPair]], repeats: int) -> list[str]:
    torch.set_num_threads(2)
    pair = groups["PET-MRI"][0]
    b1, b16 = time_network(pair, 1, repeats), time_network(pair, 16, max(2, repeats // 3))
    inproc, command = time_fuse_dir(SHARED / "data" / "aanlib" / "PET-MRI" / "test", 3)
    train_s, epochs = training_seconds()
    model = get_method(OURS).model
    macs = _macs(model, pair)
    return [
        "## Speed (this machine: 2 CPU cores shared with other work, `torch.set_num_threads(2)`)",
        "",
        f"Network `lite`: {count_parameters(model):,} parameters, {macs / 1e6:.0f} M "
        "multiply-adds per 256 x 256 pair.",
        "",
        "| what | time per 256 x 256 pair |",
        "|---|---|",
        f"| network, batch 1 (inputs prepared from a FusionPair) | {b1 * 1e3:.1f} ms |",
        f"| network, batch 16 | {b16 * 1e3:.1f} ms |",
        f"| `msgfusion fuse-dir` in-process (24 PET-MRI pairs: PNG read, fuse, HSV colour, "
        f"PNG write) | {inproc * 1e3:.1f} ms |",
        f"| `msgfusion fuse-dir` as a command, interpreter and torch start-up included | "
        f"{command * 1e3:.1f} ms |",
        "",
        f"Training the shipped weights: {train_s / 60:.1f} min for {epochs} epochs (sum of the "
        "epoch times in `src/msgfusion/model/weights/msgfusion_lite_log.csv`; data loading "
        "excluded; measured while the 2 cores were shared with other developers' runs).",
        "",
    ]


def _macs(model: torch.nn.Module, pair: FusionPair) -> int:
    """Multiply-adds of the convolutions for one pair (forward hooks)."""
    total = 0

    def hook(module: torch.nn.Conv2d, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += out[0].numel() * k * module.in_channels // module.groups

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        model.forward_batch(batch_from_pairs([pair]))
    for h in handles:
        h.remove()
    return total


def figure(groups: dict[str, list[FusionPair]], path: Path) -> None:
    """One pair per modality: MR | functional | average | max | msgfusion (colour restored)."""
    rows = []
    for group, pairs in groups.items():
        pair = pairs[len(pairs) // 2]
        panels = [pair.mr, pair.func] + [fused_pictures(m, [pair])[0]
                                         for m in (*BASELINES, OURS)]
        labels = [f"MR {group} {pair.name}", pair.modality, "average", "max", "msgfusion"]
        rows.append(side_by_side(panels, labels))
    write_image(path, np.concatenate(rows, axis=0), overwrite=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default=str(REPO / "docs"), help="output folder")
    parser.add_argument("--repeats", type=int, default=9, help="timed runs (median)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    groups = {f.label.split("/")[0]: list(f)
              for f in load_aanlib(SHARED / "data" / "aanlib", "test")}
    scores, peers = quality(groups)
    figure(groups, docs / "msgfusion_examples.png")
    lines = ["# MsgFusion (lite): results", "",
             "Generated by `python benchmarks/msgfusion_results.py`; do not edit by hand.", "",
             "The shipped weights (`src/msgfusion/model/weights/msgfusion_lite.pt`, with the "
             "config and training log beside them) are reproduced by:", "",
             "```bash",
             "msgfusion train --config src/msgfusion/model/weights/msgfusion_lite.json \\",
             "    --data ../shared/data/aanlib --out runs/lite --ship",
             "```", "",
             "Paper metrics: " + ", ".join(f"{m} ({METRICS[m].description})" for m in PAPER_METRICS)
             + ". The paper's RQ could not be identified and is not reported.", ""]
    lines += quality_section(scores, peers, {g: len(p) for g, p in groups.items()})
    lines += ycbcr_section(groups, peers)
    lines += ["![one test pair per modality: MR, functional, average, max, msgfusion]"
              "(msgfusion_examples.png)", ""]
    lines += speed_section(groups, args.repeats)
    (docs / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
