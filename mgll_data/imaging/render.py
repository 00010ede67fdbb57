"""The imaging stage: one image file -> encoded display pixels plus what the later stages need to know.

`render_file` never lets an exception other than `StageError` escape: a build turns each into a reject
row, so a single odd file cannot stop it. Library warnings are silenced while a file is read because
pydicom, GDCM and ITK quote header values and file paths in them, which would put PHI into build logs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mgll_data import filekind
from mgll_data.imaging.decoded import Decoded, reject
from mgll_data.imaging.dicom import read_dicom
from mgll_data.imaging.display import rgb_to_uint8, to_uint8
from mgll_data.imaging.encode import encode, resize_long_side
from mgll_data.imaging.raster import read_raster
from mgll_data.imaging.sniff import HEAD_BYTES, sniff_format
from mgll_data.imaging.volume import read_volume
from mgll_data.pipeline import ImageSettings
from mgll_data.records import StageError


@dataclass(eq=False)
class RenderedImage:
    """An encoded, resized 8-bit image and its provenance.

    `header` is the DICOM dataset WITHOUT pixel data (None for other formats); only deid's allow-list may
    read it. `window_source` says how grey levels were chosen ("window", "voi-lut", "percentile",
    "display-ready", or "color"); `frames`/`frame_index` say which frame of a multi-frame file or volume
    this is (the middle one).
    """

    data: bytes
    format: str
    height: int
    width: int
    channels: int
    original_height: int
    original_width: int
    source_format: str
    photometric_interpretation: str | None
    bits_stored: int | None
    content_sha256: str
    header: Any = None
    decoder: str = ""
    window_source: str = ""
    training_data: bytes | None = None  # the pipeline's optional training copy (image.training_format)
    frames: int = 1
    frame_index: int = 0


def render_file(path: Path, settings: ImageSettings) -> RenderedImage:
    """Decode, window, resize and encode one image file; raises StageError("imaging", reason, message)."""
    path = Path(path)
    try:
        with _quiet_libraries():
            return _render(path, settings)
    except StageError:
        raise
    except MemoryError:
        reject("decode-failed", "ran out of memory while decoding the image")
    except Exception as exc:
        reject("decode-failed", f"unexpected {type(exc).__name__} while decoding the image")


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def decode_file(path: Path, output_size: int = 512) -> tuple[Decoded, str]:
    """(decoded picture, content sha256) for any supported file; raises StageError for bad input."""
    path = Path(path)
    try:
        _require_regular_file(path)
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except FileNotFoundError:
        reject("file-missing", "image file not found")
    except PermissionError:
        reject("file-unreadable", "image file cannot be read (permission denied)")
    except OSError as exc:
        reject("file-unreadable", f"image file cannot be read ({type(exc).__name__})")
    if not head:
        reject("empty-file", "image file is empty (0 bytes)")
    source_format = sniff_format(path, head)
    if source_format is None:
        reject("not-an-image", "not a recognised image format (DICOM, PNG, JPEG, TIFF, NIfTI, MHA, NRRD)")
    digest = file_sha256(path)
    if source_format == "dicom":
        decoded = read_dicom(path, output_size)
    elif source_format in ("png", "jpeg", "tiff"):
        decoded = read_raster(path, source_format, output_size)
    else:
        decoded = read_volume(path, source_format)
    return decoded, digest


def _require_regular_file(path: Path) -> None:
    """Reject anything but a regular file before it is opened: reading a FIFO would block forever."""
    kind = filekind.entry_kind(path)
    if kind == filekind.MISSING:
        reject("file-missing", "image file not found")
    if kind == filekind.BROKEN_LINK:
        reject("broken-symlink", "image path is a symbolic link whose target does not exist")
    if kind != filekind.REGULAR:
        reject("not-a-regular-file", f"image path is a {kind}, not a regular file")


def display_pixels(decoded: Decoded, percentiles: tuple[float, float]) -> tuple[np.ndarray, str]:
    """uint8 (H, W) or (H, W, 3) display pixels and the window source used."""
    pixels = decoded.pixels
    if pixels.size == 0 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        reject("render-failed", "image has zero size")
    if decoded.color:
        return rgb_to_uint8(pixels, decoded.color_bits), "color"
    if np.issubdtype(pixels.dtype, np.floating) and not np.isfinite(pixels).any():
        reject("render-failed", "image has no finite pixel values (all NaN or infinite)")
    if pixels.dtype == np.bool_:
        pixels = pixels.view(np.uint8)
    out, transform = to_uint8(pixels, decoded.transform, percentiles)
    return out, transform.window_source


def _render(path: Path, settings: ImageSettings) -> RenderedImage:
    decoded, digest = decode_file(path, settings.size)
    pixels, window_source = display_pixels(decoded, settings.percentiles)
    decoded.pixels = None  # the stored array is large; free it before resizing and encoding
    image = resize_long_side(pixels, settings.size)
    del pixels
    data = encode(image, settings.format, settings.jpeg_quality)
    training = encode(image, settings.training_format, settings.jpeg_quality) if settings.training_format else None
    return RenderedImage(
        data=data,
        format=settings.format,
        training_data=training,
        height=image.height,
        width=image.width,
        channels=len(image.getbands()),
        original_height=decoded.original_height,
        original_width=decoded.original_width,
        source_format=decoded.source_format,
        photometric_interpretation=decoded.photometric_interpretation,
        bits_stored=decoded.bits_stored,
        content_sha256=digest,
        header=decoded.header,
        decoder=decoded.decoder,
        window_source=window_source,
        frames=decoded.frames,
        frame_index=decoded.frame_index,
    )


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    logger = logging.getLogger("pydicom")
    was_disabled = logger.disabled
    logger.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.errstate(all="ignore"):
                yield
    finally:
        logger.disabled = was_disabled
