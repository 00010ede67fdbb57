"""Report text scrubbing: identifiers become typed placeholders.

Rules are tuned for high recall on PHI and high precision on clinical wording ("5 mm", "T12", "C5-C6",
"NG tube"). Regexes are compiled once at import: `scrub_text` runs once per image on the build's hot path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from mgll_data.deid.names import scrub_names
from mgll_data.deid.phi import _worth_scrubbing

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
    rf"|{_MONTH}\s*{_DAY},?\s+\d{{2}}(?!\d|\.\d|(?i:\s*(?:mm|cm|m|x)\b))"  # Aug 03 07
    rf"|{_MONTH}\s+{_DAY}(?!\d|\.\d|(?i:\s*(?:mm|cm|m|x)\b))"  # Jan 2
    rf"|{_MONTH},?\s+{_YEAR}"  # January 2023
    rf"|{_MON_NUM}/{_YEAR}"  # 06/1999
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
_DIGIT_SLASH_DIGIT = re.compile(r"\d/\d")
_SHORT_DATE_RE = re.compile(
    rf"(?=[0-9A-Za-z])(?:(?<![\w/])((?i:on|since|from|through|until|till|dated|dob|dos|d|t|time|performed|seen"
    rf"|date(?:[ \t]+of[ \t]+(?:exam|service|study|birth|procedure))?"
    rf"|signed|dictated|transcribed|comparison)[ \t]*:?[ \t]*)({_MON_NUM}/{_DAY})(?![\w/]|\.\d)"
    rf"|(?<![\w/.])()({_MON_NUM}/{_DAY})(?=[ \t]+(?:at[ \t]+)?{_TIME_OR_HRS}))"
)
# "Paged [NAME] at 63092", "paged Dr. [NAME] (#4412)": a pager number after the person paged. A bare
# four-digit number there is a time ("paged at 1430"), so it needs a "#", a dash or brackets.
_PAGER_RE = re.compile(r"(?i:\bpaged?\b)(?=[^\n;\d]{0,60}?(?:#\d{3,6}|\d-\d{3,4}|\(\d{4,6}\)|\b\d{5,6})(?![\d:]))"
                       r"([^\n;\d]{0,60}?)(#\d{3,6}|\d-\d{3,4}|\(\d{4,6}\)|\b\d{5,6})")
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
    r"|(?i:\b(?:phone|tel(?:ephone)?|fax|pager|page|beeper|pgr|mobile|ext|call(?:\s+back)?\s+at)\b"
    r"\.?\s*(?:no\.?|number)?[\s:#]*)"
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
_UPPER = "[A-ZÀ-ÖØ-ÞĀ-ž]"
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
    rf"(?:(?<![\w.])\d{{1,6}}[A-Za-z]?\s+(?:[NSEW]\.?\s+)?(?:{_UPPER}[\w'-]*\.?\s+){{1,4}}{_STREET_SUFFIX}\b\.?"
    rf"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|#)\.?\s*#?\w+)?"
    rf"(?:,?\s+{_CITY_STATE_ZIP})?"
    rf"|(?<![\w.]){_CITY_STATE_ZIP}(?![\w-])"
    rf"|\bP\.?\s?O\.?\s+Box\s+\d+"
    rf"|\b(?:Apt|Apartment|Suite|Ste)\.?\s*#?\d+[A-Za-z]?\b"
    rf"|\b[A-Z]{{1,2}}\d[A-Z\d]?\s+\d[A-Z]{{2}}\b"  # UK postcode (NW1 6XE)
    rf"|(?i:\bzip(?:\s*code)?\s*:?\s*)\d{{5}}(?:-\d{{4}})?\b)"
)
_AGE_RE = re.compile(
    r"(?=[019Aa])(?:(?<![\w.])(?P<age>9\d|1[0-4]\d)(?=\s*-?\s*(?:years?|yrs?|y/o|y\.o\.|yo|y)\b|-year|-yr|\s*-?\s*y/o"
    r"|(?-i:[ ]?[FM])(?![\w'’.-]|\.\w)"  # "97F", "100 M": an age with the sex letter
    r"|[ ]?/[ ]?(?-i:[FM])\b)"  # "Age/Sex: 97/F"
    r"|(?<![\w.])0?(?P<dicom>9\d|1[0-4]\d)(?-i:Y)\b"  # a DICOM age string, "094Y"
    r"|\b(?P<label>age[ds]?\s*:?\s*)(?:9\d|1[0-4]\d)(?!\d|\.\d))",
    re.IGNORECASE,
)

# "seen at Springfield General Hospital": the institution, when the header did not name it ("Outside
# Hospital" and "Per Mayo Clinic" start with words that are not part of the name).
_NOT_INSTITUTION_START = (
    "(?:The|At|In|From|To|Of|And|For|On|Per|By|With|Via|Outside|Other|Another|Local|Referring|This|Our|Any)"
)
_INSTITUTION_RE = re.compile(
    rf"(?=[A-ZÀ-ÞĀ-ž])(?<![\w'’-])"
    rf"(?:(?!{_NOT_INSTITUTION_START}\b){_UPPER}(?:[\w'’-]*|[a-z]{{0,2}}\.)[ \t]+){{1,4}}"
    r"(?:Hospital|Medical[ \t]+Cent(?:er|re)|Health[ \t]+(?:Center|Centre|System)|Clinic|Infirmary|Hospice)s?\b"
)
_INSTITUTION_HINT = re.compile(r"Hospi|Medical|Health|Clinic|Infirmary")


# Terminal escape sequences (colour codes a copy-paste from a console leaves, cursor moves) and the control and
# invisible format characters that can hide text from a reader or split a name from the rules (NUL, bidi
# overrides, zero-width spaces). Line-breaking controls become a newline; tabs and newlines stay.
_ANSI_ESCAPE = r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])"
_INVISIBLE = "[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
_CONTROL_RE = re.compile(rf"{_ANSI_ESCAPE}|{_INVISIBLE}+|(?P<newline>\r\n?|[\x0b\x0c\x85\u2028\u2029])")
_CONTROL_HINT = re.compile(r"[^\t\n\x20-\x7e\xa0-\u200a\u2010-\u2027\u2030-\u205f\u2070-\ufefe\uff00-\U0010ffff]")


def strip_control_characters(text: str) -> tuple[str, int]:
    """The report without terminal escapes and control / invisible characters, and how many it lost.

    Tabs and newlines are kept; CR, CRLF, vertical tab, form feed and Unicode line separators become a
    newline (and are not counted). Runs before scrubbing, so an escape inside a name cannot hide it.
    """
    if not _CONTROL_HINT.search(text):
        return text, 0
    removed = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal removed
        if match.group("newline") is not None:
            return "\n"
        removed += len(match.group(0))
        return ""

    return _CONTROL_RE.sub(replace, text), removed


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
    if "/" in text and _DIGIT_SLASH_DIGIT.search(text):
        text = _SHORT_DATE_RE.sub(lambda m: f"{m.group(1) or m.group(3)}[DATE]", text)
    text = _SSN_RE.sub("[ID]", text)
    text = _PHONE_RE.sub(_phone_placeholder, text)
    text = _LABELLED_ID_RE.sub(lambda m: f"{m.group(1)}[ID]", text)
    text = _UID_RE.sub("[ID]", text)
    text = _ADDRESS_RE.sub("[ADDRESS]", text)
    if _INSTITUTION_HINT.search(text):
        text = _INSTITUTION_RE.sub("[ADDRESS]", text)
    text = _LONG_ID_RE.sub("[ID]", text)
    text = _AGE_RE.sub(_age_placeholder, text)
    text = scrub_names(text)
    if "age" in text:
        text = _PAGER_RE.sub(lambda m: f"{m.group(0)[: m.start(2) - m.start(0)]}[PHONE]", text)
    return text


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


_TEMPERATURE_BEFORE = re.compile(r"(?i)(?:temp\w*|fever\w*|febrile|tmax|t)\W*(?:(?:to|of|was|is|at|up to)\W+)?$")


def _age_placeholder(match: re.Match[str]) -> str:
    if match.group("dicom") is not None:
        return "[AGE]Y"
    if match.group("age") is not None:
        if match.string[match.end() : match.end() + 2].strip()[:1] in ("F", "M") and _TEMPERATURE_BEFORE.search(
            match.string, max(0, match.start() - 20), match.start()
        ):
            return match.group(0)  # "fever to 101F" is a temperature
        return "[AGE]"
    return f"{match.group('label')}[AGE]"
