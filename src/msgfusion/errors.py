"""One exception type per kind of user error.

The CLI catches :class:`MsgFusionError` and prints its message as one line; every message names
the file (or method, or modality) and the problem.
"""


class MsgFusionError(Exception):
    """Base class of every error a user can cause with bad input."""


class ImageReadError(MsgFusionError):
    """A file is missing, unreadable, corrupt or not an image."""


class ShapeMismatchError(MsgFusionError):
    """Two images that must be fused together differ in size."""


class UnknownMethodError(MsgFusionError):
    """No fusion method is registered under the requested name."""


class UnknownModalityError(MsgFusionError):
    """The modality is not one of CT, PET, SPECT."""


class OutputExistsError(MsgFusionError):
    """Writing would overwrite an existing file and overwriting was not asked for."""


class DatasetError(MsgFusionError):
    """A folder of pairs is malformed (missing partner file, unknown layout)."""


class UnknownMetricError(MsgFusionError, ValueError):
    """No metric is registered under the requested name."""


class WeightsError(MsgFusionError):
    """A weights file is missing, unreadable, not a MsgFusion weights file, or has no network
    for the pairs' modality."""


class MsgFusionWarning(UserWarning):
    """Input that is used, but not as given (a colour MR made grey, a colour CT made grey, a
    modality that had to be assumed). The CLI prints it as ``msgfusion: warning: ...``."""
