"""Vocabulary files: complete, loadable, and the term syntax compiles to the patterns it documents."""

from __future__ import annotations

import pytest
import yaml

from mgll_data.reports import VocabularyError, label_reports, load_vocabulary, vocabulary_names
from mgll_data.reports.vocabulary import VOCABULARY_DIR, available, compile_term

NIH14 = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
         "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
CHEXPERT = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
            "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
            "Fracture", "Support Devices"]


def test_builtin_vocabularies_are_listed():
    assert {"nih14", "chexpert", "fundus"} <= set(available())


def test_nih14_names_exactly():
    assert vocabulary_names("nih14") == NIH14


def test_chexpert_names_exactly():
    assert vocabulary_names("chexpert") == CHEXPERT


def test_fundus_covers_the_common_findings():
    names = set(vocabulary_names("fundus"))
    assert {"Diabetic Retinopathy", "Diabetic Macular Edema", "Glaucoma", "Age-related Macular Degeneration",
            "Pathologic Myopia", "Cataract", "Hypertensive Retinopathy", "Retinal Vein Occlusion", "Drusen"} <= names


@pytest.mark.parametrize("name", ["nih14", "chexpert", "fundus"])
def test_every_finding_is_complete(name):
    vocab = load_vocabulary(name)
    for finding in vocab.mentionable():
        assert finding.terms, finding.name
        assert finding.category and finding.plain
        assert finding.explanation.endswith("."), finding.name
        for severity in finding.severity:
            assert severity.when and severity.text.endswith("."), (finding.name, severity.name)


def test_diabetic_retinopathy_has_grades():
    grades = [s.name for s in load_vocabulary("fundus").by_name["Diabetic Retinopathy"].severity]
    assert grades == ["mild", "moderate", "severe", "proliferative"]


def test_vocabulary_from_a_user_file(tmp_path):
    path = tmp_path / "mine.yaml"
    raw = yaml.safe_load((VOCABULARY_DIR / "nih14.yaml").read_text())
    raw["findings"] = raw["findings"][:2]
    path.write_text(yaml.safe_dump(raw))
    assert vocabulary_names(str(path)) == ["Atelectasis", "Cardiomegaly"]


def test_unknown_vocabulary_is_a_one_line_error():
    with pytest.raises(VocabularyError, match="no vocabulary 'nope'"):
        load_vocabulary("nope")


def test_finding_without_explanation_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"findings": [{"name": "X", "terms": ["x"]}]}))
    with pytest.raises(VocabularyError, match="explanation"):
        load_vocabulary(str(path))


def test_vocabulary_prefixes():
    prefixes = load_vocabulary("nih14").prefixes()
    assert {"atelect", "pneumothora", "nodul"} <= prefixes


def test_term_syntax():
    pattern = compile_term("heart|cardiac ~ enlarged")
    assert pattern[0] == {"LOWER": {"IN": ["heart", "cardiac"]}}
    assert pattern[1]["OP"] == "{0,4}" and "no" in pattern[1]["LOWER"]["NOT_IN"]
    assert pattern[2] == {"LOWER": "enlarged"}
    assert compile_term("atelecta*")[0] == {"NORM": {"IN": ["atelecta*"]}}
    # a word tagged with a longer prefix that starts with this one still matches it
    assert compile_term("fibros*", prefixes=frozenset({"fibros", "fibrosis", "scar"}))[0] == {
        "NORM": {"IN": ["fibros*", "fibrosis*"]}}
    assert compile_term("scar|fibros*")[0] == {"LOWER": {"REGEX": "^(?:fibros.*|scar)$"}}
    assert compile_term("pleural? effusion")[0] == {"LOWER": "pleural", "OP": "?"}
    assert [p["LOWER"] for p in compile_term("mass-like")] == ["mass", "-", "like"]
    with pytest.raises(VocabularyError):
        compile_term("~ enlarged")


def certainties(text: str, vocab: str = "nih14") -> dict[str, str]:
    return {label.name: label.certainty for label in label_reports([text], vocab)[0].labels}


@pytest.mark.parametrize(
    "sentence",
    [
        "Bibasilar airspace opacities.", "Increased interstitial markings.", "Patchy ground-glass opacity.",
        "Scarring at the lung apices.", "Chronic interstitial lung disease.", "Hyperinflated lungs.",
        "Hyperexpansion consistent with COPD.", "Apical bullae.", "Left basilar volume loss.",
        "Blunting of the left costophrenic angle.", "Fluid in the minor fissure.", "Right hilar tumor.",
        "Pleural plaques and pleural scarring.", "Findings suggest an infectious process.",
        "Mild pulmonary vascular congestion.", "Calcified granuloma in the right upper lobe.",
    ],
)
def test_related_signs_never_set_a_label(sentence):
    result = label_reports([sentence], "nih14")[0]
    assert result.labels == []
    assert any(m.related for m in result.mentions), "the sign is kept as evidence"


@pytest.mark.parametrize(
    "sentence",
    ["Subcutaneous emphysema in the left chest wall.", "History of cystic fibrosis with bronchiectasis.",
     "Large thyroid mass displacing the trachea.", "Soft tissue mass in the right chest wall.",
     "Small pericardial effusion.", "Wedge compression collapse of T12.", "Thyroid nodule."],
)
def test_exclusions(sentence):
    assert certainties(sentence) == {}


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Reticulonodular opacities in both lungs.", {"Nodule": "definite"}),
        ("Minor fissural thickening.", {"Pleural_Thickening": "definite"}),
        ("Small right pleural air collection.", {"Pneumothorax": "definite"}),
        ("Heart size is at the upper limits of normal.", {"Cardiomegaly": "negated"}),
        ("Top-normal heart size.", {"Cardiomegaly": "negated"}),
        ("Enlarged cardiomediastinal silhouette.", {"Cardiomegaly": "probable"}),
        ("Small left hemothorax.", {"Effusion": "definite"}),
    ],
)
def test_forms(sentence, expected):
    assert certainties(sentence) == expected


def test_chexpert_lung_opacity_takes_the_generic_words():
    assert certainties("Bibasilar airspace opacities.", "chexpert") == {"Lung Opacity": "definite"}


def test_old_hedged_key_is_read_as_probable(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"findings": [{"name": "X", "terms": ["xray"], "hedged": ["maybe xray"],
                                                  "explanation": "An x."}]}))
    assert load_vocabulary(str(path)).by_name["X"].probable == ("maybe xray",)
