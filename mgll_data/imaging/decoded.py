"""What every reader hands to the renderer, and the one way readers reject an input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from mgll_data.imaging.display import GrayTransform
from mgll_data.records import StageError

STAGE = "imaging"
# The most pixel data one decode may materialise. Pillow refuses images over 2 x MAX_IMAGE_PIXELS
# (178,956,970 px) as decompression bombs, which for 8-bit RGB is this many bytes; the DICOM and ITK
# readers get the same ceiling in bytes, since a 16-bit frame costs twice an 8-bit one. The largest
# real radiographs (a 43 cm film digitised at 50 um: 8600 x 7000 x 16 bit) decode to about 115 MiB;
# rendering then holds about twice the decoded size.
MAX_DECODED_BYTES = 512 * 1024 * 1024
TOO_MANY_PIXELS = "too-many-pixels"


def reject(reason: str, message: str) -> NoReturn:
    """Raise the imaging stage's reject; `message` is stored in the shareable rejects table, so it must
    never carry a path, a header value or report text."""
    raise StageError(STAGE, reason, message)


@dataclass
class Decoded:
    """One 2-D picture out of a file: grey stored values plus how to display them, or colour pixels.

    `pixels` is (H, W) for grey (stored values, before any LUT) or (H, W, 3) for colour. `frames` is how
    many frames/slices the source holds and `frame_index` which one was taken (the middle one).
    """

    pixels: np.ndarray
    color: bool
    source_format: str
    decoder: str
    transform: GrayTransform | None = None
    color_bits: int | None = None
    photometric_interpretation: str | None = None
    bits_stored: int | None = None
    header: Any = None
    frames: int = 1
    frame_index: int = 0
    original_height: int = 0
    original_width: int = 0


def check_decoded_size(
    height: int, width: int, samples: int = 1, bytes_per_sample: int = 1, frames: int = 1
) -> None:
    """Reject, before any decoding, an image whose pixels would take more than MAX_DECODED_BYTES.

    The sizes come from the file's header, so a 20 MB compressed file that claims 25000 x 25000 pixels
    (3 GB of worker memory once decoded) costs nothing. `frames` counts the frames or slices the reader
    materialises together (1 for readers that decode only the middle one).
    """
    size = max(height, 0) * max(width, 0) * max(samples, 1) * max(bytes_per_sample, 1) * max(frames, 1)
    if size > MAX_DECODED_BYTES:
        shape = f"{width} x {height}" + (f" x {frames} frames" if frames > 1 else "")
        reject(
            TOO_MANY_PIXELS,
            f"image has too many pixels to decode safely ({shape}: {size / 2**20:.0f} MiB decoded, "
            f"limit {MAX_DECODED_BYTES // 2**20} MiB)",
        )


def middle_index(count: int) -> int:
    """The frame/slice a multi-frame file or volume contributes: the middle one (count // 2)."""
    return max(int(count), 1) // 2
