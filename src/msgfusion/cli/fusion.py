"""Commands that fuse: ``fuse``, ``fuse-dir``, ``methods``, ``demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from msgfusion.cli import EXIT_USAGE
from msgfusion.cli.common import (
    CommandAdder,
    add_method_options,
    method_from_args,
    modality_arg,
    positive_int,
)
from msgfusion.cli.registration import add_registration_options
from msgfusion.cli.volumes import add_volume_options, fuse_volume_dir, fuse_volumes
from msgfusion.data.datasets import PairFolder, is_volume_pair_folder, sample_folders
from msgfusion.errors import MsgFusionError, OutputExistsError
from msgfusion.io.color import COLORMAP_NAMES, restore_color
from msgfusion.io.figures import side_by_side
from msgfusion.io.images import check_writable, read_image, write_image
from msgfusion.io.volumes import check_volume_writable, is_volume_path, write_volume
from msgfusion.methods.registry import DEFAULT_METHOD, fuse_pairs, list_methods
from msgfusion.pair import MODALITIES


#: ``fuse`` options that only mean something with ``--register`` (their argparse names).
REGISTRATION_OPTIONS = ("type", "iterations", "search_orientation", "accept_doubtful",
                        "save_transform")


def cmd_fuse(args: argparse.Namespace) -> int:
    from msgfusion.api import make_pair
    from msgfusion.methods.msgfusion import MsgFusion

    registration_only = [f"--{name.replace('_', '-')}" for name in REGISTRATION_OPTIONS
                         if getattr(args, name)]
    if registration_only and not args.register:
        raise MsgFusionError(f"{' '.join(registration_only)}: registration options, for "
                             "--register")
    if is_volume_path(args.mr) or is_volume_path(args.func):
        return fuse_volumes(args)
    volume_only = [f"--{name}" for name in ("series", "window", "transform", "preview",
                                            "intensity") if getattr(args, name)]
    if volume_only or args.axis != "axial":
        raise MsgFusionError(f"{' '.join(volume_only) or '--axis'}: for volumes; {args.mr} and "
                             f"{args.func} are 2-D images")
    method = method_from_args(args)
    out = check_writable(args.output, args.overwrite)
    covered = None
    if args.register:
        from msgfusion.cli.registration import registered_pair

        pair, covered = registered_pair(args, out)
    elif args.frame is not None:  # a frame of a multi-frame DICOM file
        pair = make_pair(read_image(args.mr, args.frame), read_image(args.func, args.frame),
                         args.modality, args.cmap)
    else:
        pair = make_pair(Path(args.mr), Path(args.func), args.modality, args.cmap)
    (intensity,) = fuse_pairs(method, [pair])
    if covered is not None:  # outside the moved image: no signal, the MR alone
        intensity = np.where(covered, intensity, pair.mr)
    write_image(out, restore_color(intensity, pair.func, args.color), overwrite=args.overwrite,
                source=args.mr)
    how = "given" if args.modality else "inferred; --modality overrides"
    network = f" with its {pair.modality} network" if isinstance(method, MsgFusion) else ""
    colour = f"colour {args.color}" if pair.is_color else "grey"
    print(f"wrote {out} ({pair.modality}-MRI, modality {how}; method {method.name}{network}; "
          f"{colour})")
    return 0


def cmd_fuse_dir(args: argparse.Namespace) -> int:
    import sys

    from msgfusion.folder import fuse_folder

    if is_volume_pair_folder(args.pairs_dir):
        return fuse_volume_dir(args)

    def report(name: str, reason: str) -> None:
        print(f"msgfusion: error: {reason}", file=sys.stderr)

    if args.overwrite and args.skip_existing:
        raise MsgFusionError("--overwrite and --skip-existing exclude each other")
    folder = PairFolder(args.pairs_dir, check_sizes=False)
    try:
        result = fuse_folder(folder, args.output, method_from_args(args), args.color,
                             overwrite=args.overwrite, skip_existing=args.skip_existing,
                             keep_going=args.keep_going, batch_size=args.batch_size,
                             workers=args.workers,
                             on_failure=report, progress=not args.quiet)
    except OutputExistsError as exc:
        raise OutputExistsError(f"{exc}; --skip-existing keeps them and fuses the rest") \
            from None
    skipped = f", kept {len(result.skipped)} that existed" if result.skipped else ""
    failed = f", {len(result.failed)} pair(s) failed" if result.failed else ""
    print(f"wrote {len(result.written)} fused {folder.modality}-MRI images to {args.output}"
          f"{skipped}{failed}")
    return EXIT_USAGE if result.failed else 0


def cmd_methods(args: argparse.Namespace) -> int:
    methods = list_methods()
    width = max(len(m.name) for m in methods)
    for m in methods:
        default = " (default)" if m.name == DEFAULT_METHOD else ""
        print(f"{m.name:<{width}}  {m.description}{default}")
        print(f"{'':<{width}}  reference: {m.reference}")
    return 0


def demo_volumes() -> Path | None:
    """The SPM templates (T1, PET) in ``../shared/data/volumes`` beside the current folder or the
    source checkout, when present (they are not bundled)."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        folder = base.parent / "shared" / "data" / "volumes" / "spm_oldnorm"
        if (folder / "T1.nii.gz").is_file() and (folder / "PET.nii.gz").is_file():
            return folder
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    out_dir = Path(args.output)
    method = method_from_args(args)
    jobs = []  # every output is checked before any is written
    for folder in sample_folders():
        for i, f in enumerate(folder.files):
            stem = f"{folder.root.name}_{f.stem}"
            jobs.append((folder, i, check_writable(out_dir / f"{stem}_fused.png", args.overwrite),
                         check_writable(out_dir / f"{stem}_figure.png", args.overwrite)))
    spm = demo_volumes()
    if spm is not None:
        volume_out = check_volume_writable(out_dir / "volume_PET-MRI_fused.nii.gz", args.overwrite)
        preview_out = check_writable(out_dir / "volume_PET-MRI_preview.png", args.overwrite)
    for folder, i, fused_path, figure_path in jobs:
        pair = folder[i]
        (intensity,) = fuse_pairs(method, [pair])
        fused = restore_color(intensity, pair.func, args.color)
        write_image(fused_path, fused, overwrite=args.overwrite)
        figure = side_by_side([pair.mr, pair.func, fused],
                              ["MR", pair.modality, f"fused ({method.name})"])
        write_image(figure_path, figure, overwrite=args.overwrite)
        print(f"{pair.modality}-MRI {pair.name}: wrote {fused_path} and {figure_path}")
    if spm is None:
        print("volumes: ../shared/data/volumes not found, no volume demo")
        return 0
    from msgfusion.api import fuse_volume, volume_preview

    result = fuse_volume(spm / "T1.nii.gz", spm / "PET.nii.gz", "PET", method, args.color)
    write_volume(volume_out, result.picture, args.overwrite)
    write_image(preview_out, volume_preview(result), overwrite=args.overwrite)
    print(f"PET-MRI volume (SPM T1 + PET): wrote {volume_out} and {preview_out}")
    return 0


