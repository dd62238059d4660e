"""msgfusion: multimodal brain image fusion (MR + CT/PET/SPECT) built around MsgFusion.

Wen et al., "MsgFusion: Medical Semantic Guided Two-Branch Network for Multimodal Brain Image
Fusion", IEEE Transactions on Multimedia 26:944-957, 2024.

The public names are imported on first access (PEP 562), so that ``import msgfusion`` and the
command line start without loading numpy, Pillow or torch until a command needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msgfusion.api import (
        DEFAULT_METHOD,
        FusedVolume,
        check_color,
        check_method,
        evaluate,
        fuse,
        fuse_intensity,
        fuse_many,
        fuse_volume,
        list_methods,
        load_volume,
        make_pair,
        method_fingerprint,
    )
    from msgfusion.errors import MsgFusionError
    from msgfusion.folder import FolderResult, fuse_folder
    from msgfusion.io.color import restore_color
    from msgfusion.io.images import read_image, write_image
    from msgfusion.io.volumes import write_volume
    from msgfusion.methods.registry import get_method
    from msgfusion.pair import FusionPair, load_pair
    from msgfusion.volume import Volume

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC = {
    "DEFAULT_METHOD": "msgfusion.api",
    "FolderResult": "msgfusion.folder",
    "FusedVolume": "msgfusion.api",
    "FusionPair": "msgfusion.pair",
    "MsgFusionError": "msgfusion.errors",
    "Volume": "msgfusion.volume",
    "check_color": "msgfusion.api",
    "check_method": "msgfusion.api",
    "evaluate": "msgfusion.api",
    "fuse": "msgfusion.api",
    "fuse_folder": "msgfusion.folder",
    "fuse_intensity": "msgfusion.api",
    "fuse_many": "msgfusion.api",
    "fuse_volume": "msgfusion.api",
    "get_method": "msgfusion.methods.registry",
    "list_methods": "msgfusion.api",
    "load_pair": "msgfusion.pair",
    "load_volume": "msgfusion.api",
    "make_pair": "msgfusion.api",
    "method_fingerprint": "msgfusion.api",
    "read_image": "msgfusion.io.images",
    "restore_color": "msgfusion.io.color",
    "write_image": "msgfusion.io.images",
    "write_volume": "msgfusion.io.volumes",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'msgfusion' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
