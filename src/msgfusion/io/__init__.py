"""Image input/output and colour handling."""

from msgfusion.io.color import luminance, restore_color, v_prime
from msgfusion.io.images import read_image, write_image

__all__ = ["luminance", "read_image", "restore_color", "v_prime", "write_image"]
