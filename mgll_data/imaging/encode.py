"""Resize to the dataset's long side and encode as PNG or JPEG.

Every image leaves with its long side exactly `size`: large images are downsampled with Lanczos (Pillow
widens the kernel by the scale factor, so this is antialiased), and small ones are UPSCALED with Lanczos
too, so a training batch never mixes resolutions. Aspect ratio is kept (short side rounded, at least 1).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# zlib level 1: radiographs are noisy, so level 6 (Pillow's default) saves only ~15% of bytes but costs
# 4-5x the encode time, which made encoding the most expensive step of the stage (bench/bench_imaging.py).
PNG_COMPRESS_LEVEL = 1


def target_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) with the long side equal to `size` and the aspect ratio kept."""
    if height <= 0 or width <= 0:
        raise ValueError("image has zero size")
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_long_side(pixels: np.ndarray, size: int) -> Image.Image:
    """uint8 (H, W) or (H, W, 3) -> a Pillow image whose long side is `size`."""
    image = Image.fromarray(pixels)
    height, width = target_size(pixels.shape[0], pixels.shape[1], size)
    if (height, width) == (pixels.shape[0], pixels.shape[1]):
        return image
    return image.resize((width, height), Image.Resampling.LANCZOS)


def encode(image: Image.Image, fmt: str, jpeg_quality: int = 95) -> bytes:
    """PNG (lossless) or JPEG (4:4:4 chroma, so colour fundus detail survives); no metadata chunks."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=int(jpeg_quality), subsampling=0)
    else:
        raise ValueError(f"unknown image format {fmt!r}: use png or jpeg")
    return buffer.getvalue()
