"""Cutting a report into sections and sentences with regular expressions, before any NLP runs.

Each sentence then goes through spaCy on its own: negation and hedging never cross a sentence, and a
1,000-line report costs 1,000 small documents instead of one document whose every cue is compared with
every mention (medspaCy's ConText and TargetMatcher are quadratic in a document's length).

Line breaks: a blank line always ends a sentence; a single line break ends one unless the line plainly
continues ("... pleural effusion or\\n pneumothorax." in reports wrapped at a fixed width), so a
negation is not cut off by the wrap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Section headings as they appear in radiology reports, mapped to a section name. A heading ends with a
# colon, or stands alone on its line in capitals, so "findings consistent with" inside a sentence is not one.
SECTION_HEADINGS: dict[str, list[str]] = {
    "findings": ["findings", "finding", "report", "chest findings", "description"],
    "impression": ["impression", "impressions", "conclusion", "conclusions", "summary", "opinion",
                   "diagnosis", "interpretation", "final impression", "assessment"],
    "indication": ["indication", "indications", "reason for exam", "reason for examination", "reason for study",
                   "clinical indication", "clinical information", "clinical details", "clinical question", "clinical"],
    "history": ["history", "clinical history", "medical history", "hx"],
    "comparison": ["comparison", "comparisons", "prior", "priors", "comparison exam"],
    "technique": ["technique", "procedure", "exam", "examination", "study", "views", "protocol"],
    "notification": ["notification", "communication", "recommendation", "recommendations"],
}
# Headings of what the study is about rather than what it shows. Their body is one paragraph: text after a
# blank line below them is an unheaded narrative (MIMIC: "EXAMINATION: CHEST (PA AND LATERAL)\n\n Dense
# consolidation ..."); written inside a line ("Portable AP. Indication: fever. Lungs clear."), their body
# is one sentence.
ONE_PARAGRAPH_SECTIONS = frozenset({"technique", "comparison", "indication", "history"})
# Longer "sentences" (a pasted table, a run-on list) are cut at a comma or space near this length, so the
# cost of one sentence stays bounded whatever the input.
MAX_SENTENCE_CHARS = 1_000

_CATEGORY = {heading: category for category, headings in SECTION_HEADINGS.items() for heading in headings}
_HEADING_WORDS = "|".join(sorted((r"\s+".join(map(re.escape, h.split())) for h in _CATEGORY), key=len, reverse=True))
_HEADING = re.compile(
    rf"(?<![A-Za-z0-9])(?P<colon>(?:{_HEADING_WORDS})[ \t]*:)"
    rf"|(?m:^[ \t]*(?P<alone>(?:{_HEADING_WORDS}))[ \t]*$)",
    re.IGNORECASE,
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# End of a sentence: . ! ? (possibly repeated) followed by white space, or a line break.
_END = re.compile(r"[.!?]+(?=\s)|\n")
_ABBREVIATIONS = frozenset({"vs", "v", "e.g", "i.e", "eg", "ie", "dr", "drs", "approx", "etc", "cf", "mr", "mrs", "ms",
                            "st", "fig", "no", "nos", "incl", "min", "max", "resp", "pt", "pts"})
# A line that ends like this continues on the next line.
_CONTINUES = re.compile(r"(?:[,(/-]|\b(?:and|or|of|with|without|the|a|an|to|for|in|on|at|no|by|from|versus|vs))[ \t]*$",
                        re.IGNORECASE)


@dataclass(frozen=True)
class Section:
    """A stretch of the report under one heading; `category` None = before any heading / unheaded."""

    category: str | None
    start: int  # where the body starts (after the heading)
    end: int


@dataclass(frozen=True)
class Sentence:
    section: str | None
    start: int
    end: int


def sections(text: str) -> list[Section]:
    """The report's sections in text order (a repeated heading gives two sections)."""
    found: list[Section] = []
    category, start, inline = None, 0, False
    for match in _HEADING.finditer(text):
        if match.group("alone") and not match.group("alone").isupper():
            continue
        heading = " ".join((match.group("colon") or match.group("alone")).rstrip(":").lower().split())
        found.extend(_split_short_section(text, category, start, match.start(), inline))
        line_start = text.rfind("\n", 0, match.start()) + 1
        category, start, inline = _CATEGORY[heading], match.end(), bool(text[line_start : match.start()].strip())
    found.extend(_split_short_section(text, category, start, len(text), inline))
    return [s for s in found if text[s.start : s.end].strip()]


def _split_short_section(text: str, category: str | None, start: int, end: int, inline: bool) -> list[Section]:
    """A one-paragraph section ends at a blank line, or at its first sentence when its heading stood
    inside a line; the rest of the text is unheaded."""
    if category not in ONE_PARAGRAPH_SECTIONS:
        return [Section(category, start, end)]
    body = text[start:end]
    lead = len(body) - len(body.lstrip("\n \t"))
    cut = _PARAGRAPH_BREAK.search(body, lead)
    stop = cut.start() if cut else len(body)
    if inline:
        first = next((m for m in _END.finditer(body, lead, stop) if m.group() != "\n"
                      and not _abbreviation_before(body, lead, m.start())), None)
        stop = first.end() if first else stop
    if stop >= len(body.rstrip()):
        return [Section(category, start, end)]
    return [Section(category, start, start + stop), Section(None, start + stop, end)]


def sentences(text: str, section: Section | None = None) -> list[Sentence]:
    """Sentences of the text (or of one section of it), as stripped character ranges."""
    start, end = (section.start, section.end) if section else (0, len(text))
    name = section.category if section else None
    out: list[Sentence] = []
    begin = start
    for match in _END.finditer(text, start, end):
        if match.group() == "\n":
            if not _line_break_ends_sentence(text, match.start(), end):
                continue
        elif _abbreviation_before(text, begin, match.start()):
            continue
        out.extend(_trimmed(text, name, begin, match.end()))
        begin = match.end()
    out.extend(_trimmed(text, name, begin, end))
    return out


def _line_break_ends_sentence(text: str, at: int, end: int) -> bool:
    """A blank line or a line that reads as complete ends a sentence; a wrapped line does not."""
    line_start = text.rfind("\n", 0, at) + 1
    line = text[line_start:at]
    if not line.strip():
        return True
    following = text[at + 1 : end].lstrip(" \t")
    if not following or following.startswith("\n"):
        return True
    return not (following[0].islower() or _CONTINUES.search(line))


def _abbreviation_before(text: str, begin: int, at: int) -> bool:
    """'vs.' / 'e.g.' end a word, not a sentence ("No. 2" too, but not "no." at the end of a phrase)."""
    word = re.search(r"[A-Za-z.]+$", text[begin:at])
    if word is None:
        return False
    token = word.group().lower().strip(".")
    if token == "no":
        return bool(re.match(r"\.\s*\d", text[at : at + 4]))
    return token in _ABBREVIATIONS


def _trimmed(text: str, section: str | None, start: int, end: int) -> list[Sentence]:
    """The range without surrounding white space, cut into pieces of at most MAX_SENTENCE_CHARS."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    pieces = []
    while end - start > MAX_SENTENCE_CHARS:
        window = text[start : start + MAX_SENTENCE_CHARS]
        cut = max(window.rfind(", "), window.rfind("; "))
        cut = (
            cut + 1 if cut > MAX_SENTENCE_CHARS // 2 else (window.rfind(" ") if window.rfind(" ") > 0 else len(window))
        )
        pieces.append(Sentence(section, start, start + cut))
        start += cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        pieces.append(Sentence(section, start, end))
    return pieces
