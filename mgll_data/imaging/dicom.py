"""DICOM reading: pydicom 3 (with the pylibjpeg / openjpeg / libjpeg / rle plugins and GDCM) first,
SimpleITK (ITK's GDCM reader, its own codecs) when no pydicom plugin can decode the pixel data.

Every transfer syntax pydicom's plugins handle decodes here: uncompressed little/big endian, deflate,
RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000. 12-bit JPEG extended is the common case that
only SimpleITK decodes. Multi-frame files contribute their middle frame, decoded alone.

Large pixel data (multi-frame cines) is not read with the header: only the middle frame is read from the
file and decoded, so a 1 GB ultrasound loop costs one frame of memory.

Colour JPEG baseline (YBR_FULL/YBR_FULL_422: ultrasound, photos, secondary captures) is decoded by Pillow
directly from the frame's JPEG stream at a reduced DCT scale that never goes below the output size: colour
pixels get no grey-level chain, so shrinking before the final resize changes nothing in the order of
operations, and it avoids pydicom's full-size float YCbCr conversion (about 20x faster on a 2048x1536
frame).
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_fragments, get_frame
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit

from mgll_data.imaging import volume
from mgll_data.imaging.decoded import Decoded, check_decoded_size, middle_index, reject
from mgll_data.imaging.display import WINDOW_FUNCTIONS, GrayTransform, Window, lut_from_item
from mgll_data.imaging.encode import target_size
from mgll_data.records import StageError

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# Elements above this size are left on disk by dcmread and read only when needed.
DEFER_BYTES = 16 * 1024 * 1024
_PIXEL_TAG_BYTES = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")
_ICON_IMAGE_SEQUENCE = 0x00880200
_COLOR = (
    "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "YBR_PARTIAL_422", "HSV", "ARGB", "CMYK"
)
# The defined terms: the value is stored in the row, so anything else (a hostile header can put a
# name here) is refused rather than echoed.
PHOTOMETRIC_TERMS = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", *_COLOR)


def read_dicom(path: Path, output_size: int | None = None) -> Decoded:
    """Decode a DICOM file's (middle) frame; `output_size` lets colour JPEG frames decode at reduced scale."""
    ds, hit_eof = _read_dataset(path)
    if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
        if hit_eof or _file_mentions_pixel_data(path):
            reject("truncated-file", "DICOM file ends before its pixel data is complete")
        reject("no-pixel-data", "DICOM file has no pixel data (e.g. a structured report or a presentation state)")
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    if rows <= 0 or columns <= 0:
        reject("decode-failed", "DICOM header gives no usable image size (Rows/Columns)")
    frames = max(_int(ds.get("NumberOfFrames"), 1), 1)
    index = middle_index(frames)
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    if photometric and photometric not in PHOTOMETRIC_TERMS:
        reject("decode-failed", "DICOM PhotometricInterpretation is not a defined term")
    check_decoded_size(rows, columns, *_decoded_sample_shape(ds, photometric))  # one frame: pydicom decodes one
    if "PixelData" in ds and not _is_compressed(ds) and _pixel_data_bytes(ds, path) < _expected_bytes(ds, frames):
        reject("truncated-file", "DICOM pixel data is shorter than its header says (file truncated)")
    rescaled_by_reader = False
    pixels = _color_jpeg_with_pillow(ds, photometric, index, frames, output_size)
    decoder = "pillow"
    try:
        if pixels is None:
            decoder = "pydicom"
            pixels = _one_frame_from_file(path, index) if frames > 1 else None
            if pixels is None:
                if frames > 1:
                    ds.pixel_array_options(index=index)
                pixels = ds.pixel_array
    except Exception:
        if hit_eof or _fragments_broken(ds):
            reject("truncated-file", "DICOM pixel data ends early (file truncated)")
        pixels = _read_with_simpleitk(path, ds)
        decoder = "simpleitk"
        rescaled_by_reader = True

    color = (
        photometric in _COLOR
        or photometric == "PALETTE COLOR"
        or (pixels.ndim == 3 and pixels.shape[-1] in (3, 4) and frames == 1)
    )
    if pixels.ndim == 3 and not color:
        pixels = pixels[middle_index(pixels.shape[0])]
    if color and pixels.ndim == 2 and photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        pixels = apply_color_lut(pixels, ds)
    if color and pixels.ndim == 2:
        color = False
    if color:
        pixels = pixels[..., :3]
    elif rescaled_by_reader:
        pixels = stored_from_simpleitk(pixels, ds, photometric)

    bits_stored = _int(ds.get("BitsStored"), 0) or None
    strip_pixel_data(ds)
    return Decoded(
        pixels=pixels,
        color=color,
        source_format="dicom",
        decoder=decoder,
        transform=None if color else gray_transform(ds),
        color_bits=None if photometric == "PALETTE COLOR" else bits_stored,
        photometric_interpretation=photometric or None,
        bits_stored=bits_stored,
        header=ds,
        frames=frames,
        frame_index=index if frames > 1 else 0,
        original_height=rows,
        original_width=columns,
    )


