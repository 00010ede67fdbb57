"""De-identification: keyed pseudonyms, the DICOM header allow-list, and report text scrubbing.

Privacy model. A built dataset is meant to be shared, so:
- ids are replaced by keyed HMAC-SHA256 pseudonyms; the key (the "salt") lives outside the dataset, so
  nobody holding only the dataset can re-derive a pseudonym from a known MRN, while the data owner gets
  the same pseudonyms on every rebuild (incremental builds link up);
- nothing from a DICOM header reaches a row unless `header_metadata` lets it through, and even then
  coded values are normalised and free text is scrubbed;
- report text goes through `scrub_text`, which replaces identifiers with typed placeholders. Rules are
  tuned for high recall on PHI and high precision on clinical wording ("5 mm", "T12", "C5-C6", "NG tube").

Regexes are compiled once at import: `scrub_text` runs once per image on the build's hot path.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import os
import re
import secrets
import unicodedata
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from mgll_data.header_terms import (
    BODY_PART_TERMS,
    DESCRIPTION_WORDS,
    MANUFACTURER_MODEL_WORDS,
    MODALITY_TERMS,
    VIEW_TERMS,
)
from mgll_data.records import StageError

SALT_BYTES = 32
MIN_SALT_BYTES = 32
SALT_ENV = "MGLL_SALT_FILE"
PSEUDONYM_HEX = 20
MAX_VALUE_BYTES = 65536  # a header value longer than this is hostile; only its start is looked at

# Pseudonym prefixes per kind, so a patient pseudonym can never equal a study pseudonym even for equal
# input values (the kind is also part of the HMAC message).
_KIND_PREFIX = {
    "pat": "pat", "patient": "pat",
    "stu": "stu", "study": "stu",
    "img": "img", "image": "img",
    "src": "src", "source": "src",
}
_KIND_RE = re.compile(r"[a-z]{2,8}")


# --------------------------------------------------------------------------------------------- salt


def default_salt_path() -> Path:
    """The salt lives in the user's config, never beside the data it protects."""
    override = os.environ.get(SALT_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".config" / "mgll" / "salt"


def load_salt(path: Path) -> bytes:
    """Read the pseudonym key, creating a random one (mode 0600) on first use.

    The file may hold raw bytes or hex text (so a key kept in a password vault can be pasted in).
    A short or empty file is refused rather than silently weakening every pseudonym.
    """
    path = Path(path).expanduser()
    if not path.exists():
        _create_salt(path)
    if path.is_dir():
        raise ValueError(f"salt file {path} is a directory; point MGLL_SALT_FILE / --salt-file at a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"salt file {path} cannot be read ({exc.strerror or type(exc).__name__})") from None
    text = raw.strip()
    if re.fullmatch(rb"[0-9a-fA-F]+", text or b"-") and len(text) % 2 == 0 and len(text) >= 2 * MIN_SALT_BYTES:
        return bytes.fromhex(text.decode("ascii"))
    if len(raw) < MIN_SALT_BYTES:
        raise ValueError(
            f"salt file {path} is corrupt or too short ({len(raw)} bytes, need at least {MIN_SALT_BYTES}); "
            "restore it from backup (a new salt changes every pseudonym)"
        )
    return raw


def _create_salt(path: Path) -> None:
    # Write to a private temp file and hard-link it into place: concurrent first runs (several workers or
    # builds) never see a half-written salt, and the first writer wins.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(SALT_BYTES))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------- pseudonyms


def pseudonym(salt: bytes, kind: str, value: str) -> str:
    """Keyed, kind-prefixed pseudonym, e.g. pseudonym(salt, "patient", "10000032") -> "pat-3f0c…" (20 hex)."""
    prefix = _kind_prefix(kind)
    message = f"{prefix}\x00{str(value).strip()}".encode("utf-8", "surrogatepass")
    digest = hmac.new(salt, message, hashlib.sha256).hexdigest()
    return f"{prefix}-{digest[:PSEUDONYM_HEX]}"


def image_id(salt: bytes, content_sha256: str, source_relpath: str) -> str:
    """Stable across rebuilds; the path is included so two identical files in two studies stay two rows."""
    return pseudonym(salt, "img", f"{content_sha256}\x00{source_relpath}")


def source_key(salt: bytes, source_relpath: str) -> str:
    """Names an input in shareable tables (rejects) without revealing its path."""
    return pseudonym(salt, "src", source_relpath)


def _kind_prefix(kind: str) -> str:
    key = str(kind).strip().lower()
    if key in _KIND_PREFIX:
        return _KIND_PREFIX[key]
    if not _KIND_RE.fullmatch(key):
        raise ValueError(f"pseudonym kind must be 2-8 lower-case letters (e.g. 'patient', 'study'), got {kind!r}")
    return key


# ------------------------------------------------------------------------------------- header values


def _texts(value: Any) -> list[str]:
    """Every string a header value holds, whatever its VR or shape (bytes, multi-valued, PN, numbers).

    Nested datasets (sequence items) are skipped: callers that want them recurse explicitly.
    """
    if value is None or isinstance(value, (Dataset, Sequence)):
        return []
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)[:MAX_VALUE_BYTES]
        try:
            parts = raw.decode("utf-8").split("\\")
        except UnicodeDecodeError:
            parts = raw.decode("latin-1").split("\\")
    elif isinstance(value, str):
        parts = value.split("\\")
    elif isinstance(value, (list, tuple, MultiValue)):
        return [text for item in value for text in _texts(item)]
    else:
        parts = [str(value)]
    cleaned = (p.replace("\x00", " ").strip() for p in parts)
    return [p for p in cleaned if p]


def _get(header: Any, keyword: str) -> Any:
    # A hostile or damaged header can make even reading an element raise (bad VR, bad length).
    try:
        element = header.get(keyword) if hasattr(header, "get") else None
        if element is None:
            return None
        return getattr(element, "value", element)
    except Exception:
        return None


def _first_text(header: Any, keyword: str) -> str | None:
    texts = _texts(_get(header, keyword))
    return texts[0] if texts else None


def _sequence_items(header: Any, keyword: str) -> list[Any]:
    value = _get(header, keyword)
    try:
        return [item for item in (value or []) if hasattr(item, "get")]
    except TypeError:
        return []


# ----------------------------------------------------------------------------------- burned-in text

def refuse_burned_in_text(header: Any, policy: str) -> None:
    """Reject an image whose header says identifying text is burned into its pixels.

    Modalities type names, dates and ids onto screen captures, ultrasound and some scanned films; that
    text is pixels, so every header and report scrub walks past it, and this builder does not read pixels
    for text. The header's own flag (BurnedInAnnotation, 0028,0301 = YES) is the one signal the DICOM
    standard gives, so it is honoured by default; `keep` is for exports whose pixels were cleaned upstream.
    """
    if policy == "keep" or header is None:
        return
    if (_first_text(header, "BurnedInAnnotation") or "").strip().upper() == "YES":
        raise StageError(
            "deid", "burned-in-annotation",
            "the header says identifying text is burned into the pixels (BurnedInAnnotation YES); "
            "set image.burned_in_annotation: keep in the pipeline only for exports cleaned upstream",
        )  # fmt: skip


# ----------------------------------------------------------------------------------- header_metadata

METADATA_KEYS = (
    "modality",
    "view_position",
    "body_part",
    "manufacturer_model",
    "pixel_spacing_mm",
    "study_description",
    "series_description",
)
_CODE_DISALLOWED = re.compile(r"[^A-Z0-9 _-]+")
_SPACES = re.compile(r"\s+")
_LONG_DIGITS = re.compile(r"\d{6,}")
_CODE_LIMITS = {"modality": 16, "view_position": 24, "body_part": 32, "manufacturer_model": 64}
DESCRIPTION_MAX_CHARS = 256
_CODE_VOCABULARIES = {
    "modality": MODALITY_TERMS,
    "view_position": VIEW_TERMS,
    "body_part": BODY_PART_TERMS,
    "manufacturer_model": MANUFACTURER_MODEL_WORDS,
}
_MODEL_NUMBER = re.compile(r"(?=.*[A-Z])(?=.*\d)[A-Z0-9_-]+")
_MODEL_JOINERS = re.compile(r"[-_]")

# View Code Sequence meanings (SNOMED/DCM) -> DICOM ViewPosition terms.
_VIEW_MEANINGS = (
    (re.compile(r"postero[- ]?anterior|\bpa\b"), "PA"),
    (re.compile(r"antero[- ]?posterior|\bap\b"), "AP"),
    (re.compile(r"left lateral"), "LL"),
    (re.compile(r"right lateral"), "RL"),
    (re.compile(r"lateral"), "LATERAL"),
)


def _quiet(function: Any) -> Any:
    """Run a header reader with pydicom's validation warnings silenced.

    Damaged headers are expected input here (they become None, never an exception); one warning per
    attribute per image would bury a build's progress output.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function(*args, **kwargs)

    return wrapper


@_quiet
def header_metadata(header: Any, default_modality: str | None = None) -> dict[str, Any]:
    """The allow-listed, normalised metadata of one image; every key always present (None when absent).

    Coded values become upper-case [A-Z0-9 _-] codes, or None when they are too long or look like PHI
    (a name or id from this header, a long digit run). Free text (descriptions) is scrubbed.
    """
    result: dict[str, Any] = dict.fromkeys(METADATA_KEYS)
    if header is not None:
        phi = header_phi(header)
        phi_words = {w.upper() for w in phi}
        result["modality"] = _code(_first_text(header, "Modality"), "modality", phi_words)
        result["view_position"] = _code(_first_text(header, "ViewPosition"), "view_position", phi_words)
        if result["view_position"] is None:
            result["view_position"] = _view_from_code_sequence(header) or _view_from_orientation(header)
        result["body_part"] = _code(_first_text(header, "BodyPartExamined"), "body_part", phi_words)
        if result["body_part"] is None:
            for item in _sequence_items(header, "AnatomicRegionSequence")[:1]:
                result["body_part"] = _code(_first_text(item, "CodeMeaning"), "body_part", phi_words)
        result["manufacturer_model"] = _code(
            _first_text(header, "ManufacturerModelName"), "manufacturer_model", phi_words
        )
        result["pixel_spacing_mm"] = _spacing(header)
        result["study_description"] = _description(_get(header, "StudyDescription"), phi)
        result["series_description"] = _description(_get(header, "SeriesDescription"), phi)
    if result["modality"] is None and default_modality:
        result["modality"] = _code(str(default_modality), "modality", set())
    return result


def _code(value: str | None, key: str, phi_words: set[str]) -> str | None:
    if not value:
        return None
    limit = _CODE_LIMITS[key]
    if len(value) > 4 * limit:
        return None  # absurdly long: not a code, and truncating could keep part of a name
    code = _SPACES.sub(" ", _CODE_DISALLOWED.sub(" ", value.upper())).strip()
    if not code or len(code) > limit:
        return None
    return _coded_terms(code, key, phi_words)


def _coded_terms(code: str, key: str, phi_words: set[str]) -> str | None:
    # A coded attribute is typed at the console, so it can hold anything ("DX^Bobbington", "PA 20230917",
    # a surname in BodyPartExamined or ManufacturerModelName). A name that is not in this header looks
    # exactly like an unknown code, so only known terms (and model numbers) pass: unknown words are
    # dropped, and nothing known means None.
    vocabulary = _CODE_VOCABULARIES[key]
    if key == "modality":  # one term: "DX^Bobbington" is DX
        return code if code in vocabulary else next((w for w in code.split(" ") if w in vocabulary), None)
    kept = [
        word
        for word in code.split(" ")
        if word in vocabulary
        or (key == "manufacturer_model" and (_is_model_number(word, phi_words) or _joined_model_words(word)))
    ]
    return " ".join(kept) if kept else None


def _joined_model_words(word: str) -> bool:
    """DRX-EVOLUTION, DX-D: known model words joined by hyphens or underscores."""
    parts = _MODEL_JOINERS.split(word)
    return len(parts) > 1 and all(part in MANUFACTURER_MODEL_WORDS for part in parts)


def _is_model_number(word: str, phi_words: set[str]) -> bool:
    """A token mixing letters and digits (XR656, DXD60_1000G) reads as a model number, unless it is one
    of this header's identifying values or holds a serial-number-length digit run."""
    return bool(_MODEL_NUMBER.fullmatch(word)) and word not in phi_words and not _LONG_DIGITS.search(word)


def _view_from_code_sequence(header: Any) -> str | None:
    for item in _sequence_items(header, "ViewCodeSequence")[:1]:
        meaning = (_first_text(item, "CodeMeaning") or "").lower()
        if len(meaning) > 64:
            return None
        for pattern, view in _VIEW_MEANINGS:
            if pattern.search(meaning):
                return view
    return None


def _view_from_orientation(header: Any) -> str | None:
    # Patient Orientation gives the directions of the image rows/columns. Frontal (AP or PA) images both
    # read L/F or R/F, so only "lateral" (rows along anterior/posterior) can be derived safely.
    directions = [t.upper() for t in _texts(_get(header, "PatientOrientation"))]
    if len(directions) == 2 and directions[0] in ("A", "P") and directions[1] in ("F", "H"):
        return "LATERAL"
    return None


def _spacing(header: Any) -> float | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        texts = _texts(_get(header, keyword))
        if not texts:
            continue
        try:
            value = float(texts[0][:32])
        except ValueError:
            continue
        if math.isfinite(value) and 0.0 < value < 100.0:
            return value
    return None


def _description(value: Any, phi: list[str]) -> str | None:
    texts = _texts(value)
    if not texts:
        return None
    text = " ".join(texts)[: DESCRIPTION_MAX_CHARS * 4]
    scrubbed = _SPACES.sub(" ", _imaging_words_only(scrub_text(text, phi))).strip(" -,;:/")
    if len(scrubbed) > DESCRIPTION_MAX_CHARS:
        scrubbed = scrubbed[:DESCRIPTION_MAX_CHARS].rsplit(" ", 1)[0]
    return scrubbed or None


_WORD_RUN = re.compile(r"[^\W\d_]+")
_DIGIT = re.compile(r"\d")
DESCRIPTION_MAX_DIGITS = 4


def _imaging_words_only(text: str) -> str:
    """Drop every whitespace-separated token holding a word outside the imaging vocabulary.

    Study and series descriptions are typed by technologists, who put patients' and colleagues' names
    there ("CHEST PA - JOHN SMITH"); in an all-caps procedure line a name has no context that tells it
    from a word, so the pattern rules of `scrub_text` cannot see it. Descriptions are short procedure
    phrases, so keeping only procedure words loses little and closes that hole. Placeholders stay.
    """
    kept = []
    for token in text.split():
        if len(_DIGIT.findall(token)) > DESCRIPTION_MAX_DIGITS:
            continue
        words = _WORD_RUN.findall(token)
        if all(len(w) == 1 or w.upper() in DESCRIPTION_WORDS for w in words):
            kept.append(token)
    return " ".join(kept)


# ------------------------------------------------------------------------------------ header ids / phi


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
    if stripped.isdigit() and len(stripped) < 4:
        return False
    return True


# --------------------------------------------------------------------------------------- scrub_text

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
    r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?"
    r"|JAN(?:UARY)?|FEB(?:RUARY)?|MAR(?:CH)?|APR(?:IL)?|MAY|JUNE?|JULY?|AUG(?:UST)?|SEP(?:T(?:EMBER)?)?"
    r"|OCT(?:OBER)?|NOV(?:EMBER)?|DEC(?:EMBER)?)\.?"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_MON_NUM = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:19|20)\d{2}"
