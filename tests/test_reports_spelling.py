"""Misspelt finding words are read as the vocabulary word they stand for, and nothing else is."""

from __future__ import annotations

import pytest

from mgll_data.reports import label_reports
from mgll_data.reports.spelling import Speller, speller


@pytest.mark.parametrize(("typo", "word"), [
    ("pneumothorx", "pneumothorax"), ("COLAPSE", "collapse"), ("hiatial", "hiatal"), ("EDEMEA", "edema"),
    ("nodlues", "nodules"), ("EMPHYSMATOUS", "emphysematous"), ("herniaa", "hernia"),
])
def test_one_edit_from_a_word_or_a_stem(typo, word):
    assert speller("nih14").correct(typo) == word


@pytest.mark.parametrize(
    "word", ["larger", "hemithorax", "effusions", "bilateral", "right", "portable", "edema", "x-ray"]
)
def test_words_that_are_fine_are_left_alone(word):
    assert speller("nih14").correct(word) is None


def test_only_towards_the_vocabulary_and_never_a_plain_inflection():
    spell = Speller({"effusion", "large"}, {"atelect"})
    assert spell.correct("efusion") == "effusion"
    assert spell.correct("atelectisis") is None  # already starts with a stem: the matcher reads it
    assert spell.correct("atleectasis") == "atelectasis"
    assert spell.correct("larger") is None
    assert spell.correct("lunge") is None


def test_a_dictated_report_keeps_its_own_words_in_the_evidence():
    text = "SMALL LEFT PNEUMOTHORX. NO EFUSSION."
    [result] = label_reports([text], "nih14")
    assert [(label.name, label.certainty) for label in result.labels] == [("Effusion", "negated"),
                                                                         ("Pneumothorax", "definite")]
    [ptx] = [m for m in result.mentions if m.finding == "Pneumothorax"]
    assert (ptx.text, text[ptx.start : ptx.end]) == ("PNEUMOTHORX", "PNEUMOTHORX")
    assert "read 'PNEUMOTHORX' as 'pneumothorax'" in ptx.rule
