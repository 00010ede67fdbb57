"""Image preprocessing for training and evaluation, below both the data stream and the model.

The work is split by where it is cheapest. A loader worker does only what must happen per image:
decode (JPEG at reduced size through DCT scaling when the view needs fewer pixels) and ONE antialiased
resampling that crops and resizes together (`Image.resize` with a box, Pillow's fastest path). It hands
over 8-bit pixels, one channel for grey images, with the view's random draws. The rotation, the
brightness / contrast jitter and the normalisation run on the whole batch where it lands, the GPU when
there is one, fused into the step by `torch.compile`: `finish_batch`. (Measured on this project's CPU:
a bilinear rotation costs a worker ~1.4 ms per 224-px image in Pillow, about as much as the resize.)

Augmentation (training): a random box of 70-100% of the area with aspect 3:4-4:3, a rotation of up to
7 degrees about the centre (corners black), brightness and contrast 0.8-1.2. No horizontal flip:
laterality (left/right findings, the heart's side) is part of the label.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile

# A truncated PNG must fail loudly (and be counted), never decode as a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_AREA = (0.7, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)
MAX_ROTATION_DEGREES = 7.0
JITTER = (0.8, 1.2)


class CorruptImage(ValueError):
    """Image bytes that do not decode."""


@dataclass(frozen=True)
class View:
    """What one sample shows: a box of the source image in pixels (left, top, width, height), then the
    draws `finish_batch` applies: a rotation (degrees, counter-clockwise, as `Image.rotate`) and jitter."""

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


def load_pixels(data: bytes, size: int, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, View]:
    """Encoded PNG/JPEG bytes -> ([C, size, size] pixels of the view's box, the view drawn), C = 1 for grey
    and 3 for colour; uint8 for 8-bit images, float32 in [0, 1] for deeper ones. `rng` None: the whole
    image, no rotation or jitter."""
    img = _open(data)
    width, height = img.size
    if width < 1 or height < 1:
        raise CorruptImage("image has zero size")
    view = random_view(rng, width, height) if rng is not None else View((0.0, 0.0, float(width), float(height)))
    left, top, w, h = view.box
    # Source pixels per output pixel along the box's shorter side: a JPEG is decoded that much smaller.
    wanted = max(1, round(min(w, h) / size))
    if wanted > 1 and img.format == "JPEG":
        img.draft(img.mode, (math.ceil(width / wanted), math.ceil(height / wanted)))
    img = _load(img)
    sx, sy = img.width / width, img.height / height
    box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
    out = np.array(img.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0))
    pixels = torch.from_numpy(out)
    pixels = pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1).contiguous()
    return pixels, view


def view_tensor(views: Sequence[View]) -> torch.Tensor:
    """[N, 3] (angle, contrast, brightness): the part of each view `finish_batch` applies."""
    return torch.tensor([(v.angle, v.contrast, v.brightness) for v in views], dtype=torch.float32)


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


def _rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre, counter-clockwise as `Image.rotate`, bilinear, black corners."""
    radians = torch.deg2rad(degrees.to(x.dtype))
    cos, sin, zero = torch.cos(radians), torch.sin(radians), torch.zeros_like(radians)
    theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def finish_batch(
    pixels: torch.Tensor, views: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, rotate: bool = True
) -> torch.Tensor:
    """[N, 1|3, H, W] pixels (uint8 or [0, 1] float) and [N, 3] views (angle, contrast, brightness) -> the
    model's normalised float [N, 3, H, W]: rotation, jitter, normalisation. Elementwise over the batch
    with no branch on tensor values, so it runs on the device and compiles into the step. `rotate` off
    (evaluation, --no-augment) skips the resampling; views of ones leave the jitter a no-op."""
    x = pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels.float()
    if rotate:
        x = _rotate(x, views[:, 0])
    contrast = views[:, 1].view(-1, 1, 1, 1)
    brightness = views[:, 2].view(-1, 1, 1, 1)
    centre = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x * (contrast * brightness) + centre * ((1.0 - contrast) * brightness)).clamp(0.0, 1.0)
    return (x.expand(-1, 3, -1, -1) - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


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
    return finish_batch(pixels.unsqueeze(0), view_tensor([view]), torch.tensor(mean), torch.tensor(std), rotate=train)[
        0
    ]
