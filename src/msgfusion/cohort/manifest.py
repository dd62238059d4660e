"""Cohort manifests: one CSV row per subject, read and checked, or built from a folder layout.

A manifest has the columns ``id, mr, func, modality`` and optionally per-row options
(:data:`OPTION_COLUMNS`: ``method``, ``color``) that override the run's defaults for that row::

    id,mr,func,modality,method
    sub-01,sub-01/anat/sub-01_T1w.nii.gz,sub-01/pet/sub-01_pet.nii.gz,PET,
    25015,PET-MRI/test/MRI/25015.png,PET-MRI/test/PET/25015.png,PET,max

Relative paths are resolved against the manifest's own folder, so a manifest travels with its
data. Ids name the output files, so they must be unique and safe as file names. Every problem
(missing column, duplicate or unsafe id, unknown modality, method or colour) is a
:class:`~msgfusion.errors.DatasetError` naming the file and the row; files themselves are only
opened when the subject is processed, so one unreadable scan fails that subject alone.

Rows that ``cohort make-manifest`` could not pair or read carry ``status`` ``failed`` and their
``reason``: ``cohort run`` records them as failed subjects and fuses the rest. A manifest made
from a BIDS dataset has an ``output`` column: the path of each fused result inside the output
folder, a BIDS derivatives dataset (:mod:`.bids`).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from msgfusion.data.datasets import (
    PairFolder,
    find_pair_folders,
    is_pair_folder,
    is_volume_pair_folder,
    volume_pairs,
)
from msgfusion.errors import DatasetError, MsgFusionError
from msgfusion.io.color import COLOR_MODES, DEFAULT_COLOR_MODE
from msgfusion.io.volumes import is_volume_path, volume_suffix
from msgfusion.pair import check_modality

REQUIRED_COLUMNS = ("id", "mr", "func", "modality")
OPTION_COLUMNS = ("method", "color", "output")
STATUS_COLUMNS = ("status", "reason")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: A manifest row as made from a folder: id, MR, functional, modality, extra columns.
Row = tuple[str, "Path | None", "Path | None", str, dict[str, str]]


@dataclass(frozen=True)
class Subject:
    """One manifest row: the two scans of a subject, their modality and per-row options."""

    id: str
    mr: Path
    func: Path
    modality: str
    options: dict[str, str] = field(default_factory=dict, compare=False)
    failed: str = ""  # the reason, for a row the manifest marks failed

    @property
    def kind(self) -> str:
        """``volume`` (NIfTI, MetaImage, NRRD, DICOM file or folder) or ``slice`` (PNG etc.)."""
        return input_kind(self.mr)


def input_kind(path: str | os.PathLike) -> str:
    """``volume`` for 3-D formats and folders (DICOM series), ``slice`` for 2-D images."""
    return "volume" if is_volume_path(path) else "slice"


def read_manifest(path: str | os.PathLike) -> list[Subject]:
    """The subjects of a manifest CSV, checked; see the module doc."""
    return list(iter_manifest(path))


def iter_manifest(path: str | os.PathLike) -> Iterator[Subject]:
    """The subjects of a manifest CSV, checked, one row at a time (a manifest of a million rows
    is never in memory: only its ids are kept, to refuse a duplicate)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: manifest not found")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            yield from _subjects(path, csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read the manifest ({exc})") from None


