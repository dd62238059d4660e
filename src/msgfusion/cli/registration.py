"""The ``register`` command, and the registration step of ``fuse --register``.

A doubtful registration (:class:`~msgfusion.errors.MsgFusionWarning`) prints one line
``msgfusion: warning: ...`` per finding, with what to try; the QA figure is then always written
(to ``--qa``, or beside the output as ``<output>_qa.png``) so the user can look.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from msgfusion.cli.common import CommandAdder
from msgfusion.errors import ImageReadError, MsgFusionWarning, OutputExistsError
from msgfusion.io.images import READ_EXTENSIONS, check_writable, read_image

if TYPE_CHECKING:
    import SimpleITK as sitk

    from msgfusion.pair import FusionPair
    from msgfusion.register import RegistrationResult, RegistrationSettings
    from msgfusion.volume import Volume

KINDS = ("rigid", "similarity", "affine")
INITS = ("geometry", "moments", "header")


def read_input(path: str | os.PathLike) -> np.ndarray | Volume:
    """A 2-D image (PNG, JPEG, TIFF, BMP) as an array, or a volume (NIfTI, MetaImage, NRRD,
    a DICOM series) as a :class:`Volume` (:func:`msgfusion.io.volumes.read_volume`)."""
    from msgfusion.io.volumes import is_volume_path, read_volume

    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    return read_volume(path) if is_volume_path(path) else read_image(path)


@contextmanager
def printed_warnings(found: list[str]) -> Iterator[None]:
    """Collect the registration's :class:`MsgFusionWarning` messages into ``found`` (the caller
    prints them as one line each, with the QA figure's name); other warnings pass through."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MsgFusionWarning)
        yield
    for w in caught:
        if issubclass(w.category, MsgFusionWarning) and str(w.message).startswith(
                "registration:"):
            found.append(str(w.message))
        else:  # e.g. an input made grey: printed as it comes
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def report(result: RegistrationResult, found: list[str], qa: Path | None, output: Path,
           overwrite: bool) -> None:
    """Write the QA figure when asked or when something looks wrong; print the warnings."""
    from msgfusion.register import qa_figure

    note = ""
    if found and qa is None:
        qa = output.with_name(f"{output.name.split('.')[0]}_qa.png")
        if qa.exists() and not overwrite:
            note, qa = f" (QA figure not written: {qa} exists; use --qa or --overwrite)", None
    if qa is not None:
        qa_figure(result, qa, overwrite=overwrite)
        note = note or f" (QA figure: {qa})"
    for text in found:
        print(f"msgfusion: warning: {text}{note}", file=sys.stderr)


def settings_from_args(args: argparse.Namespace, two_d: bool) -> RegistrationSettings:
    """The measured defaults for 2-D or 3-D, with the command's options applied."""
    from dataclasses import replace

    from msgfusion.register.engine import DEFAULTS_2D, DEFAULTS_3D

    base = DEFAULTS_2D if two_d else DEFAULTS_3D
    changes: dict[str, Any] = {"init": getattr(args, "init", base.init),
                               "search_orientation": getattr(args, "search_orientation", False)}
    if getattr(args, "iterations", None) is not None:
        changes["iterations"] = args.iterations
    return replace(base, **changes)


def add_registration_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init", default="geometry", choices=INITS,
                   help="start: geometry (image centres together, default), moments (centres "
                        "of mass together) or header (trust the scanner coordinates)")
    p.add_argument("--search-orientation", action="store_true",
                   help="also try the start turned 180 degrees about each axis (scans of a "
                        "patient or phantom placed the other way round)")
    p.add_argument("--iterations", type=int, metavar="N",
                   help="optimiser iterations per resolution level at most (default 200)")


def registered_pair(args: argparse.Namespace, output: Path) -> FusionPair:
    """``fuse --register``: the pair with the functional image registered onto the MR; the
    QA figure goes beside ``output`` when the registration looks doubtful."""
    from msgfusion.register import register_pair

    from msgfusion.pair import infer_modality

    frame = getattr(args, "frame", None)  # of a multi-frame DICOM file
    mr, func = read_image(args.mr, frame), read_image(args.func, frame)
    modality = args.modality or infer_modality(func, args.func)
    found: list[str] = []
    with printed_warnings(found):
        pair, result = register_pair(mr, func, modality,
                                     settings=settings_from_args(args, two_d=True),
                                     name=Path(args.mr).stem, cmap=args.cmap)
    report(result, found, None, output, args.overwrite)
    return pair


