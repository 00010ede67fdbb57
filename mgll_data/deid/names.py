"""Finding people's names in report text by the words around them.

A report names people in few ways: after a title ("Dr. Ang"), after a word that introduces a person
(a verb of communication or attribution: "discussed with", "d/w", "per", "called to", "notified",
"paged", "seen by", "signed by"; a role: "PCP", "resident", "Nurse", "daughter"), before a degree or a
verb that only people take ("Lucius Havercamp, MD", "... was notified"), after a name already found
("[NAME] and Jake Lo"), and as a signature line. Each place is a cue; what follows or precedes it is
taken as a name when it has a name's shape (capitalised or all-caps words, initials, "LAST, FIRST",
particles such as "van der") and is not made only of words that are known not to be names
(departments, roles, anatomy, section headers: "discussed with Cardiology", "seen by CT"), nor an
eponym ("per Fleischner criteria", "Hampton hump": a capitalised word before a clinical head noun).
A name gazetteer is not used on purpose: the cues carry the evidence, so unseen and foreign names are
caught, and clinical eponyms (Parkinson, Kerley, Swan-Ganz) outside those cues are never touched.
"""

from __future__ import annotations

import re

from mgll_data.header_terms import DESCRIPTION_WORDS

# Latin letters incl. accented ones (Łukasz, Müller, Núñez); Latin Extended-A mixes cases, so it is in both.
_UPPER = "[A-ZÀ-ÖØ-ÞĀ-ž]"
_LOWER = "[a-zß-öø-ÿĀ-ž]"
_LETTER = "[A-Za-zÀ-ÖØ-öø-ÿĀ-ž'’-]"


def _by_first_letter(alternatives: list[str]) -> str:
    """One case-insensitive alternation, grouped by first letter: Python's regex engine tries every branch
    of an alternation at every position, so grouping makes a 100-word cue list ~3x cheaper to scan."""
    groups: dict[str, list[str]] = {}
    for alternative in alternatives:
        groups.setdefault(alternative[0].lower(), []).append(alternative[1:])
    return "(?i:" + "|".join(f"{first}(?:{'|'.join(rest)})" for first, rest in groups.items()) + ")"


# Words that end a name: function words, section words, and the labels that follow names in headers.
_STOP = _by_first_letter(
    r"""on at and or the of by via in to for with from was were is are has had who which regarding re about
    after before today yesterday tomorrow this that these those date time she he his her hers they their them
    it its there here we you our no not none patient pt be been also however then when if as but referring
    ordering attending resident physician radiologist technologist signed dictated reviewed electronically name
    MD M\.D DO PhD RN RT NP PA MBBS FRCR DMRD RDMS DOB MRN Acc XXXX Findings Impression Comparison Indication
    History Technique Report Examination Exam None Unknown""".split()
) + r"\b"
_TITLE = r"(?:Dr|DR|Drs|Mr|MR|Mrs|MRS|Ms|MS|Mx|Prof|Miss|Doctor)"
_INITIALS = rf"{_UPPER}\.(?:[ \t]?{_UPPER}\.){{0,2}}"  # A.  A.K.  A. K.
_PARTICLE = r"(?:van|von|de|del|della|der|den|da|das|do|dos|di|du|le|la|st\.?|ter|ten|af|zu)"
NAME_TOKEN = (
    rf"(?!{_STOP})(?!{_TITLE}(?:\.|\b))"
    rf"(?:\[NAME\]|{_INITIALS}|{_UPPER}{_LETTER}+(?!\d)|(?:{_PARTICLE}[ \t]+){{1,2}}{_UPPER}{_LETTER}+(?!\d)"
    rf"|{_UPPER}(?![\w.'’-]))"
)
# A bare capital letter is a middle initial ("MATTHEW M"), never the start of a name ("R/O", "H pylori").
# A comma only follows the surname, in "LAST, FIRST" ("DA COSTA, SÉBASTIEN"); after that it ends the name.
NAME_SEQ = (
    rf"(?![A-Z](?![\w.'’-])){NAME_TOKEN}(?:[ \t]{NAME_TOKEN})?(?:,[ \t]?{NAME_TOKEN})?(?:[ \t]{NAME_TOKEN}){{0,4}}"
)

