"""Writes `phi_snippets.jsonl`: synthetic report snippets with PHI planted, and the gold spans of that PHI.

The gold spans are recorded while the text is assembled (a slot's text and its type go in together), so
they are the data's own truth, written without running any de-identifier. Names come from Faker's
gazetteers (several Latin-script locales, so "Piaścik", "Cañizares", "van Dijk" and "O'Neil" appear),
numbers and dates from a seeded random generator. The frames are the lines real radiology reports use
for people (communication, roles, signatures, transcription), dates, ages, phone / pager numbers and
record numbers; each frame is used several times with fresh values. FRAMES are the `tuned` split (the
rules were developed looking at their misses); HELDOUT_FRAMES, the `heldout` split, were written after
that and measured before any rule was changed for them.

Gold conventions: a NAME span is the whole name as written ("PETTIGREW, AMBROSE", "J. S. Okafor"),
without titles or degrees; DATE is the calendar date (a time of day alone is not PHI, a year alone is
not PHI; a month with its year is); AGE is the number of an age over 89 (HIPAA Safe Harbor: ages under
90 are not PHI, and appear as negatives); PHONE covers telephone, pager and fax numbers and extensions;
ID covers record, accession, order, encounter and social security numbers; ADDRESS covers street
addresses, city-state-zip and institutions; EMAIL and URL as written.

    python tests/data/deid/make_snippets.py   # needs the `dev` extra (faker)
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from faker import Faker

HERE = Path(__file__).resolve().parent
SEED = 1913
REPEATS = 5
LOCALES = ["en_US", "en_GB", "en_IE", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_BR", "sv_SE"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]

# Each frame is one report line (or a few). Slots: {name} any natural spelling of a person's name,
# {last} surname, {first} given name, {lastfirst} "Last, First", {caps} all-caps, {initials},
# {lower} a lower-case surname, {date} any date spelling, {monthyear}, {time} (not PHI), {age90} an age
# over 89 (PHI), {age} an age under 90 (not PHI), {sex} a sex letter or word, {phone}, {pager}, {ext},
# {mrn}, {acc}, {order}, {ssn}, {inst} an institution, {street}, {csz} city-state-zip, {email}, {url}.
FRAMES = [
    # ---- names after verbs of communication
    "Findings discussed with {name} at {time} on {date}.",
    "Critical result discussed with Dr. {last} by telephone at {time}.",
    "These findings were communicated to {name}, the covering nurse practitioner, at {time}.",
    "Results d/w {lastfirst} at {time}.",
    "Results d/w {caps} at {time} who acknowledged receipt.",
    "Per {name}, the patient fell from standing height.",
    "Per Dr {last} the line was pulled back prior to this exam.",
    "History per {name}: shortness of breath for three days.",
    "Called to {name} at {time}; read-back confirmed.",
    "Wet read called to {caps} in the Emergency Department.",
    "{name} was notified of the results at {time} on {date}.",
    "Notified {name} of the pneumothorax via secure chat.",
    "Paged {name} at {pager} regarding the malpositioned tube.",
    "Dr. {last} paged at {time}, no callback yet.",
    "Reviewed with {name}, attending radiologist.",
    "Case reviewed with Dr. {name}, who agrees with the above.",
    "Spoke with {first} {last}, RN, regarding the line position.",
    "Findings conveyed to {name} on {date} at {time}.",
    "I discussed these findings with {name} at {time} on {date}.",
    "Preliminary report given to {name} by phone.",
    "Informed {caps} (ordering provider) of the result.",
    "Results relayed to {name} via phone at {time}.",
    "Acknowledged by {name} at {time}.",
    "Recommendation for CT was texted to {name}.",
    "Communicated via secure chat to {name} at {time} on {date}.",
    "Verbal report given to Dr. {initial_last}.",
    "Discussed w/ {name} ({time}).",
    "d/w dr {lower} at {time}",
    "The findings were discussed with {lastfirst}, MD, at the time of interpretation.",
    "Findings were discussed with {name} and {name} at {time}.",
    "Telephoned {name} with the result.",
    "Results e-mailed to {name}.",
    # ---- roles and header labels
    "PCP: {name}",
    "Referring physician: {lastfirst}",
    "REFERRING PHYSICIAN: {caps}",
    "Attending: {name}, MD",
    "Resident: {name}, MD   Attending: {name}, MD",
    "Primary care provider {name} was copied on this report.",
    "cc: {name}; {name}",
    "Technologist: {initials}",
    "Tech: {first}",
    "Sonographer: {name}, RDMS",
    "Fellow: Dr. {last}",
    "Ordering provider: {name}, NP",
    "Consulting physician - {name}",
    "Radiologist: {lastfirst}",
    "Requested by: {name}",
    "Ordered by {lastfirst}",
    "Referred by {name} for evaluation of chronic cough.",
    "ORDERING MD: {caps}",
    "Primary Care Physician: Dr. {name}",
    "Referring: {last}, {initials}",
    # ---- signatures and transcription
    "Report by {name}",
    "Seen by {name} in clinic on {date}.",
    "Read by: {name}, M.D.",
    "Dictated by: {name} {date} {time}",
    "Electronically signed by: {lastfirst} on {date} at {time}",
    "Signed by {caps} MD {date}",
    "{name}, MD\nStaff Radiologist\n{date}",
    "{caps}\nElectronically signed {date} {time}",
    "I have personally reviewed the images and agree with the report.\n{lastfirst}, MD",
    "I, {name}, have personally reviewed the images and agree with the findings.",
    "Dictating radiologist: {name}   D: {date}   T: {date}",
    "{initials}/{initials_lower}   D: {date}   T: {date}",
    "Interpreted by {name}, DO on {date}.",
    "Final report signed by {name} ({date} {time})",
    "This study was reviewed by {name} and {name}.",
    "Verified by: {lastfirst}",
    "Prelim by resident {name}; final read by {name}.",
    "Transcribed by: {initials}",
    "Thank you for referring {title} {last}.",
    "Electronically Signed By: {name} MD\nSigned Date/Time: {date} {time}",
    "--\n{first} {last}\nRadiology",
    "RADIOLOGIST: {caps}, M.D.",
    # ---- the patient
    "Patient: {lastfirst}   DOB: {date}   MRN: {mrn}",
    "Name: {caps}   Acc: {acc}",
    "{title} {last} is a {age}-year-old with chest pain.",
    "{title} {last} tolerated the procedure well.",
    "Patient {name} arrived by stretcher.",
    "Pt {last} declined the lateral view.",
    "The patient, {name}, was identified with two identifiers.",
    "Patient identity confirmed ({name}, DOB {date}).",
    "Daughter {first} at bedside; consent obtained from {name}.",
    "PATIENT NAME: {caps}\nDATE OF BIRTH: {date}",
    # ---- ages
    "INDICATION: {age90}{sex1} with cough",
    "INDICATION: {age}{sex1} with fever",
    "HISTORY: {age90} yo {sex1}, fall.",
    "HISTORY: {age} yo {sex1}, fall.",
    "{age90}-year-old woman with dyspnea.",
    "{age90} y/o {sexword} s/p CABG.",
    "CLINICAL HISTORY: {age90}{sex1}, SOB",
    "Age: {age90}",
    "{age90} year old {sexword}, chest pain.",
    "A {age90}-yr-old man presents with hemoptysis.",
    "{age90} yrs, {sex1}. Hypoxia.",
    "Pt is {age90} years old.",
    "{age} y/o {sexword} with hypoxia; {age}-year-old comparison study.",
    "Reason for exam: {age90} {sex1} w/ altered mental status",
    "{age90}yo {sexword} with known CHF",
    "Nonambulatory {age90} year-old nursing home resident.",
    # ---- dates
    "COMPARISON: {date}.",
    "Comparison is made with prior radiographs from {date} and {date}.",
    "EXAM DATE: {date}",
    "DATE OF SERVICE: {date}",
    "Stable since {date}.",
    "Compared to CT chest of {date}, the nodule is unchanged.",
    "Admitted {date}; discharged {date}.",
    "DOB: {date}",
    "Follow-up CT is recommended around {date}.",
    "Prior study ({date}) showed a small effusion.",
    "Study performed {date} {time}.",
    "Last imaged {monthyear}.",
    "Comparison: chest radiograph, {date}, and CT, {monthyear}.",
    "Date of exam: {date}  Time: {time}",
    "The lesion was first seen on {date}.",
    "Unchanged from {date} through {date}.",
    # ---- phones, pagers, record numbers
    "Please call the reading room at {phone} with questions.",
    "Contact {name} at {phone}.",
    "Pager: {pager}",
    "For questions page {pager} or call x{ext}.",
    "MRN: {mrn}",
    "Accession #: {acc}",
    "ACC {acc} / MRN {mrn}",
    "Order number: {order}",
    "Encounter: {order}",
    "Medical Record Number {mrn}",
    "Exam # {acc}",
    "SSN {ssn} listed on the requisition.",
    "Fax report to {phone}.",
    "Callback number {phone}, ext {ext}.",
    "Reading room phone: {phone}",
    "Accession number {acc} (MRN {mrn}).",
    # ---- places, e-mail, web
    "Outside films from {inst} were reviewed.",
    "Patient transferred from {inst} on {date}.",
    "Home address: {street}, {csz}",
    "Report sent to {email}.",
    "Images available at {url}",
    "Prior imaging was performed at {inst}.",
    # ---- short mixed reports
    "EXAM: CHEST PA AND LATERAL {date}\nINDICATION: {age90}{sex1}, cough.\nFINDINGS: Kerley B lines and small "
    "effusions.\nIMPRESSION: Interstitial edema. Discussed with {name} at {time}.",
    "CT HEAD WITHOUT CONTRAST\nHISTORY: fall\nCOMPARISON: {date}\nFINDINGS: No hemorrhage.\n"
    "Electronically signed by {name}, MD on {date}",
    "PORTABLE CHEST {date} {time}\nSwan-Ganz catheter tip in the right main pulmonary artery; results d/w "
    "{caps}, RN.\nMRN {mrn}",
    "Findings consistent with Hampton hump. Per {name}, the D-dimer was elevated. Called to {lastfirst} at "
    "{time}.",
    "Morgagni hernia again seen, unchanged since {date}. Reviewed with {name}.",
    "IMPRESSION: Westermark sign; CTA recommended. Paged {name} ({pager}) at {time} on {date}.",
]
# Written after the rules were tuned on FRAMES, and measured before any rule was changed for them.
HELDOUT_FRAMES = [
    "Dr. {last}'s office was called with the results.",
    "Results were left on the voicemail of {name}.",
    "{name} (PA-C) was informed at {time}.",
    "Case discussed at tumor board; presenting physician {name}.",
    "The patient's wife, {first}, reports a fall on {date}.",
    "Comparison: outside CT from {inst} dated {date}.",
    "ATTENDING RADIOLOGIST: {caps}",
    "Dictated: {date} {time}   Transcribed: {date} {time}   By: {initials}",
    "Report electronically signed: {lastfirst}, M.D. {date}",
    "Referring MD: Dr. {last}",
    "Copy to: {name}, {name}",
    "Exam ordered by {name} for hemoptysis.",
    "Images reviewed in conjunction with {name}.",
    "{name} from cardiology was informed at {time}.",
    "Spoke to the patient's nurse, {name}, at {time}.",
    "Per discussion with {name}, the drain will be removed.",
    "Verbal read-back by {name}.",
    "Clinical question per ordering physician {name}: r/o PE.",
    "Assisted by {name}, RT(R).",
    "Technologist initials: {initials}",
    "{date}: CT chest performed without complication.",
    "Scheduled for biopsy on {date} with {name}.",
    "Prior exams: {date} (CT), {date} (MRI).",
    "Birth date {date}",
    "{age90} y.o. female with syncope.",
    "Age/Sex: {age90}/{sex1}",
    "Age/Sex: {age}/{sex1}",
    "PATIENT AGE: {age90y}",
    "MRN#{mrn}",
    "Acc. No. {acc}",
    "CSN {mrn}",
    "Visit #{mrn}",
    "Ph: {phone}",
    "Tel. {phone}",
    "Seen at {inst} ED on {date}.",
    "Lives at {street}, {csz}.",
    "Email: {email}",
    "{name} M.D.",
    "Electronically signed on {date} by {name}.",
    "This report was finalized by {name} on {date}.",
    "Resident: {name}\nStaff: {name}",
    "Radiology Resident {name}",
    "Interpreting physician: {name}",
    "{lastfirst} (Attending)",
    "History obtained from {first}, the patient's son.",
    "Pt's daughter {first} {last} at bedside.",
    "Findings reviewed with Drs. {last} and {last}.",
    "Case presented to {name} at conference.",
    "Report faxed to {name}'s office at {phone}.",
    "Findings discussed directly with the patient, {name}, who verbalized understanding.",
    "PROCEDURE DATE: {date}\nOPERATOR: {name}, MD\nASSISTANT: {name}",
    "Critical value reported to {name} RN at {time} by {name}.",
    "notified dr. {lower} at {time}",
    "Ultrasound performed by {first} {last}, RDMS, on {date}.",
    "Study requested by Dr {initial_last} (pager {pager}).",
    "Read with fellow {name}.",
    "Stat read given to {name} in the trauma bay.",
    "{caps} ({age90}{sex1})",
    "Interval follow-up since {monthyear}; prior study {date}.",
    "Reason: {age90} yo w/ dyspnea. Ordering: {lastfirst}",
]
FRAME_TRIGGERS = re.compile(r"\{(\w+)\}")

TITLES = ["Mr.", "Mrs.", "Ms.", "Mr", "Mrs", "Ms", "Miss"]
INSTITUTION_FORMS = ["{city} General Hospital", "St. {first}'s Medical Center", "{last} Memorial Hospital",
                     "{city} Regional Medical Center", "Mercy {city} Clinic", "{last} County Hospital"]
STREET_SUFFIXES = ["Street", "St.", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Dr.", "Boulevard", "Court"]
STATES = ["MA", "NY", "CA", "TX", "IL", "OH", "PA", "WA", "GA", "MN"]


class Filler:
    """Renders one slot as [(text, type or None), ...]; types are the gold labels."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker(LOCALES)
        self.fake.seed_instance(seed)

    # -- people
    def _first(self) -> str:
        return self.fake.first_name().split()[0]

    def _last(self) -> str:
        last = self.fake.last_name()
        return last if self.rng.random() > 0.08 else f"{last}-{self.fake.last_name().split()[0]}"

    def name(self) -> list:
        first, last, r = self._first(), self._last(), self.rng.random()
        if r < 0.55:
            text = f"{first} {last}"
        elif r < 0.7:
            text = f"{first} {self.rng.choice('ABCDEFGHJKLMNPRSTW')}. {last}"
        elif r < 0.8:
            text = f"{first[0]}. {last}"
        elif r < 0.88:
            text = f"{first[0]}.{self.rng.choice('ABCDEHJKMRS')}. {last}"
        elif r < 0.94:
            text = f"{first.upper()} {last.upper()}"
        else:
            text = f"{first} {last.split('-')[0]}"
        return [(text, "NAME")]

    def last(self) -> list:
        return [(self._last(), "NAME")]

    def first(self) -> list:
        return [(self._first(), "NAME")]

    def lastfirst(self) -> list:
        first, last, r = self._first(), self._last(), self.rng.random()
        if r < 0.35:
            text = f"{last}, {first}"
        elif r < 0.7:
            text = f"{last.upper()}, {first.upper()}"
        elif r < 0.85:
            text = f"{last}, {first} {self.rng.choice('ABCDEJKLMRS')}."
        else:
            text = f"{last.upper()}, {first.upper()} {self.rng.choice('ABCDEJKLMRS')}"
        return [(text, "NAME")]

    def caps(self) -> list:
        first, last = self._first(), self._last()
        text = f"{first} {last}" if self.rng.random() < 0.5 else f"{last}, {first}"
        return [(text.upper(), "NAME")]

    def initials(self) -> list:
        letters = [self._first()[0], self._last()[0]] + (
            [self.rng.choice("ABCDEJKLMRS")] if self.rng.random() < 0.3 else []
        )
        letters = [letter.upper() for letter in letters]
        form = self.rng.choice(["".join(letters), ".".join(letters) + ".", ". ".join(letters) + "."])
        return [(form, "NAME")]

    def initials_lower(self) -> list:
        return [((self._first()[0] + self._last()[0]).lower(), "NAME")]

    def initial_last(self) -> list:
        return [(f"{self._first()[0]}. {self._last()}", "NAME")]

    def lower(self) -> list:
        return [(self._last().lower(), "NAME")]

    def title(self) -> list:
        return [(self.rng.choice(TITLES), None)]

    # -- dates and times
    def _ymd(self) -> tuple[int, int, int]:
        return self.rng.randint(1990, 2025), self.rng.randint(1, 12), self.rng.randint(1, 28)

    def date(self) -> list:
        y, m, d = self._ymd()
        mon = MONTHS[m - 1]
        forms = [
            f"{m:02d}/{d:02d}/{y}", f"{m}/{d}/{y % 100:02d}", f"{m}/{d}/{y}", f"{y}-{m:02d}-{d:02d}",
            f"{mon} {d}, {y}", f"{mon[:3]} {d} {y}", f"{mon[:3]}. {d}, {y}", f"{d} {mon} {y}",
            f"{d:02d}-{mon[:3]}-{y}", f"{d:02d}{mon[:3].upper()}{y}", f"{y}{m:02d}{d:02d}", f"{d:02d}.{m:02d}.{y}",
            f"{mon} {d}{_ordinal(d)}, {y}", f"{m}-{d}-{y}", f"{y}/{m:02d}/{d:02d}",
            f"{d:02d}-{mon[:3].upper()}-{y % 100:02d}", f"{mon} {d}", f"{d}{_ordinal(d)} of {mon}", f"{m}/{d}",
        ]
        return [(self.rng.choice(forms), "DATE")]

    def monthyear(self) -> list:
        y, m, _ = self._ymd()
        return [(self.rng.choice([f"{MONTHS[m - 1]} {y}", f"{MONTHS[m - 1][:3]} {y}", f"{m:02d}/{y}", f"{m}/{y}"]),
                 "DATE")]

    def time(self) -> list:
        h, mi = self.rng.randint(0, 23), self.rng.randint(0, 59)
        return [(self.rng.choice([f"{h:02d}:{mi:02d}", f"{h:02d}{mi:02d}",
                                  f"{(h % 12) or 12}:{mi:02d} {'AM' if h < 12 else 'PM'}", f"{h:02d}{mi:02d} hrs"]),
                 None)]

    # -- ages
    def age90(self) -> list:
        return [(str(self.rng.randint(90, 104)), "AGE")]

    def age90y(self) -> list:
        return [(f"{self.rng.randint(90, 104):03d}", "AGE"), ("Y", None)]

    def age(self) -> list:
        return [(str(self.rng.randint(18, 89)), None)]

    def sex1(self) -> list:
        return [(self.rng.choice(["F", "M", " F", " M", "F", "M"]), None)]

    def sexword(self) -> list:
        return [(self.rng.choice(["female", "male", "F", "M", "woman", "man"]), None)]

    # -- numbers
    def phone(self) -> list:
        a, b, c = self.rng.randint(201, 989), self.rng.randint(200, 999), self.rng.randint(0, 9999)
        return [(self.rng.choice([f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}", f"{b}-{c:04d}",
                                  f"+1 {a} {b} {c:04d}", f"1-{a}-{b}-{c:04d}"]), "PHONE")]

    def pager(self) -> list:
        n = self.rng.randint(1000, 99999)
        return [(self.rng.choice([f"{n}", f"#{n}", f"{str(n)[0]}-{str(n)[1:]}"]), "PHONE")]

    def ext(self) -> list:
        return [(str(self.rng.randint(1000, 99999)), "PHONE")]

    def mrn(self) -> list:
        n = self.rng.randint(10**5, 10**9)
        return [(self.rng.choice([f"{n}", f"{n:010d}", f"E{n}", f"{str(n)[:3]}-{str(n)[3:]}"]), "ID")]

    def acc(self) -> list:
        n = self.rng.randint(10**4, 10**8)
        return [(self.rng.choice([f"{n}", f"RAD{n}", f"CT{self.rng.randint(19, 25)}-{n}", f"A{n:08d}"]), "ID")]

    def order(self) -> list:
        return [(self.rng.choice([str(self.rng.randint(10**5, 10**9)), f"ORD-{self.rng.randint(1000, 999999)}"]), "ID")]

    def ssn(self) -> list:
        return [(f"{self.rng.randint(100, 899)}-{self.rng.randint(10, 99)}-{self.rng.randint(1000, 9999)}", "ID")]

    # -- places and addresses
    def inst(self) -> list:
        form = self.rng.choice(INSTITUTION_FORMS)
        return [(form.format(city=self.fake["en_US"].city(), first=self._first(), last=self._last()), "ADDRESS")]

    def street(self) -> list:
        number = self.rng.randint(1, 9999)
        return [(f"{number} {self._last().split('-')[0]} {self.rng.choice(STREET_SUFFIXES)}", "ADDRESS")]

    def csz(self) -> list:
        return [(f"{self.fake['en_US'].city()}, {self.rng.choice(STATES)} {self.rng.randint(10000, 99999)}", "ADDRESS")]

    def email(self) -> list:
        first, last = self._first().lower(), self._last().lower().replace("'", "").replace(" ", "")
        return [(f"{first}.{last}@{self.rng.choice(['hospital.org', 'med.example.edu', 'clinic.com'])}", "EMAIL")]

    def url(self) -> list:
        return [(f"https://pacs.{self.rng.choice(['mercy', 'stlukes', 'general'])}.org/viewer?acc="
                 f"{self.rng.randint(10**5, 10**8)}", "URL")]


def _ordinal(day: int) -> str:
    return "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def render(frame: str, filler: Filler) -> dict:
    """One snippet: the frame with every slot filled, and the gold span of every PHI slot."""
    text, spans, done = "", [], 0
    for slot in FRAME_TRIGGERS.finditer(frame):
        text += frame[done:slot.start()]
        for piece, phi_type in getattr(filler, slot.group(1))():
            if phi_type:
                spans.append([len(text), len(text) + len(piece), phi_type])
            text += piece
        done = slot.end()
    text += frame[done:]
    return {"text": text, "spans": spans}


def main() -> None:
    filler = Filler(SEED)
    rows = []
    for frames, split, prefix in ((FRAMES, "tuned", "f"), (HELDOUT_FRAMES, "heldout", "h")):
        for repeat in range(REPEATS):
            for index, frame in enumerate(frames):
                row = render(frame, filler)
                row["id"] = f"{prefix}{index:03d}-{repeat}"
                row["split"] = split
                rows.append(row)
    out = HERE / "phi_snippets.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"id": row["id"], "split": row["split"], "text": row["text"], "spans": row["spans"]},
                               ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} snippets from {len(FRAMES) + len(HELDOUT_FRAMES)} frames to {out}")


if __name__ == "__main__":
    main()
