"""`mgll validate`: a valid dataset passes; each way of breaking one is caught with a message naming it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mgll_data import dataset, writer
from mgll_data.commands.validate import validate
from mgll_data.validate import NotADatasetError, validate_dataset


def errors_mentioning(report, *words: str) -> list[str]:
    return [e for e in report.errors if all(w in e for w in words)]


def rewrite_shards(root: Path, edit: Callable[[pa.Table], pa.Table]) -> None:
    """Break a written dataset in a way the writer refuses to: every shard's table through `edit`."""
    for shard in dataset.shard_paths(root):
        pq.write_table(edit(pq.read_table(shard)), shard)


def with_values(column: str, by_image_id: dict[str, object]) -> Callable[[pa.Table], pa.Table]:
    """An edit setting `column` of the rows named by image_id (other rows unchanged)."""

    def edit(table: pa.Table) -> pa.Table:
        ids = table.column("image_id").to_pylist()
        values = [by_image_id.get(i, v) for i, v in zip(ids, table.column(column).to_pylist())]
        field = table.schema.field(column)
        return table.set_column(table.schema.get_field_index(column), field, pa.array(values, field.type))

    return edit


def retyped(column: str, type_: pa.DataType) -> Callable[[pa.Table], pa.Table]:
    def edit(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index(column)
        return table.set_column(index, pa.field(column, type_), table.column(column).cast(type_))

    return edit


def with_metadata(change: Callable[[dict[bytes, bytes]], dict[bytes, bytes]]) -> Callable[[pa.Table], pa.Table]:
    return lambda table: table.replace_schema_metadata(change(dict(table.schema.metadata)))


@pytest.fixture
def rows(datasets) -> list[dict]:
    return datasets.rows(12)


def test_valid_dataset_passes_every_check(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=30, shards=3, row_group_size=4)
    report = validate_dataset(path)
    assert report.ok, report.errors
    assert report.warnings == []
    assert report.stats["rows"] == 30
    assert report.stats["shards"] == 9, "three shards for each of the three splits"
    assert report.stats["images_checked"] == 30
    assert sum(report.stats["splits"].values()) == 30
    levels = {f.check: f.level for f in report.outcomes}
    assert set(levels.values()) == {"ok"}
    assert {"labels", "images", "splits", "counts", "privacy"} <= set(levels)


def test_coverage_stats_count_non_null_texts(tmp_path: Path, rows: list[dict], datasets) -> None:
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    expected = sum(r["text_series"] is not None for r in rows)
    assert 0 < expected < len(rows)
    assert report.stats["coverage"]["series"]["non_null"] == expected
    assert report.stats["coverage"]["series"]["fraction"] == pytest.approx(expected / len(rows))
    assert report.stats["coverage"]["modality"]["fraction"] == 1.0


def test_wrong_column_type_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=rows)
    rewrite_shards(path, retyped("height", pa.int64()))
    report = validate_dataset(path)
    assert not report.ok
    assert errors_mentioning(report, "columns", "'height'", "int64", "int32")


def test_missing_column_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=rows)
    rewrite_shards(path, lambda table: table.drop_columns(["labels"]))
    report = validate_dataset(path)
    assert errors_mentioning(report, "missing column 'labels'")
    assert any(f.check == "labels" and f.level == "skip" for f in report.outcomes)


def test_missing_granularity_column_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=rows)
    rewrite_shards(path, lambda table: table.drop_columns(["text_disease"]))
    assert errors_mentioning(validate_dataset(path), "missing column 'text_disease'")


def test_null_in_required_column_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=rows)  # the writer refuses nulls there: added after
    rewrite_shards(path, with_values("patient_id", {rows[2]["image_id"]: None}))
    rewrite_shards(path, with_values("split", {rows[3]["image_id"]: None}))
    report = validate_dataset(path)
    assert errors_mentioning(report, "nulls", "1 null", "'patient_id'")
    assert errors_mentioning(report, "nulls", "1 null", "'split'")
    json.dumps(report.to_dict())  # stats stay serialisable with a null split


