"""Options and helpers shared by several commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from msgfusion.errors import MsgFusionError
from msgfusion.io.color import COLOR_MODES, DEFAULT_COLOR_MODE
from msgfusion.methods.registry import DEFAULT_METHOD, FusionMethod, get_method
from msgfusion.pair import check_modality

#: ``command(name, handler, help, **kw)`` adds a subcommand and returns its parser.
CommandAdder = Callable[..., argparse.ArgumentParser]


def _number(value: str, cast: Callable[[str], float], kind: str, low: float,
            strict: bool = False) -> float:
    """``value`` as ``cast`` of it, at least ``low`` (above it when ``strict``)."""
    try:
        number = cast(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not {kind}") from None
    if number < low or (strict and number == low):
        raise argparse.ArgumentTypeError(f"must be {'above' if strict else 'at least'} {low}, "
                                         f"got {number}")
    return number


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    return int(_number(value, int, "an integer", 1))


def non_negative_int(value: str) -> int:
    """argparse type: an integer >= 0."""
    return int(_number(value, int, "an integer", 0))


def positive_float(value: str) -> float:
    """argparse type: a number > 0."""
    return _number(value, float, "a number", 0, strict=True)


def int_list(value: str) -> list[int]:
    """argparse type: comma-separated integers (``0,1,2``)."""
    try:
        return [int(v) for v in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of "
                                         "integers") from None


class NameList(argparse.Action):
    """``nargs="+"`` names, each of which may itself be a comma-separated list:
    ``--methods average,max`` = ``--methods average max``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        given = [str(v) for v in values]  # type: ignore[attr-defined]
        names = [n.strip() for v in given for n in v.split(",")]
        if not all(names):
            parser.error(f"{option_string}: empty name in {' '.join(given)!r}")
        setattr(namespace, self.dest, names)


def add_cluster_options(p: argparse.ArgumentParser, workers_help: str,
                        scheduler_help: str) -> None:
    """``--workers N`` (a local Dask cluster) or ``--scheduler ADDRESS`` (an existing one)."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", help=workers_help)
    where.add_argument("--scheduler", metavar="ADDRESS", help=scheduler_help)


def modality_arg(value: str) -> str:
    try:
        return check_modality(value)
    except MsgFusionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_color_option(p: argparse.ArgumentParser) -> None:
    """``--color``, with the one default of every command (io.color.DEFAULT_COLOR_MODE)."""
    p.add_argument("--color", default=DEFAULT_COLOR_MODE, choices=COLOR_MODES,
                   help=f"how PET/SPECT colour is restored (default: {DEFAULT_COLOR_MODE}): "
                        "ycbcr (keep the PET/SPECT chroma, luminance := the fused intensity), "
                        "hsv (keep hue and saturation, brightness := the fused intensity), gray "
                        "(the fused intensity only), viridis (the paper's rendering). Every mode "
                        "is grey where the PET/SPECT has no signal; CT results are grey.")


def add_method_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default=DEFAULT_METHOD,
                   help=f"fusion method (default: {DEFAULT_METHOD}; list: `msgfusion methods`)")
    p.add_argument("--weights", metavar="FILE",
                   help="MsgFusion weights from `msgfusion train` (OUT/msgfusion.pt) instead of "
                        "the shipped ones; with --method msgfusion only")
    add_color_option(p)
    p.add_argument("--device", metavar="DEVICE",
                   help="where the network methods run: cpu (default), cuda, cuda:N; the "
                        "classical methods run on the CPU")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads of a network pass and of numpy's matrix products (default "
                        "1: fuse-dir reads and writes images on the other cores meanwhile, and "
                        "on a busy machine torch's "
                        "default of one thread per core measured up to 10x slower; docs/speed.md)")
    p.add_argument("--overwrite", action="store_true", help="replace output files that exist")


def method_from_args(args: argparse.Namespace) -> FusionMethod:
    """The method of ``--method``; with ``--weights``, MsgFusion with those weights (loaded
    now, so that a bad file fails before anything is written)."""
    _set_threads(args.threads)
    if args.weights is None:
        return get_method(args.method, args.device)
    if args.method != "msgfusion":
        raise MsgFusionError(f"--weights {args.weights} is for --method msgfusion, not "
                             f"{args.method!r}")
    from msgfusion.methods.msgfusion import MsgFusion

    method = MsgFusion(args.weights, args.device)
    method.model  # noqa: B018 (loads and checks the file)
    return method


def _set_threads(threads: int) -> None:
    """Intra-op CPU threads of torch and of numpy's BLAS. torch's: set now if torch is loaded,
    else through OMP_NUM_THREADS, which torch reads when a network method first imports it.
    BLAS's: one call of a matrix product per image (luminance, YCbCr) otherwise wakes a thread
    per core, which spin while fuse-dir's workers already use every core (measured: about
    0.5 ms per pair of fuse-dir, docs/speed.md)."""
    if threads < 1:
        raise MsgFusionError(f"--threads {threads}: must be at least 1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)
