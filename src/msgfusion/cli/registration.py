"""The ``register`` command, and the registration step of ``fuse --register``.

A registration that the failure detector doubts stops: ``register`` still writes the transform
and the QA figure (``--qa``, or beside the output as ``<output>_qa.png``), ``fuse --register``
writes the QA figure and no fused output; both print one line ``msgfusion <command>: doubtful:
<why; what to try>`` naming only options of that command, and exit 3, unless
``--accept-doubtful``.
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
from msgfusion.errors import (
    ImageReadError,
    MsgFusionWarning,
    OutputExistsError,
    RegistrationDoubtful,
)
from msgfusion.io.images import READ_EXTENSIONS, check_writable, read_image
from msgfusion.register.engine import INITS, KINDS

if TYPE_CHECKING:
    import SimpleITK as sitk

    from msgfusion.pair import FusionPair
    from msgfusion.register import RegistrationResult, RegistrationSettings
    from msgfusion.volume import Volume



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


def stop_if_doubtful(result: RegistrationResult, qa: Path | None, output: Path,
                     overwrite: bool) -> None:
    """A doubtful result raises :class:`~msgfusion.errors.RegistrationDoubtful` (``main``
    prints one line ``msgfusion <command>: doubtful: ...`` and exits 3), after writing the QA
    figure beside ``output`` as ``<output>_qa.png`` unless one was written to ``qa``."""
    from msgfusion.register import qa_figure

    if not result.doubts:
        return
    if qa is None:
        qa = output.with_name(f"{output.name.split('.')[0]}_qa.png")
        if qa.exists() and not overwrite:
            raise RegistrationDoubtful(result.doubts, result,
                                       f"QA figure not written: {qa} exists; use --overwrite")
        qa_figure(result, qa, overwrite=overwrite)
    raise RegistrationDoubtful(result.doubts, result, f"QA figure: {qa}")


def settings_from_args(args: argparse.Namespace, two_d: bool) -> RegistrationSettings:
    """The measured defaults for 2-D or 3-D, with the command's options applied."""
    from dataclasses import replace

    from msgfusion.register.engine import DEFAULTS_2D, DEFAULTS_3D

    base = DEFAULTS_2D if two_d else DEFAULTS_3D
    changes: dict[str, Any] = {"init": args.init}
    if args.search_orientation:
        changes["search_orientation"] = True
    if args.iterations is not None:
        changes["iterations"] = args.iterations
    return replace(base, **changes)


def add_registration_options(p: argparse.ArgumentParser, fuse: bool = False) -> None:
    """The registration options of ``register`` and of ``fuse --register``."""
    g = p.add_argument_group("registration" + (" (with --register)" if fuse else ""))
    g.add_argument("--type", choices=KINDS,
                   help="transform: rigid (3-D default), similarity (rigid + one scale, 2-D "
                        "default: pixel images carry no physical size) or affine")
    g.add_argument("--init", default="auto", choices=INITS,
                   help="centring of the starts: auto (image centres and centres of mass, "
                        "each tried; default), geometry (image centres), moments (centres of "
                        "mass) or header (trust the scanner coordinates)")
    g.add_argument("--search-orientation", action="store_true",
                   help="also start turned 180 degrees about each axis (done by default for "
                        "volumes whose DICOM frames of reference differ)")
    g.add_argument("--iterations", type=int, metavar="N",
                   help="optimiser iterations per resolution level at most (default 200)")
    g.add_argument("--accept-doubtful", action="store_true",
                   help="use a registration that the failure detector doubts (default: write "
                        "its QA figure, " + ("no fused output, " if fuse else "") + "exit 3)")
    if fuse:
        g.add_argument("--save-transform", metavar="TRANSFORM.tfm",
                       help="also write the registration's transform (ITK text format)")


def _register_checked(args: argparse.Namespace, call: Any) -> RegistrationResult:
    """``call()`` run with doubts returned, not raised (their lines are ours to print); other
    warnings (a colour MR made grey) pass through."""
    found: list[str] = []
    with printed_warnings(found):
        return call()


