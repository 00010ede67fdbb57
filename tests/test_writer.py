import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mgll_data import dataset, schema, writer
from mgll_data.output_folder import OutputFolderError
from mgll_data.records import Outcome, Reject

GRANULARITIES = ["disease"]


def _row(i: int, split: str = "train") -> dict:
    return {
        "image_id": f"img-{i:04d}", "patient_id": f"pat-{i % 7}", "study_id": f"stu-{i}", "split": split,
        "image": {"bytes": b"\x89PNG fake", "path": f"img-{i:04d}.png"}, "height": 4, "width": 4,
        "original_height": 8, "original_width": 8, "channels": 1, "modality": "CR", "view_position": "PA",
        "body_part": "CHEST", "photometric_interpretation": "MONOCHROME2", "bits_stored": 12,
        "pixel_spacing_mm": 0.1, "manufacturer_model": None, "source_format": "dicom", "source_key": f"src-{i}",
        "labels": [{"name": "Edema", "status": 1}], "report_text": "FINDINGS: edema.", "text_disease": "edema",
    }


def _schema():
    return schema.arrow_schema(GRANULARITIES, ["Edema"], "test", pipeline_hash="h1")


def test_shards_row_groups_and_compression(tmp_path: Path):
    dataset.data_dir(tmp_path).mkdir()
    w = writer.ShardWriter(tmp_path, _schema(), shard_rows=2000)
    for i in range(2500):
        w.add(_row(i))
    w.close()
    shards = dataset.shard_paths(tmp_path)
    assert [p.name for p in shards] == ["train-00000.parquet", "train-00001.parquet"]
    meta = pq.ParquetFile(shards[0]).metadata
    assert meta.num_rows == 2000 and meta.num_row_groups == 2
    columns = {meta.row_group(0).column(j).path_in_schema: meta.row_group(0).column(j).compression
               for j in range(meta.num_columns)}
    assert columns["image.bytes"] == "UNCOMPRESSED"
    assert columns["report_text"] == "ZSTD"
    assert dataset.temporary_files(tmp_path) == []
    assert schema.read_metadata(pq.read_schema(shards[0]))["pipeline_hash"] == "h1"


def test_each_split_has_its_own_shards_numbered_on_from_a_resume(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(writer, "ROW_GROUP_SIZE", 10)
    dataset.data_dir(tmp_path).mkdir()
    splits = ["train", "train", "val", "test", "train"]
    w = writer.ShardWriter(tmp_path, _schema(), {"val": 4}, shard_rows=20)
    for i in range(100):
        w.add(_row(i, splits[i % 5]))
    w.close()
    names = [p.name for p in dataset.shard_paths(tmp_path)]
    assert names == ["train-00000.parquet", "train-00001.parquet", "train-00002.parquet",
                     "validation-00004.parquet", "test-00000.parquet"]
    for path in dataset.shard_paths(tmp_path):
        split, _ = dataset.parse_shard_name(path.name)
        assert set(pq.read_table(path, columns=["split"]).column("split").to_pylist()) == {split}
    assert dataset.next_shard_indices(tmp_path) == {"train": 3, "val": 5, "test": 1}


def test_an_unfinished_shard_stays_hidden_until_closed(tmp_path: Path):
    dataset.data_dir(tmp_path).mkdir()
    w = writer.ShardWriter(tmp_path, _schema(), {"train": 3}, shard_rows=5000)
    for i in range(1200):
        w.add(_row(i))
    assert dataset.shard_paths(tmp_path) == []
    assert len(dataset.temporary_files(tmp_path)) == 1
    w.close()
    assert [p.name for p in dataset.shard_paths(tmp_path)] == ["train-00003.parquet"]


def _start(out: Path, linkage: Path, pipeline_hash: str = "h1") -> writer.ExistingState:
    state = writer.read_existing(out, pipeline_hash)
    writer.start_output(out, linkage, state)
    return state


def test_a_resume_skips_whole_shards_and_rejects(tmp_path: Path):
    out, linkage = tmp_path / "ds", tmp_path / "ds.linkage.parquet"
    state = _start(out, linkage)
    assert state.done_keys == set() and state.next_shards == {}
    w = writer.ShardWriter(out, _schema())
    for i in range(10):
        w.add(_row(i))
    w.close()
    rejected = Outcome("src-bad", reject=Reject("imaging", "empty-file", "the file is empty"))
    writer.write_rejects(out, [writer.reject_entry(rejected)])
    half = dataset.temporary_path(dataset.data_dir(out) / dataset.shard_name("train", 1))
    half.write_bytes(b"half a file")
    assert writer.read_existing(out, "h1").done_keys == {f"src-{i}" for i in range(10)} | {"src-bad"}
    assert half.exists(), "reading what is done changes nothing"
    state = _start(out, linkage)
    assert state.next_shards == {"train": 1, "val": 0, "test": 0}
    assert not half.exists(), "stale temporary shards are removed"
    with pytest.raises(OutputFolderError, match="different pipeline"):
        writer.read_existing(out, "other-hash")


def test_a_dataset_in_the_one_set_of_shards_layout_is_rebuilt_only_with_overwrite(tmp_path: Path):
    out = tmp_path / "ds"
    dataset.data_dir(out).mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([_row(0)], schema=_schema()), dataset.data_dir(out) / "part-00000.parquet")
    with pytest.raises(OutputFolderError, match="older mgll.*--overwrite"):
        writer.read_existing(out, "h1")
    assert dataset.written_files(out) == [dataset.data_dir(out) / "part-00000.parquet"], "--overwrite clears it"


