"""The radiology ConText rules: one certainty per sentence, for the cues and rule interactions issue 10
names. The sentences are our own, written for these rules: regression tests, not a quality measure
(tests/data/reports/ holds the independent development set)."""

from __future__ import annotations

import pytest

from mgll_data.reports import label_reports


@pytest.fixture(scope="module")
def certainty_of():
    def run(text: str, vocab: str = "nih14") -> dict[str, str]:
        return {label.name: label.certainty for label in label_reports([text], vocab)[0].labels}

    return run


def test_list_after_no_negates_every_item(certainty_of):
    assert certainty_of("No pleural effusion or pneumothorax.") == {"Effusion": "negated", "Pneumothorax": "negated"}


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Cannot exclude subsegmental atelectasis.", "possible"),
        ("Opacity which may represent atelectasis.", "possible"),
        ("Possible left lower lobe atelectasis.", "possible"),
        ("Question of atelectasis at the left base.", "possible"),
        ("Findings are concerning for atelectasis.", "possible"),
        ("Left basilar opacity, likely atelectasis.", "probable"),
        ("Probable bibasilar atelectasis.", "probable"),
        ("Opacity suggestive of atelectasis.", "probable"),
        ("Atelectasis is favored.", "probable"),
        ("Findings consistent with atelectasis.", "definite"),
        ("Stable left basilar atelectasis.", "definite"),
        ("Improving bibasilar atelectasis.", "definite"),
        ("Atelectasis is not seen.", "negated"),
        ("Bibasilar atelectasis has resolved.", "negated"),
        ("Recommend CT to evaluate for atelectasis.", "hypothetical"),
    ],
)
def test_graded_certainty(certainty_of, sentence, expected):
    assert certainty_of(sentence) == {"Atelectasis": expected}


def test_weak_hedge_over_a_differential_hedges_every_alternative(certainty_of):
    assert certainty_of("Opacity which may represent atelectasis or pneumonia.") == {
        "Atelectasis": "possible", "Pneumonia": "possible"}


def test_plain_differential_is_probable_for_both(certainty_of):
    assert certainty_of("Right basilar atelectasis versus pneumonia.") == {
        "Atelectasis": "probable", "Pneumonia": "probable"}


def test_strong_then_weak_hedge(certainty_of):
    assert certainty_of("Bibasilar opacities, likely atelectasis, less likely pneumonia.") == {
        "Atelectasis": "probable", "Pneumonia": "possible"}


def test_rather_than_keeps_the_alternative_weak(certainty_of):
    assert certainty_of("Apical opacity, likely pleural thickening rather than mass.") == {
        "Pleural_Thickening": "probable", "Mass": "possible"}


# --- the ConText rule interactions of issue 10 ---------------------------------------------------------

@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        # causal phrases no longer end a hedge's scope early
        ("Left basilar opacity may be due to atelectasis.", {"Atelectasis": "possible"}),
        ("Streaky opacity possibly secondary to atelectasis.", {"Atelectasis": "possible"}),
        # "may / could be related" hedge what follows instead of cancelling the hedge
        ("Opacity could be related to atelectasis or early pneumonia.",
         {"Atelectasis": "possible", "Pneumonia": "possible"}),
        ("Bibasilar atelectasis may be related to low lung volumes.", {"Atelectasis": "definite"}),
    ],
)
def test_causes_and_relations_keep_the_hedge(certainty_of, sentence, expected):
    assert certainty_of(sentence) == expected


def test_and_there_is_does_not_swallow_there_is_no(certainty_of):
    assert certainty_of("The heart is enlarged and there is no pleural effusion.") == {
        "Cardiomegaly": "definite", "Effusion": "negated"}


@pytest.mark.parametrize("word", ["residual", "persistent", "recurrent"])
def test_residual_persistent_do_not_end_a_negation(certainty_of, word):
    assert certainty_of(f"No {word} pneumothorax.") == {"Pneumothorax": "negated"}


def test_stable_after_a_comma_starts_a_new_statement(certainty_of):
    assert certainty_of("No pneumothorax, stable small left effusion.") == {
        "Effusion": "definite", "Pneumothorax": "negated"}


def test_long_list_before_have_resolved(certainty_of):
    text = "The right pleural effusion, left basilar atelectasis and mild interstitial edema have all resolved."
    assert certainty_of(text) == {"Atelectasis": "negated", "Effusion": "negated", "Edema": "negated"}


