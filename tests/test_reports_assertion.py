"""The radiology ConText rules on the sentences the issue names, one assertion each."""

from __future__ import annotations

import pytest

from mgll_data.reports import label_reports


@pytest.fixture(scope="module")
def labels_of():
    def run(text: str, vocab: str = "nih14") -> dict[str, int]:
        return dict(label_reports([text], vocab)[0].labels)

    return run


def test_list_after_no_negates_every_item(labels_of):
    assert labels_of("No pleural effusion or pneumothorax.") == {"Effusion": 0, "Pneumothorax": 0}


def test_cannot_exclude_is_uncertain(labels_of):
    assert labels_of("Cannot exclude small left effusion.") == {"Effusion": -1}


def test_may_represent_hedges_both_alternatives(labels_of):
    assert labels_of("Opacity which may represent atelectasis or pneumonia.") == {"Atelectasis": -1, "Pneumonia": -1}


def test_interval_resolution_negates(labels_of):
    assert labels_of("Interval resolution of pulmonary edema.") == {"Edema": 0}


def test_no_acute_process_has_no_positives(labels_of):
    labels = labels_of("IMPRESSION: No acute cardiopulmonary process.", "chexpert")
    assert labels == {"No Finding": 1}


def test_calcified_granuloma_is_not_a_nodule_or_mass(labels_of):
    labels = labels_of("Stable calcified granuloma in the right upper lobe.")
    assert "Nodule" not in labels and "Mass" not in labels


def test_xxxx_tokens_do_not_break_sentences_or_scope(labels_of):
    assert labels_of("There is no XXXX pneumothorax. XXXX XXXX opacity in the right base may represent infiltrate.") == {
        "Pneumothorax": 0,
        "Infiltration": -1,
    }


def test_comma_list_after_no_focal(labels_of):
    assert labels_of("No focal consolidation, pneumothorax, or large pleural effusion.") == {
        "Effusion": 0, "Pneumothorax": 0, "Consolidation": 0,
    }


@pytest.mark.parametrize("word", ["but", "however,", "although"])
def test_contrast_words_end_the_negation_scope(labels_of, word):
    labels = labels_of(f"No pneumothorax, {word} there is a small right pleural effusion.")
    assert labels == {"Pneumothorax": 0, "Effusion": 1}


def test_sentence_end_ends_the_negation_scope(labels_of):
    assert labels_of("No pneumothorax. Small right pleural effusion.") == {"Pneumothorax": 0, "Effusion": 1}


def test_backward_negation(labels_of):
    assert labels_of("Pneumothorax is not seen. The previously seen effusion has resolved.") == {
        "Effusion": 0, "Pneumothorax": 0,
    }


def test_hedged_surface_form(labels_of):
    assert labels_of("Heart size is upper limits of normal.") == {"Cardiomegaly": -1}


def test_negated_and_positive_mentions_aggregate_to_positive(labels_of):
    assert labels_of("FINDINGS: No right effusion. Small left pleural effusion.") == {"Effusion": 1}


def test_indication_section_is_not_labelled(labels_of):
    text = "INDICATION: Rule out pneumonia.\nFINDINGS: The lungs are clear.\nIMPRESSION: Normal chest."
    assert labels_of(text) == {}


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Hyperexpanded lungs.", {"Emphysema": 1}),
        ("Blunting of the left costophrenic XXXX.", {"Effusion": 1}),
        ("Streaky opacities consistent with atelectasis.", {"Atelectasis": 1}),
        ("Small hiatal hernia.", {"Hernia": 1}),
        ("Degenerative changes of the spine.", {}),
        ("Mass-like opacity in the left upper lobe.", {"Mass": 1}),
        ("Increased interstitial markings.", {"Infiltration": 1}),
        ("Fibrotic changes and scarring at the apices.", {"Fibrosis": 1}),
        ("Biapical pleural thickening.", {"Pleural_Thickening": 1}),
        ("Small pericardial effusion.", {}),
        ("Possible small right pleural effusion vs. pleural thickening.", {"Effusion": -1, "Pleural_Thickening": -1}),
        ("No effusion, mild cardiomegaly.", {"Cardiomegaly": 1, "Effusion": 0}),
        ("No pneumothorax and small left effusion.", {"Effusion": 1, "Pneumothorax": 0}),
        ("Bibasilar opacities, likely atelectasis, less likely pneumonia.", {"Atelectasis": -1, "Pneumonia": -1}),
        ("No significant interval change in the small left effusion.", {"Effusion": 1}),
        ("Pneumonia cannot be ruled out.", {"Pneumonia": -1}),
        ("The heart is not enlarged.", {"Cardiomegaly": 0}),
        ("There is no pneumothorax or pleural effusion, and the heart is mildly enlarged.",
         {"Cardiomegaly": 1, "Effusion": 0, "Pneumothorax": 0}),
    ],
)
def test_surface_forms(labels_of, sentence, expected):
    assert labels_of(sentence) == expected


def test_early_stages_a_retinal_disease_rather_than_hedging(labels_of):
    assert labels_of("Early dry age-related macular degeneration.", "fundus")["Age-related Macular Degeneration"] == 1


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("Heart size is normal.", {"No Finding": 1, "Cardiomegaly": 0}),
        ("The heart is normal in size.", {"No Finding": 1, "Cardiomegaly": 0}),
        ("The mediastinum is not widened.", {"No Finding": 1, "Enlarged Cardiomediastinum": 0}),
        ("The cardiomediastinal contours are normal.", {"No Finding": 1, "Enlarged Cardiomediastinum": 0}),
        ("Heart size is upper limits of normal.", {"Cardiomegaly": -1}),
        ("Heart size is normal. Moderate cardiomegaly.", {"Cardiomegaly": 1}),
        ("Heart size may be normal.", {"No Finding": 1}),
        ("Findings are compatible with right lower lobe pneumonia.", {"Pneumonia": 1}),
    ],
)
def test_normal_statements_are_negative_mentions_as_in_chexpert(labels_of, sentence, expected):
    assert labels_of(sentence, "chexpert") == expected


def test_unheaded_narrative_below_the_examination_line_is_labelled(labels_of):
    report = "FINAL REPORT\n EXAMINATION:  CHEST (PA AND LATERAL)\n\n Dense consolidation in the left lower lobe.\n"
    assert labels_of(report, "chexpert") == {"Consolidation": 1}
