"""Fusion straight from and back to a PACS: pick the MR and the CT/PET/SPECT series of a study,
fetch them, fuse them with the public API (registering first when asked or when their frames of
reference differ), and store the fused volume as one new series of the same study."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from msgfusion.errors import MsgFusionError, PacsError, RegistrationDoubtful
from msgfusion.pacs.client import PacsClient, SeriesInfo

if TYPE_CHECKING:
    from msgfusion import Volume
    from msgfusion.register import RegistrationSettings

#: DICOM Modality of a functional series -> msgfusion's modality.
FUNCTIONAL = {"CT": "CT", "PT": "PET", "NM": "SPECT"}


@dataclass(frozen=True)
class StoredFusion:
    """What :func:`fuse_study` stored: the new series, and what it was made of."""

    series_uid: str
    images: int
    mr: SeriesInfo
    func: SeriesInfo
    modality: str
    registered: bool


def pick_series(client: PacsClient, study: str, series: list[SeriesInfo], chosen: str | None,
                modalities: tuple[str, ...], role: str, option: str) -> SeriesInfo:
    """The series of ``study`` that ``chosen`` names, or the only one of ``modalities``."""
    if chosen is not None:
        for s in series:
            if s.uid == chosen:
                if s.modality not in modalities:
                    raise PacsError(f"series {chosen} of study {study} is {s.modality or '?'}, "
                                    f"not {role}")
                return s
        raise PacsError(f"study {study} on {client.url} has no series {chosen} ({option})")
    fits = [s for s in series if s.modality in modalities]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        listed = "; ".join(map(str, series)) or "none"
        raise PacsError(f"study {study} on {client.url} has no {role} series (its series: "
                        f"{listed})")
    raise PacsError(f"study {study} has {len(fits)} {role} series: "
                    f"{'; '.join(map(str, fits))}; choose one with {option} SERIES")


def fuse_study(client: PacsClient, study: str, mr: str | None = None, func: str | None = None,
               register: bool = False, method: str | None = None, color: str | None = None,
               settings: RegistrationSettings | None = None, kind: str = "rigid",
               accept_doubtful: bool = False,
               say: Callable[[str], object] = lambda _: None) -> StoredFusion:
    """Fuse the MR and the CT/PET/SPECT series of ``study`` and store the result as one new
    series of the study (the MR's frame of reference and geometry, derived, referencing the MR
    slices); nothing is stored when anything before the store fails, including a doubtful
    registration (:class:`~msgfusion.errors.RegistrationDoubtful`, unless ``accept_doubtful``).
    ``mr``/``func``: SeriesInstanceUIDs (default: the only series of the modality);
    ``settings`` and ``kind`` (default rigid): of the registration, done when ``register`` or
    when the frames of reference differ. ``say`` receives one line per step."""
    import pydicom

    import msgfusion
    from msgfusion.register import register_volumes

    if method is not None:  # before anything is fetched
        msgfusion.check_method(method)
    if color is not None:
        msgfusion.check_color(color)
    client.study(study)  # the study exists (else one line naming it)
    series = client.series(study)
    mr_info = pick_series(client, study, series, mr, ("MR",), "MR", "--mr")
    func_info = pick_series(client, study, series, func, tuple(FUNCTIONAL), "CT, PET or SPECT",
                            "--func")
    modality = FUNCTIONAL[func_info.modality]
    mr_volume, func_volume = (_fetch_volume(client, study, s) for s in (mr_info, func_info))
    say(f"fetched MR {mr_info} and {modality} {func_info}")
    frames = (mr_volume.meta.get("frame_of_reference"), func_volume.meta.get("frame_of_reference"))
    transform = None
    registered = register or frames[0] is None or frames[0] != frames[1]
    if registered:
        try:
            result = register_volumes(mr_volume, func_volume, kind, settings,
                                      accept_doubtful=accept_doubtful)
        except RegistrationDoubtful as exc:
            exc.note = (f"{modality} series {func_info.uid} onto MR series {mr_info.uid}; "
                        "nothing was stored")
            raise
        transform = result.transform
        why = "asked" if register else "different frames of reference"
        say(f"registered {modality} onto MR ({why}): {result.summary}")
    options = {k: v for k, v in (("method", method), ("color", color)) if v is not None}
    fused = msgfusion.fuse_volume(mr_volume, func_volume, modality, transform=transform,
                                  **options)
    description = f"msgfusion {modality}-MRI fused ({fused.method})"
    derivation = (f"{description} of MR series {mr_info.uid} and {modality} series "
                  f"{func_info.uid}{' after rigid registration' if registered else ''}")
    with tempfile.TemporaryDirectory(prefix="msgfusion-pacs-") as tmp:
        out = msgfusion.write_volume(Path(tmp) / "fused", fused.picture, source=mr_volume,
                                     description=description, derivation=derivation)
        datasets = [pydicom.dcmread(f) for f in sorted(out.iterdir())]
    new_uid = str(datasets[0].SeriesInstanceUID)
    client.store(study, datasets)
    return StoredFusion(new_uid, len(datasets), mr_info, func_info, modality, registered)


def _fetch_volume(client: PacsClient, study: str, series: SeriesInfo) -> Volume:
    """A series of the PACS read as a volume; what is wrong with it names the series."""
    import msgfusion

    with client.fetched(study, series.uid) as folder:
        try:
            return msgfusion.load_volume(folder)
        except MsgFusionError as exc:
            text = str(exc).replace(f"{folder}{os.sep}", "").replace(str(folder), "")
            text = text.split("; give one file")[0]  # a hint for files on disk, not a PACS
            raise type(exc)(f"series {series.uid} of study {study}: "
                            f"{text.lstrip(': ')}") from None
