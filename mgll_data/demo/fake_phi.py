"""Made-up identifying details for the demo's headers and reports.

Every value is invented (names from short common-name lists, 555 phone numbers, random ids) but shaped
like the real thing, so the builder's de-identification has real work to do and a test can check that
none of these strings survive into a built dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

_FIRST_MALE = ("James", "Robert", "Michael", "William", "David", "Joseph", "Thomas", "Charles", "Daniel", "Mark")
_FIRST_FEMALE = ("Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Margaret", "Sarah", "Karen")
_LAST = ("Holloway", "Whitaker", "Okafor", "Lindqvist", "Moreau", "Castellano", "Brennan", "Nakamura", "Petrov",
         "Adeyemi", "Fitzgerald", "Haddad", "Kowalski", "Delgado", "Sorensen", "Abernathy", "Quintero", "Yamada")
_INSTITUTIONS = ("Riverside General Hospital", "St. Brigid Medical Center", "Lakeshore University Hospital",
                 "Mercy Valley Clinic", "Northgate Community Hospital")
_STREETS = ("Maple Avenue", "Harbor Road", "Elm Street", "Commonwealth Boulevard", "Cedar Lane")
_CITIES = ("Springfield, MA 01103", "Riverton, NY 12204", "Lakeview, IL 60614", "Fairmont, OH 43004")
_MODELS = (("Carestream", "DRX-Evolution"), ("Philips", "DigitalDiagnost"), ("Siemens", "Ysio Max"),
           ("Fujifilm", "FDR D-EVO II"), ("Agfa", "DX-D 600"), ("GE Healthcare", "Definium 6000"))


@dataclass(frozen=True)
class FakeStudyPeople:
    patient_first: str
    patient_last: str
    patient_id: str
    birth_date: date
    sex: str  # M | F
    study_date: date
    accession: str
    institution: str
    address: str
    referring: tuple[str, str]  # first, last
    dictating: tuple[str, str]
    phone: str
    manufacturer: str
    model: str
    device_serial: str
    station: str

    @property
    def age(self) -> int:
        years = self.study_date.year - self.birth_date.year
        return years - ((self.study_date.month, self.study_date.day) < (self.birth_date.month, self.birth_date.day))

    @property
    def dicom_name(self) -> str:
        return f"{self.patient_last}^{self.patient_first}"

    def identifying_strings(self) -> list[str]:
        """What must never appear in a built dataset (ids, names, places, numbers)."""
        return [self.patient_first, self.patient_last, self.patient_id, self.accession, self.institution,
                self.address, self.referring[1], self.dictating[1], self.phone, self.device_serial]


def _person(rng: np.random.Generator, sex: str) -> tuple[str, str]:
    firsts = _FIRST_MALE if sex == "M" else _FIRST_FEMALE
    return str(rng.choice(firsts)), str(rng.choice(_LAST))


def fake_people(rng: np.random.Generator) -> FakeStudyPeople:
    sex = "M" if rng.random() < 0.5 else "F"
    first, last = _person(rng, sex)
    study_date = date(2015, 1, 1) + timedelta(days=int(rng.integers(0, 365 * 8)))
    age_years = int(rng.integers(91, 97)) if rng.random() < 0.05 else int(rng.integers(19, 89))
    birth_date = study_date - timedelta(days=age_years * 365 + int(rng.integers(1, 360)))
    manufacturer, model = _MODELS[int(rng.integers(len(_MODELS)))]
    return FakeStudyPeople(
        patient_first=first,
        patient_last=last,
        patient_id=f"MRN{int(rng.integers(10**6, 10**7))}",
        birth_date=birth_date,
        sex=sex,
        study_date=study_date,
        accession=f"ACC{int(rng.integers(10**7, 10**8))}",
        institution=str(rng.choice(_INSTITUTIONS)),
        address=f"{int(rng.integers(10, 9999))} {rng.choice(_STREETS)}, {rng.choice(_CITIES)}",
        referring=_person(rng, "M" if rng.random() < 0.5 else "F"),
        dictating=_person(rng, "M" if rng.random() < 0.5 else "F"),
        phone=f"({int(rng.integers(201, 989))}) 555-{int(rng.integers(100, 200)):04d}",
        manufacturer=manufacturer,
        model=model,
        device_serial=f"SN{int(rng.integers(10**5, 10**6))}-{rng.choice(list('ABCDEFGH'))}",
        station=f"XR-ROOM{int(rng.integers(1, 9))}",
    )
