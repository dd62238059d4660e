"""The command line: thin wrappers around the Python API with clear one-line errors.

Every user error (missing or unreadable file, images of different sizes, unknown method or
modality, an output that exists, an output that cannot be written, not enough memory) prints one
line ``msgfusion: error: ...`` on stderr and exits with code 2, with no traceback and no partial
output file. A registration the failure detector doubts prints one line ``msgfusion <command>:
doubtful: <why; what to try>`` and exits with code 3.

Global options (before or after the command): ``-q/--quiet`` hides progress bars (they are shown
only on a terminal anyway), ``--max-pixels`` raises the pixel limit of every image read.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable

from msgfusion import __version__
from msgfusion.errors import (
    MsgFusionError,
    MsgFusionWarning,
    OutputExistsError,
    RegistrationDoubtful,
)

EXIT_USAGE = 2
EXIT_DOUBTFUL = 3

#: Modules of ``msgfusion.cli`` that add subcommands, each through ``add_commands(command)``.
COMMAND_MODULES = ("fusion", "analysis", "training", "web", "registration", "cohort", "pacs")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit code 2), like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _add_global_options(parser: argparse.ArgumentParser, defaults: bool,
                        pixels_help: str | None = None) -> None:
    """-q and --max-pixels; on subcommands without defaults, so that a value given before the
    command is not reset by the subcommand's default. ``pixels_help``: a command's own help
    for --max-pixels (``serve``: its default differs)."""
    from msgfusion.cli.common import positive_int
    from msgfusion.io.images import DEFAULT_MAX_PIXELS

    keep = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars", **keep)
    parser.add_argument("--max-pixels", type=positive_int, metavar="N",
                        default=None if defaults else argparse.SUPPRESS,  # None: the default
                        help=pixels_help or "refuse images with more pixels than this, from "
                             f"their header, before decoding (default: {DEFAULT_MAX_PIXELS:,})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="msgfusion",
        description="Fuse an MR slice with a CT, PET or SPECT slice of the same brain into one "
                    "image that keeps the MR anatomy and the CT bone or PET/SPECT function; "
                    "evaluate and compare fusion methods. Images: PNG, JPEG, TIFF, BMP, DICOM; "
                    "grey or RGB pseudo-colour; pairs must be co-registered and of the same size.",
        epilog="Errors (missing files, size mismatch, unknown method, existing output) exit with "
               "code 2 and one line on stderr.",
    )
    parser.add_argument("--version", action="version", version=f"msgfusion {__version__}")
    _add_global_options(parser, defaults=True)
    shared = argparse.ArgumentParser(add_help=False)
    _add_global_options(shared, defaults=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_: str,
                max_pixels_help: str | None = None, **kw: object) -> argparse.ArgumentParser:
        parent = shared
        if max_pixels_help:
            parent = argparse.ArgumentParser(add_help=False)
            _add_global_options(parent, defaults=False, pixels_help=max_pixels_help)
        p = sub.add_parser(name, help=help_, description=help_,  # type: ignore[arg-type]
                           parents=[parent], **kw)
        p.set_defaults(handler=handler, parser=p)
        return p

    for name in COMMAND_MODULES:
        importlib.import_module(f"msgfusion.cli.{name}").add_commands(command)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    """Our warnings as one line ``msgfusion: warning: ...``; others as Python prints them."""
    if issubclass(category, MsgFusionWarning):
        print(f"msgfusion: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def command_options(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings a (sub)command accepts."""
    return {o for action in parser._actions for o in action.option_strings}


def doubtful_line(args: argparse.Namespace, exc: RegistrationDoubtful) -> str:
    """``msgfusion <command>: doubtful: <why; what to try>``, naming only the command's own
    options."""
    options = command_options(args.parser)
    text = "; ".join(d.render("cli", options) for d in exc.doubts)
    if "--accept-doubtful" in options:
        text += "; --accept-doubtful uses it anyway"
    note = f" ({exc.note})" if exc.note else ""
    return f"msgfusion {args.command}: doubtful: {text}{note}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser.parse_args(argv)
        args.argv = argv
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return int(exc.code or 0)
    from msgfusion.allocator import reuse_freed_memory
    from msgfusion.io.images import DEFAULT_MAX_PIXELS, set_max_pixels
    from msgfusion.progress import set_progress

    reuse_freed_memory()
    set_progress(not args.quiet)
    set_max_pixels(args.max_pixels or DEFAULT_MAX_PIXELS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default", MsgFusionWarning)
            warnings.showwarning = _show_warning
            return args.handler(args)
    except RegistrationDoubtful as exc:
        print(doubtful_line(args, exc), file=sys.stderr)
        return EXIT_DOUBTFUL
    except MsgFusionError as exc:
        hint = " (use --overwrite to replace it)" if isinstance(exc, OutputExistsError) else ""
        print(f"msgfusion: error: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("msgfusion: error: out of memory; try smaller images, a smaller --batch-size or a "
              "lighter --method", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("msgfusion: interrupted", file=sys.stderr)
        return 130