def _one_frame_from_file(path: Path, index: int) -> np.ndarray | None:
    """Decode one frame straight from the file (pydicom reads only that frame's bytes); None when pydicom
    cannot do it that way (e.g. no file meta), so the caller decodes from the dataset instead."""
    try:
        return pydicom.pixels.pixel_array(path, index=index)
    except Exception:
        return None


def _color_jpeg_with_pillow(
    ds: Dataset, photometric: str, index: int, frames: int, output_size: int | None
) -> np.ndarray | None:
    """RGB pixels of a YBR colour JPEG baseline frame, or None to use pydicom (any doubt, any error)."""
    if (
        output_size is None
        or photometric not in ("YBR_FULL", "YBR_FULL_422")
        or _int(ds.get("SamplesPerPixel"), 1) != 3
        or _int(ds.get("BitsAllocated"), 8) != 8
        or getattr(ds.file_meta, "TransferSyntaxUID", None) != JPEGBaseline8Bit
    ):
        return None
    try:
        stream = get_frame(ds.PixelData, index, number_of_frames=frames)
        with Image.open(io.BytesIO(stream)) as image:
            if image.format != "JPEG" or image.mode != "RGB":
                return None
            height, width = target_size(_int(ds.Rows), _int(ds.Columns), output_size)
            image.draft("RGB", (width, height))
            image.load()
            return np.asarray(image)
    except Exception:
        return None


def gray_transform(ds: Dataset) -> GrayTransform:
    """The header's display chain for a grey image: rescale or Modality LUT, VOI LUT or window, padding,
    MONOCHROME1 inversion. A window that violates the standard (width < 1 for LINEAR, <= 0 otherwise)
    is ignored so the percentile window takes over instead of rendering a blank image."""
    signed = _int(ds.get("PixelRepresentation"), 0) == 1
    little_endian = getattr(ds, "original_encoding", (None, True))[1] is not False
    slope = _float(ds.get("RescaleSlope"), 1.0)
    intercept = _float(ds.get("RescaleIntercept"), 0.0)
    modality_lut = None
    if ds.get("ModalityLUTSequence"):
        modality_lut = lut_from_item(ds.ModalityLUTSequence[0], signed, little_endian)
    voi_signed = signed or intercept < 0 or (modality_lut is not None and float(modality_lut.data.min()) < 0)
    voi_lut = lut_from_item(ds.VOILUTSequence[0], voi_signed, little_endian) if ds.get("VOILUTSequence") else None
    window = None if voi_lut is not None else window_from_header(ds)
    source = "voi-lut" if voi_lut is not None else "window" if window is not None else "none"
    return GrayTransform(
        rescale_slope=slope if slope != 0 else 1.0,
        rescale_intercept=intercept,
        modality_lut=modality_lut,
        voi_lut=voi_lut,
        window=window,
        padding=_padding(ds, signed),
        invert=str(ds.get("PhotometricInterpretation") or "").strip().upper() == "MONOCHROME1",
        window_source=source,
    )


