"""Report text rules of mgll_data/deid/text.py beyond names: ages with sex letters, dates without a year,
pager numbers (issue 13, item 3), and control characters (item 11). Each PHI case leaked before."""

from __future__ import annotations

import pytest

from mgll_data.deid import scrub_text, strip_control_characters

CASES = [
    # ages over 89 in the forms reports write them; the number goes, the sex letter may stay
    ("INDICATION: 97F with cough", "INDICATION: [AGE]F with cough"),
    ("CLINICAL HISTORY: 100 M, SOB", "CLINICAL HISTORY: [AGE] M, SOB"),
    ("Age/Sex: 94/M", "Age/Sex: [AGE]/M"),
    ("PATIENT AGE: 094Y", "PATIENT AGE: [AGE]Y"),
    # dates: month and day only where a date is expected, month and year, a month day ending a sentence
    ("Communicated to the team at 20:54 on 10/17.", "Communicated to the team at 20:54 on [DATE]."),
    ("Study performed 7/4 1737 hrs.", "Study performed [DATE] 1737 hrs."),  # a time of day alone is not PHI
    ("Date of exam: 6/23  Time: 1049 hrs", "Date of exam: [DATE]  Time: 1049 hrs"),
    ("Last imaged 06/1999.", "Last imaged [DATE]."),
    ("COMPARISON: January 1.", "COMPARISON: [DATE]."),
    # pager numbers after the person paged
    ("Paged the resident at 63092 regarding the tube.", "Paged the resident at [PHONE] regarding the tube."),
    ("For questions page #47542.", "For questions page #[PHONE]."),
    ("Paged Dr. Smith (47281) at 05:32.", "Paged Dr. [NAME] [PHONE] at 05:32."),
]


@pytest.mark.parametrize("text, expected", CASES, ids=[t[:40] for t, _ in CASES])
def test_ages_dates_and_pagers_are_scrubbed(text, expected):
    assert scrub_text(text) == expected


KEPT = [
    "INDICATION: 85 yo M with SOB; 45F with fever; 72 y/o male.",  # ages under 90 are not PHI
    "Temperature 101F and tachycardia. Fever to 102 F overnight.",  # temperatures, not ages
    "Paged the team at 1430.",  # a time, not a pager number
    "The lesion occupies 3/4 of the lobe; strength 5/5; grade 2/4 murmur; series 7 image 20/64.",
    "Exam performed at 14:30. Comparison with the study from 2019.",
]


@pytest.mark.parametrize("text", KEPT)
def test_ages_under_90_temperatures_fractions_and_times_stay(text):
    assert scrub_text(text) == text


@pytest.mark.parametrize(
    "text, expected, removed",
    [
        ("Lungs clear.\x00\x00 No effusion.", "Lungs clear. No effusion.", 2),
        ("\x1b[1;31mCRITICAL\x1b[0m: pneumothorax", "CRITICAL: pneumothorax", 11),
        ("\x1b]0;window title\x07Findings", "Findings", 17),
        ("Dr. Sm\u200bith\u202e", "Dr. Smith", 2),  # a zero-width space splitting a name, a bidi override
        ("FINDINGS:\tclear\r\nIMPRESSION:\x0cnormal", "FINDINGS:\tclear\nIMPRESSION:\nnormal", 0),
        ("Résumé — 5 µm, café", "Résumé — 5 µm, café", 0),
    ],
)
def test_control_characters_are_stripped_and_counted(text, expected, removed):
    assert strip_control_characters(text) == (expected, removed)


def test_an_escape_inside_a_name_cannot_hide_it():
    cleaned, _ = strip_control_characters("Results d/w PETTI\x1b[0mGREW, AMBROSE.")
    assert scrub_text(cleaned) == "Results d/w [NAME]."
