"""understand(): the builder's per-image call."""

from __future__ import annotations

from mgll_data.pipeline import from_dict, load_pipeline
from mgll_data.reports import MAX_REPORT_CHARS, understand
from mgll_data.reports.labels import statuses
from mgll_data.reports.nlp import get_nlp


def test_sections_kept_in_pipeline_order_and_others_dropped():
    report = ("INDICATION: XXXX-year-old with cough.\nCOMPARISON: None.\n"
              "IMPRESSION: No acute process.\nFINDINGS: Lungs are clear. No effusion.")
    result = understand(report, {}, load_pipeline("openi"))
    assert result.report_text == "FINDINGS: Lungs are clear. No effusion.\nIMPRESSION: No acute process."
    assert statuses(result.labels) == {"Effusion": 0}


def test_report_without_headings_is_used_whole():
    result = understand("Heart is enlarged.  Small  effusion.", {}, load_pipeline("openi"))
    assert result.report_text == "Heart is enlarged. Small effusion."
    assert statuses(result.labels) == {"Cardiomegaly": 1, "Effusion": 1}


def test_pipeline_is_built_once_per_vocabulary():
    assert get_nlp("nih14") is get_nlp("nih14")
    assert get_nlp("nih14") is not get_nlp("chexpert")


def test_enormous_report_is_truncated_and_the_cut_is_counted(monkeypatch):
    monkeypatch.setattr("mgll_data.reports.understanding.MAX_REPORT_CHARS", 2_000)
    text = "Small left pleural effusion. " + "The lungs are clear. " * 500 + "Large right pneumothorax."
    result = understand(text, {}, load_pipeline("openi"))
    assert statuses(result.labels) == {"Effusion": 1}
    assert result.truncated_chars == len(text) - 2_000
    assert understand("Small effusion.", {}, load_pipeline("openi")).truncated_chars == 0


def test_limit_is_generous():
    assert MAX_REPORT_CHARS >= 50_000


def test_contract_shape_for_mimic_pipeline():
    pipeline = load_pipeline("mimic-cxr")
    result = understand("FINDINGS: Left PICC line. No pneumothorax.", {"modality": "CR"}, pipeline)
    assert set(result.texts) == set(pipeline.granularities)
    assert [(label.name, label.status, label.certainty) for label in result.labels] == [
        ("No Finding", 1, "definite"), ("Pneumothorax", 0, "negated"), ("Support Devices", 1, "definite")]


def test_pipeline_uncertain_policy_is_used():
    report = "FINDINGS: Cannot exclude a small left pleural effusion."
    default = from_dict({"source": {"layout": "folder"}, "reports": {"vocabulary": "nih14"}})
    chexpert = from_dict({"source": {"layout": "folder"},
                          "reports": {"vocabulary": "nih14", "uncertain_policy": "chexpert"}})
    assert statuses(understand(report, {}, default).labels) == {}
    assert statuses(understand(report, {}, chexpert).labels) == {"Effusion": -1}


def test_build_summary_counts_truncated_reports(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from mgll_data.build import build_dataset

    monkeypatch.setattr("mgll_data.reports.understanding.MAX_REPORT_CHARS", 60)
    export = tmp_path / "export"
    export.mkdir()
    for name, report in (("short", "Small left pleural effusion."),
                         ("long", "Small left pleural effusion. " + "The lungs are clear. " * 20)):
        Image.fromarray(np.full((32, 32), 128, np.uint8), "L").save(export / f"{name}.png")
        (export / f"{name}.txt").write_text(report, encoding="utf-8")
    summary = build_dataset(export, tmp_path / "out", "folder", salt_file=tmp_path / "salt", progress=False)
    assert summary.rows == 2
    assert summary.counts == {"reports_truncated": 1, "report_characters_not_read": 29 + 21 * 20 - 60}
    assert summary.to_dict()["counts"]["reports_truncated"] == 1


def test_bad_uncertain_policy_in_a_pipeline_is_a_one_line_error():
    import pytest

    from mgll_data.pipeline import PipelineError

    with pytest.raises(PipelineError, match=r"^pipeline reports.uncertain_policy: unknown uncertain policy 'lenient'"):
        from_dict({"source": {"layout": "folder"}, "reports": {"uncertain_policy": "lenient"}})
