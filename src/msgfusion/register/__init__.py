"""Registration: the CT/PET/SPECT image moved onto the MR (SimpleITK), transforms, QA figures.

The MR is always the fixed image. :func:`register_images` (2-D arrays) and
:func:`register_volumes` (:class:`~msgfusion.volume.Volume`) return a
:class:`RegistrationResult`; :func:`resample` moves the functional image onto the MR's grid;
:func:`write_transform`/:func:`read_transform` keep transforms in ITK's ``.tfm`` format;
:func:`qa_figure` draws the checkerboard and edge overlays before and after. A result the
failure detector doubts raises :class:`~msgfusion.errors.RegistrationDoubtful` unless
``accept_doubtful=True``; outside the moved image's field of view there is no signal
(:func:`coverage`).
"""

from msgfusion.register.api import (
    coverage,
    register_images,
    register_pair,
    register_volumes,
    resample,
)
from msgfusion.register.engine import (
    Doubt,
    RegistrationResult,
    RegistrationSettings,
    register,
)
from msgfusion.register.qa import qa_figure
from msgfusion.register.transforms import read_transform, write_transform

__all__ = [
    "Doubt",
    "RegistrationResult",
    "RegistrationSettings",
    "coverage",
    "qa_figure",
    "read_transform",
    "register",
    "register_images",
    "register_pair",
    "register_volumes",
    "resample",
    "write_transform",
]
