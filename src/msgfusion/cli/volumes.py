"""Volume fusion on the command line: ``fuse`` and ``fuse-dir`` branch here for volume inputs.

``msgfusion fuse --mr T1.nii.gz --func PET.nii.gz -o fused.nii.gz`` (or DICOM folders, .mha,
.nrrd): the options below are added to ``fuse`` and ``fuse-dir`` by :mod:`msgfusion.cli.fusion`,
which calls :func:`fuse_volumes` when an input is a volume. Everything goes through
:func:`msgfusion.api.fuse_volume`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msgfusion.cli import EXIT_USAGE
from msgfusion.cli.common import method_from_args
from msgfusion.errors import MsgFusionError, OutputExistsError, OutputWriteError
from msgfusion.intensity import CT_WINDOWS, DEFAULT_CT_WINDOW
from msgfusion.io.images import check_writable, write_image
from msgfusion.io.volumes import check_volume_writable, volume_suffix, write_volume
from msgfusion.progress import progress_bar

AXES = ("axial", "coronal", "sagittal")
OUT_FORMATS = (".nii.gz", ".nii", ".mha", ".nrrd", "dicom")
_PRESETS = ", ".join(f"{k} ({w:g},{lv:g})" for k, (w, lv) in CT_WINDOWS.items())


def add_volume_options(p: argparse.ArgumentParser, single: bool = True) -> None:
    """The options of volume inputs (for ``fuse``; ``single=False`` for ``fuse-dir``)."""
    g = p.add_argument_group(
        "volumes (NIfTI .nii/.nii.gz, DICOM series folder or file, MetaImage .mha/.mhd, NRRD)",
        "The functional volume is resampled onto the MR's grid and fused slice by slice; the "
        "output has the MR's geometry. PET/SPECT give an RGB volume (NIfTI RGB24, a colour "
        "DICOM series), CT or --color gray the fused intensity.")
    g.add_argument("--series", action="append", default=[], metavar="UID",
                   help="SeriesInstanceUID to read when a DICOM folder holds several series "
                        "(repeat for the MR's and the functional's; when both are in one folder, "
                        "give one file of each series instead)")
    g.add_argument("--frame", type=int, metavar="N",
                   help="frame (0-based) of a 4-D input (fMRI, dynamic PET) or of a multi-frame "
                        "DICOM image; such inputs are refused without it")
    g.add_argument("--window", metavar="PRESET|W,L",
                   help=f"CT window: {_PRESETS} "
                        f"or width,level in HU (default: {DEFAULT_CT_WINDOW}, the grey levels of "
                        "the atlas CTs the network learnt from)")
    g.add_argument("--axis", choices=AXES, default="axial",
                   help="slicing direction of the fusion (default: axial)")
    g.add_argument("--transform", metavar="FILE.tfm",
                   help="ITK transform from MR to functional points (from a registration), when "
                        "the two do not share a physical space")
    if single:
        g.add_argument("--preview", metavar="FILE.png",
                       help="also write a montage of the middle axial, coronal and sagittal "
                            "slices (MR | functional | fused)")
        g.add_argument("--intensity", metavar="FILE",
                       help="also write the fused intensity (scalar, float32 in [0, 1]) volume")
    else:
        g.add_argument("--format", choices=OUT_FORMATS, dest="out_format",
                       help="output format (default: that of each MR volume; a DICOM folder for "
                            "a DICOM input)")


def _transform(path: str | None) -> object:
    if path is None:
        return None
    import SimpleITK as sitk

    if not Path(path).is_file():
        raise MsgFusionError(f"{path}: transform file not found")
    try:
        return sitk.ReadTransform(path)
    except RuntimeError:
        raise MsgFusionError(f"{path}: not a readable ITK transform file") from None


def _fuse_one(args: argparse.Namespace, mr_path: Path, func_path: Path, out: Path,
              modality: str | None, method: object, transform: object) -> object:
    """Read, fuse with a progress bar, write ``out``; returns the :class:`FusedVolume`."""
    from msgfusion.api import fuse_volume, load_volume
    from msgfusion.volume import Orientation, n_planes

    mr = load_volume(mr_path, args.series, args.frame)
    func = load_volume(func_path, args.series, args.frame)
    if getattr(args, "register", False) and transform is None:
        from msgfusion.cli.registration import registered_transform

        transform = registered_transform(args, mr, func, out)
    total = n_planes(Orientation.of(mr).view(mr.data), args.axis)
    with progress_bar(total=total, desc=f"{mr_path.name} {args.axis}", unit="slice") as bar:
        result = fuse_volume(mr, func, modality, method, args.color, args.window, args.axis,
                             transform, progress=bar.update, cmap=getattr(args, "cmap", None))
    label = f"{result.modality}-MRI fused with {result.method}"
    write_volume(out, result.picture, args.overwrite, source=mr,
                 description=f"{label} (msgfusion)",
                 derivation=f"{label}, colour {args.color}, from {mr_path.name} and "
                            f"{func_path.name} resampled onto the MR grid")
    return result


def fuse_volumes(args: argparse.Namespace) -> int:
    """``fuse`` for volumes: every output is checked before anything is read or written."""
    from msgfusion.api import volume_preview

    method = method_from_args(args)
    out = check_volume_writable(args.output, args.overwrite)
    preview = check_writable(args.preview, args.overwrite) if args.preview else None
    intensity = check_volume_writable(args.intensity, args.overwrite) if args.intensity else None
    if len({p.resolve() for p in (out, preview, intensity) if p}) < sum(
            p is not None for p in (out, preview, intensity)):
        raise OutputExistsError(f"{out}: the outputs must be different files")
    result = _fuse_one(args, Path(args.mr), Path(args.func), out, args.modality, method,
                       _transform(args.transform))
    written = [out]
    if intensity:
        write_volume(intensity, result.intensity, args.overwrite, source=result.mr,
                     description=f"{result.modality}-MRI fused intensity (msgfusion)")
        written.append(intensity)
    if preview:
        write_image(preview, volume_preview(result), overwrite=args.overwrite)
        written.append(preview)
    z, y, x = result.mr.shape
    print(f"wrote {', '.join(map(str, written))} ({result.modality}-MRI, {x}x{y}x{z} on the MR "
          f"grid, method {result.method}, colour {args.color})")
    return 0


def _output_name(name: str, out_format: str | None) -> str:
    if out_format is None:
        return name
    stem = name[: -len(volume_suffix(name))] if volume_suffix(name) else name
    return stem if out_format == "dicom" else stem + out_format


def fuse_volume_dir(args: argparse.Namespace) -> int:
    """``fuse-dir`` over a folder of volume pairs (see :func:`msgfusion.data.volume_pairs`)."""
    from msgfusion.data.datasets import volume_pairs

    if args.overwrite and args.skip_existing:
        raise MsgFusionError("--overwrite and --skip-existing exclude each other")
    pairs = volume_pairs(args.pairs_dir)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputWriteError(f"{out_dir}: exists and is not a folder")
    outputs = [out_dir / _output_name(p.name, args.out_format) for p in pairs]
    kept = [o for o in outputs if args.skip_existing and o.exists()]
    for out in outputs:  # every output is checked before any work
        if out not in kept:
            check_volume_writable(out, args.overwrite)
    method, transform = method_from_args(args), _transform(args.transform)
    written, failed = 0, 0
    for pair, out in zip(pairs, outputs):
        if out in kept:
            continue
        try:
            _fuse_one(args, pair.mr_path, pair.func_path, out, pair.modality, method, transform)
            written += 1
        except MsgFusionError as exc:
            if not args.keep_going:
                raise
            print(f"msgfusion: error: {exc}", file=sys.stderr)
            failed += 1
    extra = (f", kept {len(kept)} that existed" if kept else "") + (
        f", {failed} pair(s) failed" if failed else "")
    print(f"wrote {written} fused {pairs[0].modality}-MRI volumes to {out_dir}{extra}")
    return EXIT_USAGE if failed else 0
