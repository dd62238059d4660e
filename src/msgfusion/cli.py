"""The command line: thin wrappers around the Python API with clear one-line errors.

Every user error (missing or unreadable file, images of different sizes, unknown method or
modality, an output that exists) prints one line ``msgfusion: error: ...`` on stderr and exits
with code 2, with no traceback and no partial output file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from msgfusion.data.datasets import PairFolder, sample_folders
from msgfusion.errors import MsgFusionError, OutputExistsError
from msgfusion.io.color import COLOR_MODES, restore_color
from msgfusion.io.figures import side_by_side
from msgfusion.io.images import check_writable, write_image
from msgfusion.methods.registry import (
    DEFAULT_METHOD,
    FusionMethod,
    fuse_pairs,
    get_method,
    list_methods,
)
from msgfusion.pair import MODALITIES, check_modality

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit code 2), like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _modality(value: str) -> str:
    try:
        return check_modality(value)
    except MsgFusionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_method_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default=DEFAULT_METHOD,
                   help=f"fusion method (default: {DEFAULT_METHOD}; list: `msgfusion methods`)")
    p.add_argument("--weights", metavar="FILE",
                   help="MsgFusion weights from `msgfusion train` (OUT/msgfusion.pt) instead of "
                        "the shipped ones; with --method msgfusion only")
    p.add_argument("--color", default="hsv", choices=COLOR_MODES,
                   help="how PET/SPECT colour is restored: hsv (keep hue and saturation, default), "
                        "ycbcr (keep chroma), gray (fused intensity only), viridis (the paper's "
                        "rendering). CT results are grey.")
    p.add_argument("--overwrite", action="store_true", help="replace output files that exist")


def _method(args: argparse.Namespace) -> FusionMethod:
    """The method of ``--method``; with ``--weights``, MsgFusion with those weights (loaded
    now, so that a bad file fails before anything is written)."""
    if args.weights is None:
        return get_method(args.method)
    if args.method != "msgfusion":
        raise MsgFusionError(f"--weights {args.weights} is for --method msgfusion, not "
                             f"{args.method!r}")
    from msgfusion.methods.msgfusion import MsgFusion

    method = MsgFusion(args.weights)
    method.model  # noqa: B018 (loads and checks the file)
    return method


def cmd_fuse(args: argparse.Namespace) -> int:
    from msgfusion.api import make_pair

    method = _method(args)
    out = check_writable(args.output, args.overwrite)
    pair = make_pair(Path(args.mr), Path(args.func), args.modality)
    (intensity,) = fuse_pairs(method, [pair])
    write_image(out, restore_color(intensity, pair.func, args.color), overwrite=args.overwrite)
    print(f"wrote {out} ({pair.modality}-MRI, method {method.name}, colour {args.color})")
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
    written = _fuse_folder(folder, _method(args), args.color, out_dir, args.overwrite,
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
    method = _method(args)
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


def cmd_bench(args: argparse.Namespace) -> int:
    import shlex
    import time

    from msgfusion.bench.config import BenchConfig
    from msgfusion.bench.report import write_report
    from msgfusion.bench.runner import run_bench, summary_lines

    config = BenchConfig(methods=args.methods or [], data=args.data, split=args.split,
                         metrics=args.metrics or [], out=args.output, force=args.force,
                         color=args.color, figure_pairs=args.figure_pairs or [],
                         timing_repeats=args.timing_repeats)
    start = time.perf_counter()
    result = run_bench(config)
    command = "msgfusion " + " ".join(shlex.quote(a) for a in args.argv)
    report = write_report(result, command, Path(args.peers) if args.peers else None,
                          Path(args.publish) if args.publish else None)
    for line in summary_lines(result):
        print(line)
    print(f"wrote {config.out_dir}/ and {report} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from msgfusion.train.experiment import ExperimentConfig, ship, train_msgfusion

    try:
        config = ExperimentConfig.from_file(args.config) if args.config else ExperimentConfig()
    except (OSError, ValueError) as exc:
        raise MsgFusionError(f"{args.config}: cannot read the training config: {exc}") from None
    weights = train_msgfusion(config, args.data, args.out, resume=not args.restart)
    print(f"wrote {weights} (log: {Path(args.out) / 'log.csv'})")
    if args.ship:
        for path in ship(args.out):
            print(f"shipped {path}")
    return 0


def cmd_train_baseline(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from msgfusion.methods.deep.training import get_recipe, train_baseline

    recipe = get_recipe(args.name)
    train = replace(recipe.train, epochs=args.epochs) if args.epochs else recipe.train
    weights = train_baseline(args.name, args.data, args.out, train, resume=not args.restart,
                             ship=args.ship)
    shipped = " and shipped it in the package" if args.ship else ""
    print(f"wrote {weights}{shipped} (log: {Path(args.out) / 'log.csv'})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from msgfusion.metrics.evaluate import (
        check_table_output,
        evaluate_matched,
        match_fused,
        write_table,
    )
    from msgfusion.metrics.registry import resolve_names

    names = resolve_names(args.metrics)
    out = check_table_output(args.output, args.overwrite) if args.output else None
    matched = match_fused(PairFolder(args.pairs), args.fused)
    with tqdm(total=len(matched), desc="evaluate", unit="image", disable=None) as bar:
        table = evaluate_matched(matched, names, progress=bar.update)
    print(table.to_markdown() if args.markdown else table.to_text(), end="")
    if out is not None:
        print(f"wrote {write_table(table, out, overwrite=args.overwrite)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="msgfusion",
        description="Fuse an MR slice with a CT, PET or SPECT slice of the same brain into one "
                    "image that keeps the MR anatomy and the CT bone or PET/SPECT function; "
                    "evaluate and compare fusion methods. Images: PNG, JPEG, TIFF, BMP; grey or "
                    "RGB pseudo-colour; pairs must be co-registered and of the same size.",
        epilog="Errors (missing files, size mismatch, unknown method, existing output) exit with "
               "code 2 and one line on stderr.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_: str,
                **kw: object) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, **kw)  # type: ignore[arg-type]
        p.set_defaults(handler=handler)
        return p

    p = command("fuse", cmd_fuse, "fuse one MR image with one CT/PET/SPECT image")
    p.add_argument("--mr", required=True, help="the MR image (grey)")
    p.add_argument("--func", required=True,
                   help="the CT (grey) or PET/SPECT (RGB pseudo-colour) image of the same slice")
    p.add_argument("--modality", type=_modality, metavar="|".join(MODALITIES),
                   help="modality of --func; inferred when omitted: grey is CT, colour is PET "
                        "(PET and SPECT are processed alike, the name labels the output)")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .tif, .jpg, .bmp)")
    _add_method_options(p)

    p = command("fuse-dir", cmd_fuse_dir, "fuse every pair of a folder of pairs")
    p.add_argument("pairs_dir", metavar="PAIRS_DIR",
                   help="folder with MRI/ beside one of CT/, PET/, SPECT/ (the folder name is the "
                        "modality); partners share a file name, e.g. one split of the atlas data")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="folder for the fused images, written under the pairs' file names")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per batch (default 16)")
    _add_method_options(p)

    command("methods", cmd_methods, "list the fusion methods with their references")

    p = command("demo", cmd_demo, "fuse the bundled CT-, PET- and SPECT-MRI sample pairs and write "
                                  "the fused images and side-by-side figures")
    p.add_argument("-o", "--output", default="msgfusion-demo", metavar="DIR",
                   help="output folder (default: ./msgfusion-demo)")
    _add_method_options(p)

    p = command("bench", cmd_bench, "fuse every pair with every method, evaluate every metric, "
                                    "time the methods, and write tables, charts and figures "
                                    "(cached: a re-run only computes what changed)")
    p.add_argument("--methods", nargs="+", metavar="NAME", help="methods (default: all registered)")
    p.add_argument("--data", default="../shared/data/aanlib",
                   help="a folder of pairs, or the AANLIB tree <pair>/<split>/ (default: %(default)s)")
    p.add_argument("--split", default="test", help="split of an AANLIB tree (default: test)")
    p.add_argument("--metrics", nargs="+", metavar="LABEL", help="metrics (default: all)")
    p.add_argument("-o", "--output", default="results", metavar="DIR",
                   help="results folder, also the cache (default: ./results)")
    p.add_argument("--force", action="store_true", help="recompute everything, ignoring the cache")
    p.add_argument("--color", default="ycbcr", choices=COLOR_MODES,
                   help="colour restoration of fused PET/SPECT; metrics use its luminance, which "
                        "with ycbcr (default) is the fused intensity itself, as in the published "
                        "methods' outputs (hsv dims it by Y/V of the PET/SPECT colour)")
    p.add_argument("--figure-pairs", nargs="+", metavar="NAME",
                   help="pair names (file stems) for the figure grids (default: first per modality)")
    p.add_argument("--timing-repeats", type=int, default=5, help="timed runs per method (median)")
    p.add_argument("--peers", default="../shared/reference/peers.md",
                   help="published methods' scores to rank against (default: %(default)s; "
                        "skipped if missing)")
    p.add_argument("--publish", metavar="DOCS_DIR",
                   help="write results.md and its figures here (e.g. docs) instead of the results folder")

    p = command("train", cmd_train, "train the MsgFusion network on the train split of the atlas "
                                    "data (seeded; resumes from OUT/checkpoint.pt)")
    p.add_argument("--config", metavar="FILE",
                   help="JSON or TOML with optional sections model, loss, train, pairs "
                        "(default: the config of the shipped lite weights' defaults)")
    p.add_argument("--data", default="../shared/data/aanlib",
                   help="the AANLIB tree <pair>/train/ (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="run folder: config.json, log.csv, checkpoint.pt, msgfusion.pt")
    p.add_argument("--restart", action="store_true", help="ignore a checkpoint in --out")
    p.add_argument("--ship", action="store_true",
                   help="copy the trained weights, config and log into the package "
                        "(src/msgfusion/model/weights/msgfusion_lite.*): the shipped default")

    p = command("train-baseline", cmd_train_baseline,
                "train one of the deep baselines (ifcnn, nestfuse, fusiondn, fusiongan, "
                "funfusean) on the train split of the atlas data (seeded; resumes from "
                "OUT/checkpoint.pt)")
    p.add_argument("name", metavar="NAME", help="the baseline's method name")
    p.add_argument("--data", default="../shared/data/aanlib",
                   help="the AANLIB tree <pair>/train/ (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="run folder: config.json, log.csv, checkpoint.pt, NAME.pt, NAME.json")
    p.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    p.add_argument("--restart", action="store_true", help="ignore a checkpoint in --out")
    p.add_argument("--ship", action="store_true",
                   help="copy the weights, NAME.json and the log into the package's weights "
                        "folder (src/msgfusion/methods/deep/weights/)")

    p = command("evaluate", cmd_evaluate,
                "evaluate fused images against their source pairs with fusion-quality metrics "
                "(on 8-bit grey / BT.601 luminance) and print per-image values, mean and std")
    p.add_argument("--pairs", required=True, metavar="PAIRS_DIR",
                   help="folder of pairs: MRI/ beside one of CT/, PET/, SPECT/")
    p.add_argument("--fused", required=True, metavar="FUSED_DIR",
                   help="fused images, matched to the pairs by file name without extension")
    p.add_argument("--metrics", nargs="+", default=["paper"], metavar="LABEL",
                   help="metric labels (EN SD SF AG MI SCD CC VIF VIFF Qabf Nabf SSIM rSFe Q_S "
                        "Q_W Qcb Qcv PSNR; SM = Q_S), 'paper' (EN SD MI rSFe Q_S VIFF Qabf, "
                        "the default) or 'all'")
    p.add_argument("-o", "--output", metavar="TABLE",
                   help="also write the table: CSV (one row per image), or Markdown for .md")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser.parse_args(argv)
        args.argv = argv
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return int(exc.code or 0)
    try:
        return args.handler(args)
    except MsgFusionError as exc:
        print(f"msgfusion: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("msgfusion: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
