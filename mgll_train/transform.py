"""Image preprocessing for training and evaluation, below both the data stream and the model.

The work is split by where it is cheapest. A loader worker does only what must happen per image:
decode (JPEG at reduced size through DCT scaling when the view needs fewer pixels) and ONE resampling
pass that crops, rotates and resizes together, on an integer-reduced copy when the view is at least
twice the output size. It hands over 8-bit pixels, one channel for grey images. The brightness /
contrast jitter and the normalisation are elementwise over the whole batch, so they run where the
batch lands (the GPU when there is one, fused by `torch.compile`): `normalize_batch`.

Augmentation (training): a random box of 70-100% of the area with aspect 3:4-4:3, a rotation of up to
7 degrees about the box centre (pixels outside the image are black), brightness and contrast 0.8-1.2.
No horizontal flip: laterality (left/right findings, the heart's side) is part of the label.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFile

# A truncated PNG must fail loudly (and be counted), never decode as a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGE_SIZE = 224
CROP_AREA = (0.7, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)
MAX_ROTATION_DEGREES = 7.0
JITTER = (0.8, 1.2)


class CorruptImage(ValueError):
    """Image bytes that do not decode."""


@dataclass(frozen=True)
class View:
    """What one sample shows: a box of the source image in pixels (left, top, width, height), a rotation
    about the box centre (degrees, counter-clockwise) and the photometric jitter applied later on the batch."""

    box: tuple[float, float, float, float]
    angle: float = 0.0
    contrast: float = 1.0
    brightness: float = 1.0


def random_view(rng: np.random.Generator, width: int, height: int) -> View:
    """The training augmentation's random draws for one image of the given size."""
    box = (0.0, 0.0, float(width), float(height))
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*CROP_AREA)
        aspect = math.exp(rng.uniform(math.log(CROP_ASPECT[0]), math.log(CROP_ASPECT[1])))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            box = (float(left), float(top), float(w), float(h))
            break
    angle = float(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
    return View(box, angle, contrast=float(rng.uniform(*JITTER)), brightness=float(rng.uniform(*JITTER)))


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except Exception as exc:  # PIL raises many unrelated types for bad bytes
        raise CorruptImage(f"image bytes do not decode ({type(exc).__name__})") from None


def _load(img: Image.Image) -> Image.Image:
    """Decoded pixels as L or RGB (8-bit) or, for deeper grey images, F scaled to [0, 1]."""
    try:
        img.load()
    except Exception as exc:
        raise CorruptImage(f"image bytes do not decode ({type(exc).__name__})") from None
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in ("1", "LA", "La"):
        return img.convert("L")
    if img.mode.startswith("I") or img.mode == "F":
        array = np.asarray(img, dtype=np.float32)
        peak = float(array.max(initial=0.0))
        scale = 65535.0 if img.mode.startswith("I") and peak <= 65535.0 else max(peak, 1.0)
        return Image.fromarray(array / scale)
    return img.convert("RGB")


def _affine(box: tuple[float, float, float, float], angle: float, size: int, factor: int) -> tuple[float, ...]:
    """Output pixel (u, v) -> source position: scale into the box, rotate about its centre as
    `Image.rotate` does, then into an image reduced by `factor` (continuous pixel coordinates)."""
    left, top, w, h = box
    radians = -math.radians(angle)
    cos, sin = math.cos(radians), math.sin(radians)
    sx, sy = w / size, h / size
    coefficients = (
        cos * sx,
        sin * sy,
        left + w / 2 - cos * w / 2 - sin * h / 2,
        -sin * sx,
        cos * sy,
        top + h / 2 + sin * w / 2 - cos * h / 2,
    )
    return tuple(c / factor for c in coefficients)


def load_pixels(data: bytes, size: int, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, View]:
    """Encoded PNG/JPEG bytes -> ([C, size, size] pixels, the view drawn), C = 1 for grey and 3 for colour;
    uint8 for 8-bit images, float32 in [0, 1] for deeper ones. `rng` None: the whole image, no jitter."""
    img = _open(data)
    width, height = img.size
    if width < 1 or height < 1:
        raise CorruptImage("image has zero size")
    view = random_view(rng, width, height) if rng is not None else View((0.0, 0.0, float(width), float(height)))
    # Source pixels per output pixel along the box's shorter side: read at most ~that much less.
    wanted = max(1, round(min(view.box[2], view.box[3]) / size))
    if wanted > 1 and img.format == "JPEG":
        img.draft(img.mode, (math.ceil(width / wanted), math.ceil(height / wanted)))
    img = _load(img)
    drafted = max(1, round(width / img.width))
    reduce = max(1, wanted // drafted)
    if reduce > 1:
        img = img.reduce(reduce)
    coefficients = _affine(view.box, view.angle, size, drafted * reduce)
    out = np.array(img.transform((size, size), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR, fillcolor=0))
    pixels = torch.from_numpy(out)
    pixels = pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1).contiguous()
    return pixels, view


def stack_pixels(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """One [N, C, H, W] tensor: uint8 when every image is, float in [0, 1] otherwise; grey images become
    3-channel only when the batch also holds colour ones."""
    channels = max(p.shape[0] for p in images)
    floats = any(p.dtype != torch.uint8 for p in images)
    out = []
    for p in images:
        if floats and p.dtype == torch.uint8:
            p = p.float() / 255.0
        out.append(p.expand(channels, -1, -1) if p.shape[0] != channels else p)
    return torch.stack(out)


def normalize_batch(
    pixels: torch.Tensor, jitter: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """[N, 1|3, H, W] pixels (uint8 or [0, 1] float) and [N, 2] (contrast, brightness) -> the model's
    normalised float [N, 3, H, W]. Elementwise over the batch with no data-dependent branch, so it runs
    on the device and compiles into the step; ones for jitter leave the image as it is."""
    x = pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels.float()
    contrast = jitter[:, 0].view(-1, 1, 1, 1)
    brightness = jitter[:, 1].view(-1, 1, 1, 1)
    centre = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (((x - centre) * contrast + centre) * brightness).clamp(0.0, 1.0)
    x = x.expand(-1, 3, -1, -1)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def decode_image(
    data: bytes,
    image_size: int,
    train: bool,
    *,
    rng: np.random.Generator | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """One image's bytes -> the model's normalised FloatTensor[3, H, W] (evaluation reads images one by one)."""
    pixels, view = load_pixels(data, image_size, (rng or np.random.default_rng()) if train else None)
    jitter = torch.tensor([[view.contrast, view.brightness]])
    return normalize_batch(pixels.unsqueeze(0), jitter, torch.tensor(mean), torch.tensor(std))[0]
