"""Writing the synthetic radiographs as real DICOM files, in the many shapes hospital exports come in.

Each image draws a `PixelVariant`: CR or DX storage class, MONOCHROME1/2, 8 to 16 bits stored, signed or
not, a rescale or none, a VOI window (linear, sigmoid, none), a padded collimation border, and one of the
transfer syntaxes pydicom can write (explicit/implicit little endian, explicit big endian, deflated, RLE,
JPEG 2000 lossless) or GDCM can encode (JPEG-LS lossless, JPEG lossless SV1). A builder that reads the
demo correctly has met most of what a real PACS export throws at it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from mgll_data.demo.fake_phi import FakeStudyPeople

SOP_CLASSES = {
    "CR": uid.ComputedRadiographyImageStorage,
    "DX-presentation": uid.DigitalXRayImageStorageForPresentation,
    "DX-processing": uid.DigitalXRayImageStorageForProcessing,
}
_TRANSFER_SYNTAXES = (
    (uid.ExplicitVRLittleEndian, 0.22),
    (uid.ImplicitVRLittleEndian, 0.14),
    (uid.ExplicitVRBigEndian, 0.07),
    (uid.DeflatedExplicitVRLittleEndian, 0.08),
    (uid.RLELossless, 0.15),
    (uid.JPEG2000Lossless, 0.16),
    (uid.JPEGLSLossless, 0.09),
    (uid.JPEGLosslessSV1, 0.09),
)
_GDCM_SYNTAXES = (uid.JPEGLSLossless, uid.JPEGLosslessSV1)
_RESCALES = ((1.0, -1024.0), (0.5, 0.0), (2.0, 100.0), (1.0, 0.0))
UID_ROOT_ENTROPY = "mgll-demo"


@dataclass(frozen=True)
class PixelVariant:
    sop: str
    transfer_syntax: str
    photometric: str
    bits_stored: int
    signed: bool
    rescale: tuple[float, float] | None
    window: str  # none | plain | linear | sigmoid
    padding: bool


def choose_variant(rng: np.random.Generator) -> PixelVariant:
    sop = str(rng.choice(list(SOP_CLASSES), p=[0.4, 0.45, 0.15]))
    syntaxes = [ts for ts, _ in _TRANSFER_SYNTAXES]
    weights = np.array([w for _, w in _TRANSFER_SYNTAXES])
    transfer_syntax = syntaxes[int(rng.choice(len(syntaxes), p=weights / weights.sum()))]
    bits = int(rng.choice([8, 10, 12, 14, 15, 16], p=[0.18, 0.08, 0.4, 0.12, 0.07, 0.15]))
    signed = bits >= 12 and transfer_syntax not in _GDCM_SYNTAXES and rng.random() < 0.12
    return PixelVariant(
        sop=sop,
        transfer_syntax=str(transfer_syntax),
        photometric="MONOCHROME1" if rng.random() < 0.3 else "MONOCHROME2",
        bits_stored=bits,
        signed=bool(signed),
        rescale=_RESCALES[int(rng.integers(len(_RESCALES)))] if rng.random() < 0.25 else None,
        window=str(rng.choice(["none", "plain", "linear", "sigmoid"], p=[0.45, 0.25, 0.15, 0.15])),
        padding=(not signed) and rng.random() < 0.2,
    )


def stored_pixels(
    density: np.ndarray, variant: PixelVariant, rng: np.random.Generator
) -> tuple[np.ndarray, int | None]:
    """Map a [0, 1] density map to stored values; returns the array and the padding value (if any)."""
    top = 2**variant.bits_stored - 1
    low = rng.uniform(0.02, 0.08) * top
    high = rng.uniform(0.75, 0.97) * top
    values = low + density * (high - low) if variant.photometric == "MONOCHROME2" else high - density * (high - low)
    values = np.rint(values)
    padding_value = None
    if variant.padding:
        padding_value = 0 if variant.photometric == "MONOCHROME2" else top
        height, width = density.shape
        for edge in rng.choice(["top", "bottom", "left", "right"], size=int(rng.integers(1, 4)), replace=False):
            band = int(rng.integers(4, max(5, min(height, width) // 12)))
            if edge == "top":
                values[:band] = padding_value
            elif edge == "bottom":
                values[-band:] = padding_value
            elif edge == "left":
                values[:, :band] = padding_value
            else:
                values[:, -band:] = padding_value
    if variant.signed:
        values = values - 2 ** (variant.bits_stored - 1)
        return values.astype(np.int16), None
    return values.astype(np.uint8 if variant.bits_stored == 8 else np.uint16), padding_value


def demo_uid(*parts: object) -> str:
    """Deterministic UIDs in the 2.25 (UUID-derived) arc, so the same seed writes byte-identical files.

    pydicom's generate_uid ignores its entropy sources under the 2.25 root, hence the hash here.
    """
    digest = hashlib.sha256("|".join([UID_ROOT_ENTROPY, *map(str, parts)]).encode()).hexdigest()
    return f"2.25.{int(digest[:32], 16)}"


@dataclass(frozen=True)
class ImageContext:
    """Where an image sits in its study; ids are the export's own (identifying) ones."""

    seed: int
    subject: str
    study: str
    view: str
    series_number: int
    instance_number: int
    study_description: str
    series_description: str


