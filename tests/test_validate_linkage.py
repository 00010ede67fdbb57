"""`mgll validate --linkage`: every row and reject linked, nothing foreign in the table."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mgll_data import dataset
from mgll_data.commands.validate import validate
from mgll_data.validate import validate_dataset


def linkage_entries(rows: list[dict], rejects: list[dict]) -> list[dict]:
    """What a build writes for these rows and rejects (source paths invented, ids as in the dataset)."""
    entries = [{"kind": "row", "source_key": r["source_key"], "source_path": f"files/{i}.dcm",
                "image_id": r["image_id"], "patient_id": r["patient_id"], "original_patient_id": f"MRN{i}"}
               for i, r in enumerate(rows)]
    entries += [{"kind": "reject", "source_key": r["source_key"], "source_path": f"bad/{i}.dcm"}
                for i, r in enumerate(rejects)]
    return entries


def write_linkage(path: Path, entries: list[dict]) -> Path:
    full = [{name: e.get(name) for name in dataset.LINKAGE_SCHEMA.names} for e in entries]
    pq.write_table(pa.Table.from_pylist(full, schema=dataset.LINKAGE_SCHEMA), path)
    path.chmod(0o600)
    return path


@pytest.fixture
def built(tmp_path: Path, datasets) -> tuple[Path, list[dict], list[dict]]:
    rows, rejects = datasets.rows(10), datasets.rejects(3)
    return datasets.write(tmp_path / "ds", rows=rows, rejects=rejects), rows, rejects


def linkage_findings(report) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in report.outcomes:
        if f.check == "linkage":
            found.setdefault(f.level, []).append(f.message)
    return found


def test_a_complete_linkage_passes(built, tmp_path: Path) -> None:
    path, rows, rejects = built
    linkage = write_linkage(tmp_path / "ds.linkage.parquet", linkage_entries(rows, rejects))
    report = validate_dataset(path, linkage=linkage)
    assert report.ok, report.errors
    assert list(linkage_findings(report)) == ["ok"]
    assert "linkage" not in {f.check for f in validate_dataset(path).outcomes}, "checked only when asked"


def test_an_unlinked_row_and_reject_fail(built, tmp_path: Path) -> None:
    path, rows, rejects = built
    entries = [e for e in linkage_entries(rows, rejects)
               if e.get("image_id") != rows[4]["image_id"] and e["source_key"] != rejects[1]["source_key"]]
    report = validate_dataset(path, linkage=write_linkage(tmp_path / "l.parquet", entries))
    errors = linkage_findings(report)["error"]
    assert any("1 row has no entry" in e and rows[4]["image_id"] in e for e in errors), errors
    assert any("1 reject without an entry" in e and rejects[1]["source_key"] in e for e in errors), errors


def test_entries_for_inputs_outside_the_dataset_fail(built, tmp_path: Path) -> None:
    path, rows, rejects = built
    stranger = {"kind": "row", "source_key": "src-elsewhere", "image_id": "img-not-in-this-dataset"}
    twice = linkage_entries(rows[:1], [])[0]
    entries = linkage_entries(rows, rejects) + [stranger, twice]
    errors = linkage_findings(validate_dataset(path, linkage=write_linkage(tmp_path / "l.parquet", entries)))["error"]
    assert any("1 entry for inputs that are not in this dataset" in e and "img-not-in-this-dataset" in e
               for e in errors), errors
    assert any("more than one linkage entry" in e and rows[0]["source_key"] in e for e in errors), errors


def test_a_journal_left_beside_the_table_is_a_warning(built, tmp_path: Path) -> None:
    path, rows, rejects = built
    linkage = write_linkage(tmp_path / "l.parquet", linkage_entries(rows, rejects))
    dataset.linkage_journal_path(linkage).write_text("")
    linkage.chmod(0o644)
    report = validate_dataset(path, linkage=linkage)
    assert report.ok
    warnings = linkage_findings(report)["warn"]
    assert any("running or was killed" in w for w in warnings) and any("chmod 600" in w for w in warnings)


def test_cli_missing_or_foreign_table_fails_with_one_line_each(built, tmp_path: Path) -> None:
    path, _, _ = built
    result = CliRunner().invoke(validate, [str(path), "--linkage", str(tmp_path / "nope.parquet")])
    assert result.exit_code == 1 and "linkage table" in result.output and "does not exist" in result.output
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    result = CliRunner().invoke(validate, [str(path), "--linkage", str(other)])
    assert result.exit_code == 1 and "not an mgll linkage table" in result.output
