"""Items per granularity, read from reports: expected items written by hand before running the code."""

from __future__ import annotations

import pytest

from mgll_data.pipeline import load_pipeline
from mgll_data.reports import item_vocabulary, load_vocabulary, understand
from mgll_data.reports.items import SIDES, SIZES


@pytest.fixture(scope="module")
def pipeline():
    return load_pipeline("mimic-cxr")


@pytest.mark.parametrize(
    "report, expected",
    [
        (
            "FINDINGS: There is a small left pleural effusion. Possible right lower lobe pneumonia. "
            "IMPRESSION: Large right pneumothorax.",
            {
                "category": ["abnormal"],
                "disease": ["possible:Pneumonia", "Pneumothorax", "Pleural Effusion"],
                "description": ["Pneumonia|right", "Pneumothorax|right|large", "Pleural Effusion|left|small"],
            },
        ),
        (
            "IMPRESSION: No acute cardiopulmonary process.",
            {"category": ["normal"], "disease": ["no finding"], "description": ["normal"], "explanation": ["normal"]},
        ),
        (
            "FINDINGS: Bilateral pleural effusions, small.",
            {"disease": ["Pleural Effusion"], "description": ["Pleural Effusion|bilateral|small"]},
        ),
    ],
)
def test_items_say_what_each_level_says(pipeline, report, expected):
    result = understand(report, {"modality": "DX"}, pipeline)
    for granularity, items in expected.items():
        assert sorted(result.items[granularity]) == sorted(items), granularity


def test_a_side_word_far_from_the_finding_is_not_its_side(pipeline):
    result = understand("FINDINGS: Cardiomegaly is present and there are postsurgical changes of the left chest wall.",
                        {"modality": "DX"}, pipeline)  # fmt: skip
    assert result.items["description"] == ["Cardiomegaly"]


def test_no_report_means_no_items_and_every_item_is_in_the_vocabulary(pipeline):
    assert understand("", {"modality": "DX"}, pipeline).items == {
        "category": None, "disease": None, "description": None, "explanation": None
    }  # fmt: skip
    vocabulary = set(item_vocabulary(load_vocabulary(pipeline.reports.vocabulary)))
    result = understand(
        "FINDINGS: Moderate pulmonary edema. Massive right pleural effusion.", {"modality": "DX"}, pipeline
    )
    assert all(set(items) <= vocabulary for items in result.items.values())
    assert "Pleural Effusion|right|large" in result.items["description"]
    assert {"left", "right", "bilateral"} == set(SIDES.values()) and {"small", "moderate", "large"} == set(
        SIZES.values()
    )
