"""Grey-level display: stored pixel values -> brightness in [0, 1], following DICOM PS3.3 C.11.

The order is the standard's: pixel padding mask -> modality LUT (rescale or Modality LUT Sequence) -> VOI
(VOI LUT Sequence, else Window Center/Width with VOILUTFunction, else a robust percentile window) ->
MONOCHROME1 inversion -> padding forced to black. Every step is a pointwise function of the stored
value, so for integer images up to 16 bits the whole chain is evaluated once over the value range and
applied as a single uint8 lookup (`to_uint8`): that keeps a 2k x 2k radiograph at one gather instead of
five float passes, and makes the fast path identical to `to_display` by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
# ~256k pixels are plenty for a 0.5/99.5 percentile; a strided sample keeps it O(1) in image size.
PERCENTILE_SAMPLE_PIXELS = 1 << 18


@dataclass(frozen=True)
class Window:
    """A VOI window on modality values (PS3.3 C.11.2.1.2)."""

    center: float
    width: float
    function: str = "LINEAR"


@dataclass(frozen=True)
class Lut:
    """A Modality or VOI LUT: entry i maps input value first_mapped + i; inputs outside clamp to the ends."""

    first_mapped: int
    data: np.ndarray  # float32, one entry per input value


@dataclass(frozen=True)
class GrayTransform:
    """Everything that turns a stored grey value into display brightness.

    `window_source` records where the VOI came from ("voi-lut", "window", "percentile", "display-ready")
    so a dataset card can say how images were windowed.
    """

    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    modality_lut: Lut | None = None
    voi_lut: Lut | None = None
    window: Window | None = None
    padding: tuple[float, float] | None = None  # inclusive range of stored values that are padding
    invert: bool = False
    window_source: str = "none"


def display_ready_8bit() -> GrayTransform:
    """Identity for 8-bit PNG/JPEG/TIFF greys: they were already windowed by whoever exported them."""
    return GrayTransform(window=Window(127.5, 255.0, "LINEAR_EXACT"), window_source="display-ready")


def modality_values(stored: np.ndarray, t: GrayTransform) -> np.ndarray:
    """Stored values -> modality values (e.g. Hounsfield units), float32."""
    if t.modality_lut is not None:
        return apply_lut(stored, t.modality_lut)
    values = stored.astype(np.float32, copy=True)
    if t.rescale_slope != 1.0:
        values *= np.float32(t.rescale_slope)
    if t.rescale_intercept != 0.0:
        values += np.float32(t.rescale_intercept)
    return values


def apply_lut(values: np.ndarray, lut: Lut) -> np.ndarray:
    """Index a LUT with (rounded) input values, clamping below/above its range to the first/last entry."""
    index = np.rint(np.asarray(values, dtype=np.float64)) - lut.first_mapped
    np.clip(index, 0, lut.data.size - 1, out=index)
    return lut.data[index.astype(np.intp)]


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 / C.11.2.1.3.2 with output range [0, 1], float32."""
    x = np.asarray(values, dtype=np.float32)
    c, w = float(window.center), float(window.width)
    if window.function == "SIGMOID":
        with np.errstate(over="ignore"):
            out = np.exp(np.float32(-4.0 / w) * (x - np.float32(c)))
            out += np.float32(1.0)
            np.reciprocal(out, out=out)
        return out
    if window.function == "LINEAR_EXACT":
        if w <= 0:
            return (x > c).astype(np.float32)
        out = x - np.float32(c)
        out *= np.float32(1.0 / w)
        out += np.float32(0.5)
    else:
        if w <= 1:
            return (x > c - 0.5).astype(np.float32)
        out = x - np.float32(c - 0.5)
        out *= np.float32(1.0 / (w - 1.0))
        out += np.float32(0.5)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def voi_lut_output(values: np.ndarray, lut: Lut) -> np.ndarray:
    """Apply a VOI LUT and scale to [0, 1].

    The scale is the bit depth the LUT data actually uses, not the descriptor's: files that declare 16 bits
    per entry but hold 12-bit values are common and would otherwise render almost black.
    """
    out = apply_lut(values, lut)
    top = float(lut.data.max()) if lut.data.size else 0.0
    bits = max(int(math.ceil(top)).bit_length(), 1)
    return out * np.float32(1.0 / (2**bits - 1))


def padding_mask(stored: np.ndarray, t: GrayTransform) -> np.ndarray | None:
    if t.padding is None:
        return None
    low, high = t.padding
    if low == high:
        return stored == low
    return (stored >= low) & (stored <= high)


