"""Commands that measure: ``bench``, ``evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from msgfusion.cli.common import CommandAdder, NameList, add_cluster_options, add_color_option
from msgfusion.data.datasets import PairFolder
from msgfusion.progress import progress_bar


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
    if args.workers or args.scheduler:  # method x pair work on Dask, as `cohort run` does
        from msgfusion.cohort.runner import open_client, prepare_workers

        with open_client(args.workers, args.scheduler) as client:
            prepare_workers(client)
            result = run_bench(config, progress=not args.quiet,
                               executor=client.get_executor(retries=2))
    else:
        result = run_bench(config, progress=not args.quiet)
    command = "msgfusion " + " ".join(shlex.quote(a) for a in args.argv)
    report = write_report(result, command, Path(args.peers) if args.peers else None,
                          Path(args.publish) if args.publish else None)
    for line in summary_lines(result):
        print(line)
    print(f"wrote {config.out_dir}/ and {report} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from msgfusion.evaluation import (
        check_table_output,
        evaluate_matched,
        match_fused,
        write_table,
    )
    from msgfusion.metrics.registry import resolve_names

    names = resolve_names(args.metrics)
    out = check_table_output(args.output, args.overwrite) if args.output else None
    matched = match_fused(PairFolder(args.pairs), args.fused)
    with progress_bar(total=len(matched), desc="evaluate", unit="image") as bar:
        table = evaluate_matched(matched, names, progress=bar.update)
    print(table.to_markdown() if args.markdown else table.to_text(), end="")
    if out is not None:
        print(f"wrote {write_table(table, out, overwrite=args.overwrite)}")
    return 0


def add_commands(command: CommandAdder) -> None:
    p = command("bench", cmd_bench, "fuse every pair with every method, evaluate every metric, "
                                    "time the methods, and write tables, charts and figures "
                                    "(cached: a re-run only computes what changed)")
    p.add_argument("--methods", nargs="+", action=NameList, metavar="NAME",
                   help="methods, by spaces or commas (default: all registered)")
    p.add_argument("--data", default="../shared/data/aanlib",
                   help="a folder of pairs, or the AANLIB tree <pair>/<split>/ (default: %(default)s)")
    p.add_argument("--split", default="test", help="split of an AANLIB tree (default: test)")
    p.add_argument("--metrics", nargs="+", action=NameList, metavar="LABEL",
                   help="metrics, by spaces or commas (default: all)")
    p.add_argument("-o", "--output", default="results", metavar="DIR",
                   help="results folder, also the cache (default: ./results)")
    p.add_argument("--force", action="store_true", help="recompute everything, ignoring the cache")
    add_color_option(p)
    p.add_argument("--figure-pairs", nargs="+", metavar="NAME",
                   help="pair names (file stems) for the figure grids (default: first per modality)")
    p.add_argument("--timing-repeats", type=int, default=5, help="timed runs per method (median)")
    p.add_argument("--peers", default="../shared/reference/peers.md",
                   help="published methods' scores to rank against (default: %(default)s; "
                        "skipped if missing)")
    add_cluster_options(p, "fuse and evaluate on a local Dask cluster of N processes (timing "
                           "stays in this process)",
                        "fuse and evaluate on the Dask cluster at ADDRESS (its workers must see "
                        "the results folder)")
    p.add_argument("--publish", metavar="DOCS_DIR",
                   help="write results.md and its figures here (e.g. docs) instead of the results folder")

    p = command("evaluate", cmd_evaluate,
                "evaluate fused images against their source pairs with fusion-quality metrics "
                "(on 8-bit grey / BT.601 luminance) and print per-image values, mean and std")
    p.add_argument("--pairs", required=True, metavar="PAIRS_DIR",
                   help="folder of pairs: MRI/ beside one of CT/, PET/, SPECT/")
    p.add_argument("--fused", required=True, metavar="FUSED_DIR",
                   help="fused images, matched to the pairs by file name without extension")
    p.add_argument("--metrics", nargs="+", action=NameList, default=["paper"], metavar="LABEL",
                   help="metric labels (EN SD SF AG MI SCD CC VIF VIFF Qabf Nabf SSIM rSFe Q_S "
                        "Q_W Qcb Qcv PSNR; SM = Q_S), 'paper' (EN SD MI rSFe Q_S VIFF Qabf, "
                        "the default) or 'all'")
    p.add_argument("-o", "--output", metavar="TABLE",
                   help="also write the table: CSV (one row per image), or Markdown for .md")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
