"""MsgFusion on a GPU (issue 20): equality with the CPU and speed, written as JSON for speed.py.

    python benchmarks/speed_gpu.py --aanlib ../shared/data/aanlib --out docs/speed_gpu.json
    python benchmarks/speed.py    # reports docs/speed_gpu.json in docs/speed.md's Device section

Runs on a machine with CUDA (none here: a lent GPU machine ran it). On that machine, in one
process: the largest |GPU - CPU| fused intensity over every test pair of the AANLIB folder;
the network alone per 256 x 256 PET-MRI pair on the GPU (one pair per call, traced from the
second pass as shipped, and all 24 in one call); ``msgfusion fuse-dir --device cuda`` on the 24
PET-MRI test pairs end to end in process after a warm-up, and the same command on that
machine's CPU for reference. Medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

from speed import per_item_ms  # benchmarks/speed.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aanlib", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda", help="(cpu: a dry run of this script)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from msgfusion.cli import main as cli
    from msgfusion.data.datasets import load_aanlib
    from msgfusion.methods.msgfusion import MsgFusion
    from msgfusion.methods.registry import fuse_pairs
    from msgfusion.pair import FusionPair

    torch.set_num_threads(1)
    gpu, cpu = MsgFusion(device=args.device), MsgFusion(device="cpu")
    folders = {f.modality: f for f in load_aanlib(args.aanlib, "test")}
    diffs = []
    for folder in folders.values():
        pairs = [folder[i] for i in range(len(folder))]
        diffs.append(np.abs(gpu.fuse(pairs) - cpu.fuse(pairs)))
    diff = np.concatenate([d.ravel() for d in diffs])
    pet = [folders["PET"][i] for i in range(len(folders["PET"]))]

    def network(chunk: int):
        def run() -> None:
            gpu.chunk = chunk
            fuse_pairs(gpu, [FusionPair(p.mr, p.func, p.modality) for p in pet], len(pet))
        return run

    out_dir = tempfile.mkdtemp()
    pet_dir = str(args.aanlib / "PET-MRI" / "test")

    def fuse_dir(device: str):
        return lambda: cli(["fuse-dir", pet_dir, "-o", tempfile.mkdtemp(dir=out_dir), "-q",
                            "--device", device])

    n = len(pet)
    result = {
        "gpu": torch.cuda.get_device_name(0) if args.device != "cpu" else "none (dry run)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}, torch {torch.__version__}",
        "pairs": int(diff.size // (256 * 256)),
        "max_diff": float(diff.max()), "mean_diff": float(diff.mean()),
        "network_1": per_item_ms(network(1), args.repeats, n),
        "network_24": per_item_ms(network(24), args.repeats, n),
        "fuse_dir_gpu": per_item_ms(fuse_dir(args.device), args.repeats, n),
        "fuse_dir_cpu": per_item_ms(fuse_dir("cpu"), args.repeats, n),
        "repeats": args.repeats,
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