def _save_transform(args: argparse.Namespace, result: RegistrationResult) -> None:
    from msgfusion.register import write_transform

    if args.save_transform:
        write_transform(args.save_transform, result.transform, overwrite=args.overwrite)


def registered_pair(args: argparse.Namespace, output: Path) -> tuple[FusionPair, np.ndarray]:
    """``fuse --register``: the pair with the functional image registered onto the MR, and
    where the moved image has data (the fusion shows the MR alone elsewhere). A doubtful
    registration writes its QA figure beside ``output`` and stops (unless --accept-doubtful)."""
    from msgfusion.pair import infer_modality
    from msgfusion.register import coverage, register_pair

    frame = getattr(args, "frame", None)  # of a multi-frame DICOM file
    mr, func = read_image(args.mr, frame), read_image(args.func, frame)
    modality = args.modality or infer_modality(func, args.func)
    if args.save_transform:
        check_writable_transform(args.save_transform, args.overwrite)
    pair, result = _register_checked(args, lambda: register_pair(
        mr, func, modality, kind=args.type or "similarity",
        settings=settings_from_args(args, two_d=True), name=Path(args.mr).stem, cmap=args.cmap,
        accept_doubtful=True))
    if not args.accept_doubtful:
        stop_if_doubtful(result, None, output, args.overwrite)
    print(f"registered {args.func} onto {args.mr}: {result.summary}")
    _save_transform(args, result)
    return pair, coverage(result.moving, pair.mr, result.transform)


def registered_transform(args: argparse.Namespace, mr: Volume, func: Volume,
                         output: Path) -> sitk.Transform:
    """``fuse --register`` for volumes: the transform that moves ``func`` onto ``mr``; a
    doubtful registration writes its QA figure beside ``output`` and stops (unless
    --accept-doubtful)."""
    from msgfusion.register import register_volumes

    if args.save_transform:
        check_writable_transform(args.save_transform, args.overwrite)
    result = _register_checked(args, lambda: register_volumes(
        mr, func, args.type or "rigid", settings_from_args(args, two_d=False),
        accept_doubtful=True))
    if not args.accept_doubtful:
        stop_if_doubtful(result, None, output, args.overwrite)
    print(f"registered {args.func} onto {args.mr}: {result.summary}")
    _save_transform(args, result)
    return result.transform


def check_writable_transform(path: str | os.PathLike, overwrite: bool) -> None:
    """Refuse a transform file name that exists (unless ``overwrite``) before any work."""
    path = Path(path)
    if path.suffix.lower() not in (".tfm", ".txt"):
        raise ImageReadError(f"{path}: transforms are written as ITK text files; name it *.tfm")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (use --overwrite to replace it)")


def cmd_register(args: argparse.Namespace) -> int:
    from msgfusion.io.volumes import check_volume_writable, write_volume
    from msgfusion.register import (
        qa_figure,
        register_images,
        register_volumes,
        resample,
        write_transform,
    )

    output = Path(args.output)
    check_writable_transform(output, args.overwrite)
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
    result = _register_checked(args, lambda: (
        register_images(mr, func, kind, settings, accept_doubtful=True) if two_d
        else register_volumes(mr, func, kind, settings, accept_doubtful=True)))
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
    if qa is not None:
        qa_figure(result, qa, overwrite=args.overwrite)
        written.append(str(qa))
    print(f"registered {args.func} onto {args.mr}: {result.summary}")
    print(f"wrote {', '.join(written)}")
    if not args.accept_doubtful:
        stop_if_doubtful(result, qa, output, args.overwrite)
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
    p.add_argument("--qa", metavar="QA.png",
                   help="QA figure: checkerboard and edge overlay before and after, final "
                        "metric (written anyway, beside the output, when the registration is "
                        "doubtful)")
    add_registration_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace output files that exist")