_TITLE_NAME_RE = re.compile(
    rf"(?=[DMPdm])\b((?:{_TITLE}\.?[ \t]+|DR\.[ \t]*|MRS?\.[ \t]+|MS\.[ \t]+))({NAME_SEQ})"
    # "d/w dr smith": a lower-case name after a lower-case title
    rf"|\b([Dd]r\.?[ \t]+)({_LOWER}[a-zß-öø-ÿ'’-]{{2,}})(?![\w'’-])"
)
# Words and phrases after which a person is named. A verb of communication may have a few words before its
# preposition: "discussed these findings with", "scheduled for biopsy on [DATE] with", "reported to [NAME]
# RN at 2032 by".
_BETWEEN = r"(?:[ \t]+(?:[a-z][a-z/-]*|\[(?:DATE|NAME)\]|[A-Z]{2,3}|\d{1,2}:?\d{2}(?:[ \t]*(?:AM|PM|hrs))?)){0,5}?"
_TO = rf"{_BETWEEN}[ \t]+(?:with|to|w/)(?![A-Za-z])"
_BY = rf"{_BETWEEN}[ \t]+by"
_VERBS_TO = r"""discuss(?:ed|ion)? review(?:ed)? communicat(?:ed|e|ion) convey(?:ed)? relay(?:ed)? spoke speak
    talk(?:ed)? given gave sent text(?:ed)? e-?mail(?:ed)? fax(?:ed)? report(?:ed)? called call forward(?:ed)? copied
    confirm(?:ed)? conversation consult(?:ed|ation)? schedul(?:ed|e) read""".split()
_VERBS_BY = r"""seen read report(?:ed)? signed co-?signed dictated interpreted reviewed verified approved acknowledged
    ordered referred requested transcribed performed prepared authenticated examined evaluated attested witnessed
    scanned supervised edited prelim(?:inary)?(?:\s+read)? final(?:\s+read)? finali[sz]ed completed assisted
    read-?back entered released validated addended amended""".split()
_DIRECT = r"""d/w per notified informed paged telephoned phoned contacted contact obtained\s+from attn\.?
    voicemail\s+(?:of|for) message\s+(?:for|to) in\s+conjunction\s+with presented\s+to""".split()
# Roles name the person next to them ("Nurse Kelly Brown", "resident E. Payet", "PCP: Ann Lee").
_ROLES = r"""nurse rn np resident attending fellow intern physician radiologist technologist sonographer provider
    clinician doctor surgeon hospitalist pcp patient pt\.? daughter son wife husband mother father sister brother
    niece nephew friend caregiver guardian spouse partner""".split() + [
    rf"{role}(?:\s+(?:provider|physician|doctor|md|clinician|radiologist|nurse))?"
    for role in (r"primary\s+care", "referring", "ordering", "requesting", "consulting", "covering", "reading",
                 "dictating")
]
# Labels that name a person only before a colon or dash ("Tech: JS", but "10 cc Omnipaque").
_LABELS = r"""name patient\s+name pt\.?\s+name signature signed e-?signed co-?signed dictated transcribed cc tech
    radiology cop(?:y|ies)\s+to staff operator assistant surgeon proceduralist performing initials by""".split()
