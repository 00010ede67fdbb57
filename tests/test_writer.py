import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mgll_data import dataset, schema, writer
from mgll_data.records import Outcome, Reject

GRANULARITIES = ["disease"]


def _row(i: int) -> dict:
    return {
        "image_id": f"img-{i:04d}", "patient_id": f"pat-{i % 7}", "study_id": f"stu-{i}", "split": "train",
        "image": {"bytes": b"\x89PNG fake", "path": f"img-{i:04d}.png"}, "height": 4, "width": 4,
        "original_height": 8, "original_width": 8, "channels": 1, "modality": "CR", "view_position": "PA",
        "body_part": "CHEST", "photometric_interpretation": "MONOCHROME2", "bits_stored": 12,
        "pixel_spacing_mm": 0.1, "manufacturer_model": None, "source_format": "dicom", "source_key": f"src-{i}",
        "labels": [{"name": "Edema", "status": 1}], "report_text": "FINDINGS: edema.", "text_disease": "edema",
    }


def _schema():
    return schema.arrow_schema(GRANULARITIES, ["Edema"], "test", pipeline_hash="h1")


def test_shards_row_groups_and_compression(tmp_path: Path):
    (tmp_path / "data").mkdir()
    w = writer.ShardWriter(tmp_path, _schema(), first_shard=0, shard_rows=2000)
    for i in range(2500):
        w.add(_row(i))
    w.close()
    shards = dataset.shard_paths(tmp_path)
    assert [p.name for p in shards] == ["part-00000.parquet", "part-00001.parquet"]
    meta = pq.ParquetFile(shards[0]).metadata
    assert meta.num_rows == 2000 and meta.num_row_groups == 2
    columns = {meta.row_group(0).column(j).path_in_schema: meta.row_group(0).column(j).compression
               for j in range(meta.num_columns)}
    assert columns["image.bytes"] == "UNCOMPRESSED"
    assert columns["report_text"] == "ZSTD"
    assert not list((tmp_path / "data").glob(".*.tmp"))
    assert schema.read_metadata(pq.read_schema(shards[0]))["pipeline_hash"] == "h1"


def test_an_unfinished_shard_stays_hidden_until_closed(tmp_path: Path):
    (tmp_path / "data").mkdir()
    w = writer.ShardWriter(tmp_path, _schema(), first_shard=3, shard_rows=5000)
    for i in range(1200):
        w.add(_row(i))
    assert dataset.shard_paths(tmp_path) == []
    assert len(list((tmp_path / "data").glob(".*.tmp"))) == 1
    w.close()
    assert [p.name for p in dataset.shard_paths(tmp_path)] == ["part-00003.parquet"]


def test_prepare_output_resumes_from_whole_shards_and_rejects(tmp_path: Path):
    out, linkage = tmp_path / "ds", tmp_path / "ds.linkage.parquet"
    state = writer.prepare_output(out, linkage, "h1", overwrite=False)
    assert state.done_keys == set() and state.next_shard == 0
    w = writer.ShardWriter(out, _schema(), first_shard=0)
    for i in range(10):
        w.add(_row(i))
    w.close()
    rejected = Outcome("src-bad", reject=Reject("imaging", "empty-file", "the file is empty"))
    writer.write_rejects(out, [writer.reject_entry(rejected)])
    (out / "data" / ".part-00001.parquet.tmp").write_bytes(b"half a file")
    state = writer.prepare_output(out, linkage, "h1", overwrite=False)
    assert state.done_keys == {f"src-{i}" for i in range(10)} | {"src-bad"}
    assert state.next_shard == 1
    assert not list((out / "data").glob(".*.tmp")), "stale temporary shards are removed"
    with pytest.raises(writer.DatasetExistsError, match="different pipeline"):
        writer.prepare_output(out, linkage, "other-hash", overwrite=False)
    state = writer.prepare_output(out, linkage, "other-hash", overwrite=True)
    assert state.done_keys == set() and dataset.shard_paths(out) == []


def test_overwrite_refuses_a_folder_that_is_not_a_dataset(tmp_path: Path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(writer.DatasetExistsError, match="does not look like"):
        writer.prepare_output(out, tmp_path / "l.parquet", "h", overwrite=True)
    assert (out / "thesis.tex").exists()


def test_linkage_file_and_its_journal_are_private(tmp_path: Path):
    path = tmp_path / "x.linkage.parquet"
    writer.prepare_output(tmp_path / "ds", path, "h1", overwrite=False)
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
    writer.prepare_output(out, linkage, "h1", overwrite=False)
    journal = writer.LinkageJournal(linkage)
    committed_with_journal: list[int] = []

    def before_commit() -> None:
        journal.flush()
        committed_with_journal.append(len(journal.path.read_text().splitlines()))

    w = writer.ShardWriter(out, _schema(), first_shard=0, shard_rows=3, before_commit=before_commit)
    for i in range(7):
        journal.add(writer.linkage_entry(Outcome(f"src-{i}", row=_row(i), linkage={})))
        w.add(_row(i))
    w.close()
    assert committed_with_journal == [3, 6, 7]
    state = writer.prepare_output(out, linkage, "h1", overwrite=False)
    assert len(state.done_keys) == 7
    assert len(writer.journal_path(linkage).read_text().splitlines()) == 7, "a resumed build starts its journal with the skipped inputs' entries"


def test_a_journal_cut_mid_line_by_a_kill_resumes_from_its_whole_lines(tmp_path: Path):
    out, linkage = tmp_path / "ds", tmp_path / "ds.linkage.parquet"
    writer.prepare_output(out, linkage, "h1", overwrite=False)
    w = writer.ShardWriter(out, _schema(), first_shard=0)
    for i in range(3):
        w.add(_row(i))
    w.close()
    journal = writer.journal_path(linkage)
    whole = [writer.linkage_entry(Outcome(f"src-{i}", row=_row(i), linkage={"source_path": f"a{i}.dcm"})) for i in range(3)]
    journal.write_text("".join(json.dumps(e) + "\n" for e in whole) + '{"kind": "row", "source_key": "src-3", "sou')
    state = writer.prepare_output(out, linkage, "h1", overwrite=False)
    assert state.done_keys == {"src-0", "src-1", "src-2"}
    resumed = writer.LinkageJournal(linkage)
    resumed.finish()
    assert [e["source_path"] for e in pq.read_table(linkage).to_pylist()] == ["a0.dcm", "a1.dcm", "a2.dcm"]
