"""NIfTI / MetaImage (MHA/MHD) / NRRD volumes through SimpleITK, and SimpleITK as the second DICOM reader.

A volume contributes its middle slice along the third axis (the middle of every axis beyond the second
for 4-D data), in the file's array order with no reorientation. Only that slice is requested from the
reader, so formats ITK can stream never load the whole volume.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mgll_data.imaging.decoded import Decoded, check_decoded_size, middle_index, reject
from mgll_data.imaging.display import GrayTransform
from mgll_data.records import StageError

_IMAGE_IO = {"nifti": "NiftiImageIO", "mha": "MetaImageIO", "nrrd": "NrrdImageIO", "tiff": "TIFFImageIO"}
# Readers that decode only the requested slice (measured: the middle slice of a 200 MB .nii, .nii.gz or
# .mha costs about 10 MB); NRRD, TIFF and GDCM decode the whole volume whatever slice is asked for.
_STREAMING_IO = ("NiftiImageIO", "MetaImageIO")
_quieted = False


def _simpleitk():
    """Import SimpleITK with its warnings off: ITK prints header contents (names, ids) to stderr when it
    complains about a file, which would leak PHI into build logs."""
    global _quieted
    import SimpleITK as sitk

    if not _quieted:
        sitk.ProcessObject.SetGlobalWarningDisplay(False)
        _quieted = True
    return sitk


def read_middle_slice(
    path: Path, dicom: bool = False, source_format: str | None = None
) -> tuple[np.ndarray, int, int, int]:
    """(pixels, frames, frame_index, components): pixels is (H, W) or (H, W, C)."""
    sitk = _simpleitk()
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    if dicom:
        reader.SetImageIO("GDCMImageIO")
    elif source_format in _IMAGE_IO:
        reader.SetImageIO(_IMAGE_IO[source_format])
    reader.ReadImageInformation()
    size = list(reader.GetSize())
    _check_size(reader, size)
    frames, index = 1, 0
    if len(size) > 2:
        frames = int(np.prod(size[2:]))
        start = [0, 0] + [middle_index(n) for n in size[2:]]
        index = start[2]
        reader.SetExtractIndex(start)
        reader.SetExtractSize(size[:2] + [0] * (len(size) - 2))
    image = reader.Execute()
    pixels = sitk.GetArrayFromImage(image)
    while pixels.ndim > (3 if image.GetNumberOfComponentsPerPixel() > 1 else 2):
        pixels = pixels[middle_index(pixels.shape[0])]
    return pixels, frames, index, image.GetNumberOfComponentsPerPixel()


def _check_size(reader, size: list[int]) -> None:
    """Reject from the header alone what would decode to too many bytes: the slice for readers that stream
    it, the whole volume for the others."""
    pixel_type = _simpleitk().GetPixelIDValueAsString(reader.GetPixelID())  # "16-bit signed integer", ...
    bits = re.search(r"(\d+)-bit", pixel_type)
    sample_bytes = (int(bits.group(1)) // 8 if bits else 8) * (2 if "complex" in pixel_type else 1)
    frames = 1 if reader.GetImageIO() in _STREAMING_IO else int(np.prod(size[2:], dtype=np.int64))
    check_decoded_size(size[1], size[0], reader.GetNumberOfComponents(), sample_bytes, frames)


def read_volume(path: Path, source_format: str) -> Decoded:
    try:
        pixels, frames, index, components = read_middle_slice(path, source_format=source_format)
    except StageError:
        raise
    except Exception as exc:
        if "truncat" in str(exc).lower() or "premature" in str(exc).lower():
            reject("truncated-file", f"{source_format} file ends before its voxel data is complete")
        reject("decode-failed", f"{source_format} file could not be read ({type(exc).__name__})")
    color = components in (3, 4) and pixels.ndim == 3
    if color:
        pixels = pixels[..., :3]
    elif pixels.ndim == 3:
        pixels = pixels[..., 0]
    bits = pixels.dtype.itemsize * 8 if np.issubdtype(pixels.dtype, np.integer) else None
    return Decoded(
        pixels=pixels,
        color=color,
        source_format=source_format,
        decoder="simpleitk",
        transform=None if color else GrayTransform(),
        color_bits=bits,
        bits_stored=bits,
        frames=frames,
        frame_index=index,
        original_height=int(pixels.shape[0]),
        original_width=int(pixels.shape[1]),
    )