_CUE = _by_first_letter(
    [f"{verb}{_TO}" for verb in _VERBS_TO] + [rf"{verb}{_BY}(?:[ \t]*[:\-])?" for verb in _VERBS_BY]
    + [rf"{cue}(?![A-Za-z])(?:[ \t]*[:\-,])?" for cue in _DIRECT + _ROLES]
    + [rf"{label}[ \t]*[:\-]" for label in _LABELS]
)
_ROLE_OR_PER_RE = re.compile(_by_first_letter(_ROLES + ["per"]) + r"[ \t,]*")
# A report wrapped at a fixed width may break the line between the cue and the name.
_CUE_NAME_RE = re.compile(rf"(?=[A-Za-z])(?<![\w/-])({_CUE}[ \t]*(?:\r?\n[ \t]*)?)({NAME_SEQ})")
# "I, Priya Ramachandran, have personally reviewed the images": the US attestation line.
_ATTESTATION_RE = re.compile(rf"(?<!\w)(I,[ \t]+)({NAME_SEQ})(?=,?[ \t]+(?i:have|has|attest|personally|as|the)\b)")
# Cues after the name: a degree, or a verb only people take.
_DEGREE = r"(?:M\.?D\.?|D\.O\.|DO|Ph\.?D\.?|MBBS|FRCR|FRCPC|DMRD|R\.?N\.?|N\.?P\.?|PA-C|RDMS|RT\s*\(R\))"
_AFTER_CUE_RE = re.compile(
    rf"(?=[ \t,(])(?:,?[ \t]+{_DEGREE}(?![A-Za-z])"
    rf"|[ \t]*\((?:{_DEGREE}|(?i:attending|resident|fellow|radiologist|physician|nurse|rn|np|pa|tech|technologist"
    r"|referring|ordering|pcp|patient)|(?:\d{1,3}|\[AGE\])[ \t]?[FM])\)"  # "Moura, Tammy (Attending)", "(92 F)"
    r"|(?:[ \t]+(?:from|of)[ \t]+(?:the[ \t]+)?[a-z]+(?:[ \t]+[a-z]+)?)?"  # "X from cardiology was informed"
    r"[ \t]+(?:was|were|has[ \t]+been|had[ \t]+been)[ \t]+(?:notified|informed|paged|called|contacted|updated"
    r"|made[ \t]+aware|told)\b"
    r"|[ \t]+(?:agrees|agreed|concurs|concurred|acknowledged|verbalized)\b"
    r"|,?[ \t]+\(?(?:DOB|D\.O\.B\.|MRN|(?i:date[ \t]+of[ \t]+birth))\b)"  # the patient, named before their identifiers
)
_NAME_RE = re.compile(NAME_SEQ)
_WORD_START_RE = re.compile(r"(?:^|(?<=[\s(]))\S")
_MAX_NAME_WORDS = 7
AFTER_CUE_WINDOW = 120
# After a name: another one in a list ("[NAME] and Jake Lo"), or the one "by" whom it was done in the same
# clause ("reported to [NAME] RN at 2032 by K. Faherty").
_AFTER_NAME_RE = re.compile(
    rf"(\[NAME\](?:,?[ \t]+(?:and|&|or)[ \t]+|;[ \t]*|,[ \t]*|{_BY}[ \t]+))({NAME_SEQ})"
)
_LINE_RE = re.compile(rf"(?m)^([ \t]*)({NAME_SEQ})([ \t]*)$")
# Transcription stamps: "JBL/ej", "M. S./as" (the radiologist's and the typist's initials).
_TRANSCRIPTION_RE = re.compile(r"(?m)^([ \t]*)((?:[A-Z]\.?[ \t]?){2,3})/([a-z]{2,3})\b")
# Words next to a signature line ("Radiology", "Electronically signed ...") or marking one ("--").
_SIGNATURE_NEIGHBOUR = re.compile(
    r"(?i)^[ \t]*(?:--+|__+|radiology|radiologist|staff|attending|resident|fellow|electronically|signed"
    r"|e-?signed|dictated|transcribed|verified|department|diagnostic|interventional|neuroradiology|m\.?d\.?\b"
    r"|d\.?o\.?\b)"
)
_NAME_RUN_RE = re.compile(r"\[NAME\](?:[ \t]*,?[ \t]*\[NAME\])+")
# A capitalised word right beside a scrubbed name is the rest of that name ("Mark [NAME]" where only the
# surname was specific enough to be scrubbed everywhere).
_TOKEN_RE = re.compile(NAME_TOKEN)
_WORD_BEFORE_RE = re.compile(r"(?:^|(?<=[ \t\n(]))([^\s\[\]()]+)([ \t]+)$")
_WORD_AFTER_RE = re.compile(r"([ \t]+)([^\s\[\]()]*[^\s\[\]().,;:!?])")
NEIGHBOUR_WINDOW = 40
NAME_NEIGHBOUR_PASSES = 3
_CONTINUATION_PASSES = 3

