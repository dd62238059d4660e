"""The ``pacs`` commands: list a DICOMweb server's studies and series, fuse a study's series
and store the result back as a new series of the study (:mod:`msgfusion.pacs`)."""

from __future__ import annotations

import argparse

from msgfusion.cli.common import (CommandAdder, add_color_option, non_negative_int,
                                  positive_float)
from msgfusion.cli.registration import add_registration_options
from msgfusion.methods.registry import DEFAULT_METHOD


def _client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from msgfusion.errors import MsgFusionError

    try:
        from msgfusion.pacs import PacsClient
    except ImportError as exc:
        raise MsgFusionError(f"the PACS commands need dicomweb-client ({exc.name} is missing): "
                             "pip install 'msgfusion[pacs]'") from None
    return PacsClient(args.url, timeout=args.timeout, retries=args.retries)


def cmd_pacs_list(args: argparse.Namespace) -> int:
    client = _client(args)
    studies = [client.study(args.study)] if args.study else client.studies()
    if not studies:
        print(f"no studies on {client.url}")
    for study in studies:
        print(f"study {study.uid}  patient {study.patient_id or '-'} ({study.patient_name or '-'})"
              f"  {study.date or '-'}  {study.description or ''}".rstrip())
        for s in client.series(study.uid):
            print(f"  series {s.uid}  {s.modality or '?':<3}  {s.images:>4} images  "
                  f"{s.description}".rstrip())
    return 0


def cmd_pacs_fuse(args: argparse.Namespace) -> int:
    from msgfusion.cli.registration import settings_from_args
    from msgfusion.pacs import fuse_study

    client = _client(args)
    stored = fuse_study(client, args.study, args.mr, args.func, args.register, args.method,
                        args.color, settings_from_args(args, two_d=False), args.type or "rigid",
                        args.accept_doubtful, say=print)
    print(f"stored {stored.images} images of the fused {stored.modality}-MRI series in study "
          f"{args.study} on {client.url}")
    print(stored.series_uid)
    return 0


def _connection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True,
                   help="the DICOMweb service root, e.g. https://pacs.example.org/dicom-web; "
                        "credentials from MSGFUSION_PACS_TOKEN (bearer) or MSGFUSION_PACS_USER "
                        "and MSGFUSION_PACS_PASSWORD (basic), never on the command line; TLS "
                        "verified (a CA bundle through REQUESTS_CA_BUNDLE)")
    p.add_argument("--timeout", type=positive_float, default=30.0, metavar="SECONDS",
                   help="seconds to wait for the server to connect or send (default 30)")
    p.add_argument("--retries", type=non_negative_int, default=3, metavar="N",
                   help="retries of a failed connection or a busy answer (default 3)")


def add_commands(command: CommandAdder) -> None:
    p = command("pacs", None, "find studies on a PACS over DICOMweb, fuse a study's MR with its "
                              "CT/PET/SPECT series and store the result as a new series")
    sub = p.add_subparsers(dest="pacs_command", required=True, metavar="COMMAND")
    q = sub.add_parser("list", help="the studies (or one study) and their series: modality, "
                                    "description, number of images")
    q.set_defaults(handler=cmd_pacs_list, parser=q)
    _connection_options(q)
    q.add_argument("--study", metavar="UID", help="list this study only")
    q = sub.add_parser("fuse", help="fuse the MR and CT/PET/SPECT series of a study (fetched "
                                    "with WADO-RS) and store the fused volume as one new series "
                                    "of the study (STOW-RS); prints its SeriesInstanceUID last")
    q.set_defaults(handler=cmd_pacs_fuse, parser=q)
    _connection_options(q)
    q.add_argument("--study", required=True, metavar="UID", help="the StudyInstanceUID")
    q.add_argument("--mr", metavar="SERIES",
                   help="the MR series (SeriesInstanceUID); needed when the study has several")
    q.add_argument("--func", metavar="SERIES",
                   help="the CT, PET (PT) or SPECT (NM) series; needed when the study has "
                        "several")
    q.add_argument("--register", action="store_true",
                   help="register the series onto the MR first (rigid); done anyway when their "
                        "frames of reference differ. A doubtful registration stores nothing "
                        "(exit 3) unless --accept-doubtful")
    add_registration_options(q)
    q.add_argument("--method", default=DEFAULT_METHOD,
                   help=f"fusion method (default: {DEFAULT_METHOD}; list: `msgfusion methods`)")
    add_color_option(q)
