"""Reading reports and writing labels: every input row comes back; unreadable files are a domain error."""

from __future__ import annotations

import pytest

from mgll_data.reports.io import InputReport, ReportInputError, mimic_ids, read_reports, write_labels


def test_unreadable_inputs_raise_a_one_line_domain_error(tmp_path):
    with pytest.raises(ReportInputError, match="does not exist"):
        read_reports(tmp_path / "nope.csv", 100)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportInputError, match="holds no .txt reports"):
        read_reports(tmp_path / "empty", 100)
    (tmp_path / "r.xlsx").write_bytes(b"x")
    with pytest.raises(ReportInputError, match="give a .csv, a .jsonl"):
        read_reports(tmp_path / "r.xlsx", 100)
    (tmp_path / "r.csv").write_text("id,body\n1,x\n", encoding="utf-8")
    with pytest.raises(ReportInputError, match="needs the columns report_id,report"):
        read_reports(tmp_path / "r.csv", 100)


def test_bad_rows_are_kept_with_a_reason(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"report_id": "a", "report": "ok"}\n[1]\n{"report_id": "c", "text": 3}\n'
                     b'{"report_id": "d", "text": "' + b"x" * 20 + b'"}\n')
    got = [(r.report_id, r.problem) for r in read_reports(path, 10)]
    assert got == [("a", None), ("line-2", "not a JSON object"), ("c", "text is not a string"),
                   ("d", "longer than 10 characters")]


def test_mimic_ids_from_columns_paths_or_the_report_id():
    assert mimic_ids(InputReport("files/p10/p10000032/s50414267", "x")) == ("10000032", "50414267")
    assert mimic_ids(InputReport("r1", "x", subject_id="7", study_id="8")) == ("7", "8")
    assert mimic_ids(InputReport("r1", "x")) == ("", "r1")


def test_unknown_layout(tmp_path):
    with pytest.raises(ReportInputError, match="unknown layout"):
        write_labels(tmp_path / "x.csv", [], [], ["A"], layout="tall")