# Words that are not names where a name may stand: departments, teams, roles, places in a hospital,
# report words and anatomy (with the imaging words of `header_terms`).
_NOT_NAME_WORDS = frozenset(
    """
    cardiology radiology neuroradiology neurology neurosurgery surgery oncology pulmonology pulmonary critical
    care urgent emergency department dept team teams service services unit units interventional vascular stroke
    trauma rapid response code medicine internal family pediatrics paediatrics orthopedics orthopaedics
    orthopedic urology gastroenterology hepatology nephrology hematology haematology infectious transplant
    cardiothoracic thoracic general hospitalist hospitalists nursing nurse nurses charge floor primary covering
    referring ordering attending resident residents fellow physician physicians provider providers clinician
    clinicians staff radiologist radiologists technologist technologists protocol report reports guideline
    guidelines society criteria classification unknown pending self clinic hospital center centre office lab
    laboratory pathology anesthesia anaesthesia obstetrics gynecology psychiatry dermatology ophthalmology
    otolaryngology plastics endocrinology rheumatology palliative hospice pharmacy telemetry pacu micu sicu
    ccu picu labor delivery dialysis cath echo ultrasound sonography nuclear mammography assistant
    practitioner notes note name names diagnosis nutrition dietary social work therapy wound speech
    respiratory management chaplain review interpretation read summary comments comment transport escort
    security registration scheduling billing records outside medical yes agrees agree pending self-referred
    referred same see above below limited voice recognition dictation mychart epic cerner powerchart powerscribe
    dragon vocera perfectserve tigertext pacs ris lunit aidoc icad annalise qure gleamer insight acr nccn who
    ajcc rsna sru aium acog uspstf
    chart record records request requisition consult consultant consults
    desk room reading main front the er ed icu ir gi ent ob obgyn ct mri mr xr us pet spect ecg ekg
    findings impression comparison indication history technique examination exam views view normal abnormal
    negative positive stable unchanged improved worse none clinical chest lungs lung heart left right
    preliminary final addendum result results impression recommendation recommendations
    via secure chat phone telephone epic page pager voicemail message text email fax
    """.split()
)
# Head nouns after (or ending) a capitalised word that make it an eponym or an organisation, not a person.
_EPONYM_HEADS = frozenset(
    """
    sign signs syndrome syndromes disease diseases fracture fractures lesion lesions hernia hernias catheter
    catheters tube tubes line lines hump criteria guideline guidelines classification classifications score
    scores scale scales grade grades stage stages type types valve valves filter filters device devices
    procedure procedures repair shunt shunts test tests maneuver manoeuvre protocol view views position
    projection technique method index ratio angle space spaces pouch capsule fascia canal ligament node
    nodes nodule nodules cyst cysts tumor tumors tumour sarcoma lymphoma carcinoma malformation anomaly
    deformity phenomenon effect pattern appearance triad sequence body bodies system society unit units
    department service team clinic hospital center centre foundation institute university college network
    rule rules formula equation circle reference references article website textbook vein artery arteries
    sinus ring band bands lobe pole column columns plexus nerve duct diverticulum thyroiditis encephalopathy
    palsy arteritis pneumonia disorder
    """.split()
)
_CLINICAL_CAPS = frozenset("PA AP CT MR MRI XR CXR ICU ED ER OR NG ET IJ PICC US KUB AM PM IV IR GI".split())


def _words(candidate: str) -> list[str]:
    return [w.strip(".,") for w in re.split(r"[\s,]+", candidate) if w.strip(".,")]


# Names of specialties and departments by their ending: Teleradiology, Nephrology, Psychiatry, Pediatrics.
_SPECIALTY = re.compile(r"(?i)\w+(?:olog(?:y|ist|ists)|iatry|iatrics|iatrist)")