def test_label_status_outside_allowed_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    rows[3]["labels"] = [{"name": "Edema", "status": 2}]
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    assert errors_mentioning(report, "labels", "status", "found 2")


def test_label_name_outside_vocabulary_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    rows[3]["labels"] = [{"name": "Fracture", "status": 1}]
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    assert errors_mentioning(report, "labels", "vocabulary", "Fracture")


def test_same_finding_twice_in_a_row_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    rows[4]["labels"] = [{"name": "Edema", "status": 1}, {"name": "Edema", "status": 0}]
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    assert errors_mentioning(report, "labels", "same finding twice", rows[4]["image_id"])


def test_corrupted_image_bytes_fail(tmp_path: Path, rows: list[dict], datasets) -> None:
    rows[1]["image"]["bytes"] = rows[1]["image"]["bytes"][:60]
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    assert errors_mentioning(report, "images", rows[1]["image_id"], "does not decode")


def test_sample_decodes_a_deterministic_subset_and_full_decodes_all(tmp_path: Path, rows: list[dict], datasets) -> None:
    rows[5]["image"]["bytes"] = b"not an image at all"
    path = datasets.write(tmp_path / "ds", rows=rows)
    sampled = validate_dataset(path, sample=2)  # rows 0 and 11: evenly spread, not row 5
    assert sampled.stats["images_checked"] == 2
    assert sampled.ok
    full = validate_dataset(path, sample=2, full=True)
    assert full.stats["images_checked"] == len(rows)
    assert errors_mentioning(full, "images", "1 of 12 all images failed", rows[5]["image_id"])


def test_image_of_wrong_stored_size_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    rows[0]["height"] = 99
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    assert errors_mentioning(report, "images", rows[0]["image_id"], "decodes to 32x24, columns say 99x24")


def test_image_with_wrong_channel_count_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    rows[2]["image"]["bytes"] = datasets.png(rows[2]["height"], rows[2]["width"], channels=3, seed=99)
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    assert errors_mentioning(report, "images", "3 channel(s)", "column says 1")


def test_patient_in_two_splits_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    assert rows[0]["patient_id"] == rows[1]["patient_id"] and rows[0]["split"] == "train"
    rows[1]["split"] = "test"
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    assert errors_mentioning(report, "splits", "1 patient", rows[0]["patient_id"], "train+test")


def test_split_value_outside_allowed_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=rows)  # the writer has no shard for that split: set after
    rewrite_shards(path, with_values("split", {row["image_id"]: "training" for row in rows[:2]}))
    report = validate_dataset(path)
    assert errors_mentioning(report, "values", "'split'", "training")


def test_duplicate_image_id_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    rows[5]["image_id"] = rows[4]["image_id"]
    rows[5]["image"]["path"] = rows[4]["image"]["path"]
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    assert errors_mentioning(report, "image_ids", "1 duplicate image_id", rows[4]["image_id"])


def test_duplicate_image_content_is_only_a_warning(tmp_path: Path, rows: list[dict], datasets) -> None:
    assert (rows[4]["height"], rows[4]["width"]) == (rows[5]["height"], rows[5]["width"])
    rows[5]["image"]["bytes"] = rows[4]["image"]["bytes"]
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    assert report.ok, report.errors
    assert [w for w in report.warnings if "duplicates" in w and f"{rows[5]['image_id']} = {rows[4]['image_id']}" in w]
    assert report.stats["duplicate_content"] == 1


def test_empty_string_granularity_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    rows[0]["text_disease"] = ""
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    assert errors_mentioning(report, "granularities", "1 empty string", "'text_disease'", "use null")


def test_manifest_inputs_not_rows_plus_rejects_fails(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=12, rejects=2)
    manifest = dataset.read_manifest(path)
    manifest["inputs"] = 15
    writer.write_manifest(path, manifest)
    report = validate_dataset(path)
    assert errors_mentioning(report, "counts", "rows + rejects = 12 + 2 = 14", "inputs = 15")