_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?"
_TIME_OR_HRS = rf"(?:{_TIME}|(?:[01]\d|2[0-3])[0-5]\d\s*(?:hrs|hours|h)\b)"
_DATE_CORE = (
    rf"(?:{_YEAR}[-/.]{_MON_NUM}[-/.]{_DAY}(?:[T ]{_TIME})?"  # 2023-01-02, 2023/1/2, ISO with time
    rf"|{_DAY}/{_DAY}/(?:{_YEAR}|\d{{2}})|{_DAY}-{_DAY}-(?:{_YEAR}|\d{{2}})"  # 01/02/2023, 1-2-23 (either order)
    rf"|{_DAY}\.{_DAY}\.{_YEAR}"  # 02.01.2023
    rf"|{_DAY}[- ]{_MONTH}[- ,]*(?:{_YEAR}|\d{{2}})"  # 2 January 2023, 02-Jan-2023, 2-JAN-23
    rf"|{_DAY}\s+(?:of\s+)?{_MONTH}"  # 2 January, 2nd of January
    rf"|{_MONTH}\s*{_DAY},?\s*{_YEAR}"  # Jan 2, 2023 / January 2nd 2023
    rf"|{_MONTH}\s*{_DAY},?\s+\d{{2}}(?![\d.]|(?i:\s*(?:mm|cm|m|x)\b))"  # Aug 03 07
    rf"|{_MONTH}\s+{_DAY}(?![\d.]|(?i:\s*(?:mm|cm|m|x)\b))"  # Jan 2
    rf"|{_MONTH},?\s+{_YEAR}"  # January 2023
    rf"|{_DAY}{_MONTH}{_YEAR}"  # 17SEP2023
    rf"|(?:19|20)\d{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:[T ]?(?:[01]\d|2[0-3])[0-5]\d(?:[0-5]\d)?)?"
    r")"
)
# Each pattern starts with a look-ahead for its possible first characters: it lets the regex engine skip
# ahead quickly instead of trying the whole alternation at every position (2-3x faster on long reports).
_DATE_RE = re.compile(
    rf"(?=[0-9JFMASONDjfmasond])(?<![\w/.-])(?:{_TIME_OR_HRS}\s+(?:on\s+)?)?{_DATE_CORE}"
    rf"(?:,?\s+(?:at\s+)?{_TIME_OR_HRS})?(?![\w/-])"
)
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_URL_RE = re.compile(r"\b(?:https?://|ftp://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
# A host name without a scheme ("pacs.example-hospital.org/viewer?id=1") names the institution just as well.
_TLD = (
    r"(?:com|org|net|edu|gov|mil|int|io|health|nhs|uk|us|ca|au|nz|ie|de|fr|nl|be|ch|at|it|es|se|no|dk|fi|in|jp|cn"
    r"|br)"
)
_TLD_HINT = re.compile(rf"\.{_TLD}(?![\w-])", re.IGNORECASE)  # a cheap test before the full pattern
_DOMAIN_RE = re.compile(
    rf"(?<![\w@.-])(?:[A-Za-z0-9-]+\.)+{_TLD}(?![\w-])(?:/[^\s<>\"')\]]*[^\s<>\"')\].,;:!?])?",
    re.IGNORECASE,
)
_PHONE_RE = re.compile(
    r"(?=[0-9+(PpTtFfBbEeMmCc])"
    r"(?:(?<![\w-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?:\s*(?:ext\.?|x)\s*\d{1,5})?(?![\w-])"
    r"|(?i:\b(?:phone|tel(?:ephone)?|fax|pager|beeper|pgr|mobile|ext|call(?:\s+back)?\s+at)\b"
    r"\.?\s*(?:#|no\.?|number)?\s*:?\s*)"
    r"\+?\d[\d\s().-]{2,16}\d)"
)
_ID_LABEL = (
    r"(?:MRN|MR\s*#|MR\s+(?:No|Number)\.?|Medical\s+Record(?:\s+(?:No\.?|Number|#))?"
    r"|Acc(?:ession)?(?:\s*(?:No\.?|Number|#))?"
    r"|Patient\s+ID|Pt\.?\s+ID|Study\s+ID|Exam(?:ination)?\s+(?:No\.?|Number|#|ID)|Order\s*(?:No\.?|Number|#|ID)"
    r"|Unit\s+(?:No\.?|Number)|Encounter(?:\s+(?:No\.?|Number|#|ID))?|Visit\s+(?:No\.?|Number|#|ID)|FIN|CSN|SSN"
    r"|Social\s+Security(?:\s+(?:No\.?|Number))?|Requisition(?:\s+(?:No\.?|Number|#))?|ID)"
)
_LABELLED_ID_RE = re.compile(
    rf"(?=[AaCcEeFfIiMmOoPpRrSsUuVv])(?<![\w])({_ID_LABEL}(?![A-Za-z])\s*(?:[:#]|\bis\b)?\s*)"
    rf"([A-Za-z]{{0,6}}[-#]?\d[\w-]{{2,}}|\d[\w-]{{2,}})",
    re.IGNORECASE,
)
_SSN_RE = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
_UID_RE = re.compile(r"(?<![\w.])\d+(?:\.\d+){4,}(?!\w|\.\d)")
_LONG_ID_RE = re.compile(
    r"(?<![\w.])(?=[\w-]*\d)(?:[A-Za-z]{1,6}[-_#]?)?(?:\d[-_]?){6,}(?:[A-Za-z]{1,3})?(?!\w|\.\w)"
    r"|(?<![\w.])[A-Za-z]{1,6}[-_#]?\d{5,}[A-Za-z]{0,3}(?!\w|\.\w)"
)
_STREET_SUFFIX = (
    r"(?:Street|St|Road|Rd|Avenue|Ave|Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Court|Ct|Place|Pl|Terrace|Ter|Parkway|Pkwy"
    r"|Highway|Hwy|Circle|Cir|Square|Sq|Trail|Trl|Pike|Route|Rte)"
)
_STATES = (
    r"(?:AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND"
    r"|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY)"
)
_CITY_STATE_ZIP = (
    rf"[A-Z][A-Za-z.'-]+(?:\s+[A-Z][A-Za-z.'-]+){{0,2}}(?:,\s*(?i:{_STATES})|\s+{_STATES})\.?\s+\d{{5}}(?:-\d{{4}})?"
)
_ADDRESS_RE = re.compile(
    rf"(?=[0-9A-Zz])"
    rf"(?:(?<![\w.])\d{{1,6}}[A-Za-z]?\s+(?:[NSEW]\.?\s+)?(?:[A-Z][A-Za-z'-]*\.?\s+){{1,4}}{_STREET_SUFFIX}\b\.?"
    rf"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|#)\.?\s*#?\w+)?"
    rf"(?:,?\s+{_CITY_STATE_ZIP})?"
    rf"|(?<![\w.]){_CITY_STATE_ZIP}(?![\w-])"
    rf"|\bP\.?\s?O\.?\s+Box\s+\d+"
    rf"|\b(?:Apt|Apartment|Suite|Ste)\.?\s*#?\d+[A-Za-z]?\b"
    rf"|\b[A-Z]{{1,2}}\d[A-Z\d]?\s+\d[A-Z]{{2}}\b"  # UK postcode (NW1 6XE)
    rf"|(?i:\bzip(?:\s*code)?\s*:?\s*)\d{{5}}(?:-\d{{4}})?\b)"
)
_AGE_RE = re.compile(
    r"(?=[19Aa])(?:(?<![\w.])(9\d|1[0-4]\d)(?=\s*-?\s*(?:years?|yrs?|y/o|y\.o\.|yo|y)\b|-year|-yr|\s*-?\s*y/o)"
    r"|\b(age[ds]?\s*:?\s*)(9\d|1[0-4]\d)(?!\d|\.\d))",
    re.IGNORECASE,
)

_NAME_STOP = (
    r"(?:on|at|and|or|the|of|by|via|in|to|for|with|from|was|were|is|are|has|had|who|which|regarding|re|about|after"
    r"|before|today|yesterday|tomorrow|this|that|these|those|date|time|she|he|his|her|hers|they|their|them|it|its"
    r"|there|here|we|you|our|no|not|none|patient|pt|be|been|also|however|then|when|if|as|but|referring|ordering"
    r"|attending|resident|physician|radiologist|technologist|signed|dictated|reviewed|electronically"
    r"|MD|M\.D|DO|PhD|RN|RT|NP|PA|MBBS|FRCR|DMRD"
    r"|XXXX|Findings|Impression|Comparison|Indication|History|Technique|Report|Examination|Exam|None|Unknown)\b"
)
# Latin letters incl. accented ones (Łukasz, Müller, Núñez); Latin Extended-A mixes cases, so it is in both.
_UPPER = "[A-ZÀ-ÖØ-ÞĀ-ž]"
_LOWER = "[a-zß-öø-ÿĀ-ž]"
_LETTER = "[A-Za-zÀ-ÖØ-öø-ÿĀ-ž'’-]"
_NAME_TOKEN = (
    rf"(?!(?i:{_NAME_STOP}))(?!(?:Dr|DR|Drs|Mr|MR|Mrs|MRS|Ms|MS|Prof|Doctor)(?:\.|\b))"
    rf"(?:\[NAME\]|{_UPPER}{_LOWER}?\.(?=\s)|{_UPPER}{_LETTER}+"
    rf"|(?:van|von|de|del|der|da|di|le|la|st\.?)\s+{_UPPER}{_LETTER}+)"
)
_NAME_SEQ = rf"{_NAME_TOKEN}(?:(?:[ \t]|,[ \t]?){_NAME_TOKEN}){{0,3}}"
_TITLE_NAME_RE = re.compile(
    rf"(?=[DMP])\b((?:Dr|Drs|Mr|Mrs|Ms|Mx|Prof|Miss|Doctor)\.?[ \t]+|DR\.[ \t]*|MRS?\.[ \t]+|MS\.[ \t]+)({_NAME_SEQ})"
)
_SIGNATURE_LABEL = (
    r"(?i:dictated\s+by|electronically\s+signed\s+by|e-?signed\s+by|signed\s+by|reviewed\s+by|read\s+by|reported\s+by"
    r"|transcribed\s+by|verified\s+by|approved\s+by|interpreted\s+by|prepared\s+by|performed\s+by|authenticated\s+by"
    r"|attending(?:\s+(?:physician|radiologist))?|resident|fellow|radiologist|technologist|tech|sonographer|physician"
    r"|referring(?:\s+(?:physician|doctor|provider|md))?|ordering(?:\s+(?:physician|doctor|provider|md))?|provider"
    r"|patient(?:\s+name)?|pt\.?(?:\s+name)?|cc|signature"
    r"|(?:electronically\s+|e-?|co-?)?signed|dictated|transcribed"
    r"|(?:reading|dictating)(?:\s+(?:physician|radiologist))?)"
)
_SIGNATURE_RE = re.compile(
    rf"(?=[AaCcDdEeFfIiOoPpRrSsTtVv])\b({_SIGNATURE_LABEL}[ \t]*[:\-][ \t]*"
    rf"|(?i:dictated|signed|reviewed|read|reported|transcribed|verified|approved|interpreted|authenticated)\s+by[ \t]+)"
    rf"({_NAME_SEQ})"
)
_NAME_LINE_RE = re.compile(rf"(?m)^([ \t]*(?i:name)[ \t]*:[ \t]*)({_NAME_SEQ})")
# "I, Priya Ramachandran, have personally reviewed the images": the US attestation line.
_ATTESTATION_RE = re.compile(
    rf"(?<!\w)(I,[ \t]+)({_NAME_SEQ})(?=,?[ \t]+(?i:have|has|attest|personally|as|the)\b)"
)
# "seen at Springfield General Hospital": the institution, when the header did not name it.
_INSTITUTION_RE = re.compile(
    rf"(?=[A-ZÀ-ÞĀ-ž])(?<![\w'’-])"
    rf"(?:(?!(?:The|At|In|From|To|Of|And|For|On)\b){_UPPER}(?:[\w'’-]*|[a-z]{{0,2}}\.)[ \t]+){{1,4}}"
    r"(?:Hospital|Medical[ \t]+Cent(?:er|re)|Health[ \t]+(?:Center|Centre|System)|Clinic|Infirmary|Hospice)s?\b"
)
_INSTITUTION_HINT = re.compile(r"Hospi|Medical|Health|Clinic|Infirmary")
_CONTACT_RE = re.compile(
    rf"(?=[CcDdIiNnPpSsTt])(?<![-\w])"
    rf"((?i:discussed\s+with|communicated\s+(?:to|with)|notified|spoke\s+(?:to|with)|paged|called|informed|telephoned)"
    rf"[ \t]+(?:(?i:nurse|rn|np|pa|resident|attending|physician|radiologist)[ \t]+)?)({_NAME_SEQ})"
)
_DEGREE = r"(?:M\.?D\.?|D\.O\.|Ph\.?D\.?|MBBS|FRCR|FRCPC|DMRD|R\.?N\.?|N\.?P\.?|RT\s*\(R\))"
_DEGREE_RE = re.compile(rf",?[ \t]+{_DEGREE}(?![A-Za-z])")
_NAME_AT_END_RE = re.compile(rf"(?<![A-Za-z'’.-])({_NAME_SEQ})$")
DEGREE_WINDOW = 120
_LAST_FIRST_LINE_RE = re.compile(
    r"(?m)^([ \t]*)([A-Z][A-Za-z'’-]+,[ \t]*[A-Z][A-Za-z'’-]+(?:[ \t]+[A-Z]\.?)?)([ \t]*)$"
)
_NAME_RUN_RE = re.compile(r"\[NAME\](?:[ \t]*,?[ \t]*\[NAME\])+")
# A capitalised word right beside a scrubbed name is the rest of that name ("Mark [NAME]" where only the
# surname was specific enough to be scrubbed everywhere).
_NAME_NEIGHBOUR_RE = re.compile(
    rf"(?=[^\W\d_])(?<![\w.'’-])({_NAME_TOKEN})[ \t]+(?=\[NAME\])|(?<=\[NAME\])([ \t]+)({_NAME_TOKEN})"
)
NAME_NEIGHBOUR_PASSES = 3
# All-caps clinical abbreviations that are never a name on their own ("discussed with ED physician").
_CLINICAL_CAPS = frozenset(
    "PA AP CT MR MRI XR CXR ICU ED ER OR NG ET IJ PICC US KUB AM PM".split()
)


def scrub_text(text: str, known_phi: Iterable[str] = ()) -> str:
    """Replace identifiers with typed placeholders ([NAME] [DATE] [PHONE] [ID] [ADDRESS] [EMAIL] [AGE] [URL]).

    `known_phi` (from `header_phi` and the export's own ids) is removed case-insensitively on word
    boundaries wherever it occurs; the pattern rules catch identifiers the header does not know about.
    Existing de-identification tokens such as "XXXX" are kept.
    """
    if not text:
        return text
    # Addresses first: a known name inside "zoe.wustenhagen@…" would otherwise break the address apart.
    if "@" in text:
        text = _EMAIL_RE.sub("[EMAIL]", text)
    if "://" in text or "www." in text.lower():
        text = _URL_RE.sub("[URL]", text)
    if _TLD_HINT.search(text):
        text = _DOMAIN_RE.sub("[URL]", text)
    phrases = {" ".join(p.split()) for p in known_phi if p and _worth_scrubbing(p)}
    if phrases:
        text = _replace_known(text, phrases)
    text = _DATE_RE.sub("[DATE]", text)
    text = _SSN_RE.sub("[ID]", text)
    text = _PHONE_RE.sub(_phone_placeholder, text)
    text = _LABELLED_ID_RE.sub(lambda m: f"{m.group(1)}[ID]", text)
    text = _UID_RE.sub("[ID]", text)
    text = _ADDRESS_RE.sub("[ADDRESS]", text)
    if _INSTITUTION_HINT.search(text):
        text = _INSTITUTION_RE.sub("[ADDRESS]", text)
    text = _LONG_ID_RE.sub("[ID]", text)
    text = _AGE_RE.sub(_age_placeholder, text)
    text = _TITLE_NAME_RE.sub(_name_after_label, text)
    text = _SIGNATURE_RE.sub(_name_after_label, text)
    text = _NAME_LINE_RE.sub(_name_after_label, text)
    text = _CONTACT_RE.sub(_name_after_label, text)
    if "I," in text:
        text = _ATTESTATION_RE.sub(_name_after_label, text)
    text = _names_before_degrees(text)
    text = _LAST_FIRST_LINE_RE.sub(_last_first_line, text)
    for _ in range(NAME_NEIGHBOUR_PASSES if "[NAME]" in text else 0):
        text = _NAME_RUN_RE.sub("[NAME]", text)
        text, found = _NAME_NEIGHBOUR_RE.subn(_name_neighbour, text)
        if not found:
            break
    return _NAME_RUN_RE.sub("[NAME]", text)


def _replace_known(text: str, phrases: set[str]) -> str:
    # Multi-word phrases (institution names, addresses) repeat across a hospital's images, so their
    # compiled alternation is cached. Single words (names, ids) change with every patient: a regex
    # compile per image would cost more than the whole scrub, so they are found with str.find.
    # A phrase holding U+FFFD (a header value in a byte encoding its character set did not declare) can
    # only be found by pattern: the report has the real letter where the header lost it.
    multi = tuple(sorted(p for p in phrases if " " in p or _LOST_LETTER in p))
    if multi:
        text = _known_phi_pattern(multi).sub(_known_placeholder, text)
    single = sorted((p for p in phrases if " " not in p and _LOST_LETTER not in p), key=len, reverse=True)
    lower = text.lower()
    if not single or len(lower) != len(text):
        if single:
            text = _known_phi_pattern(tuple(single)).sub(_known_placeholder, text)
        return text
    spans: list[tuple[int, int]] = []
    for phrase in single:
        needle = phrase.lower()
        start = lower.find(needle)
        while start != -1:
            end = start + len(needle)
            before = start > 0 and _is_word_char(lower[start - 1])
            after = end < len(lower) and _is_word_char(lower[end])
            inside_word = before or after
            if not inside_word and all(end <= a or start >= b for a, b in spans):
                spans.append((start, end))
            start = lower.find(needle, start + 1)
    if not spans:
        return text
    pieces, done = [], 0
    for start, end in sorted(spans):
        pieces += [text[done:start], _placeholder_for(text[start:end])]
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


_LOST_LETTER = "\ufffd"


@functools.lru_cache(maxsize=256)
def _known_phi_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    ordered = sorted(phrases, key=len, reverse=True)
    alternation = "|".join(
        r"\s+".join(re.escape(word).replace(_LOST_LETTER, r"[^\W\d_]{1,2}") for word in p.split()) for p in ordered
    )
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternation})(?![A-Za-z0-9])", re.IGNORECASE)


