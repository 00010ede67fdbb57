"""Real DICOM files that ship inside installed packages, copied byte for byte into the demo export.

Synthetic files only contain what we thought to write; these come from real modalities and vendors
(a Philips CR chest in JPEG 2000, a Fuji CR extremity, a real DX radiograph whose header carries PHI, a
JPEG lossless nuclear-medicine image, a JPEG-LS MR slice), so the builder meets headers nobody here
designed. Their reports are written by this project for the demo and are not clinical reads; their
ground truth is what those reports say. Files are looked up locally only — never downloaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from mgll_data.demo.fake_phi import FakeStudyPeople


@dataclass(frozen=True)
class PackagedStudy:
    key: str  # "<package>:<file>", also the ground truth's `source` column
    view: str
    findings: str
    impression: str
    labels: dict[str, int]


PACKAGED_STUDIES = (
    PackagedStudy(
        key="pydicom-data:RG1_J2KR.dcm",
        view="PA",
        findings="Several rounded densities project over both lungs, possibly pulmonary nodules. "
                 "No pleural effusion or pneumothorax. Heart size is normal.",
        impression="Possible bilateral pulmonary nodules; CT is recommended.",
        labels={"Lung Lesion": -1, "Pleural Effusion": 0, "Pneumothorax": 0, "Cardiomegaly": 0},
    ),
    PackagedStudy(
        key="pydicom-data:RG3_J2KR.dcm",
        view="AP",
        findings="AP view of the distal tibia and ankle. Well-defined eccentric lucency in the distal tibial "
                 "metaphysis, compatible with a non-ossifying fibroma. No fracture is seen.",
        impression="Benign-appearing distal tibial lucency. No fracture.",
        labels={"Fracture": 0},
    ),
    PackagedStudy(
        key="deid-data:animals/cat.dcm",
        view="LATERAL",
        findings="Veterinary lateral radiograph of the thorax and abdomen. Heart size is normal. "
                 "No pleural effusion. No pneumothorax.",
        impression="No acute thoracic abnormality.",
        labels={"Cardiomegaly": 0, "Pleural Effusion": 0, "Pneumothorax": 0, "No Finding": 1},
    ),
    PackagedStudy(
        key="pydicom-data:JPEG-LL.dcm",
        view="AP",
        findings="Whole-body bone scintigraphy. No scintigraphic evidence of fracture.",
        impression="No focal abnormality.",
        labels={"Fracture": 0, "No Finding": 1},
    ),
    PackagedStudy(
        key="pydicom:MR_small_jpeg_ls_lossless.dcm",
        view="AP",
        findings="Single axial MR slice from a test series. Unremarkable.",
        impression="Unremarkable.",
        labels={"No Finding": 1},
    ),
)


def locate(key: str) -> Path | None:
    """The installed file behind a key, or None when its package (or the file) is not installed."""
    package, name = key.split(":", 1)
    if package in ("pydicom", "pydicom-data"):
        from pydicom.data import get_testdata_file

        found = get_testdata_file(name, download=False)
        return Path(found) if isinstance(found, str) and Path(found).is_file() else None
    if package == "deid-data":
        spec = importlib.util.find_spec("deid_data")
        if spec is None or spec.origin is None:
            return None
        path = Path(spec.origin).parent / "data" / name
        return path if path.is_file() else None
    raise ValueError(f"unknown package in packaged key {key!r}")


def packaged_report(study: PackagedStudy, people: FakeStudyPeople) -> str:
    """A short report in the demo's house style, with the same kind of fake sign-off PHI."""
    study_date = people.study_date.strftime("%m/%d/%Y")
    return (
        "                                 FINAL REPORT\n"
        f" EXAMINATION:  {study.view} RADIOGRAPH (DEMO, PACKAGED TEST FILE)\n\n"
        f" FINDINGS:\n\n {study.findings}\n\n IMPRESSION:\n\n {study.impression}\n\n"
        f" Dictated by: Dr. {people.dictating[0]} {people.dictating[1]} on {study_date}. "
        f"Accession number: {people.accession}. Questions: call {people.phone}.\n"
    )
