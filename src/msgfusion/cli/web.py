"""Commands of the web page and the reader study: ``serve`` and ``study create|invite|results``.

The web libraries (FastAPI, uvicorn, statsmodels) are imported inside the handlers, so that
``msgfusion --help`` stays fast and works without the ``web`` extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from msgfusion.cli.common import CommandAdder, non_negative_int, positive_float, positive_int
from msgfusion.io.color import COLOR_MODES, DEFAULT_COLOR_MODE
from msgfusion.web import WEB_MAX_PIXELS

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def _store(args: argparse.Namespace):  # noqa: ANN202 - StudyStore, imported lazily
    from msgfusion.web.study import StudyStore

    return StudyStore(_data_dir(args))


def _data_dir(args: argparse.Namespace) -> Path:
    from msgfusion.web import default_data_dir

    return Path(args.data_dir) if args.data_dir else default_data_dir()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from msgfusion.web.app import create_app
    from msgfusion.web.security import log_config

    data_dir = _data_dir(args)
    app = create_app(data_dir, max_upload_mb=args.max_upload_mb,
                     max_pixels=args.max_pixels or WEB_MAX_PIXELS, study_only=args.study_only,
                     fusion_workers=args.fusion_workers, fusion_queue=args.fusion_queue,
                     fusion_timeout=args.fusion_timeout, max_volume_mb=args.max_volume_mb,
                     max_voxels=args.max_voxels, volume_jobs_running=args.volume_jobs)
    what = "the studies" if args.study_only else "the fusion page, the volume page and the studies"
    print(f"msgfusion: serving {what} of {data_dir} at http://{args.host}:{args.port}/",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                log_config=log_config(args.log_level))
    return 0


def cmd_study_usage(args: argparse.Namespace) -> int:
    """``msgfusion study`` without a subcommand: its help, exit code 2."""
    args.study_parser.print_help()
    return 2


def cmd_study_create(args: argparse.Namespace) -> int:
    store = _store(args)
    study = store.create_study(args.name, args.pairs, args.methods, cases=args.cases,
                               seed=args.seed, color=args.color,
                               progress=lambda line: print(line, flush=True))
    n = len(store.case_names(study))
    print(f"created study {study.name!r}: {n} {study.modality}-MRI cases x "
          f"{len(study.methods)} methods ({', '.join(study.methods)}), colour {study.color}, "
          f"in {store.data_dir}")
    print(f"admin page (keep it private): {args.base_url.rstrip('/')}/admin/{study.admin_token}")
    print(f"next: msgfusion study invite {study.name} --raters K")
    return 0


def cmd_study_invite(args: argparse.Namespace) -> int:
    store = _store(args)
    study = store.get_study(args.name)
    for rater in store.add_raters(study, args.raters):
        print(f"rater {rater.number}: {args.base_url.rstrip('/')}/r/{rater.token}")
    return 0


def cmd_study_close(args: argparse.Namespace) -> int:
    store = _store(args)
    study = store.set_closed(store.get_study(args.name), True)
    print(f"closed study {study.name!r} at {study.closed_at}: no more answers are taken "
          f"(`msgfusion study reopen {study.name}` takes them again)")
    return 0


def cmd_study_reopen(args: argparse.Namespace) -> int:
    store = _store(args)
    study = store.set_closed(store.get_study(args.name), False)
    print(f"reopened study {study.name!r}: raters can answer and change their answers again")
    return 0


def cmd_study_results(args: argparse.Namespace) -> int:
    from msgfusion.errors import OutputExistsError
    from msgfusion.web.report import RESULT_FILES, format_text, study_results, write_results

    store = _store(args)
    study = store.get_study(args.name)
    out = Path(args.output) if args.output else study.folder / "results"
    if args.output and not args.overwrite:  # the study's own results folder is always refreshed
        for name in RESULT_FILES:
            if (out / name).exists():
                raise OutputExistsError(f"{out / name}: already exists (use --overwrite to "
                                        "replace it)")
    res = study_results(store, study)
    print(format_text(res), end="")
    for path in write_results(store, study, out, res):
        print(f"wrote {path}")
    return 0


def add_commands(command: CommandAdder) -> None:
    def data_dir_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", metavar="DIR",
                       help="the folder holding the studies (default: $XDG_DATA_HOME/msgfusion, "
                            "i.e. ~/.local/share/msgfusion); the same for serve and study")

    def base_url_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--base-url", default=DEFAULT_BASE_URL,
                       help=f"the address raters reach the server at (default {DEFAULT_BASE_URL})")

    p = command("serve", cmd_serve, "serve the fusion page and the reader studies in a browser",
                max_pixels_help="largest image the fusion page accepts, in pixels, judged from "
                                f"its header before decoding (default {WEB_MAX_PIXELS:,} = 2048 x "
                                "2048)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, default=20.0,
                   help="largest uploaded image file in MB (default 20)")
    p.add_argument("--study-only", action="store_true",
                   help="serve the reader studies only: no fusion or volume page, no /api/fuse "
                        "(recommended while a study runs; see docs/web.md)")
    p.add_argument("--fusion-workers", type=positive_int, default=1, metavar="N",
                   help="fusions that run at once (default 1)")
    p.add_argument("--fusion-queue", type=non_negative_int, default=4, metavar="N",
                   help="fusion requests that may wait for a turn; more are refused with 503 "
                        "'busy' (default 4)")
    p.add_argument("--fusion-timeout", type=positive_float, default=60.0, metavar="S",
                   help="seconds a fusion request may take, waiting included, checked before "
                        "each method; past it the answer is 503 (default 60)")
    p.add_argument("--max-volume-mb", type=float, default=200.0,
                   help="largest uploaded volume in MB: a file, a zip or the files of a DICOM "
                        "series (default 200)")
    p.add_argument("--max-voxels", type=int, default=32 * 2**20,
                   help="most voxels of an uploaded volume (default 33554432, e.g. 512 x 512 x 128)")
    p.add_argument("--volume-jobs", type=int, default=1, metavar="N",
                   help="volume jobs run at once (default 1); two more wait, beyond that the "
                        "server answers busy")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info"),
                   help="server log level (default info)")
    data_dir_option(p)

    study = command("study", cmd_study_usage,
                    "blinded reader studies: create, invite raters, analyse the answers")
    sub = study.add_subparsers(dest="study_command", metavar="STUDY_COMMAND")
    study.set_defaults(study_parser=study)

    p = sub.add_parser("create", help="create a study: draw cases and precompute every fused "
                                      "image", description="Draw cases from a folder of pairs "
                       "and fuse each with every method (shared colour path); images are "
                       "stored blinded (uniform PNG, no metadata).")
    p.set_defaults(handler=cmd_study_create)
    p.add_argument("name", metavar="NAME", help="study name (letters, digits, - and _)")
    p.add_argument("--pairs", required=True, metavar="DIR",
                   help="folder of pairs (MRI/ beside CT/, PET/ or SPECT/), e.g. "
                        "../shared/data/aanlib/PET-MRI/test")
    p.add_argument("--methods", required=True, nargs="+", metavar="METHOD",
                   help="the methods to compare (at least two; `msgfusion methods` lists them)")
    p.add_argument("--cases", type=int, help="how many pairs to draw (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    p.add_argument("--color", default=DEFAULT_COLOR_MODE, choices=COLOR_MODES,
                   help=f"colour restoration of the fused images (default {DEFAULT_COLOR_MODE})")
    base_url_option(p)
    data_dir_option(p)

    p = sub.add_parser("invite", help="add raters and print one private link per rater")
    p.set_defaults(handler=cmd_study_invite)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--raters", type=int, required=True, metavar="K", help="how many raters")
    base_url_option(p)
    data_dir_option(p)

    p = sub.add_parser("close", help="close a study: no more answers are taken or changed")
    p.set_defaults(handler=cmd_study_close)
    p.add_argument("name", metavar="NAME")
    data_dir_option(p)

    p = sub.add_parser("reopen", help="reopen a closed study: answers are taken again")
    p.set_defaults(handler=cmd_study_reopen)
    p.add_argument("name", metavar="NAME")
    data_dir_option(p)

    p = sub.add_parser("results", help="print the study's statistics and write CSV + figure")
    p.set_defaults(handler=cmd_study_results)
    p.add_argument("name", metavar="NAME")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="folder for answers.csv, results.csv, results.png "
                        "(default: the study's folder/results, refreshed every time)")
    p.add_argument("--overwrite", action="store_true", help="replace those files in -o DIR")
    data_dir_option(p)