def _not_name_word(word: str) -> bool:
    upper = word.upper()
    return (word.lower() in _NOT_NAME_WORDS or upper in _CLINICAL_CAPS or upper in DESCRIPTION_WORDS
            or upper.endswith("RADS") or bool(_SPECIALTY.fullmatch(word)))


def _trim(candidate: str) -> str:
    """The candidate without trailing comma-separated parts that are not names ("Smith, Cardiology")."""
    parts = candidate.split(",")
    while len(parts) > 1 and all(_not_name_word(w) for w in _words(parts[-1])):
        parts.pop()
    return ",".join(parts).rstrip()


def _next_word(text: str, end: int) -> str:
    """The word after a candidate, past a year or version ("Bosniak 2019 classification")."""
    match = re.match(r"(?:[ \t]+v?\d[\d.]*)?[ \t]*([A-Za-z]+)", text[end : end + 40])
    return match.group(1).lower() if match else ""


def person(candidate: str, text: str, end: int) -> bool:
    """Whether a name-shaped candidate found at a cue, ending at `end` in `text`, is a person's name."""
    words = _words(candidate)
    if not words or all(_not_name_word(w) for w in words):
        return False
    return words[-1].lower() not in _EPONYM_HEADS and _next_word(text, end) not in _EPONYM_HEADS


_LEADING_WORD_RE = re.compile(r"([^\s,]+)([ \t]+|,[ \t]?)")


def _shouted(cue: str, name: str) -> bool:
    """Whether words in capitals after a cue are a report written in capitals ("the patient SMOKES",
    "PER DAY", "REVIEW OF SYSTEMS") rather than a name: after a role or "per", or after a cue itself in
    capitals, only a label (with its colon) or the "LAST, FIRST" shape introduces a name."""
    if cue.rstrip().endswith((":", "-")) or "," in name:
        return False
    return bool(_ROLE_OR_PER_RE.fullmatch(cue)) or not any(ch.islower() for ch in cue)


def _replace_after_cue(match: re.Match[str]) -> str:
    # A rule has two groups (cue, name), or two such pairs as alternatives (see _TITLE_NAME_RE).
    cue_group = 1 if match.group(2) is not None else 3
    text, start = match.string, match.start(cue_group + 1)
    end = start + len(match.group(cue_group + 1))
    while (word := _LEADING_WORD_RE.match(text, start, end)) and word.group(1).strip(".").lower() in _NOT_NAME_WORDS:
        if "," in word.group(2):
            return match.group(0)  # "Per Cardiology, TAVR planned": the comma ends the clause
        start = word.end()  # "communicated to Nurse Kelly Brown": the role is not the name
    kept = _trim(text[start:end])
    cue = text[match.start(cue_group) : start]
    if not person(kept, text, start + len(kept)) or (kept.isupper() and _shouted(cue, kept)):
        return match.group(0)
    return f"{cue}[NAME]{text[start + len(kept) : end]}"


def _name_ending_at(text: str, window_start: int, end: int) -> int | None:
    """Where the longest name-shaped run of words ending exactly at `end` starts (words start after a
    space or bracket): a handful of anchored matches instead of a search through the whole window."""
    starts = [m.start() for m in _WORD_START_RE.finditer(text, window_start, end)][-_MAX_NAME_WORDS:]
    for start in starts:
        if _NAME_RE.fullmatch(text, start, end):
            return start
    return None


