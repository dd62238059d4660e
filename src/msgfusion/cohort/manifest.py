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
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
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
OPTION_COLUMNS = ("method", "color")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Subject:
    """One manifest row: the two scans of a subject, their modality and per-row options."""

    id: str
    mr: Path
    func: Path
    modality: str
    options: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def kind(self) -> str:
        """``volume`` (NIfTI, MetaImage, NRRD, DICOM file or folder) or ``slice`` (PNG etc.)."""
        return input_kind(self.mr)


def input_kind(path: str | os.PathLike) -> str:
    """``volume`` for 3-D formats and folders (DICOM series), ``slice`` for 2-D images."""
    return "volume" if is_volume_path(path) else "slice"


def read_manifest(path: str | os.PathLike) -> list[Subject]:
    """The subjects of a manifest CSV, checked; see the module doc."""
    from msgfusion import check_method

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: manifest not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the manifest ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DatasetError(f"{path}: manifest lacks the column(s) {', '.join(missing)} "
                           f"(needs {', '.join(REQUIRED_COLUMNS)})")
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTION_COLUMNS]
    if unknown:
        raise DatasetError(f"{path}: unknown manifest column(s) {', '.join(unknown)}; per-row "
                           f"options are {', '.join(OPTION_COLUMNS)}")
    subjects: list[Subject] = []
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
        subjects.append(Subject(sid, mr, func, modality, options))
    if not subjects:
        raise DatasetError(f"{path}: the manifest has no subjects")
    return subjects


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _pair_rows(folders: Sequence[PairFolder]) -> list[tuple[str, Path, Path, str]]:
    prefix = len(folders) > 1
    return [(_safe(f"{folder.label}_{files.stem}") if prefix else _safe(files.stem),
             files.mr_path, files.func_path, folder.modality)
            for folder in folders for files in folder.files]


def _nifti(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.glob(pattern)
                  if p.name.endswith((".nii", ".nii.gz")) and not p.name.startswith("."))


def _bids_rows(root: Path) -> tuple[list[tuple[str, Path, Path, str]], list[str]]:
    """Rows of a BIDS-like tree: ``sub-*/[ses-*/]anat/*T1w.nii[.gz]`` with ``pet/*.nii[.gz]``."""
    rows, warnings = [], []
    sessions = sorted({anat.parent for anat in root.glob("sub-*/anat")}
                      | {anat.parent for anat in root.glob("sub-*/ses-*/anat")})
    for session in sessions:
        label = _safe(str(session.relative_to(root)).replace(os.sep, "_"))
        t1 = _nifti(session / "anat", "*T1w.nii*")
        pet = _nifti(session / "pet", "*.nii*")
        if len(t1) != 1 or len(pet) != 1:
            warnings.append(f"{session}: skipped, needs one anat/*T1w.nii[.gz] and one "
                            f"pet/*.nii[.gz] (found {len(t1)} and {len(pet)})")
            continue
        rows.append((label, t1[0], pet[0], "PET"))
    return rows, warnings


def make_manifest(root: str | os.PathLike, relative_to: str | os.PathLike | None = None
                  ) -> tuple[str, list[str]]:
    """A manifest CSV for a folder layout, and warnings about what was left out.

    ``root``: a folder of pairs (``MRI/`` beside ``CT/``, ``PET/`` or ``SPECT/``; images, or
    volumes: NIfTI/MetaImage/NRRD files or DICOM folders), a tree of them (the AANLIB
    ``<pair>/<split>/`` layout: ids get the folder's label as prefix), or a BIDS-like tree of
    volumes (``sub-*/anat/*T1w.nii.gz`` + ``sub-*/pet/*.nii.gz``). Paths are written
    relative to the folder ``relative_to`` (where the manifest will be saved), else absolute.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    warnings: list[str] = []
    if is_volume_pair_folder(root):
        rows = [(_safe(f.name[: len(f.name) - len(volume_suffix(f.name))]), f.mr_path,
                 f.func_path, f.modality) for f in volume_pairs(root)]
    elif is_pair_folder(root) or not any(root.glob("sub-*")):
        rows = _pair_rows(find_pair_folders(root))
    else:
        rows, warnings = _bids_rows(root)
        if not rows:
            raise DatasetError(f"{root}: no subject with anat/*T1w.nii[.gz] and pet/*.nii[.gz]")

    def shown(p: Path) -> str:  # links kept: the manifest names the files of the tree
        return os.path.relpath(p, os.path.abspath(relative_to)) if relative_to \
            else os.path.abspath(p)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(REQUIRED_COLUMNS)
    writer.writerows((sid, shown(mr), shown(func), modality) for sid, mr, func, modality in rows)
    return buf.getvalue(), warnings