def window_from_header(ds: Dataset) -> Window | None:
    """The first Window Center/Width pair with its VOI LUT Function; None when absent or invalid."""
    center = _float(ds.get("WindowCenter"), math.nan)
    width = _float(ds.get("WindowWidth"), math.nan)
    function = str(_first(ds.get("VOILUTFunction")) or "LINEAR").strip().upper()
    if function not in WINDOW_FUNCTIONS:
        function = "LINEAR"
    if not (math.isfinite(center) and math.isfinite(width)):
        return None
    too_narrow = width < 1 if function == "LINEAR" else width <= 0
    if too_narrow:
        return None
    return Window(center, width, function)


def strip_pixel_data(ds: Dataset) -> None:
    """Drop pixel data, overlays and icon images so the header handed on is small and picklable, and the
    decoded array is not kept alive by it."""
    for keyword in PIXEL_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    for tag in [t for t in ds.keys() if (t.group & 0xFF00) == 0x6000 and t.element == 0x3000]:  # noqa: SIM118 - a Dataset iterates elements, keys() gives tags
        del ds[tag]
    if _ICON_IMAGE_SEQUENCE in ds:
        del ds[_ICON_IMAGE_SEQUENCE]


def _read_dataset(path: Path) -> tuple[Dataset, bool]:
    """Parse the file once (pixel data included); also report whether pydicom hit end-of-file mid-element,
    which it otherwise only logs and which means the file was cut short."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, force=True, defer_size=DEFER_BYTES)
        except EOFError:
            reject("truncated-file", "DICOM file ends in the middle of its header (file truncated)")
        except Exception as exc:
            if "end of file" in str(exc).lower():
                reject("truncated-file", "DICOM file ends in the middle of its header (file truncated)")
            reject("not-an-image", f"DICOM header could not be parsed ({type(exc).__name__})")
    hit_eof = any("end of file" in str(w.message).lower() for w in caught)
    if len(ds) == 0:
        if hit_eof:
            reject("truncated-file", "DICOM file ends in the middle of its header (file truncated)")
        reject("not-an-image", "file has no DICOM data elements")
    _infer_transfer_syntax(ds)
    return ds, hit_eof


def _infer_transfer_syntax(ds: Dataset) -> None:
    """Old exports write DICOM without file meta; the encoding pydicom read the file with is then the
    (uncompressed) transfer syntax, and pydicom needs it named to decode the pixels."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return
    implicit, little = ds.original_encoding
    if implicit is None:
        return
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def _file_mentions_pixel_data(path: Path) -> bool:
    """Whether a Pixel Data tag occurs in the raw bytes: pydicom silently drops an encapsulated Pixel Data
    element that the file cuts off, so its absence alone does not mean 'no pixel data'."""
    chunk, overlap = 1 << 20, 3
    tail = b""
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            window = tail + block
            if any(tag in window for tag in _PIXEL_TAG_BYTES):
                return True
            tail = window[-overlap:]
    return False


def _fragments_broken(ds: Dataset) -> bool:
    if "PixelData" not in ds or not _is_compressed(ds):
        return False
    try:
        for _ in generate_fragments(ds.PixelData):
            pass
    except Exception:
        return True
    return False


def _pixel_data_bytes(ds: Dataset, path: Path) -> int:
    """Bytes of Pixel Data actually in the file, without loading a deferred element."""
    element = ds._dict.get(0x7FE00010)
    if getattr(element, "value", b"") is None and getattr(element, "value_tell", None) is not None:
        return max(0, min(int(element.length), path.stat().st_size - int(element.value_tell)))
    return len(ds.PixelData)


