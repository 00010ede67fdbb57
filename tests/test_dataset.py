"""`mgll_data.dataset`: the one owner of the dataset folder's layout and its reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mgll_data import dataset


def test_label_matrix_keeps_statuses_and_counts_names_outside_the_vocabulary() -> None:
    labels = [
        [{"name": "Edema", "status": 1}, {"name": "Pneumothorax", "status": -1}],
        None,
        [{"name": "Edema", "status": 0}, {"name": "Fracture", "status": 1}],
    ]
    matrix, outside = dataset.label_matrix(labels, ["Edema", "Pneumothorax"])
    assert matrix.dtype == np.int8
    np.testing.assert_array_equal(matrix, [[1, -1], [0, 0], [0, 0]])
    assert outside == 1


def test_splits_sort_in_contract_order_then_by_name() -> None:
    assert dataset.ordered_splits(["test", "extra", "train", "val", "test"]) == ["train", "val", "test", "extra"]


def test_shard_listing_skips_temporary_and_foreign_files(tmp_path: Path, datasets) -> None:
    root = datasets.write(tmp_path / "ds", rows=12, shards=2)
    data = dataset.data_dir(root)
    half = dataset.temporary_path(data / dataset.shard_name("val", 2))
    half.write_bytes(b"half a shard")
    (data / "notes.parquet").write_bytes(b"someone else's file")
    assert [p.name for p in dataset.shard_paths(root)] == [
        "train-00000.parquet", "train-00001.parquet", "validation-00000.parquet", "validation-00001.parquet",
        "test-00000.parquet", "test-00001.parquet",
    ]
    validation = ["validation-00000.parquet", "validation-00001.parquet"]
    assert [p.name for p in dataset.shard_paths(root, "val")] == validation
    assert data / "notes.parquet" in dataset.data_files(root), "validate sees every file a reader would"
    assert dataset.temporary_files(root) == [half]


def test_shard_names_map_val_to_the_hugging_face_validation_split() -> None:
    assert dataset.shard_name("val", 7) == "validation-00007.parquet"
    assert dataset.parse_shard_name("validation-00007.parquet") == ("val", 7)
    assert dataset.parse_shard_name("part-00003.parquet") == (None, 3), "schema 1.0 shards still read"
    assert dataset.parse_shard_name("val-00001.parquet") is None
    assert dataset.parse_shard_name("train-1.parquet") is None
    with pytest.raises(ValueError, match="unknown split"):
        dataset.shard_name("holdout", 0)


def test_metadata_and_manifest_read_back(tmp_path: Path, datasets) -> None:
    root = datasets.write(tmp_path / "ds", rows=datasets.rows(6))
    meta = dataset.read_metadata(root)
    assert meta.vocabulary == datasets.VOCABULARY and meta.pipeline == "mimic-cxr"
    assert dataset.read_manifest(root)["rows"] == 6
    assert sum(t.num_rows for t in dataset.iter_row_groups(root, ["split"])) == 6


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_text("x"), "is a file"),
    (lambda p: p.mkdir(), "not an mgll dataset"),
])
def test_require_dataset_says_why_in_one_line(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "x"
    make(path)
    with pytest.raises(dataset.NotADatasetError, match=message):
        dataset.require_dataset(path)
