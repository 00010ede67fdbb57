"""What in a header identifies someone: the ids behind pseudonyms, and the strings to scrub from reports.

`header_ids` feeds the pseudonyms and the private linkage only; `header_phi` lists names, ids, places and
dates (with their ASCII-folded and mojibake-repaired spellings) for `scrub_text` to remove.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from mgll_data.deid.header import _get, _quiet, _texts
from mgll_data.header_terms import DESCRIPTION_WORDS


@_quiet
def header_ids(header: Any) -> dict[str, str | None]:
    """The header's own (identifying) patient and study ids, for pseudonyms and the private linkage only."""
    if header is None:
        return {"patient_id": None, "study_id": None}
    patient = _joined(header, "PatientID")
    study = _joined(header, "StudyInstanceUID") or _joined(header, "AccessionNumber") or _joined(header, "StudyID")
    return {"patient_id": patient, "study_id": study}


def _joined(header: Any, keyword: str) -> str | None:
    texts = _texts(_get(header, keyword))
    return "\\".join(texts)[:1024] if texts else None


# Attributes whose values identify a person, place or record (besides every PN-valued element).
_PHI_ID_KEYWORDS = frozenset({
    "PatientID", "OtherPatientIDs", "IssuerOfPatientID", "AccessionNumber", "StudyID", "AdmissionID",
    "RequestedProcedureID", "ScheduledProcedureStepID", "PerformedProcedureStepID",
    "FillerOrderNumberImagingServiceRequest", "PlacerOrderNumberImagingServiceRequest", "DeviceSerialNumber",
    "MedicalRecordLocator", "PatientTelephoneNumbers",
    "ReferringPhysicianTelephoneNumbers", "MilitaryRank", "DetectorID",
    "PlateID", "CassetteID", "GantryID", "StationName", "PatientBirthDate", "StudyDate", "SeriesDate",
    "AcquisitionDate", "ContentDate", "InstanceCreationDate",
})
_PHI_PLACE_KEYWORDS = frozenset({
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "PatientAddress",
    "ReferringPhysicianAddress", "RegionOfResidence", "ResponsibleOrganization", "PersonAddress",
})
# Names stored with a VR other than PN in older or non-conformant files.
_PHI_NAME_KEYWORDS = frozenset({"OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "ResponsiblePerson"})
# Words that are too generic (or clinical) to scrub everywhere they occur, even if a header holds them.
# Names that are also common words ("Mark", "May") are only caught in context (titles, signatures).
_GENERIC_WORDS = frozenset(
    """
    the and of for with at on in to by de la le van von der den del da di du mr mrs ms md phd jr sr ii iii iv
    hospital hospitals medical center centre clinic clinics health healthcare university college school institute
    department dept radiology imaging diagnostic diagnostics services service system systems group general regional
    memorial community county city state national children childrens women womens pet animal veterinary
    street st road rd avenue ave lane ln drive dr suite ste floor building bldg room unit north south east west
    chest lung lungs heart abdomen head neck spine pelvis knee hand foot cr dx ct mr us xr xray ray rad
    anonymous anon unknown none test patient
    saint sainte san santa mount main royal infirmary trust foundation nhs campus wing site branch office
    hôpital hopital krankenhaus klinikum klinik radiologie universität ospedale
    blvd boulevard parkway pkwy highway hwy court place terrace circle square trail pike route apartment
    normal clear small large long white black gray grey brown green young may mark will bill hope rose
    """.split()
)
MIN_PHI_CHARS = 3


@_quiet
def header_phi(header: Any) -> list[str]:
    """Identifying strings from the header (names, ids, institution, dates), to scrub from the report too.

    Person names are split into their words so "Dr. Wetzel" or "JAMES" in the report are caught; places
    and ids are kept whole (their words, like "Hospital", are too generic). Very short or generic
    fragments are skipped: scrubbing "NG" or "Chest" everywhere would damage the report.
    """
    if header is None:
        return []
    found: set[str] = set()
    try:
        elements = list(header.iterall())
    except Exception:
        elements = []
    for element in elements:
        try:
            keyword = element.keyword
            vr = element.VR
            value = element.value
        except Exception:
            continue
        if vr == "SQ":
            continue
        if vr == "PN" or keyword in _PHI_NAME_KEYWORDS:
            for text in _texts(value):
                found.update(_name_parts(text))
        elif keyword in _PHI_PLACE_KEYWORDS:
            for text in _texts(value):
                found.update(_place_parts(text))
        elif keyword in _PHI_ID_KEYWORDS:
            for text in _texts(value):
                if len(text) <= 256:
                    found.add(text)
    found |= {repaired for text in found if (repaired := _repair_mojibake(text))}
    found |= {folded for text in found if (folded := _ascii_fold(text)) != text}
    return sorted((s for s in found if _worth_scrubbing(s)), key=lambda s: (-len(s), s))


def _ascii_fold(text: str) -> str:
    """"Wüstenhagen" as a report typed on an ASCII keyboard spells it: "Wustenhagen"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _repair_mojibake(text: str) -> str | None:
    """The intended text of UTF-8 bytes that the header's character set made pydicom read as latin-1.

    An export that declares ISO_IR 100 but writes UTF-8 turns "Håkonsen" into "HÃ¥konsen"; the report,
    typed elsewhere, says "Håkonsen", so both spellings must be scrubbed. (The opposite mistake leaves
    U+FFFD in the value, which `scrub_text` matches as a wildcard.)
    """
    if text.isascii():
        return None
    try:
        repaired = text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None
    return repaired if repaired != text else None


def _name_parts(text: str) -> set[str]:
    text = text[:1024]
    parts: set[str] = set()
    for component in re.split(r"[\^=]", text):
        component = component.strip(" ,.")
        if not component:
            continue
        parts.update(w.strip(".") for w in re.split(r"[\s,]+", component) if w)
    return parts


def _place_parts(text: str) -> set[str]:
    # Whole lines, and the distinctive words: a report says "the Quarrington ED", not the full name.
    # Generic and clinical words ("Hospital", "Thoracic") and numbers stay out: scrubbing them everywhere
    # would damage every report, and street numbers are caught in context by the address rule.
    text = text[:1024]
    lines = [line.strip(" ,") for line in re.split(r"[\r\n]+", text)]
    words = {
        word
        for word in _PLACE_WORD.findall(text)
        if word[0].isupper() and word.lower() not in _GENERIC_WORDS and word.upper() not in DESCRIPTION_WORDS
    }
    return {line for line in lines if line} | {" ".join(lines).strip()} | words


_PLACE_WORD = re.compile(r"(?<![\w'’-])[^\W\d_]{4,}(?![\w'’-])")


def _worth_scrubbing(text: str) -> bool:
    stripped = text.strip()
    if len(stripped) < MIN_PHI_CHARS or stripped.lower() in _GENERIC_WORDS:
        return False
    if not re.search(r"[^\W_]", stripped):  # any script: a Cyrillic or Greek name is still a name
        return False
    # A short pure number (a series number, "1") would wipe measurements out of the report.
    return not (stripped.isdigit() and len(stripped) < 4)
