"""msgfusion: multimodal brain image fusion (MR + CT/PET/SPECT) built around MsgFusion.

Wen et al., "MsgFusion: Medical Semantic Guided Two-Branch Network for Multimodal Brain Image
Fusion", IEEE Transactions on Multimedia 26:944-957, 2024.
"""

from msgfusion.api import FusedVolume, fuse, fuse_intensity, fuse_volume, load_volume, make_pair
from msgfusion.io.color import restore_color
from msgfusion.io.images import read_image, write_image
from msgfusion.methods.registry import get_method, list_methods
from msgfusion.io.volumes import write_volume
from msgfusion.pair import FusionPair, load_pair
from msgfusion.volume import Volume

__version__ = "0.1.0"
__all__ = [
    "FusedVolume",
    "FusionPair",
    "Volume",
    "fuse",
    "fuse_intensity",
    "fuse_volume",
    "get_method",
    "list_methods",
    "load_pair",
    "load_volume",
    "make_pair",
    "read_image",
    "restore_color",
    "write_image",
    "write_volume",
]
