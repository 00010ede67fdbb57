"""Batch labelling keeps order and gives the same answer in one process or several."""

from __future__ import annotations

from mgll_data.reports import label_reports
from mgll_data.reports.labels import statuses

REPORTS = [
    "No pleural effusion or pneumothorax.",
    "Small hiatal hernia. Mild cardiomegaly.",
    "FINDINGS: Lungs are clear.\nIMPRESSION: No acute disease.",
    "Cannot exclude small left effusion.",
] * 20


def test_order_and_content():
    results = label_reports(REPORTS, "nih14", batch_size=8)
    assert len(results) == len(REPORTS)
    assert statuses(results[1].labels) == {"Cardiomegaly": 1, "Hernia": 1}
    assert results[2].labels == []
    assert [(label.name, label.certainty) for label in results[3].labels] == [("Effusion", "possible")]
    assert [m.finding for m in results[0].mentions] == ["Effusion", "Pneumothorax"]


def test_policy_is_applied():
    [result] = label_reports(["Cannot exclude small left effusion."], "nih14", policy="chexpert")
    assert statuses(result.labels) == {"Effusion": -1}


def test_two_processes_match_one(tmp_path):
    seen = []
    one = label_reports(REPORTS, "nih14", batch_size=16)
    two = label_reports(REPORTS, "nih14", n_process=2, batch_size=16, on_progress=seen.append)
    assert [r.labels for r in two] == [r.labels for r in one]
    assert sum(seen) == len(REPORTS)
