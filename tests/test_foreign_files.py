"""A person's files beside mgll's outputs survive every command that writes one file or one folder.

Each command is pointed at a path that holds something mgll did not write (the reports being labelled,
a spreadsheet, a JSON config, a folder with a person's config.yaml or results.md): it must refuse in one
line before doing any work and leave the file byte for byte; its own earlier output it replaces. The
build's OUT and export are covered in test_output_folder.py.
"""

import json

import pytest
from click.testing import CliRunner

from mgll_data.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--model", "tiny", "--text-model", "tiny", "--image-size", "32", "--batch-size", "8", "--embed-dim", "16",
        "--max-steps", "1", "--quiet"]  # fmt: skip


def invoke(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def refused(result, *words):
    """Exit 1 or 2 with one `Error:` line naming the problem, no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    return result.exit_code in (1, 2) and len(errors) == 1 and all(w in errors[0] for w in words) and (
        "Traceback" not in result.output)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, datasets):
    return datasets.write(tmp_path_factory.mktemp("ds"), rows=datasets.rows(40))  # every split has rows


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    result = invoke("pretrain", dataset, "--out", out, *TINY)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture()
def reports(tmp_path):
    path = tmp_path / "reports.csv"
    path.write_text("report_id,report\nr1,Small left pleural effusion.\nr2,No acute disease.\n")
    return path


def test_label_replaces_only_its_own_output(reports, tmp_path):
    before = reports.read_bytes()
    assert refused(invoke("label", reports, "--vocab", "nih14", "--out", reports, "-q"), "reports file")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("report_id,Effusion\nr1,my own reading\n")
    assert refused(invoke("label", reports, "--vocab", "nih14", "--out", sheet, "-q"), "sheet.csv", "not")
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"my": "notes"}\n')
    out = tmp_path / "labels.csv"
    assert refused(invoke("label", reports, "--vocab", "nih14", "--out", out, "--evidence", notes, "-q"), "notes")
    assert not out.exists(), "refused before any work"
    assert reports.read_bytes() == before and "my own reading" in sheet.read_text() and "my" in notes.read_text()

    for _ in range(2):  # a rerun replaces its own labels and evidence
        result = invoke("label", reports, "--vocab", "nih14", "--out", out, "--evidence", tmp_path / "ev.jsonl", "-q")
        assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[1].startswith("r1,")
    assert refused(invoke("label", reports, "--vocab", "chexpert", "--out", out, "-q"), "labels.csv")
    assert refused(invoke("label", reports, "--vocab", "nih14", "--layout", "mimic", "--out", out, "-q"))
    for _ in range(2):
        assert invoke("label", reports, "--vocab", "nih14", "--out", tmp_path / "labels.parquet", "-q").exit_code == 0
    for name, content in (("broken.parquet", b"PAR1 truncated"), ("latin1.csv", "r\xe9port_id,x\n".encode("latin-1")),
                          ("empty.csv", b"")):  # fmt: skip
        (tmp_path / name).write_bytes(content)
        assert refused(invoke("label", reports, "--vocab", "nih14", "--out", tmp_path / name, "-q"), name)
        assert (tmp_path / name).read_bytes() == content


def test_json_summary_replaces_only_an_earlier_summary(reports, tmp_path):
    label = ["label", reports, "--vocab", "nih14", "--out", tmp_path / "labels.csv", "-q", "--json"]
    package = tmp_path / "package.json"
    package.write_text('{"name": "my-tool", "version": "1.0"}\n')
    assert refused(invoke(*label, package), "package.json", "JSON summary")
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n")
    not_json = invoke(*label, table)
    assert refused(not_json, "table.csv") and not_json.exit_code == 2, "a usage error, before any work"
    assert json.loads(package.read_text()) == {"name": "my-tool", "version": "1.0"}
    assert table.read_text() == "a,b\n1,2\n"
    summary = tmp_path / "summary.json"
    for _ in range(2):
        assert invoke(*label, summary).exit_code == 0
    assert json.loads(summary.read_text())["reports"] == 2


def test_pretrain_writes_only_into_a_new_empty_or_run_folder(dataset, run, tmp_path):
    mine = tmp_path / "experiments"
    mine.mkdir()
    (mine / "config.yaml").write_text("person: my settings\n")
    assert refused(invoke("pretrain", dataset, "--out", mine, *TINY), "experiments", "no mgll run")
    assert (mine / "config.yaml").read_text() == "person: my settings\n" and len(list(mine.iterdir())) == 1
    (tmp_path / "empty-config").mkdir()
    (tmp_path / "empty-config" / "config.yaml").write_bytes(b"")
    assert refused(invoke("pretrain", dataset, "--out", tmp_path / "empty-config", *TINY), "no mgll run")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("keep\n")
    assert refused(invoke("pretrain", dataset, "--out", sheet, *TINY), "is a file") and sheet.read_text() == "keep\n"

    (run / "my-notes.txt").write_text("lr looked high\n")
    resumed = invoke("pretrain", "--out", run, "--resume", "--max-steps", "2", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert (run / "my-notes.txt").read_text() == "lr looked high\n"


def test_evaluate_writes_only_into_a_new_empty_or_results_folder(dataset, run, tmp_path):
    mine = tmp_path / "paper"
    mine.mkdir()
    (mine / "results.md").write_text("# my results\n")
    args = ["--task", "zero-shot", "--bootstrap", "0", "--device", "cpu", "--quiet"]
    assert refused(invoke("evaluate", run, dataset, "--out", mine, *args), "paper", "results.json")
    assert (mine / "results.md").read_text() == "# my results\n" and len(list(mine.iterdir())) == 1
    for _ in range(2):
        result = invoke("evaluate", run, dataset, "--out", tmp_path / "eval", *args)
        assert result.exit_code == 0, result.output
    assert "zero-shot" in json.loads((tmp_path / "eval" / "results.json").read_text())["tasks"]
