"""Registration: the CT/PET/SPECT image moved onto the MR (SimpleITK), transforms, QA figures.

The MR is always the fixed image. :func:`register_images` (2-D arrays) and
:func:`register_volumes` (:class:`~msgfusion.volume.Volume`) return a
:class:`RegistrationResult`; :func:`resample` moves the functional image onto the MR's grid;
:func:`write_transform`/:func:`read_transform` keep transforms in ITK's ``.tfm`` format;
:func:`qa_figure` draws the checkerboard and edge overlays before and after.
"""

from msgfusion.register.api import (
    register_images,
    register_pair,
    register_volumes,
    resample,
)
from msgfusion.register.engine import RegistrationResult, RegistrationSettings, register
from msgfusion.register.qa import qa_figure
from msgfusion.register.transforms import read_transform, write_transform

__all__ = [
    "RegistrationResult",
    "RegistrationSettings",
    "qa_figure",
    "read_transform",
    "register",
    "register_images",
    "register_pair",
    "register_volumes",
    "resample",
    "write_transform",
]
