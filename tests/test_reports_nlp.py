"""Pipeline assembly: tokenizer, sentence rules, sections and report-defined abbreviations."""

from __future__ import annotations

import pytest

from mgll_data.reports import label_reports
from mgll_data.reports.nlp import get_nlp, quiet_matchers


@pytest.fixture(scope="module")
def pipeline():
    return get_nlp("nih14")


@pytest.fixture
def nlp(pipeline):
    with quiet_matchers():
        yield pipeline


def test_pipeline_components(nlp):
    assert nlp.pipe_names == ["mgll_sentences", "abbreviation_detector", "medspacy_sectionizer", "mgll_stems",
                              "medspacy_target_matcher", "mgll_abbreviation_targets", "medspacy_context"]


def test_stem_tagger_marks_vocabulary_prefixes(nlp):
    doc = nlp("Atelectatic changes and PNEUMOTHORACES, lungs clear.")
    assert [t.norm_ for t in doc][:5] == ["atelecta*", "changes", "and", "pneumothora*", ","]


def test_tokenizer_splits_slashes_and_hyphens_between_words(nlp):
    words = [t.text for t in nlp.make_doc("Effusion/pneumothorax. Mass-like XXXX-XXXX T11-12 1.5 cm")]
    assert words[:3] == ["Effusion", "/", "pneumothorax"]
    assert words[4:7] == ["Mass", "-", "like"]
    assert "1.5" in words


def test_sentences_and_sections(nlp):
    doc = nlp("INDICATION: Cough.\nFINDINGS: No effusion. Heart size normal\nIMPRESSION: Normal chest x-XXXX.")
    sentences = [s.text.strip() for s in doc.sents if s.text.strip()]
    assert "No effusion." in sentences and "Heart size normal" in sentences
    assert [s.category for s in doc._.sections] == ["indication", "findings", "impression"]


def test_abbreviation_defined_in_the_report_becomes_a_mention():
    result = label_reports(["Small left pleural effusion (PE). No pneumothorax. The PE is unchanged."], "nih14")[0]
    assert dict(result.labels) == {"Effusion": 1, "Pneumothorax": 0}
    assert "PE" in [m.text for m in result.mentions]


def test_undefined_abbreviation_is_not_guessed():
    assert label_reports(["No PE."], "nih14")[0].labels == []
