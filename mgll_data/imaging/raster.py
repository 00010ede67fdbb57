"""PNG / JPEG / TIFF through Pillow (8- and 16-bit grey, colour, palette, 1-bit), SimpleITK for TIFFs
Pillow cannot decode (e.g. 16-bit RGB, unusual compressions).

8-bit grey and colour rasters are taken as display-ready (someone already windowed them); 16/32-bit and
float greys have no window, so they get the robust percentile window like a DICOM without one.
Multi-page TIFFs contribute their middle page. JPEGs are decoded at a reduced DCT scale when they are much
larger than the output (the scale never goes below the output size), which is both faster and
antialiased.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mgll_data.imaging import volume
from mgll_data.imaging.decoded import TOO_MANY_PIXELS, Decoded, check_decoded_size, middle_index, reject
from mgll_data.imaging.display import GrayTransform, display_ready_8bit
from mgll_data.imaging.encode import target_size

_TO_RGB = ("P", "PA", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV")


def read_raster(path: Path, source_format: str, output_size: int) -> Decoded:
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        reject("not-an-image", f"{source_format} file could not be identified as an image")
    except Image.DecompressionBombError:
        reject(TOO_MANY_PIXELS, "image has too many pixels to decode safely (Pillow's decompression-bomb limit)")
    with image:
        try:
            frames = int(getattr(image, "n_frames", 1) or 1)
            index = middle_index(frames) if frames > 1 else 0
            if index:
                image.seek(index)
            width, height = image.size
            if source_format == "jpeg" and image.mode in ("L", "RGB", "CMYK", "YCbCr"):
                draft_h, draft_w = target_size(height, width, output_size)
                image.draft(image.mode, (draft_w, draft_h))
            check_decoded_size(image.height, image.width, *_sample_shape(image.mode))  # after draft shrank it
            image.load()
            return _decoded(image, source_format, frames, index, height, width)
        except OSError as exc:
            if "truncated" in str(exc).lower():
                reject("truncated-file", f"{source_format} file ends before its image data is complete")
            if source_format == "tiff":
                return _tiff_with_simpleitk(path)
            reject("decode-failed", f"{source_format} image data could not be decoded ({type(exc).__name__})")
        except (SyntaxError, ValueError, EOFError) as exc:
            if source_format == "tiff":
                return _tiff_with_simpleitk(path)
            reject("decode-failed", f"{source_format} image data could not be decoded ({type(exc).__name__})")


def _sample_shape(mode: str) -> tuple[int, int]:
    """(samples, bytes per sample) Pillow allocates for a mode."""
    if mode.startswith("I;16"):
        return 1, 2
    if mode in ("I", "F"):
        return 1, 4
    return Image.getmodebands(mode), 1


def _decoded(image: Image.Image, source_format: str, frames: int, index: int, height: int, width: int) -> Decoded:
    mode = image.mode
    if mode in ("1", "LA", "La"):
        image, mode = image.convert("L"), "L"
    elif mode in _TO_RGB:
        image, mode = image.convert("RGB"), "RGB"
    pixels = np.asarray(image)
    if pixels.dtype.byteorder not in ("=", "|"):
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    color = mode == "RGB"
    if color or mode == "L":
        transform = None if color else display_ready_8bit()
        bits = 8
    else:
        transform = GrayTransform()
        bits = pixels.dtype.itemsize * 8 if np.issubdtype(pixels.dtype, np.integer) else None
    return Decoded(
        pixels=pixels,
        color=color,
        source_format=source_format,
        decoder="pillow",
        transform=transform,
        color_bits=8 if color else None,
        bits_stored=bits,
        frames=frames,
        frame_index=index,
        original_height=height,
        original_width=width,
    )


def _tiff_with_simpleitk(path: Path) -> Decoded:
    decoded = volume.read_volume(path, "tiff")
    decoded.source_format = "tiff"
    return decoded
