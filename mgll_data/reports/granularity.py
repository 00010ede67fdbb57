"""The multi-granular texts of one image, coarse to fine, as MGLL trains on them.

Each granularity is a different view of the same study: what kind of image it is (modality), whether
anything is wrong (category), what is wrong (disease), where the report says so (description), what that
means clinically (explanation), and the exam's own names (study / series). A granularity that cannot be
produced is None, never "": an empty string would train the text tower on a blank caption.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mgll_data.reports.certainty import DEFINITE, PROBABLE, is_asserted
from mgll_data.reports.labels import Label, Mention
from mgll_data.reports.vocabulary import Finding, Vocabulary

MODALITY_WORDS = {
    "CR": "radiograph", "DX": "radiograph", "DR": "radiograph", "RG": "radiograph", "RF": "fluoroscopy image",
    "OP": "colour fundus photograph", "XC": "external eye photograph", "OPT": "optical coherence tomography scan",
    "CT": "CT scan", "MR": "MRI scan", "US": "ultrasound image", "MG": "mammogram", "PX": "panoramic dental radiograph",
    "IO": "intra-oral radiograph", "NM": "nuclear medicine scan", "PT": "PET scan", "SM": "slide microscopy image",
}
VIEW_WORDS = {"PA": "PA view", "AP": "AP view", "LL": "lateral view", "RL": "lateral view", "LAT": "lateral view",
              "LATERAL": "lateral view", "LLD": "lateral decubitus view", "RLD": "lateral decubitus view"}
# Only these modalities name a body part in front ("chest radiograph"); a "chest colour fundus photograph"
# would be nonsense when a header carries a stray BodyPartExamined.
_BODY_PART_MODALITIES = {"CR", "DX", "DR", "RG", "RF", "CT", "MR", "US", "NM", "PT"}


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def modality_text(metadata: Mapping[str, Any], vocab: Vocabulary) -> str | None:
    """"chest radiograph, PA view" from header modality + body part + view; None without a modality."""
    code = (_clean(metadata.get("modality")) or "").upper()
    if not code:
        return None
    words = MODALITY_WORDS.get(code, f"{code} image")
    if code in _BODY_PART_MODALITIES:
        body = (_clean(metadata.get("body_part")) or "").lower()
        if not body and vocab.modality_hint and vocab.modality_hint.endswith(words):
            body = vocab.modality_hint[: -len(words)].strip()
        if body and not words.startswith(body):
            words = f"{body} {words}"
    view = (_clean(metadata.get("view_position")) or "").upper()
    if view:
        words = f"{words}, {VIEW_WORDS.get(view, view.lower() + ' view')}"
    return words


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def disease_text(labels: list[Label], vocab: Vocabulary) -> str | None:
    """The findings the report asserts, in plain words ("probable X", "possible X" for hedged ones);
    "no finding" when it asserts none. Texts describe the report as written, whatever the label policy."""
    parts = []
    for name, _, certainty in labels:
        if name == vocab.no_finding or not is_asserted(certainty):
            continue
        plain = vocab.by_name[name].plain
        parts.append(plain if certainty == DEFINITE else f"{certainty} {plain}")
    return _join(parts) if parts else "no finding"


def _severity_text(finding: Finding, sentences: Iterable[str]) -> str:
    """The most severe variant whose trigger words appear in a sentence asserting the finding."""
    text = " " + " ".join(s.lower() for s in sentences) + " "
    for severity in reversed(finding.severity):
        if any(f" {word} " in text or f" {word}," in text or f" {word}." in text for word in severity.when):
            return severity.text
    return finding.explanation


def explanation_text(labels: list[Label], found: list[Mention], vocab: Vocabulary) -> str | None:
    parts = []
    for name, _, certainty in labels:
        finding = vocab.by_name[name]
        if name == vocab.no_finding:
            parts.append(finding.explanation)
        elif is_asserted(certainty):
            sentences = [m.sentence for m in found if m.finding == name and m.counts() and m.certainty == certainty]
            text = _severity_text(finding, sentences)
            parts.append(text if certainty == DEFINITE else f"{certainty.capitalize()}: {text}")
    return " ".join(parts) or None


def description_text(labels: list[Label], found: list[Mention], section_texts: Mapping[str, str],
                     report_text: str) -> str | None:
    """The report sentences that assert (or hedge) a finding, with those that describe its related signs
    ("hyperinflated lungs" beside emphysema); when none do, the impression (the radiologist's own summary
    of a normal study), else the findings, else the whole report."""
    asserted = {label.name for label in labels if is_asserted(label.certainty)}
    sentences: dict[str, None] = {}  # ordered, each sentence once
    for mention in found:
        sign = mention.related and mention.finding in asserted and mention.certainty in (DEFINITE, PROBABLE)
        if (mention.counts() and is_asserted(mention.certainty)) or sign:
            sentences.setdefault(mention.sentence)
    if sentences:
        return " ".join(sentences)
    for section in ("impression", "findings"):
        if _clean(section_texts.get(section)):
            return _clean(section_texts[section])
    return _clean(report_text)


def granularity_texts(
    granularities: Iterable[str],
    *,
    labels: list[Label],
    found: list[Mention],
    section_texts: Mapping[str, str],
    report_text: str,
    metadata: Mapping[str, Any],
    vocab: Vocabulary,
) -> dict[str, str | None]:
    """One entry per requested granularity; report-derived ones are None when there is no report text."""
    has_report = bool(_clean(report_text))
    normal = not any(is_asserted(certainty) for name, _, certainty in labels
                     if name != vocab.no_finding and name not in vocab.no_finding_ignores)
    texts: dict[str, str | None] = {}
    for granularity in granularities:
        if granularity == "modality":
            texts[granularity] = modality_text(metadata, vocab)
        elif granularity == "study":
            texts[granularity] = _clean(metadata.get("study_description"))
        elif granularity == "series":
            texts[granularity] = _clean(metadata.get("series_description"))
        elif not has_report:
            texts[granularity] = None
        elif granularity == "category":
            texts[granularity] = "normal" if normal else "abnormal"
        elif granularity == "disease":
            texts[granularity] = disease_text(labels, vocab)
        elif granularity == "description":
            texts[granularity] = description_text(labels, found, section_texts, report_text)
        elif granularity == "explanation":
            texts[granularity] = explanation_text(labels, found, vocab)
        else:
            texts[granularity] = None
    return texts
