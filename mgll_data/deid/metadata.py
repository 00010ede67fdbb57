"""The header allow-list: the only header values that reach a dataset row, normalised.

Coded values (modality, view, body part, scanner model) keep only known terms from `header_terms`;
free-text descriptions are scrubbed and then cut down to imaging words.
"""

from __future__ import annotations

import math
import re
from typing import Any

from mgll_data.deid.header import _first_text, _get, _quiet, _sequence_items, _texts
from mgll_data.deid.phi import header_phi
from mgll_data.deid.text import scrub_text
from mgll_data.header_terms import (
    BODY_PART_TERMS,
    DESCRIPTION_WORDS,
    MANUFACTURER_MODEL_WORDS,
    MODALITY_TERMS,
    VIEW_TERMS,
)

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
