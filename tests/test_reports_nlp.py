"""Pipeline assembly: tokenizer, stems, compounds, coordinated words and report-defined abbreviations."""

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


def certainties(text: str, vocab: str = "nih14") -> dict[str, str]:
    return {label.name: label.certainty for label in label_reports([text], vocab)[0].labels}


def test_pipeline_components(nlp):
    assert nlp.pipe_names == ["mgll_one_sentence", "mgll_stems", "medspacy_target_matcher", "mgll_coordination",
                              "mgll_abbreviation_targets", "mgll_context"]


def test_stem_tagger_marks_vocabulary_prefixes(nlp):
    doc = nlp("Atelectatic changes and PNEUMOTHORACES, lungs clear.")
    assert [t.norm_ for t in doc][:5] == ["atelect*", "changes", "and", "pneumothora*", ","]


def test_tokenizer_splits_slashes_and_hyphens_between_words(nlp):
    words = [t.text for t in nlp.make_doc("Effusion/pneumothorax. Mass-like XXXX-XXXX T11-12 1.5 cm")]
    assert words[:3] == ["Effusion", "/", "pneumothorax"]
    assert words[4:7] == ["Mass", "-", "like"]
    assert "1.5" in words


def test_a_phrase_listed_under_two_findings_names_both():
    assert certainties("Fibronodular changes at the right apex.") == {"Nodule": "definite", "Fibrosis": "definite"}
    assert certainties("Small left hydropneumothorax.") == {"Effusion": "definite", "Pneumothorax": "definite"}


def test_coordinated_word_takes_the_category_of_its_partner():
    assert certainties("Small effusion or thickening on the left.") == {
        "Effusion": "probable", "Pleural_Thickening": "probable"}
    # alone, "thickening" names nothing
    assert certainties("Bronchial wall thickening.") == {}


def test_abbreviation_defined_in_the_report_becomes_a_mention():
    result = label_reports(["Small left pleural effusion (PE). No pneumothorax. The PE is unchanged."], "nih14")[0]
    assert [(label.name, label.certainty) for label in result.labels] == [("Effusion", "definite"),
                                                                         ("Pneumothorax", "negated")]
    assert [(m.text, m.start) for m in result.mentions if m.text == "PE"] == [("PE", 55)]


def test_abbreviation_in_a_negated_sentence():
    assert (
        certainties("Large right pneumothorax (PTX) on the prior film. No residual PTX now.")["Pneumothorax"]
        == "definite"
    )
    assert certainties("Pleural effusion (PE) is suspected. No PE.") == {"Effusion": "possible"}


def test_undefined_abbreviation_is_not_guessed():
    assert label_reports(["No PE."], "nih14")[0].labels == []