def test_resolved_does_not_reach_into_another_clause(certainty_of):
    assert certainty_of("The heart is enlarged and the pneumothorax has resolved.") == {
        "Cardiomegaly": "definite", "Pneumothorax": "negated"}


@pytest.mark.parametrize(
    "sentence",
    ["Findings of prior pneumonia in the right base.", "History of left lower lobe atelectasis.",
     "Status post resection of a right upper lobe mass."],
)
def test_historical_cues(certainty_of, sentence):
    assert certainty_of(sentence) == {}


def test_comparison_with_the_prior_study_is_not_history(certainty_of):
    assert certainty_of("Compared to prior, there is a new small right pleural effusion.") == {"Effusion": "definite"}


def test_old_fracture_is_still_a_fracture(certainty_of):
    assert certainty_of("Old healed left rib fractures.", "chexpert")["Fracture"] == "definite"


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Recommend CT to evaluate for an underlying mass.", {"Mass": "hypothetical"}),
        ("Follow-up radiograph to rule out pneumonia.", {"Pneumonia": "hypothetical"}),
        ("CT is recommended to further evaluate the right hilar mass.", {"Mass": "definite"}),
        ("Follow-up is recommended to document resolution of the consolidation.", {"Consolidation": "definite"}),
    ],
)
def test_recommendations(certainty_of, sentence, expected):
    assert certainty_of(sentence) == expected


def test_a_hedge_after_a_negation_ends_it(certainty_of):
    assert certainty_of("No effusion, possible small left apical pneumothorax.") == {
        "Effusion": "negated", "Pneumothorax": "possible"}


def test_backward_negation(certainty_of):
    assert certainty_of("Pneumothorax is not seen. The previously seen effusion has resolved.") == {
        "Effusion": "negated", "Pneumothorax": "negated"}


def test_negated_and_definite_mentions_aggregate_to_definite(certainty_of):
    assert certainty_of("FINDINGS: No right effusion. Small left pleural effusion.") == {"Effusion": "definite"}


def test_hedge_in_the_impression_outranks_a_negation_in_the_findings(certainty_of):
    text = "FINDINGS: No pneumothorax.\nIMPRESSION: Possible tiny left apical pneumothorax."
    assert certainty_of(text) == {"Pneumothorax": "possible"}


def test_indication_is_the_clinical_question(certainty_of):
    text = "INDICATION: Rule out pneumonia.\nFINDINGS: The lungs are clear.\nIMPRESSION: Normal chest."
    assert certainty_of(text) == {"Pneumonia": "hypothetical"}


def test_comma_and_degree_words_start_new_statements(certainty_of):
    assert certainty_of("No effusion, mild cardiomegaly.") == {"Cardiomegaly": "definite", "Effusion": "negated"}
    assert certainty_of("No pneumothorax and small left effusion.") == {
        "Effusion": "definite",
        "Pneumothorax": "negated",
    }


@pytest.mark.parametrize("word", ["but", "however,", "although"])
def test_contrast_words_end_the_negation_scope(certainty_of, word):
    labels = certainty_of(f"No pneumothorax, {word} there is a small right pleural effusion.")
    assert labels == {"Pneumothorax": "negated", "Effusion": "definite"}


def test_wrapped_line_keeps_the_negation(certainty_of):
    text = "FINDINGS: There is no focal consolidation, pleural effusion or\n pneumothorax.\nHeart size is normal."
    assert certainty_of(text) == {"Cardiomegaly": "negated", "Consolidation": "negated", "Effusion": "negated",
                                  "Pneumothorax": "negated"}


def test_hedge_inside_a_term_with_a_gap(certainty_of):
    assert certainty_of("The heart may be slightly enlarged.") == {"Cardiomegaly": "possible"}
    assert certainty_of("Heart size is borderline enlarged.") == {"Cardiomegaly": "probable"}


def test_xxxx_tokens_do_not_break_sentences_or_scope(certainty_of):
    assert certainty_of(
        "There is no XXXX pneumothorax. XXXX XXXX opacity in the right base may represent infiltrate."
    ) == {"Pneumothorax": "negated", "Infiltration": "possible"}


def test_unheaded_narrative_below_the_examination_line_is_labelled(certainty_of):
    report = "FINAL REPORT\n EXAMINATION:  CHEST (PA AND LATERAL)\n\n Dense consolidation in the left lower lobe.\n"
    assert certainty_of(report, "chexpert") == {"Consolidation": "definite"}