def build_dicom(density: np.ndarray, variant: PixelVariant, people: FakeStudyPeople, ctx: ImageContext,
                rng: np.random.Generator) -> tuple[Dataset, np.ndarray]:
    """The DICOM dataset (header with fake PHI + uncompressed pixels) and the stored array."""
    pixels, padding_value = stored_pixels(density, variant, rng)
    height, width = pixels.shape
    sop_class = SOP_CLASSES[variant.sop]
    sop_instance = demo_uid(ctx.seed, ctx.subject, ctx.study, ctx.series_number, ctx.instance_number)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    study_date = people.study_date.strftime("%Y%m%d")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime = f"{int(rng.integers(7, 20)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}"
    ds.AccessionNumber = people.accession
    ds.Modality = "CR" if variant.sop == "CR" else "DX"
    ds.Manufacturer = people.manufacturer
    ds.InstitutionName = people.institution
    ds.InstitutionAddress = people.address
    ds.ReferringPhysicianName = f"{people.referring[1]}^{people.referring[0]}"
    ds.StationName = people.station
    ds.StudyDescription = ctx.study_description
    ds.SeriesDescription = ctx.series_description
    ds.OperatorsName = f"{people.dictating[1]}^{people.dictating[0]}"
    ds.ManufacturerModelName = people.model
    ds.PatientName = people.dicom_name
    ds.PatientID = people.patient_id
    ds.PatientBirthDate = people.birth_date.strftime("%Y%m%d")
    ds.PatientSex = people.sex
    ds.PatientAge = f"{min(people.age, 999):03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.DeviceSerialNumber = people.device_serial
    ds.SoftwareVersions = "demo-1.0"
    ds.ViewPosition = "LL" if ctx.view == "LATERAL" else ctx.view
    ds.StudyInstanceUID = demo_uid(ctx.seed, ctx.subject, ctx.study)
    ds.SeriesInstanceUID = demo_uid(ctx.seed, ctx.subject, ctx.study, ctx.series_number)
    ds.StudyID = ctx.study.lstrip("s")
    ds.SeriesNumber = ctx.series_number
    ds.InstanceNumber = ctx.instance_number
    ds.PatientOrientation = ["A", "F"] if ctx.view == "LATERAL" else ["L", "F"]
    spacing = round(float(rng.uniform(340, 400)) / width, 4)
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.PixelSpacing = [spacing, spacing]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = variant.photometric
    ds.Rows, ds.Columns = height, width
    ds.BitsAllocated = 8 if variant.bits_stored == 8 else 16
    ds.BitsStored = variant.bits_stored
    ds.HighBit = variant.bits_stored - 1
    ds.PixelRepresentation = 1 if variant.signed else 0
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    if variant.sop.startswith("DX"):
        ds.PresentationIntentType = "FOR PRESENTATION" if variant.sop == "DX-presentation" else "FOR PROCESSING"
        ds.PresentationLUTShape = "INVERSE" if variant.photometric == "MONOCHROME1" else "IDENTITY"
    slope, intercept = variant.rescale or (1.0, 0.0)
    if variant.rescale:
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.RescaleType = "US"
    if padding_value is not None:
        ds.PixelPaddingValue = padding_value
    if variant.window != "none":
        inner = pixels[height // 8: -height // 8, width // 8: -width // 8].astype(np.float64) * slope + intercept
        low, high = np.percentile(inner, [1.0, 99.0])
        ds.WindowCenter = f"{(low + high) / 2:.1f}"
        ds.WindowWidth = f"{max(high - low, 2.0):.1f}"
        if variant.window != "plain":
            ds.VOILUTFunction = variant.window.upper()
    ds.PixelData = pixels.tobytes()
    return ds, pixels


def save(ds: Dataset, pixels: np.ndarray, transfer_syntax: str, path: Path) -> str:
    """Write `ds` in the requested transfer syntax; returns the syntax actually written.

    JPEG-LS and JPEG lossless go through GDCM (pydicom has no encoder for them); when GDCM is missing or
    refuses, the file is written as explicit little endian instead, and the return value says so.
    """
    ts = uid.UID(transfer_syntax)
    if ts in _GDCM_SYNTAXES:
        return _save_with_gdcm(ds, ts, path)
    if ts in (uid.RLELossless, uid.JPEG2000Lossless):
        ds.compress(ts, pixels, generate_instance_uid=False)
    elif ts == uid.ExplicitVRBigEndian:
        ds.PixelData = pixels.astype(pixels.dtype.newbyteorder(">")).tobytes()
        ds.file_meta.TransferSyntaxUID = ts
    else:
        ds.file_meta.TransferSyntaxUID = ts
    ds.save_as(path, enforce_file_format=True)
    return str(ts)


def _save_with_gdcm(ds: Dataset, ts: uid.UID, path: Path) -> str:
    staging = path.with_name(path.name + ".partial")
    ds.save_as(staging, enforce_file_format=True)
    try:
        import gdcm

        reader = gdcm.ImageReader()
        reader.SetFileName(str(staging))
        if not reader.Read():
            raise RuntimeError("gdcm could not read the staged file")
        change = gdcm.ImageChangeTransferSyntax()
        target = (
            gdcm.TransferSyntax.JPEGLSLossless
            if ts == uid.JPEGLSLossless
            else gdcm.TransferSyntax.JPEGLosslessProcess14_1
        )
        change.SetTransferSyntax(gdcm.TransferSyntax(target))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise RuntimeError("gdcm could not encode")
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(path))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise RuntimeError("gdcm could not write")
    except (ImportError, RuntimeError):
        os.replace(staging, path)
        return str(uid.ExplicitVRLittleEndian)
    staging.unlink()
    return str(ts)