def _is_compressed(ds: Dataset) -> bool:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        return bool(syntax is not None and syntax.is_compressed)
    except (ValueError, AttributeError):
        return False


def _expected_bytes(ds: Dataset, frames: int) -> int:
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    samples = max(_int(ds.get("SamplesPerPixel"), 1), 1)
    bits = max(_int(ds.get("BitsAllocated"), 8), 1)
    if str(ds.get("PhotometricInterpretation") or "").strip().upper() == "YBR_FULL_422":
        return rows * columns * 2 * bits // 8 * frames
    return (rows * columns * samples * frames * bits + 7) // 8


def _decoded_sample_shape(ds: Dataset, photometric: str) -> tuple[int, int]:
    """(samples, bytes per sample) of a decoded frame, from the header: what pydicom allocates for it (a
    palette image becomes RGB once its colour LUT is applied)."""
    samples = 3 if photometric == "PALETTE COLOR" else max(_int(ds.get("SamplesPerPixel"), 1), 1)
    return samples, max(-(-_int(ds.get("BitsAllocated"), 8) // 8), 1)


def _read_with_simpleitk(path: Path, ds: Dataset) -> np.ndarray:
    try:
        pixels, _, _, _ = volume.read_middle_slice(path, dicom=True)
    except StageError:
        raise
    except Exception:
        reject("decode-failed", f"no decoder could decode this DICOM pixel data ({_syntax_name(ds)})")
    return pixels


def stored_from_simpleitk(pixels: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    """Undo what ITK's GDCM reader does to grey pixels, so the header's own chain applies exactly once.

    ITK applies Rescale Slope/Intercept, and presents MONOCHROME1 as MONOCHROME2 by bit inversion of the
    stored value ((2**BitsStored - 1) - x unsigned, -x - 1 signed) while still reporting MONOCHROME1
    (checked on pydicom-data's RG1_UNCR.dcm, see tests). Without this the image would be flipped twice
    and windowed on the wrong scale.
    """
    values = pixels.astype(np.float64)
    slope = _float(ds.get("RescaleSlope"), 1.0) or 1.0
    intercept = _float(ds.get("RescaleIntercept"), 0.0)
    stored = np.rint((values - intercept) / slope)
    signed = _int(ds.get("PixelRepresentation"), 0) == 1
    if photometric == "MONOCHROME1":
        bits = _int(ds.get("BitsStored"), 16) or 16
        stored = -stored - 1 if signed else (2**bits - 1) - stored
    dtype = np.int16 if signed else np.uint16
    info = np.iinfo(dtype)
    if stored.size and (stored.min() < info.min or stored.max() > info.max):
        dtype = np.int32
    return stored.astype(dtype)


def _padding(ds: Dataset, signed: bool) -> tuple[float, float] | None:
    value = _padding_value(ds.get("PixelPaddingValue"), signed)
    if value is None:
        return None
    limit = _padding_value(ds.get("PixelPaddingRangeLimit"), signed)
    if limit is None:
        return (value, value)
    return (min(value, limit), max(value, limit))


def _padding_value(element: Any, signed: bool) -> float | None:
    value = _first(element)
    if isinstance(value, (bytes, bytearray)):
        if len(value) < 2:
            return None
        value = struct.unpack("<h" if signed else "<H", bytes(value[:2]))[0]
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _syntax_name(ds: Dataset) -> str:
    """A transfer syntax's standard name for the reject message; never a private UID (it can name the
    vendor or site)."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_transfer_syntax and syntax.name != str(syntax):
        return syntax.name
    return "unknown transfer syntax"


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return value[0] if len(value) else None
    return value


def _float(value: Any, default: float) -> float:
    try:
        result = float(_first(value))
    except (TypeError, ValueError):
        return default
    return result if math.isfinite(result) else default


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(_first(value))
    except (TypeError, ValueError):
        return default
