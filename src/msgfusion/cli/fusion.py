"""Commands that fuse: ``fuse``, ``fuse-dir``, ``methods``, ``demo``."""

from __future__ import annotations

import argparse
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from msgfusion.cli.common import CommandAdder, add_method_options, method_from_args, modality_arg
from msgfusion.data.datasets import PairFolder, sample_folders
from msgfusion.errors import OutputExistsError
from msgfusion.io.color import COLORMAP_NAMES, restore_color
from msgfusion.io.figures import side_by_side
from msgfusion.io.images import check_writable, write_image
from msgfusion.methods.registry import DEFAULT_METHOD, FusionMethod, fuse_pairs, list_methods
from msgfusion.pair import MODALITIES


def cmd_fuse(args: argparse.Namespace) -> int:
    from msgfusion.api import make_pair
    from msgfusion.methods.msgfusion import MsgFusion

    method = method_from_args(args)
    out = check_writable(args.output, args.overwrite)
    pair = make_pair(Path(args.mr), Path(args.func), args.modality, args.cmap)
    (intensity,) = fuse_pairs(method, [pair])
    write_image(out, restore_color(intensity, pair.func, args.color), overwrite=args.overwrite)
    how = "given" if args.modality else "inferred; --modality overrides"
    network = f" with its {pair.modality} network" if isinstance(method, MsgFusion) else ""
    colour = f"colour {args.color}" if pair.is_color else "grey"
    print(f"wrote {out} ({pair.modality}-MRI, modality {how}; method {method.name}{network}; "
          f"{colour})")
    return 0


def _fuse_folder(folder: PairFolder, method: FusionMethod, color: str, out_dir: Path,
                 overwrite: bool, batch_size: int, desc: str) -> list[Path]:
    """Fuse every pair of a folder, writing each result under the pair's file name.

    Reading the next batch and writing the last one run in background threads (PNG coding
    releases the GIL) while the method fuses the current batch.
    """
    outputs = [check_writable(out_dir / f.name, overwrite) for f in folder.files]
    starts = range(0, len(folder), batch_size)
    with ThreadPoolExecutor(max_workers=2) as pool, \
            tqdm(total=len(folder), desc=desc, unit="pair", disable=None) as bar:
        def read(start: int) -> list[Future]:
            return [pool.submit(folder.__getitem__, i)
                    for i in range(start, min(start + batch_size, len(folder)))]

        pending, writes = read(0), []
        for start in starts:
            pairs = [f.result() for f in pending]
            if start + batch_size < len(folder):
                pending = read(start + batch_size)
            for pair, fused, out in zip(pairs, fuse_pairs(method, pairs, batch_size),
                                        outputs[start:]):
                writes.append(pool.submit(write_image, out, restore_color(fused, pair.func, color),
                                          overwrite=overwrite))
            bar.update(len(pairs))
        for w in writes:
            w.result()
    return outputs


def cmd_fuse_dir(args: argparse.Namespace) -> int:
    folder = PairFolder(args.pairs_dir)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: exists and is not a folder")
    written = _fuse_folder(folder, method_from_args(args), args.color, out_dir, args.overwrite,
                           args.batch_size, desc=f"{folder.modality}-MRI {args.method}")
    print(f"wrote {len(written)} fused {folder.modality}-MRI images to {out_dir}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    methods = list_methods()
    width = max(len(m.name) for m in methods)
    for m in methods:
        default = " (default)" if m.name == DEFAULT_METHOD else ""
        print(f"{m.name:<{width}}  {m.description}{default}")
        print(f"{'':<{width}}  reference: {m.reference}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    out_dir = Path(args.output)
    method = method_from_args(args)
    jobs = []  # every output is checked before any is written
    for folder in sample_folders():
        for i, f in enumerate(folder.files):
            stem = f"{folder.root.name}_{f.stem}"
            jobs.append((folder, i, check_writable(out_dir / f"{stem}_fused.png", args.overwrite),
                         check_writable(out_dir / f"{stem}_figure.png", args.overwrite)))
    for folder, i, fused_path, figure_path in jobs:
        pair = folder[i]
        (intensity,) = fuse_pairs(method, [pair])
        fused = restore_color(intensity, pair.func, args.color)
        write_image(fused_path, fused, overwrite=args.overwrite)
        figure = side_by_side([pair.mr, pair.func, fused],
                              ["MR", pair.modality, f"fused ({method.name})"])
        write_image(figure_path, figure, overwrite=args.overwrite)
        print(f"{pair.modality}-MRI {pair.name}: wrote {fused_path} and {figure_path}")
    return 0


def add_commands(command: CommandAdder) -> None:
    p = command("fuse", cmd_fuse, "fuse one MR image with one CT/PET/SPECT image")
    p.add_argument("--mr", required=True, help="the MR image (grey)")
    p.add_argument("--func", required=True,
                   help="the CT (grey) or PET/SPECT image of the same slice: RGB pseudo-colour, "
                        "or scalar (grey) activity with --modality PET|SPECT")
    p.add_argument("--modality", type=modality_arg, metavar="|".join(MODALITIES),
                   help="modality of --func. Inferred when omitted: grey is CT; colour is PET or "
                        "SPECT, told by a PET/ or SPECT/ folder on its path or else by its "
                        "colour scale (the atlas's PET and SPECT scales differ). MsgFusion has "
                        "one network per modality and uses this one; a scalar PET/SPECT needs "
                        "--modality")
    p.add_argument("--cmap", choices=COLORMAP_NAMES,
                   help="colour map that renders a scalar (grey) PET/SPECT before fusion "
                        "(default: the atlas's own scale, atlas-pet or atlas-spect)")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .tif, .jpg, .bmp)")
    add_method_options(p)

    p = command("fuse-dir", cmd_fuse_dir, "fuse every pair of a folder of pairs")
    p.add_argument("pairs_dir", metavar="PAIRS_DIR",
                   help="folder with MRI/ beside one of CT/, PET/, SPECT/ (the folder name is the "
                        "modality); partners share a file name, e.g. one split of the atlas data")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="folder for the fused images, written under the pairs' file names")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per batch (default 16)")
    add_method_options(p)

    command("methods", cmd_methods, "list the fusion methods with their references")

    p = command("demo", cmd_demo, "fuse the bundled CT-, PET- and SPECT-MRI sample pairs and write "
                                  "the fused images and side-by-side figures")
    p.add_argument("-o", "--output", default="msgfusion-demo", metavar="DIR",
                   help="output folder (default: ./msgfusion-demo)")
    add_method_options(p)