def test_manifest_split_counts_must_match_data(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=12)
    manifest = dataset.read_manifest(path)
    manifest["splits"]["train"] += 1
    manifest["splits"]["val"] -= 1
    writer.write_manifest(path, manifest)
    assert errors_mentioning(validate_dataset(path), "counts", "manifest splits")


def test_manifest_rejects_by_reason_must_match_rejects_table(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=6, rejects=3)
    manifest = dataset.read_manifest(path)
    manifest["rejects_by_reason"] = {"truncated-file": 3}
    writer.write_manifest(path, manifest)
    assert errors_mentioning(validate_dataset(path), "counts", "rejects_by_reason")


def test_manifest_missing_key_fails(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=6)
    manifest = dataset.read_manifest(path)
    del manifest["timings"]
    writer.write_manifest(path, manifest)
    assert errors_mentioning(validate_dataset(path), "manifest", "lacks keys: timings")


def shard(root: Path, split: str, index: int) -> Path:
    return dataset.data_dir(root) / dataset.shard_name(split, index)


def test_shard_listed_but_missing_fails(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=12, shards=2)
    gone = shard(path, "train", 1)
    lost = pq.ParquetFile(gone).metadata.num_rows
    gone.unlink()
    report = validate_dataset(path)
    assert errors_mentioning(report, "shards", "missing on disk", dataset.relative_name(path, gone))
    assert errors_mentioning(report, "counts", f"manifest says 12 rows, the shards hold {12 - lost}")


def test_extra_shard_on_disk_fails(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=12, shards=2)
    shutil.copy(shard(path, "train", 0), shard(path, "train", 2))
    report = validate_dataset(path)
    assert errors_mentioning(report, "shards", "not listed in the manifest", "data/train-00002.parquet")
    assert errors_mentioning(report, "image_ids", "duplicate image_id")


def test_unreadable_shard_is_an_error_not_a_crash(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=12, shards=2)
    shard(path, "train", 1).write_bytes(b"PAR1 garbage")
    report = validate_dataset(path)
    assert errors_mentioning(report, "shards", "data/train-00001.parquet is not a readable Parquet file")


def test_shards_with_different_schemas_fail(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=12, shards=2)
    other = tmp_path / "other"
    datasets.write(other, rows=datasets.rows(6, seed=7))
    rewrite_shards(other, retyped("width", pa.int64()))
    shutil.copy(shard(other, "train", 0), shard(path, "train", 1))
    report = validate_dataset(path)
    assert errors_mentioning(report, "shards", "train-00001.parquet has a different schema", "'width'")


def test_missing_metadata_key_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=rows)
    rewrite_shards(path, with_metadata(lambda meta: {k: v for k, v in meta.items() if k != b"mgll.granularities"}))
    report = validate_dataset(path)
    assert errors_mentioning(report, "metadata", "key mgll.granularities missing")


def test_unknown_schema_version_fails(tmp_path: Path, rows: list[dict], datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=rows)
    rewrite_shards(path, with_metadata(lambda meta: {**meta, b"mgll.schema_version": b"9.0.0"}))
    report = validate_dataset(path)
    assert errors_mentioning(report, "metadata", "schema version 9.0.0 is unknown")


def test_missing_rejects_table_fails(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=6, rejects=0)
    (path / "rejects.parquet").unlink()
    assert errors_mentioning(validate_dataset(path), "rejects", "rejects.parquet is missing")


def test_uid_in_report_text_is_a_privacy_error_or_with_allow_phi_a_warning(
    tmp_path: Path, rows: list[dict], datasets
) -> None:
    rows[0]["report_text"] += " Series 1.2.840.113619.2.55.3.604688119.868.1234567890.123 on 2019-03-04."
    path = datasets.write(tmp_path / "ds", rows=rows)
    report = validate_dataset(path)
    assert not report.ok
    assert errors_mentioning(report, "privacy", "'report_text'", "DICOM UID")
    assert errors_mentioning(report, "privacy", "'report_text'", "a date")
    allowed = validate_dataset(path, allow_phi=True)
    assert allowed.ok
    assert [w for w in allowed.warnings if "privacy" in w and "'report_text'" in w and "DICOM UID" in w]