_DATE_LIKE = re.compile(r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
_ADDRESS_HINT = re.compile(rf"\b{_STREET_SUFFIX}\b|[A-Za-z]\W+\d{{5}}(?:-\d{{4}})?$")
_PHONE_LABEL = re.compile(r"(?i)\s*[a-z][a-z\s.#:]*?(?=[+\d(])")


def _known_placeholder(match: re.Match[str]) -> str:
    return _placeholder_for(match.group(0))


def _placeholder_for(value: str) -> str:
    if _DATE_LIKE.fullmatch(value):
        return "[DATE]"
    if any(ch.isdigit() for ch in value):
        return "[ADDRESS]" if " " in value and _ADDRESS_HINT.search(value) else "[ID]"
    return "[NAME]"


def _phone_placeholder(match: re.Match[str]) -> str:
    value = match.group(0)
    label = _PHONE_LABEL.match(value)  # keep "Pager: " / "fax " before the placeholder
    return f"{label.group(0)}[PHONE]" if label else "[PHONE]"


def _age_placeholder(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return "[AGE]"
    return f"{match.group(2)}[AGE]"


def _is_name(candidate: str) -> bool:
    words = [w.strip(".,") for w in re.split(r"[\s,]+", candidate) if w.strip(".,")]
    return bool(words) and not all(w.upper() in _CLINICAL_CAPS for w in words)


def _name_after_label(match: re.Match[str]) -> str:
    label, name = match.group(1), match.group(2)
    if not _is_name(name):
        return match.group(0)
    return f"{label}[NAME]"


def _names_before_degrees(text: str) -> str:
    # Find the (rare) degree first, then look back for the name: far cheaper than trying a name pattern
    # at every position of every report.
    pieces: list[str] = []
    done = 0
    for degree in _DEGREE_RE.finditer(text):
        start = degree.start()
        if start < done:
            continue
        window_start = max(done, start - DEGREE_WINDOW)
        name = _NAME_AT_END_RE.search(text, window_start, start)
        if name is None or not _is_name(name.group(1)):
            continue
        pieces.append(text[done : name.start(1)])
        pieces.append("[NAME]")
        done = start
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)



_SECTION_WORDS = frozenset(
    "findings impression comparison indication history technique clinical report exam examination views view "
    "normal abnormal negative positive stable unchanged improved worse none chest lungs heart left right".split()
)


_ROLE_WORDS = frozenset("nurse resident attending physician radiologist technologist fellow patient doctor".split())


def _name_neighbour(match: re.Match[str]) -> str:
    word = match.group(1) or match.group(3)
    if word.lower() in _SECTION_WORDS or word.lower() in _ROLE_WORDS or not _is_name(word):
        return match.group(0)
    return "[NAME] " if match.group(1) else f"{match.group(2)}[NAME]"


def _last_first_line(match: re.Match[str]) -> str:
    # A line that is only "LAST, FIRST" is a signature; lines like "Lungs, Clear" are left alone.
    words = [w.strip(".").lower() for w in re.split(r"[\s,]+", match.group(2)) if w.strip(".")]
    if any(w in _SECTION_WORDS or w.upper() in _CLINICAL_CAPS for w in words):
        return match.group(0)
    return f"{match.group(1)}[NAME]{match.group(3)}"