def _names_before_cues(text: str) -> str:
    # Find the (rare) cue first, then look back for the name: far cheaper than trying a name pattern at
    # every position of every report.
    pieces: list[str] = []
    done = 0
    for cue in _AFTER_CUE_RE.finditer(text):
        start = cue.start()
        if start < done:
            continue
        name_start = _name_ending_at(text, max(done, start - AFTER_CUE_WINDOW), start)
        if name_start is None:
            continue
        # "Informed Charge RN", "Paged Nurse Kelly RN": a leading cue or role word is not the name.
        while (word := _LEADING_WORD_RE.match(text, name_start, start)) and (
            word.group(1).lower() in _NOT_NAME_WORDS or _CUE_WORD_RE.fullmatch(word.group(1))
        ):
            name_start = word.end()
        if name_start >= start or not person(text[name_start:start], text, start):
            continue
        pieces += [text[done:name_start], "[NAME]"]
        done = start
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _signature_line(match: re.Match[str]) -> str:
    """A line holding only a name is a signature when it is "LAST, FIRST" or stands next to a signature line."""
    name, text = match.group(2), match.string
    words = _words(name)
    previous = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1] if match.start() else ""
    following = text[match.end() :].lstrip("\n").split("\n", 1)[0]
    last_first = "," in name and len(words) >= 2
    beside_signature = len(words) >= 2 and (
        _SIGNATURE_NEIGHBOUR.match(following) or _SIGNATURE_NEIGHBOUR.match(previous)
    )
    if not (last_first or beside_signature) or not person(name, text, match.end(2)):
        return match.group(0)
    if any(w.lower() in _NOT_NAME_WORDS or w.upper() in DESCRIPTION_WORDS for w in words):
        return match.group(0)
    return f"{match.group(1)}[NAME]{match.group(3)}"


_CUE_WORD_RE = re.compile(_by_first_letter(_VERBS_TO + _VERBS_BY + _DIRECT + _ROLES))


def _neighbour_is_name(word: str) -> bool:
    # Words in capitals beside a name are as often a shouted heading ("SB/tf SOURCE OF SPECIMEN").
    # A lone capital is a label ("D: [DATE]"), not a name's initial, which has its dot.
    if len(word) < 2 or (word.isupper() and len(word) > 2) or not _TOKEN_RE.fullmatch(word):
        return False
    return not _not_name_word(word) and not _CUE_WORD_RE.fullmatch(word)


def _absorb_neighbours(text: str) -> tuple[str, bool]:
    """Scrub the name-shaped word right before and right after each [NAME] ("Paged [NAME]" stays)."""
    pieces: list[str] = []
    done, changed = 0, False
    start = text.find("[NAME]")
    while start != -1:
        end = start + len("[NAME]")
        before = _WORD_BEFORE_RE.search(text, max(done, start - NEIGHBOUR_WINDOW), start)
        if before and _neighbour_is_name(before.group(1)):
            pieces += [text[done : before.start(1)], "[NAME]", before.group(2)]
            changed = True
        else:
            pieces.append(text[done:start])
        pieces.append("[NAME]")
        done = end
        after = _WORD_AFTER_RE.match(text, end)
        if after and _neighbour_is_name(after.group(2)):
            pieces += [after.group(1), "[NAME]"]
            done, changed = after.end(), True
        start = text.find("[NAME]", done)
    pieces.append(text[done:])
    return "".join(pieces), changed


def scrub_names(text: str) -> str:
    """Replace the people's names that the cues around them reveal with [NAME]."""
    text = _TITLE_NAME_RE.sub(_replace_after_cue, text)
    text = _CUE_NAME_RE.sub(_replace_after_cue, text)
    if "I," in text:
        text = _ATTESTATION_RE.sub(_replace_after_cue, text)
    text = _names_before_cues(text)
    if "/" in text:
        text = _TRANSCRIPTION_RE.sub(lambda m: f"{m.group(1)}[NAME]/[NAME]", text)
    text = _LINE_RE.sub(_signature_line, text)
    for _ in range(_CONTINUATION_PASSES if "[NAME]" in text else 0):
        text, found = _AFTER_NAME_RE.subn(_replace_after_cue, text)
        if not found:
            break
    for _ in range(NAME_NEIGHBOUR_PASSES if "[NAME]" in text else 0):
        text = _NAME_RUN_RE.sub("[NAME]", text)
        text, found = _absorb_neighbours(text)
        if not found:
            break
    return _NAME_RUN_RE.sub("[NAME]", text)
