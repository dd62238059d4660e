"""One exception type per kind of user error.

The CLI catches :class:`MsgFusionError` and prints its message as one line; every message names
the file (or method, or modality) and the problem. Where Python has an idiomatic built-in
category (a bad value, a wrong type, no memory), the error derives from it too, so that
``except ValueError`` keeps working for API users.
"""


class MsgFusionError(Exception):
    """Base class of every error a user can cause with bad input."""


class ImageReadError(MsgFusionError):
    """A file is missing, unreadable, corrupt, not a regular file or not an image."""


class ImageTooLargeError(ImageReadError):
    """An image's header claims more pixels than the pixel limit (a decompression bomb guard)."""


class InvalidImageError(MsgFusionError, ValueError):
    """An image's values cannot be fused or evaluated: empty, NaN/inf, outside [0, 1], or too
    small for a method or metric."""


class ImageTypeError(MsgFusionError, TypeError):
    """An image argument has the wrong type (not an array or a path, or a non-numeric array)."""


class ShapeMismatchError(MsgFusionError, ValueError):
    """Two images that must be fused together differ in size."""


class UnknownMethodError(MsgFusionError, ValueError):
    """No fusion method is registered under the requested name."""


class UnknownModalityError(MsgFusionError, ValueError):
    """The modality is not one of CT, PET, SPECT."""


class OutputExistsError(MsgFusionError):
    """Writing would overwrite an existing file and overwriting was not asked for."""


class OutputWriteError(MsgFusionError, OSError):
    """An output cannot be written: its folder is a file, permission denied, read-only or full
    file system. Nothing is left half-written."""


class OutOfMemoryError(MsgFusionError, MemoryError):
    """A method ran out of memory on a batch (no output is written)."""


class DatasetError(MsgFusionError):
    """A folder of pairs is malformed (missing partner file, unknown layout)."""


class UnknownMetricError(MsgFusionError, ValueError):
    """No metric is registered under the requested name."""


class WeightsError(MsgFusionError):
    """A weights file is missing, unreadable, not a MsgFusion weights file, or has no network
    for the pairs' modality."""


class RegistrationError(MsgFusionError):
    """Two images cannot be registered: 2-D with 3-D, a constant image, images that do not
    overlap, or a registration that leaves no overlap."""


class RegistrationDoubtful(MsgFusionError):
    """A registration ran but its failure detector doubts the result (a wrong optimum looks as
    plausible as the right one once fused). ``doubts`` says why and what to try (each a
    :class:`msgfusion.register.engine.Doubt`), ``result`` is the
    :class:`~msgfusion.register.RegistrationResult` (its transform, and what the QA figure
    needs). Pass ``accept_doubtful=True`` to get the result instead."""

    def __init__(self, doubts: list, result: object, note: str = "") -> None:
        self.doubts = list(doubts)
        self.result = result
        self.note = note  # e.g. where the QA figure was written
        super().__init__("registration doubtful: " + "; ".join(
            d.render("python") for d in self.doubts)
            + "; or pass accept_doubtful=True to use it anyway")


class ClusterError(MsgFusionError):
    """A Dask cluster cannot be started or reached (bad scheduler address, no workers)."""


class SpaceMismatchError(MsgFusionError):
    """Two volumes to be fused do not share physical space (disjoint extents or different frames
    of reference); they need registering first."""


class StudyError(MsgFusionError):
    """A reader study is unknown, already exists, or was asked for something it cannot do."""


class StudyClosedError(StudyError):
    """An answer was sent to a study that is closed (``msgfusion study close``)."""


class MsgFusionWarning(UserWarning):
    """Input that is used, but not as given (a colour MR made grey, a colour CT made grey, a
    modality that had to be assumed), or a result that is probably wrong but not certainly (a
    doubtful registration: the message says what to try). The CLI prints it as
    ``msgfusion: warning: ...``."""


class PacsError(MsgFusionError):
    """A PACS cannot be reached, refuses the credentials or a request, or a study lacks the
    series asked for (the message names the server, study or series)."""
