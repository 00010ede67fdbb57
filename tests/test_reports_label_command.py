"""`mgll label` on CSV / JSONL / folder input, bad rows included."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
from click.testing import CliRunner

from mgll_data.cli import main


def run(*args):
    return CliRunner().invoke(main, ["label", *map(str, args)], catch_exceptions=False)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["report_id"]: row for row in csv.DictReader(fh)}


def test_csv_in_csv_out_with_bad_rows(tmp_path):
    src = tmp_path / "reports.csv"
    src.write_text(
        'report_id,report\nr1,"No pleural effusion or pneumothorax. Small hiatal hernia."\nr2,""\n'
        f'r3,"{"The lungs are clear. " * 6000}"\nr4,"FINDINGS: Heart is enlarged.\nIMPRESSION: Cardiomegaly."\n',
        encoding="utf-8",
    )
    out, evidence = tmp_path / "labels.csv", tmp_path / "evidence.jsonl"
    result = run(src, "--vocab", "nih14", "--out", out, "--evidence", evidence, "--quiet")
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    assert list(rows) == ["r1", "r2", "r3", "r4"]
    assert rows["r1"]["Effusion"] == "0" and rows["r1"]["Hernia"] == "1" and rows["r1"]["Mass"] == ""
    assert all(v == "" for k, v in rows["r2"].items() if k != "report_id")
    assert all(v == "" for k, v in rows["r3"].items() if k != "report_id")
    assert rows["r4"]["Cardiomegaly"] == "1"
    assert "'r2': empty report" in result.output and "'r3': longer than" in result.output
    assert "labelled 2 of 4 reports" in result.output
    mentions = [json.loads(line) for line in evidence.read_text().splitlines()]
    hernia = next(m for m in mentions if m["finding"] == "Hernia")
    assert hernia["report_id"] == "r1" and hernia["sentence"] == "Small hiatal hernia." and hernia["rule"] == "affirmed"
    assert hernia["certainty"] == "definite" and hernia["status"] == 1 and hernia["related"] is False
    assert {m["section"] for m in mentions if m["report_id"] == "r4"} == {"findings", "impression"}


def test_jsonl_to_parquet_with_json_summary(tmp_path):
    src = tmp_path / "reports.jsonl"
    src.write_bytes(b'{"report_id": "j1", "report": "Probable small left effusion."}\n'
                    b'this is not json\n'
                    b'{"report_id": "j3", "text": "Normal chest."}\n'
                    b'{"report_id": "j4", "text": "Small effusion \xff"}\n')
    out = tmp_path / "labels.parquet"
    result = run(src, "--out", out, "--json", "-", "--quiet")
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pylist()
    assert [r["report_id"] for r in table] == ["j1", "line-2", "j3", "j4"]
    assert table[0]["Pleural Effusion"] == -1 and table[0]["No Finding"] is None
    assert table[2]["No Finding"] == 1
    assert table[1]["No Finding"] is None and table[3]["Pleural Effusion"] is None
    summary = json.loads(result.stdout)
    assert summary["reports"] == 4 and summary["labelled"] == 2
    assert summary["skipped_by_reason"] == {"not valid JSON": 1, "not UTF-8": 1}


def test_folder_of_txt_with_two_workers(tmp_path):
    folder = tmp_path / "reports"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("Mild bibasilar atelectasis.", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("No pneumothorax.", encoding="utf-8")
    (folder / "bad.txt").write_bytes(b"\xff\xfe\x00 broken")
    out = tmp_path / "labels.csv"
    result = run(folder, "--vocab", "nih14", "--out", out, "--workers", "2", "--quiet")
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    assert rows["a"]["Atelectasis"] == "1" and rows["sub/b"]["Pneumothorax"] == "0"
    assert all(v == "" for k, v in rows["bad"].items() if k != "report_id")
    assert "'bad': not UTF-8" in result.output


def test_missing_input_is_one_line_error(tmp_path):
    result = run(tmp_path / "nope.csv", "--out", tmp_path / "x.csv")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {tmp_path / 'nope.csv'} does not exist"]


def test_excel_csv_with_bom_and_crlf_and_the_old_names(tmp_path):
    """`text` is the report column's earlier name, --no-progress the earlier --quiet: both still work."""
    src = tmp_path / "excel.csv"
    src.write_bytes("\ufeffreport_id,text,extra\r\nx1,Small hiatal hernia.,a\r\n".encode("utf-8"))
    out = tmp_path / "labels.csv"
    result = run(src, "--vocab", "nih14", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert read_csv(out)["x1"]["Hernia"] == "1"
    assert "--no-progress is an old spelling" in result.stderr


def test_csv_without_required_columns(tmp_path):
    src = tmp_path / "r.csv"
    src.write_text("id,body\n1,x\n", encoding="utf-8")
    result = run(src, "--out", tmp_path / "x.csv")
    assert result.exit_code == 1 and "needs the columns report_id,report" in result.output


def test_unknown_vocabulary(tmp_path):
    src = tmp_path / "r.csv"
    src.write_text("report_id,report\n1,x\n", encoding="utf-8")
    result = run(src, "--vocab", "nope", "--out", tmp_path / "x.csv")
    assert result.exit_code == 1 and "no vocabulary 'nope'" in result.output


def test_uncertain_policy_option(tmp_path):
    src = tmp_path / "reports.csv"
    src.write_text('report_id,text\nr1,"Cannot exclude a small left effusion. Likely right basilar atelectasis."\n',
                   encoding="utf-8")
    for policy, effusion, atelectasis in (("radiologist", "", "-1"), ("chexpert", "-1", "-1"), ("binary", "0", "1")):
        out = tmp_path / f"{policy}.csv"
        result = run(src, "--vocab", "nih14", "--out", out, "--uncertain-policy", policy, "--quiet")
        assert result.exit_code == 0, result.output
        row = read_csv(out)["r1"]
        assert (row["Effusion"], row["Atelectasis"]) == (effusion, atelectasis), policy
    result = run(src, "--out", tmp_path / "x.csv", "--uncertain-policy", "lenient")
    assert result.exit_code == 2 and "lenient" in result.output


def test_mimic_layout(tmp_path):
    """MIMIC-CXR-JPG's label file layout: subject_id,study_id + alphabetical findings as floats."""
    folder = tmp_path / "files" / "p10" / "p10000032"
    folder.mkdir(parents=True)
    (folder / "s50414267.txt").write_text("FINDINGS: Small left pleural effusion. No pneumothorax.", encoding="utf-8")
    (folder / "s53189527.txt").write_text("FINDINGS: Probable right lower lobe pneumonia.", encoding="utf-8")
    out = tmp_path / "chexpert.csv"
    result = run(tmp_path / "files", "--vocab", "chexpert", "--layout", "mimic", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ("subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,"
                        "Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,"
                        "Pneumothorax,Support Devices")
    rows = {row["study_id"]: row for row in csv.DictReader(lines)}
    assert rows["50414267"]["subject_id"] == "10000032"
    assert rows["50414267"]["Pleural Effusion"] == "1.0" and rows["50414267"]["Pneumothorax"] == "0.0"
    assert rows["50414267"]["Edema"] == "" and rows["53189527"]["Pneumonia"] == "-1.0"
    parquet = tmp_path / "chexpert.parquet"
    assert run(tmp_path / "files", "--layout", "mimic", "--out", parquet, "--quiet").exit_code == 0
    table = pq.read_table(parquet)
    assert (
        table.column_names[:2] == ["subject_id", "study_id"] and str(table.schema.field("Pneumonia").type) == "double"
    )


def test_help_has_an_example():
    result = run("--help")
    assert result.exit_code == 0 and "Example:" in result.output and "mgll label reports.csv" in result.output
