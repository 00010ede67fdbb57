"""What every reader hands to the renderer, and the one way readers reject an input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from mgll_data.imaging.display import GrayTransform
from mgll_data.records import StageError

STAGE = "imaging"


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


def middle_index(count: int) -> int:
    """The frame/slice a multi-frame file or volume contributes: the middle one (count // 2)."""
    return max(int(count), 1) // 2
