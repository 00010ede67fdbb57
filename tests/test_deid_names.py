"""Names without a title in report text (issue 13, item 3): each form leaked before the cue-based rules of
mgll_data/deid/names.py. Expected outputs are written out in full, so a name half-scrubbed fails too."""

from __future__ import annotations

import pytest

from mgll_data.deid import scrub_text

LEAKS = [
    # the issue's own examples
    ("Findings discussed per Hortensia Blackwood.", "Findings discussed per [NAME]."),
    ("PCP: Lucius Havercamp", "PCP: [NAME]"),
    ("Results d/w PETTIGREW, AMBROSE at 14:30.", "Results d/w [NAME] at 14:30."),
    ("Report by Hortensia Blackwood", "Report by [NAME]"),
    ("Seen by Lucius Havercamp in clinic.", "Seen by [NAME] in clinic."),
    # verbs of communication and attribution
    ("Critical result called to Ercan Vaughan at 15:18; read-back confirmed.",
     "Critical result called to [NAME] at 15:18; read-back confirmed."),
    ("Notified Manu Joly of the pneumothorax.", "Notified [NAME] of the pneumothorax."),
    ("Paged A.K. Montenegro regarding the tube.", "Paged [NAME] regarding the tube."),
    ("Reviewed with Gunnar S. Gustafsson, attending radiologist.", "Reviewed with [NAME], attending radiologist."),
    ("I discussed these findings with KATHY BIBI at 0629 hrs.", "I discussed these findings with [NAME] at 0629 hrs."),
    ("Communicated via secure chat to Luc Meyer.", "Communicated via secure chat to [NAME]."),
    ("Findings were discussed with T. Eriksson and Josué D. Nazario.",
     "Findings were discussed with [NAME] and [NAME]."),
    ("Critical value reported to W. Hawkins RN at 21:02 by Nela Laroche.",
     "Critical value reported to [NAME] RN at 21:02 by [NAME]."),
    ("Electronically signed on 03.11.2010 by Christine Bailey.", "Electronically signed on [DATE] by [NAME]."),
    ("d/w dr noël at 19:25", "d/w dr [NAME] at 19:25"),
    ("Follow-up advised. Critical result d/w PETTIGREW, AMBROSE per\nHortensia Blackwood; PCP: none.",
     "Follow-up advised. Critical result d/w [NAME] per\n[NAME]; PCP: none."),  # a line wrapped before the name
    # roles and labels
    ("Ordered by CASA GRANDE, TYMON", "Ordered by [NAME]"),
    ("Technologist: J.S.", "Technologist: [NAME]"),
    ("Prelim by resident E. Payet; final read by Gabrielle Bastida.",
     "Prelim by resident [NAME]; final read by [NAME]."),
    ("Daughter Marcela at bedside; consent obtained from Noëlle Martin.",
     "Daughter [NAME] at bedside; consent obtained from [NAME]."),
    ("Copy to: Ilija Rios, A. Stewart", "Copy to: [NAME]"),  # a list read as one name: all of it goes
    # names before what follows them: a degree, a parenthesised role or age, a verb only people take, a DOB
    ("Almut Chaparro was notified of the results.", "[NAME] was notified of the results."),
    ("Sante Vittadello from cardiology was informed at 0854.", "[NAME] from cardiology was informed at 0854."),
    ("Moura, Tammy (Attending)", "[NAME] (Attending)"),
    ("Patient identity confirmed (Raymond L. Guidotti, DOB 08.09.2021).",
     "Patient identity confirmed ([NAME], DOB [DATE])."),
    # signature and transcription lines
    ("--\nAndrew Devenney\nRadiology", "--\n[NAME]\nRadiology"),
    ("FIAMMA BRYGOŁA\nElectronically signed 24th of March 2:13 PM", "[NAME]\nElectronically signed [DATE]"),
    ("J.B.L./ej   D: 09/22/2018", "[NAME]/[NAME]   D: [DATE]"),
]


@pytest.mark.parametrize("text, expected", LEAKS, ids=[t[:40] for t, _ in LEAKS])
def test_names_without_a_title_are_scrubbed(text, expected):
    assert scrub_text(text) == expected


# Capitalised words where a name could stand that are not names: the rules must leave them alone.
NOT_NAMES = [
    "Results discussed with Cardiology.",
    "Discussed with Interventional Radiology for possible drainage.",
    "Reviewed by Neuroradiology with agreement.",
    "Referring physician: Emergency Department.",
    "Recommend follow-up CT per Fleischner Society guidelines.",
    "Per Bosniak 2019 classification, category IIF.",
    "Per Cardiology, TAVR planned.",
    "Interpreted by Teleradiology overnight.",
    "The effusion is better seen by CT.",
    "Findings consistent with a Hampton hump, per the clinical team.",
    "Sent for pathology to R/O H pylori.",
    "REVIEW OF SYSTEMS: negative. The patient SMOKES CIGARETTES. Call for weight gain of FIVE POUNDS PER WEEK.",
    "Informed Charge RN.",
    "10 cc Omnipaque was given.",
    "Seen by me after she presented with SYNCOPE.",  # a clinical "presented with", not a case presented to
]


@pytest.mark.parametrize("text", NOT_NAMES)
def test_departments_eponyms_and_capitals_are_not_names(text):
    assert scrub_text(text) == text