def registered_transform(args: argparse.Namespace, mr: Volume, func: Volume,
                         output: Path) -> sitk.Transform:
    """``fuse --register`` for volumes: the rigid transform that moves ``func`` onto ``mr``;
    the QA figure goes beside ``output`` when the registration looks doubtful."""
    from msgfusion.register import register_volumes

    found: list[str] = []
    with printed_warnings(found):
        result = register_volumes(mr, func, settings=settings_from_args(args, two_d=False))
    report(result, found, None, output, args.overwrite)
    print(f"registered {args.func} onto {args.mr}: {result.summary}")
    return result.transform


def cmd_register(args: argparse.Namespace) -> int:
    from msgfusion.io.volumes import check_volume_writable, write_volume
    from msgfusion.register import register_images, register_volumes, resample, write_transform

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise OutputExistsError(f"{output}: already exists (use --overwrite to replace it)")
    qa = check_writable(args.qa, args.overwrite) if args.qa else None
    mr, func = read_input(args.mr), read_input(args.func)
    two_d = isinstance(mr, np.ndarray) and isinstance(func, np.ndarray)
    if isinstance(mr, np.ndarray) != isinstance(func, np.ndarray):
        raise ImageReadError(f"{args.mr if isinstance(mr, np.ndarray) else args.func} is a 2-D "
                             f"image but {args.func if isinstance(mr, np.ndarray) else args.mr} "
                             "is a volume; register a slice with a slice or a volume with a "
                             "volume")
    resampled = None
    if args.resampled:
        resampled = Path(args.resampled)
        if two_d:
            check_writable(resampled, args.overwrite)
        else:
            check_volume_writable(resampled, args.overwrite)
    kind = args.type or ("similarity" if two_d else "rigid")
    settings = settings_from_args(args, two_d)
    found: list[str] = []
    with printed_warnings(found):
        if two_d:
            result = register_images(mr, func, kind, settings)
        else:
            result = register_volumes(mr, func, kind, settings)
    write_transform(output, result.transform, overwrite=args.overwrite)
    written = [str(output)]
    if resampled is not None:
        moved = resample(func, mr, result.transform)
        if two_d:
            from msgfusion.io.images import write_image

            write_image(resampled, np.clip(moved, 0.0, 1.0), overwrite=args.overwrite)
        else:
            write_volume(resampled, moved, overwrite=args.overwrite, source=mr,
                         description="registered onto the MR (msgfusion)")
        written.append(str(resampled))
    report(result, found, qa, output, args.overwrite)
    if qa is not None:
        written.append(str(qa))
    print(f"registered {args.func} onto {args.mr}: {result.summary}")
    print(f"wrote {', '.join(written)}")
    return 0


def add_commands(command: CommandAdder) -> None:
    p = command("register", cmd_register,
                "register a CT/PET/SPECT image or volume onto the MR (Mattes mutual information, "
                "SimpleITK) and write the transform (ITK .tfm)")
    p.add_argument("--mr", required=True,
                   help="the MR (fixed, reference): a 2-D image or a volume (.nii, .nii.gz, "
                        ".mha, .mhd, .nrrd, or a folder of one DICOM series)")
    p.add_argument("--func", required=True,
                   help="the CT/PET/SPECT image or volume to move onto the MR (colour PET/SPECT "
                        "is registered on its luminance)")
    p.add_argument("-o", "--output", required=True, metavar="TRANSFORM.tfm",
                   help="the transform (MR point -> functional point, ITK text format)")
    p.add_argument("--resampled", metavar="OUT",
                   help="also write the functional image resampled onto the MR grid (2-D: "
                        f"{', '.join(READ_EXTENSIONS[:4])}...; volumes: .nii.gz, .mha)")
    p.add_argument("--type", choices=KINDS,
                   help="transform: rigid (3-D default), similarity (rigid + one scale, 2-D "
                        "default: pixel images carry no physical size) or affine")
    p.add_argument("--qa", metavar="QA.png",
                   help="QA figure: checkerboard and edge overlay before and after, final "
                        "metric (written anyway, beside the output, when a warning is printed)")
    add_registration_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace output files that exist")