def add_commands(command: CommandAdder) -> None:
    p = command("fuse", cmd_fuse, "fuse one MR image with one CT/PET/SPECT image, or an MR "
                                  "volume with a CT/PET/SPECT volume")
    p.add_argument("--mr", required=True, help="the MR image (grey) or volume")
    p.add_argument("--func", required=True,
                   help="the CT (grey) or PET/SPECT image of the same slice: RGB pseudo-colour, "
                        "or scalar (grey) activity with --modality PET|SPECT; or a CT/PET/SPECT "
                        "volume (scalar: HU, activity)")
    p.add_argument("--modality", type=modality_arg, metavar="|".join(MODALITIES),
                   help="modality of --func. Inferred when omitted: grey is CT; colour is PET or "
                        "SPECT, told by the PET/ or SPECT/ folder that holds it, or else by its "
                        "colour scale (the atlas's PET and SPECT scales differ). MsgFusion has "
                        "one network per modality and uses this one; a scalar PET/SPECT needs "
                        "--modality. For a volume: its header (DICOM Modality) or file name")
    p.add_argument("--cmap", choices=COLORMAP_NAMES,
                   help="colour map that renders a scalar (grey) PET/SPECT before fusion "
                        "(default: the atlas's own scale, atlas-pet or atlas-spect)")
    p.add_argument("-o", "--output", required=True,
                   help="output image (.png, .tif, .jpg, .bmp, or .dcm: a DICOM Secondary "
                        "Capture image in the patient and study of a DICOM --mr) or volume (.nii.gz, .nii, .mha, "
                        ".mhd, .nrrd, or a folder name without suffix for a DICOM series)")
    p.add_argument("--register", action="store_true",
                   help="register --func onto --mr first (Mattes MI; 2-D: similarity, any sizes; "
                        "volumes: rigid): see `msgfusion register`; a doubtful registration "
                        "writes <output>_qa.png, no fused output, and exits 3")
    add_registration_options(p, fuse=True)
    add_method_options(p)
    add_volume_options(p)

    p = command("fuse-dir", cmd_fuse_dir, "fuse every pair of a folder of pairs")
    p.add_argument("pairs_dir", metavar="PAIRS_DIR",
                   help="folder with MRI/ beside one of CT/, PET/, SPECT/ (the folder name is the "
                        "modality); partners share a file name without extension, e.g. one split "
                        "of the atlas data")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="folder for the fused images, written under the pairs' file names")
    p.add_argument("--batch-size", type=positive_int, default=1,
                   help="pairs per call of the method (default 1)")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="pairs read, fused and written at once, each in its own thread with "
                        "--threads torch threads (default: one per CPU core)")
    p.add_argument("--keep-going", action="store_true",
                   help="fuse every pair that can be fused; one error line per failed pair, a "
                        "summary, and exit code 2 if any failed (default: check every pair "
                        "first, stop at the first error)")
    add_method_options(p)
    p.add_argument("--skip-existing", action="store_true",
                   help="keep outputs that exist and fuse only the missing ones (resume an "
                        "interrupted run)")
    add_volume_options(p, single=False)

    command("methods", cmd_methods, "list the fusion methods with their references")

    p = command("demo", cmd_demo, "fuse the bundled CT-, PET- and SPECT-MRI sample pairs and write "
                                  "the fused images and side-by-side figures; with "
                                  "../shared/data/volumes present, also the SPM T1 and PET "
                                  "volumes (NIfTI and a three-plane preview)")
    p.add_argument("-o", "--output", default="msgfusion-demo", metavar="DIR",
                   help="output folder (default: ./msgfusion-demo)")
    add_method_options(p)