def _subjects(path: Path, reader: csv.DictReader) -> Iterator[Subject]:
    from msgfusion import check_method

    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DatasetError(f"{path}: manifest lacks the column(s) {', '.join(missing)} "
                           f"(needs {', '.join(REQUIRED_COLUMNS)})")
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTION_COLUMNS + STATUS_COLUMNS]
    if unknown:
        raise DatasetError(f"{path}: unknown manifest column(s) {', '.join(unknown)}; per-row "
                           f"options are {', '.join(OPTION_COLUMNS)}")
    seen: dict[str, int] = {}
    for line, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"{path} line {line}"
        sid = row["id"]
        if not _SAFE_ID.fullmatch(sid):
            raise DatasetError(f"{where}: id {sid!r} must be letters, digits, '.', '_' or '-' "
                               "(it names the output files)")
        if sid in seen:
            raise DatasetError(f"{where}: id {sid!r} already used on line {seen[sid]}")
        seen[sid] = line
        status = row.get("status", "")
        if status not in ("", "failed"):
            raise DatasetError(f"{where}: status {status!r} must be empty or 'failed'")
        if status == "failed":
            reason = row.get("reason") or "marked failed in the manifest"
            mr, func = (Path(os.path.abspath(path.parent / row[c])) if row[c] else Path()
                        for c in ("mr", "func"))
            yield Subject(sid, mr, func, row["modality"], {}, reason)
            continue
        output = row.get("output", "")
        if output and (os.path.isabs(output) or ".." in Path(output).parts):
            raise DatasetError(f"{where}: output {output!r} must be a path inside the output "
                               "folder")
        for column in ("mr", "func"):
            if not row[column]:
                raise DatasetError(f"{where}: empty {column} path")
        options = {k: row[k] for k in OPTION_COLUMNS if row.get(k)}
        try:
            modality = check_modality(row["modality"])
            if "method" in options:
                check_method(options["method"])
        except MsgFusionError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        if options.get("color", DEFAULT_COLOR_MODE) not in COLOR_MODES:
            raise DatasetError(f"{where}: unknown color {options['color']!r}; choose one of "
                               f"{', '.join(COLOR_MODES)}")
        mr, func = (Path(os.path.abspath(path.parent / row[c])) for c in ("mr", "func"))
        yield Subject(sid, mr, func, modality, options)
    if not seen:
        raise DatasetError(f"{path}: the manifest has no subjects")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _pair_rows(folders: Sequence[PairFolder]) -> list[Row]:
    """Rows of folders of 2-D pairs; a pair whose files fail the header checks is a failed row."""
    prefix = len(folders) > 1
    rows: list[Row] = []
    for folder in folders:
        problems = folder.problems()
        for i, files in enumerate(folder.files):
            sid = _safe(f"{folder.label}_{files.stem}") if prefix else _safe(files.stem)
            failed = {"status": "failed", "reason": problems[i]} if i in problems else {}
            rows.append((sid, files.mr_path, files.func_path, folder.modality, failed))
    return rows


def make_manifest(root: str | os.PathLike, relative_to: str | os.PathLike | None = None,
                  keep_going: bool = True) -> tuple[str, list[str]]:
    """A manifest CSV for a folder layout, and warnings about what was left out.

    ``root``: a folder of pairs (``MRI/`` beside ``CT/``, ``PET/`` or ``SPECT/``; images, or
    volumes: NIfTI/MetaImage/NRRD files or DICOM folders), a tree of them (the AANLIB
    ``<pair>/<split>/`` layout: ids get the folder's label as prefix), or a BIDS dataset
    (:func:`msgfusion.cohort.bids.bids_rows`: rows with the derivative's ``output`` path).
    Paths are written relative to the folder ``relative_to`` (where the manifest will be
    saved), else absolute. With ``keep_going`` (the default) a subject whose files cannot be
    read is a row with ``status`` failed and its ``reason``; without, it stops with a
    :class:`~msgfusion.errors.DatasetError`.
    """
    from msgfusion.cohort.bids import bids_rows, is_bids_dataset

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    warnings: list[str] = []
    if is_volume_pair_folder(root):
        rows: list[Row] = [(_safe(f.name[: len(f.name) - len(volume_suffix(f.name))]),
                            f.mr_path, f.func_path, f.modality, {}) for f in volume_pairs(root)]
    elif is_pair_folder(root) or not is_bids_dataset(root):
        rows = _pair_rows(find_pair_folders(root, check_sizes=not keep_going))
    else:
        rows, warnings = bids_rows(root, keep_going)

    def shown(p: Path | None) -> str:  # links kept: the manifest names the files of the tree
        if p is None:
            return ""
        return os.path.relpath(p, os.path.abspath(relative_to)) if relative_to \
            else os.path.abspath(p)

    extra = [c for c in OPTION_COLUMNS + STATUS_COLUMNS if any(c in r[4] for r in rows)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(REQUIRED_COLUMNS + tuple(extra))
    writer.writerows((sid, shown(mr), shown(func), modality, *(options.get(c, "") for c in extra))
                     for sid, mr, func, modality, options in rows)
    return buf.getvalue(), warnings
