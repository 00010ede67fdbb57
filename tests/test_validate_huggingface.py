"""`mgll validate` on the Hugging Face layout: shards named by split hold only that split, and carry the
contract's `datasets` features; a schema-1.0 dataset (one set of shards, no features) only warns."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mgll_data import dataset, schema, writer
from mgll_data.validate import validate_dataset


def findings(report, check: str, level: str) -> list[str]:
    return [f.message for f in report.outcomes if f.check == check and f.level == level]


def rewrite(shard: Path, table: pa.Table) -> None:
    pq.write_table(table, shard)


def set_features(shard: Path, features: dict | None) -> pa.Table:
    """Replace (None: remove) a shard's Hugging Face features metadata; returns the shard's table."""
    table = pq.read_table(shard)
    metadata = {k: v for k, v in table.schema.metadata.items() if k != schema.META_HUGGINGFACE}
    if features is not None:
        metadata[schema.META_HUGGINGFACE] = json.dumps({"info": {"features": features}}).encode()
    rewrite(shard, table.replace_schema_metadata(metadata))
    return table


def test_the_fixture_layout_passes(tmp_path: Path, datasets) -> None:
    report = validate_dataset(datasets.write(tmp_path / "ds", rows=12, shards=2))
    assert findings(report, "huggingface", "ok") and report.ok


def test_rows_in_another_splits_shard_fail(tmp_path: Path, datasets) -> None:
    rows = datasets.rows(12)
    path = datasets.write(tmp_path / "ds", rows=rows)
    shard = dataset.data_dir(path) / dataset.shard_name("train", 0)
    table = pq.read_table(shard)
    splits = table.column("split").to_pylist()
    splits[0] = "val"
    rewrite(shard, table.set_column(table.schema.get_field_index("split"), "split", pa.array(splits)))
    errors = findings(validate_dataset(path), "splits", "error")
    assert any("1 row sits in another split's shard" in e and "data/train-00000.parquet holds 1 row of val" in e
               for e in errors), errors


def test_a_shard_without_features_or_a_stray_file_fails(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=12)
    table = set_features(dataset.data_dir(path) / dataset.shard_name("test", 0), None)
    (dataset.data_dir(path) / "more").mkdir()
    pq.write_table(table, dataset.data_dir(path) / "more" / "train-00009.parquet")
    errors = findings(validate_dataset(path), "huggingface", "error")
    assert any("no 'huggingface' features" in e and "data/test-00000.parquet" in e for e in errors), errors
    assert any("not named <split>-NNNNN.parquet directly in data/" in e and "more/train-00009" in e
               for e in errors), errors


def test_features_naming_other_columns_fail(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=12)
    features = schema.huggingface_features(list(dataset.read_metadata(path).granularities))
    features["image"] = {"bytes": {"dtype": "binary", "_type": "Value"}, "path": {"dtype": "string", "_type": "Value"}}
    set_features(dataset.data_dir(path) / dataset.shard_name("train", 0), features)
    errors = findings(validate_dataset(path), "huggingface", "error")
    assert any("differ from the contract's for image" in e for e in errors), errors


def test_a_schema_1_0_dataset_only_warns(tmp_path: Path, datasets) -> None:
    path = datasets.write(tmp_path / "ds", rows=12)
    table = pa.concat_tables(pq.read_table(p) for p in dataset.shard_paths(path))
    for shard in dataset.shard_paths(path):
        shard.unlink()
    metadata = {k: v for k, v in table.schema.metadata.items() if k != schema.META_HUGGINGFACE}
    metadata[schema.META_SCHEMA_VERSION] = b"1.0.0"
    pq.write_table(table.replace_schema_metadata(metadata), dataset.data_dir(path) / "part-00000.parquet")
    manifest = dataset.read_manifest(path)
    manifest.update(schema_version="1.0.0", shards=["data/part-00000.parquet"])
    writer.write_manifest(path, manifest)
    report = validate_dataset(path)
    assert report.ok, report.errors
    warnings = findings(report, "huggingface", "warn")
    assert any("schema-1.0 layout" in w for w in warnings) and any("no 'huggingface'" in w for w in warnings)
