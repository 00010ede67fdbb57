"""understand(): the builder's per-image call."""

from __future__ import annotations

from mgll_data.pipeline import load
from mgll_data.reports import MAX_REPORT_CHARS, understand
from mgll_data.reports.nlp import get_nlp


def test_sections_kept_in_pipeline_order_and_others_dropped():
    report = ("INDICATION: XXXX-year-old with cough.\nCOMPARISON: None.\n"
              "IMPRESSION: No acute process.\nFINDINGS: Lungs are clear. No effusion.")
    result = understand(report, {}, load("openi"))
    assert result.report_text == "FINDINGS: Lungs are clear. No effusion.\nIMPRESSION: No acute process."
    assert dict(result.labels) == {"Effusion": 0}


def test_report_without_headings_is_used_whole():
    result = understand("Heart is enlarged.  Small  effusion.", {}, load("openi"))
    assert result.report_text == "Heart is enlarged. Small effusion."
    assert dict(result.labels) == {"Cardiomegaly": 1, "Effusion": 1}


def test_pipeline_is_built_once_per_vocabulary():
    assert get_nlp("nih14") is get_nlp("nih14")
    assert get_nlp("nih14") is not get_nlp("chexpert")


def test_enormous_report_is_truncated_not_fatal(monkeypatch):
    monkeypatch.setattr("mgll_data.reports.understanding.MAX_REPORT_CHARS", 2_000)
    text = "Small left pleural effusion. " + "The lungs are clear. " * 500 + "Large right pneumothorax."
    result = understand(text, {}, load("openi"))
    assert dict(result.labels) == {"Effusion": 1}


def test_limit_is_generous():
    assert MAX_REPORT_CHARS >= 50_000


def test_contract_shape_for_mimic_pipeline():
    pipeline = load("mimic-cxr")
    result = understand("FINDINGS: Left PICC line. No pneumothorax.", {"modality": "CR"}, pipeline)
    assert set(result.texts) == set(pipeline.granularities)
    assert all(isinstance(name, str) and status in (1, 0, -1) for name, status in result.labels)
    assert dict(result.labels) == {"No Finding": 1, "Pneumothorax": 0, "Support Devices": 1}
