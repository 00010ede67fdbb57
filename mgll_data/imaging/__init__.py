"""The imaging stage: any medical image file -> a resized, windowed, encoded 8-bit PNG/JPEG.

`render_file(path, settings)` is the stage; the pieces (readers per format, the DICOM grey-level chain,
resize/encode) are exported for tests, benchmarks and notebooks.
"""

from mgll_data.imaging.decoded import Decoded
from mgll_data.imaging.display import GrayTransform, Lut, Window, apply_window, to_display, to_uint8
from mgll_data.imaging.encode import encode, resize_long_side, target_size
from mgll_data.imaging.render import RenderedImage, decode_file, display_pixels, file_sha256, render_file

__all__ = [
    "Decoded",
    "GrayTransform",
    "Lut",
    "RenderedImage",
    "Window",
    "apply_window",
    "decode_file",
    "display_pixels",
    "encode",
    "file_sha256",
    "render_file",
    "resize_long_side",
    "target_size",
    "to_display",
    "to_uint8",
]