def test_a_linkage_path_holding_another_file_is_refused_not_deleted(tmp_path: Path):
    precious = tmp_path / "results.parquet"
    pq.write_table(pa.table({"x": [1]}), precious)
    with pytest.raises(OutputFolderError, match="not an mgll linkage table"):
        writer.remove_linkage(precious)
    assert pq.read_table(precious).num_rows == 1


def test_linkage_file_and_its_journal_are_private(tmp_path: Path):
    path = tmp_path / "x.linkage.parquet"
    _start(tmp_path / "ds", path)
    journal = writer.LinkageJournal(path)
    assert journal.path.stat().st_mode & 0o777 == 0o600
    outcome = Outcome("src-1", row=_row(1), linkage={"source_path": "files/p1/s1/a.dcm", "original_patient_id": "MRN1"})
    journal.add(writer.linkage_entry(outcome))
    journal.finish()
    assert path.stat().st_mode & 0o777 == 0o600
    assert not journal.path.exists()
    assert pq.read_table(path).to_pylist() == [{
        "kind": "row", "source_key": "src-1", "source_path": "files/p1/s1/a.dcm", "report_path": None,
        "image_id": None, "patient_id": None, "study_id": None, "original_patient_id": "MRN1",
        "original_study_id": None, "error_detail": None,
    }]  # fmt: skip


def test_the_journal_reaches_disk_before_the_shard_it_links(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(writer, "ROW_GROUP_SIZE", 1)
    out, linkage = tmp_path / "ds", tmp_path / "ds.linkage.parquet"
    _start(out, linkage)
    journal = writer.LinkageJournal(linkage)
    committed_with_journal: list[int] = []

    def before_commit() -> None:
        journal.flush()
        committed_with_journal.append(len(journal.path.read_text().splitlines()))

    w = writer.ShardWriter(out, _schema(), shard_rows=3, before_commit=before_commit)
    for i in range(7):
        journal.add(writer.linkage_entry(Outcome(f"src-{i}", row=_row(i), linkage={})))
        w.add(_row(i))
    w.close()
    assert committed_with_journal == [3, 6, 7]
    state = _start(out, linkage)
    assert len(state.done_keys) == 7
    assert len(dataset.linkage_journal_path(linkage).read_text().splitlines()) == 7, (
        "a resumed build starts its journal with the skipped inputs' entries"
    )


def test_a_journal_cut_mid_line_by_a_kill_resumes_from_its_whole_lines(tmp_path: Path):
    out, linkage = tmp_path / "ds", tmp_path / "ds.linkage.parquet"
    _start(out, linkage)
    w = writer.ShardWriter(out, _schema())
    for i in range(3):
        w.add(_row(i))
    w.close()
    journal = dataset.linkage_journal_path(linkage)
    whole = [
        writer.linkage_entry(Outcome(f"src-{i}", row=_row(i), linkage={"source_path": f"a{i}.dcm"})) for i in range(3)
    ]
    journal.write_text("".join(json.dumps(e) + "\n" for e in whole) + '{"kind": "row", "source_key": "src-3", "sou')
    state = _start(out, linkage)
    assert state.done_keys == {"src-0", "src-1", "src-2"}
    resumed = writer.LinkageJournal(linkage)
    resumed.finish()
    assert [e["source_path"] for e in pq.read_table(linkage).to_pylist()] == ["a0.dcm", "a1.dcm", "a2.dcm"]
