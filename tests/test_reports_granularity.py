"""Granularity texts, coarse to fine; a text that cannot be produced is None, never ""."""

from __future__ import annotations

import pytest

from mgll_data.pipeline import from_dict
from mgll_data.reports import load_vocabulary, understand
from mgll_data.reports.granularity import modality_text

ALL = ["modality", "category", "disease", "description", "explanation", "study", "series"]


def make_pipeline(vocab: str = "nih14", granularities=ALL):
    return from_dict({"source": {"layout": "folder"}, "reports": {"vocabulary": vocab}, "granularities": granularities})


@pytest.mark.parametrize(
    ("metadata", "vocab", "expected"),
    [
        ({"modality": "CR", "view_position": "PA", "body_part": "CHEST"}, "nih14", "chest radiograph, PA view"),
        ({"modality": "DX", "view_position": "AP", "body_part": None}, "chexpert", "chest radiograph, AP view"),
        ({"modality": "DX", "view_position": "LL", "body_part": "CHEST"}, "nih14", "chest radiograph, lateral view"),
        ({"modality": "OP", "body_part": "EYE"}, "fundus", "colour fundus photograph"),
        ({"modality": "CT", "body_part": "ABDOMEN"}, "nih14", "abdomen CT scan"),
        ({"modality": None}, "nih14", None),
        ({}, "nih14", None),
    ],
)
def test_modality_text(metadata, vocab, expected):
    assert modality_text(metadata, load_vocabulary(vocab)) == expected


def test_abnormal_report_texts():
    report = ("FINDINGS: Heart size is mildly enlarged. Small left pleural effusion. No pneumothorax.\n"
              "IMPRESSION: Mild cardiomegaly and small effusion.")
    meta = {"modality": "CR", "view_position": "PA", "study_description": "CHEST 2 VIEWS", "series_description": " "}
    result = understand(report, meta, make_pipeline())
    texts = result.texts
    assert set(texts) == set(ALL)
    assert texts["category"] == "abnormal"
    assert texts["disease"] == "cardiomegaly and pleural effusion"
    assert "Small left pleural effusion." in texts["description"] and "No pneumothorax" not in texts["description"]
    assert texts["explanation"].startswith("The heart is slightly larger than normal")  # mild severity variant
    assert "small amount of fluid" in texts["explanation"]
    assert texts["study"] == "CHEST 2 VIEWS"
    assert texts["series"] is None
    assert (
        result.report_text.startswith("FINDINGS: Heart size")
        and "\nIMPRESSION: Mild cardiomegaly" in result.report_text
    )


def test_normal_report_texts():
    report = (
        "FINDINGS: The heart is normal in size. The lungs are clear.\nIMPRESSION: No acute cardiopulmonary process."
    )
    texts = understand(report, {"modality": "DX"}, make_pipeline("chexpert")).texts
    assert texts["category"] == "normal"
    assert texts["disease"] == "no finding"
    assert texts["description"] == "No acute cardiopulmonary process."
    assert texts["explanation"].startswith("No abnormality")


def test_hedged_findings_are_named_with_their_certainty():
    """Texts describe the report as written: a possible finding stays in the texts although the default
    policy leaves its label blank."""
    result = understand("Cannot exclude early pneumonia in the left base. Probable small effusion.", {},
                        make_pipeline())
    assert [(label.name, label.status) for label in result.labels] == [("Effusion", -1), ("Pneumonia", None)]
    assert result.texts["disease"] == "probable pleural effusion and possible pneumonia"
    assert result.texts["category"] == "abnormal"
    assert result.texts["explanation"].startswith("Probable: ") and "Possible: " in result.texts["explanation"]


def test_related_signs_join_the_description_of_their_finding():
    report = "FINDINGS: Hyperinflated lungs. Emphysema. No effusion."
    texts = understand(report, {}, make_pipeline()).texts
    assert texts["disease"] == "emphysema"
    assert texts["description"] == "Hyperinflated lungs. Emphysema."


def test_related_signs_alone_leave_the_study_normal():
    texts = understand("FINDINGS: Hyperinflated lungs.\nIMPRESSION: No acute disease.", {}, make_pipeline()).texts
    assert texts["disease"] == "no finding" and texts["category"] == "normal"


def test_fundus_severity_grade():
    texts = understand("Neovascularization of the disc: proliferative diabetic retinopathy.", {"modality": "OP"},
                       make_pipeline("fundus")).texts
    assert texts["explanation"].startswith("Proliferative diabetic retinopathy")
    assert texts["modality"] == "colour fundus photograph"


@pytest.mark.parametrize("report", ["", "   \n", None])
def test_no_report_gives_none_never_empty(report):
    result = understand(report, {"modality": "CR", "body_part": "CHEST"}, make_pipeline())
    assert result.labels == []
    assert result.texts["modality"] == "chest radiograph"
    for name in ("category", "disease", "description", "explanation", "study", "series"):
        assert result.texts[name] is None
    assert all(v != "" for v in result.texts.values())


def test_only_the_pipelines_granularities():
    result = understand("Small effusion.", {}, make_pipeline(granularities=["category", "disease"]))
    assert list(result.texts) == ["category", "disease"]
