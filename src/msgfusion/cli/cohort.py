"""Commands for whole cohorts on Dask: ``cohort run``, ``cohort make-manifest``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msgfusion.cli.common import CommandAdder, add_cluster_options, add_color_option
from msgfusion.io.files import check_output, write_text
from msgfusion.methods.registry import DEFAULT_METHOD

EXIT_SOME_FAILED = 1


def cmd_cohort_run(args: argparse.Namespace) -> int:
    from msgfusion.cohort import CohortConfig, run_cohort

    config = CohortConfig(manifest=Path(args.manifest), out_dir=Path(args.output),
                          method=args.method, color=args.color, register=args.register,
                          metrics=args.metrics, workers=args.workers, scheduler=args.scheduler,
                          retries=args.retries, batch_size=args.batch_size)
    result = run_cohort(config)
    for line in result.summary_lines():
        print(line)
    print(f"wrote {config.out_dir / 'results.csv'} and {config.out_dir / 'results.parquet'}")
    return 0 if result.count("done") == len(result.table) else EXIT_SOME_FAILED


def cmd_make_manifest(args: argparse.Namespace) -> int:
    from msgfusion.cohort import make_manifest

    out = check_output(args.output, args.overwrite) if args.output else None
    text, warnings = make_manifest(args.dir, relative_to=out.parent if out else None,
                                   keep_going=args.keep_going)
    for warning in warnings:
        print(f"msgfusion: warning: {warning}", file=sys.stderr)
    if out is None:
        sys.stdout.write(text)
        return 0
    write_text(out, text, overwrite=args.overwrite)
    failed = sum(1 for line in text.splitlines()[1:] if ",failed," in line)
    print(f"wrote {out} ({text.count(chr(10)) - 1} subjects"
          + (f", {failed} marked failed: their files cannot be read" if failed else "") + ")",
          file=sys.stderr)
    return 0


def add_commands(command: CommandAdder) -> None:
    p = command("cohort", None, "fuse, write and score every subject of a study on a Dask "
                                "cluster (local, or any scheduler address)")
    sub = p.add_subparsers(dest="cohort_command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a manifest: one subject per row", description=(
        "Fuse, write and score every subject of MANIFEST on Dask: a local cluster of --workers "
        "processes, or the cluster at --scheduler. Rows are 2-D slices (PNG, JPEG, TIFF, BMP) or "
        "volumes (NIfTI, DICOM series, MetaImage, NRRD; scored on the central axial slice). "
        "A task is a batch of subjects (--batch-size slice pairs, or one volume pair), written "
        "by the worker. Fused results go to OUT/fused/<id>.png or <id>.nii.gz (or, for a "
        "manifest made from a BIDS dataset, a BIDS derivatives dataset in OUT), with --register "
        "the transform (<id>.tfm) and QA figure (<id>_qa.png) beside them; the results table "
        "(one row per subject: status, reason, timings, metrics) to OUT/results.csv and "
        "OUT/results.parquet. A re-run skips subjects whose outputs and fingerprint (method, "
        "weights, options, inputs) are unchanged. Exit code 1 when a subject failed (its "
        "one-line reason is in the table and the summary)."))
    r.set_defaults(handler=cmd_cohort_run)
    r.add_argument("manifest", metavar="MANIFEST.csv",
                   help="CSV with columns id, mr, func, modality and optional per-row method, "
                        "color; relative paths are relative to the manifest's folder")
    r.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    add_cluster_options(r, "local cluster of N single-threaded worker processes (default: one "
                           "per CPU core)",
                        "an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (SLURM via "
                        "dask-jobqueue, Kubernetes, a cloud service)")
    r.add_argument("--method", default=DEFAULT_METHOD,
                   help=f"fusion method of rows without one (default: {DEFAULT_METHOD}); a "
                        "manifest's method and color columns override --method and --color")
    add_color_option(r)
    r.add_argument("--register", action="store_true",
                   help="register each functional image onto its MR before fusing (2-D: "
                        "similarity, volumes: rigid; see `msgfusion register`); the transform "
                        "and the QA figure go beside the fused output")
    r.add_argument("--metrics", default="paper", choices=("paper", "all", "none"),
                   help="metrics per subject (default: paper)")
    r.add_argument("--batch-size", type=int, metavar="N",
                   help="slice pairs per Dask task (default: four tasks per worker, at most "
                        "32 pairs each); volume pairs go one per task")
    r.add_argument("--retries", type=int, default=3,
                   help="times a task is retried when its worker dies or it crashes (default 3)")

    m = sub.add_parser("make-manifest", help="write a manifest for a folder layout",
                       description="Write a manifest CSV for DIR: a folder of pairs (MRI/ beside "
                                   "CT/, PET/ or SPECT/; images, or volumes: NIfTI, MetaImage, "
                                   "NRRD, DICOM folders), a tree of them (the AANLIB layout), or "
                                   "a BIDS dataset (read with pybids: anat T1w or T2w with pet, "
                                   "and *_ct or *_spect images, sessions included; the run "
                                   "writes a BIDS derivatives dataset). Subjects whose files "
                                   "cannot be read are rows marked failed with their reason "
                                   "(--no-keep-going: stop instead).")
    m.set_defaults(handler=cmd_make_manifest)
    m.add_argument("dir", metavar="DIR")
    m.add_argument("-o", "--output", metavar="FILE",
                   help="the manifest file (paths relative to its folder); default: standard "
                        "output (absolute paths)")
    m.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    m.add_argument("--keep-going", action=argparse.BooleanOptionalAction, default=True,
                   help="record unreadable subjects as failed rows and write the rest "
                        "(default); --no-keep-going stops at the first one")
