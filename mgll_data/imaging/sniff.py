"""Which reader a file needs, from its first bytes (extensions lie in hospital exports: `.dcm` text files,
extension-less DICOM, `.png` that is really a JPEG)."""

from __future__ import annotations

import struct
from pathlib import Path

HEAD_BYTES = 1024
# Group 0002 (file meta) or 0008 (identifying) as the very first tag: DICOM written without the 128-byte
# preamble and "DICM" prefix, little or big endian.
_BARE_DICOM_STARTS = (b"\x02\x00", b"\x08\x00", b"\x00\x08")
_VRS = {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF",
    b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN",
    b"UR", b"US", b"UT", b"UV",
}


def compound_suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def sniff_format(path: Path, head: bytes) -> str | None:
    """"dicom", "png", "jpeg", "tiff", "nifti", "mha", "nrrd", or None for anything else."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"NRRD000"):
        return "nrrd"
    if _is_nifti(head):
        return "nifti"
    suffix = compound_suffix(path)
    if suffix == ".nii.gz" and head.startswith(b"\x1f\x8b"):
        return "nifti"
    if suffix in (".mha", ".mhd") and _is_metaimage(head):
        return "mha"
    if suffix in (".nhdr",) and head.startswith(b"NRRD"):
        return "nrrd"
    if _is_bare_dicom(head):
        return "dicom"
    return None


def _is_nifti(head: bytes) -> bool:
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return struct.unpack("<i", head[:4])[0] == 348 or struct.unpack(">i", head[:4])[0] == 348
    if len(head) >= 12 and head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return struct.unpack("<i", head[:4])[0] == 540 or struct.unpack(">i", head[:4])[0] == 540
    return False


def _is_metaimage(head: bytes) -> bool:
    text = head[:512].decode("latin-1")
    return any(key in text for key in ("ObjectType", "NDims", "ElementType"))


def _is_bare_dicom(head: bytes) -> bool:
    if len(head) < 8 or head[:2] not in _BARE_DICOM_STARTS:
        return False
    # Explicit VR: two uppercase letters after the tag; implicit VR: a small 4-byte length.
    if head[4:6] in _VRS:
        return True
    length = struct.unpack("<I", head[4:8])[0]
    return 0 < length < 1024