def percentile_window(stored: np.ndarray, t: GrayTransform, percentiles: tuple[float, float]) -> Window:
    """A LINEAR_EXACT window spanning the given percentiles of the non-padding modality values.

    Computed on a strided sample; a constant (or all-padding) image gets a zero-width window, which
    renders black rather than failing.
    """
    step = max(1, int(math.sqrt(stored.size / PERCENTILE_SAMPLE_PIXELS)))
    sample = stored[::step, ::step] if stored.ndim == 2 else stored.reshape(-1)[:: step * step]
    sample = np.ascontiguousarray(sample).reshape(-1)
    mask = padding_mask(sample, t)
    if mask is not None:
        sample = sample[~mask]
    values = modality_values(sample, t)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Window(0.0, 0.0, "LINEAR_EXACT")
    low, high = np.percentile(values, [percentiles[0], percentiles[1]])
    return Window(float(low + high) / 2.0, float(high - low), "LINEAR_EXACT")


def resolve_window(stored: np.ndarray, t: GrayTransform, percentiles: tuple[float, float]) -> GrayTransform:
    """Fill in the percentile window when the file carries no VOI of its own."""
    if t.voi_lut is not None or t.window is not None:
        return t
    return replace(t, window=percentile_window(stored, t, percentiles), window_source="percentile")


def to_display(stored: np.ndarray, t: GrayTransform) -> np.ndarray:
    """Stored values -> float32 brightness in [0, 1] (0 black); `t` must already carry a VOI."""
    values = modality_values(stored, t)
    if t.voi_lut is not None:
        out = voi_lut_output(values, t.voi_lut)
    elif t.window is not None:
        out = apply_window(values, t.window)
    else:
        raise ValueError("no VOI: call resolve_window first")
    if t.invert:
        np.subtract(np.float32(1.0), out, out=out)
    invalid = ~np.isfinite(values)
    mask = padding_mask(stored, t)
    if mask is not None:
        invalid |= mask
    out[invalid] = 0.0
    return out


def _lut_domain(dtype: np.dtype) -> np.ndarray | None:
    """Every value an integer dtype of at most 16 bits can hold, ordered by its unsigned bit pattern."""
    if dtype == np.uint8 or dtype == np.bool_:
        return np.arange(256, dtype=np.uint8)
    if dtype == np.uint16:
        return np.arange(65536, dtype=np.uint16)
    if dtype == np.int8:
        return np.arange(256, dtype=np.uint8).view(np.int8)
    if dtype == np.int16:
        return np.arange(65536, dtype=np.uint16).view(np.int16)
    return None


def to_uint8(
    stored: np.ndarray, t: GrayTransform, percentiles: tuple[float, float]
) -> tuple[np.ndarray, GrayTransform]:
    """Render a 2-D grey image to uint8, returning the transform actually used (with its window)."""
    t = resolve_window(stored, t, percentiles)
    domain = _lut_domain(stored.dtype)
    if domain is not None:
        lut = np.rint(to_display(domain, t) * np.float32(255.0)).astype(np.uint8)
        index = stored.view(np.uint8 if stored.dtype.itemsize == 1 else np.uint16)
        return lut[index], t
    out = to_display(stored, t)
    out *= np.float32(255.0)
    np.rint(out, out=out)
    return out.astype(np.uint8), t


def rgb_to_uint8(rgb: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Colour pixels -> uint8 RGB, scaling by the bit depth (stored, or the data's own when unknown)."""
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    if np.issubdtype(rgb.dtype, np.floating):
        values = np.nan_to_num(rgb.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        return np.rint((values - low) * scale).astype(np.uint8)
    if bits is None:
        bits = max(int(rgb.max()).bit_length(), 8)
    top = float(2**bits - 1)
    scaled = np.clip(rgb, 0, None).astype(np.float32) * np.float32(255.0 / top)
    np.clip(scaled, 0, 255, out=scaled)
    return np.rint(scaled).astype(np.uint8)


def lut_from_item(item: Any, signed: bool = False, little_endian: bool = True) -> Lut | None:
    """A Modality/VOI LUT Sequence item -> Lut; None when the item is unusable (caller falls back)."""
    try:
        descriptor = [int(v) for v in item.LUTDescriptor]
        element = item["LUTData"]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if len(descriptor) != 3:
        return None
    entries = descriptor[0] or 65536
    first = descriptor[1]
    if signed and first > 32767:
        first -= 65536
    raw = element.value
    if isinstance(raw, (bytes, bytearray)):
        if descriptor[2] <= 8 and len(raw) == entries:
            data = np.frombuffer(raw, dtype=np.uint8)
        else:
            data = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<u2" if little_endian else ">u2")
    elif raw is None:
        return None
    else:
        data = np.asarray(list(raw) if not isinstance(raw, (int, float)) else [raw], dtype=np.float64)
    data = data[:entries].astype(np.float32)
    if data.size == 0:
        return None
    return Lut(first_mapped=first, data=data)