def test_raw_patient_ids_are_a_privacy_error(tmp_path: Path, rows: list[dict], datasets) -> None:
    for row in rows:
        row["patient_id"] = f"MRN{row['patient_id'][-4:]}"
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=rows))
    assert errors_mentioning(report, "privacy", "'patient_id'", "keyed pseudonyms")


def test_cli_fails_on_phi_unless_allow_warnings(tmp_path: Path, rows: list[dict], datasets) -> None:
    rows[0]["report_text"] += " Seen 2019-03-04."
    path = datasets.write(tmp_path / "ds", rows=rows)
    failed = CliRunner().invoke(validate, [str(path)])
    assert failed.exit_code == 1 and "ERROR  privacy" in failed.output and "a date" in failed.output
    allowed = CliRunner().invoke(validate, [str(path), "--allow-warnings"])
    assert allowed.exit_code == 0 and "warn   privacy" in allowed.output, allowed.output


def test_not_a_dataset_raises_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(NotADatasetError, match="does not exist"):
        validate_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotADatasetError, match="not an mgll dataset"):
        validate_dataset(tmp_path / "empty")


# -- the command -------------------------------------------------------------------------------------------


def test_cli_valid_dataset_exits_zero_with_a_summary(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=12)
    result = CliRunner().invoke(validate, [str(path)])
    assert result.exit_code == 0, result.output
    assert "OK: 0 error(s)" in result.stdout
    assert "granularity coverage" in result.stdout
    assert "ERROR" not in result.stdout


@pytest.mark.parametrize(
    "breakage, expected",
    [
        ("status", "status outside {1, 0, -1}"),
        ("leak", "more than one split"),
        ("empty", "empty string"),
    ],
)
def test_cli_broken_dataset_exits_one_naming_the_problem(tmp_path: Path, rows: list[dict], datasets, breakage: str,
                                                         expected: str) -> None:
    if breakage == "status":
        rows[0]["labels"] = [{"name": "Edema", "status": 2}]
    elif breakage == "leak":
        rows[1]["split"] = "val"
    else:
        rows[0]["text_category"] = ""
    path = datasets.write(tmp_path / "ds", rows=rows)
    result = CliRunner().invoke(validate, [str(path)])
    assert result.exit_code == 1
    error_lines = [line for line in result.stdout.splitlines() if line.strip().startswith("ERROR")]
    assert len(error_lines) == 1 and expected in error_lines[0]
    assert "FAILED: 1 error(s)" in result.stdout


def test_cli_json_to_stdout_holds_the_same_verdict(tmp_path: Path, rows: list[dict], datasets) -> None:
    rows[3]["labels"] = [{"name": "Fracture", "status": 1}]
    path = datasets.write(tmp_path / "ds", rows=rows)
    result = CliRunner().invoke(validate, [str(path), "--json", "-"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert payload["errors"] == validate_dataset(path).errors
    assert any("Fracture" in e for e in payload["errors"])
    assert payload["stats"]["rows"] == len(rows)


def test_cli_json_file_for_a_valid_dataset(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=8)
    out = tmp_path / "verdict.json"
    result = CliRunner().invoke(validate, [str(path), "--json", str(out), "--full"])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["ok"] is True and payload["errors"] == []
    assert payload["stats"]["images_checked"] == 8
    assert {c["level"] for c in payload["checks"]} == {"ok"}


def test_cli_not_a_dataset_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("hello")
    result = CliRunner().invoke(validate, [str(tmp_path / "file.txt")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert "not a dataset folder" in result.output
    assert "Traceback" not in result.output


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(validate, ["--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "mgll validate" in result.output
