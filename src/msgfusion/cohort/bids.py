"""BIDS in and out: manifest rows from a BIDS dataset (pybids), a BIDS derivatives dataset out.

In: every functional image of a subject's session (``pet`` — the BIDS PET datatype — and, where
the dataset has them, images with the suffix ``ct`` or ``spect``, which the BIDS specification
does not define yet, in any datatype folder) is one row, paired with the session's
``anat/*_T1w`` image, or its ``*_T2w`` image when it has no T1w. Sessions are optional.

Out: the fused image of a row goes to
``sub-<label>/[ses-<label>/]<datatype>/<functional entities>_desc-fused_<suffix>.nii.gz`` of the
output folder, with a JSON sidecar (method, the method's fingerprint of code and weights, colour,
registration: :func:`msgfusion.cohort.tasks.sidecar`); the folder gets a
``dataset_description.json`` (``DatasetType: derivative``, ``GeneratedBy`` msgfusion and its
version) and a ``.bidsignore`` for the cohort's own files (records, results table, transforms
and QA figures).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgfusion
from msgfusion.cohort.manifest import Row
from msgfusion.errors import DatasetError
from msgfusion.io.files import write_text

#: Functional suffixes -> modality.
FUNCTIONAL_SUFFIXES = {"pet": "PET", "ct": "CT", "spect": "SPECT"}
#: MR suffixes, preferred first.
MR_SUFFIXES = ("T1w", "T2w")
BIDS_VERSION = "1.10.0"
_OUTPUT = re.compile(r"sub-[A-Za-z0-9]+/(ses-[A-Za-z0-9]+/)?[A-Za-z]+/"
                     r"sub-[A-Za-z0-9]+_[^/]*desc-fused_[A-Za-z0-9]+\.nii\.gz")
#: The cohort's own files, for the BIDS validator (folder names without a slash: it skips the
#: folder and its files).
_IGNORED = ("records", "fused", "results.*", ".results.*", "*.tfm", "*_qa.png")


def is_bids_dataset(root: Path) -> bool:
    """A folder with ``sub-*`` folders (a ``dataset_description.json`` is not required)."""
    return any(p.is_dir() for p in root.glob("sub-*"))


def _header_problem(path: Path) -> str:
    """Why the image's header cannot be read ('' when it can): checked when the manifest is
    made, so that an unreadable scan is a failed row, not a surprise in the run."""
    import nibabel as nib

    try:
        nib.load(path).header  # noqa: B018 - reads the header only
    except Exception as exc:  # nibabel raises many types for a damaged file
        return f"{path}: cannot read the NIfTI header ({type(exc).__name__}: {exc})"
    return ""


def output_path(entities: Mapping[str, Any], filename: str, datatype: str) -> str:
    """The derivative's path for a functional image: its entities with ``desc-fused``."""
    parts = filename.split(".")[0].split("_")
    parts = [p for p in parts[:-1] if not p.startswith("desc-")] + ["desc-fused", parts[-1]]
    folder = f"sub-{entities['subject']}"
    if entities.get("session"):
        folder += f"/ses-{entities['session']}"
    return f"{folder}/{datatype}/{'_'.join(parts)}.nii.gz"


def bids_rows(root: Path, keep_going: bool = True) -> tuple[list[Row], list[str]]:
    """Rows (id, MR, functional, modality, options) of a BIDS dataset and warnings about
    sessions with nothing to fuse. With ``keep_going``, a session whose MR is ambiguous or an
    image whose header is unreadable becomes a row with ``status`` failed and its reason;
    without, it is a :class:`DatasetError`."""
    from bids import BIDSLayout
    from bids.layout import Query

    try:
        layout = BIDSLayout(root, validate=False)
    except Exception as exc:  # pybids raises its own types for a broken dataset
        raise DatasetError(f"{root}: not a readable BIDS dataset ({type(exc).__name__}: "
                           f"{exc})") from None
    rows: list[Row] = []
    warnings: list[str] = []
    volumes = [".nii", ".nii.gz"]
    for subject in sorted(layout.get_subjects()):
        for session in sorted(layout.get_sessions(subject=subject)) or [Query.NONE]:
            where = dict(subject=subject, session=session, extension=volumes)
            label = f"sub-{subject}" + (f"/ses-{session}" if isinstance(session, str) else "")
            funcs = layout.get(suffix=list(FUNCTIONAL_SUFFIXES), **where)
            if not funcs:
                warnings.append(f"{root / label}: skipped, no pet/*_pet, *_ct or *_spect image "
                                "to fuse")
                continue
            mrs = {s: layout.get(suffix=s, datatype="anat", **where) for s in MR_SUFFIXES}
            mr_files = next((found for found in mrs.values() if found), [])
            for func in funcs:
                path = Path(func.path)
                sid = path.name.split(".")[0]
                modality = FUNCTIONAL_SUFFIXES[func.entities["suffix"]]
                options = {"output": output_path(func.entities, path.name, path.parent.name)}
                mr = Path(mr_files[0].path) if len(mr_files) == 1 else None
                if not mr_files:
                    problem = (f"{root / label}: no anat/*_T1w or *_T2w image to fuse "
                               f"{path.name} with")
                elif len(mr_files) > 1:
                    problem = (f"{root / label}: {len(mr_files)} MR images "
                               f"({', '.join(Path(f.path).name for f in mr_files)}); which one "
                               f"goes with {path.name} is not clear")
                else:
                    problem = _header_problem(mr) or _header_problem(path)
                if problem:
                    if not keep_going:
                        raise DatasetError(problem)
                    options |= {"status": "failed", "reason": problem}
                rows.append((sid, mr, path, modality, options))
    if not rows:
        raise DatasetError(f"{root}: no subject with an anat/*_T1w or *_T2w image and a pet/*_pet, "
                           "*_ct or *_spect image")
    return rows, warnings


def is_bids_output(options: Mapping[str, str]) -> bool:
    """Whether a manifest row's ``output`` is a path of a BIDS derivatives dataset."""
    return bool(_OUTPUT.fullmatch(options.get("output", "")))


def write_dataset_description(out: Path, manifest: Path) -> None:
    """``dataset_description.json`` of the derivatives dataset, and its ``.bidsignore``."""
    description = {
        "Name": f"msgfusion fusion of {Path(manifest).name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "msgfusion", "Version": msgfusion.__version__,
                         "Description": "MR + CT/PET/SPECT fusion, `msgfusion cohort run "
                                        f"{Path(manifest).name}`"}],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "dataset_description.json", json.dumps(description, indent=2) + "\n",
               overwrite=True)
    write_text(out / ".bidsignore", "\n".join(_IGNORED) + "\n", overwrite=True)

