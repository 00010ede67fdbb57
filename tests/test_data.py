import json
import pickle
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mgll_data import schema
from mgll_data.dataset import shard_paths
from mgll_train.data import DatasetError, label_matrix, open_dataset, split_counts, text_id
from mgll_train.model import default_text_folder, load_tokenizer
from mgll_train.stream import Collator, ParquetImageText, TextTokens, UndecodableShare, build_loader, row_group_units

TEXTS = ["category", "disease", "description"]


def _tokens(max_tokens=128):
    return TextTokens(partial(load_tokenizer, default_text_folder()), max_tokens)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, datasets):
    return datasets.write_learnable(tmp_path_factory.mktemp("ds"), rows=40, row_group_size=8, shards=2,
                                    corrupt_rows=(5,))


def _ids(stream):
    return [sample["image_id"] for sample in stream]


def test_open_dataset_reads_contract_metadata(dataset, datasets):
    info = open_dataset(dataset)
    assert info.vocabulary == datasets.LEARNABLE_VOCABULARY
    assert info.granularities == datasets.LEARNABLE_GRANULARITIES
    assert info.num_rows == 40 and len(info.shards) == 4, "two shards for each of the two splits"
    assert split_counts(info) == {"train": 30, "val": 10}
    assert open_dataset(dataset).fingerprint == info.fingerprint


def test_open_dataset_rejects_missing_folder_and_shards(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "data").mkdir()
    with pytest.raises(DatasetError, match="no data shards"):
        open_dataset(tmp_path)
    (tmp_path / "data" / "part-00000.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DatasetError, match="not a readable Parquet"):
        open_dataset(tmp_path)


def test_open_dataset_rejects_missing_column_and_metadata(tmp_path, datasets):
    for shard in shard_paths(datasets.write_learnable(tmp_path / "a", rows=4)):
        pq.write_table(pq.read_table(shard).drop_columns(["text_disease"]), shard)
    with pytest.raises(DatasetError, match="missing the columns \\['text_disease'\\]"):
        open_dataset(tmp_path / "a")
    for shard in shard_paths(datasets.write_learnable(tmp_path / "b", rows=4)):
        pq.write_table(pq.read_table(shard).replace_schema_metadata(None), shard)
    with pytest.raises(DatasetError, match="lacks the mgll metadata"):
        open_dataset(tmp_path / "b")


def _rewrite_labels(root: Path, labels_type: pa.DataType, version: str) -> None:
    """Every shard's labels column cast to `labels_type` (fields it lacks dropped) under another schema version."""
    for shard in shard_paths(root):
        table = pq.read_table(shard)
        names = [f.name for f in labels_type.value_type] if pa.types.is_list(labels_type) else []
        values = [[{k: v for k, v in item.items() if k in names} for item in row or ()] if names else json.dumps(row)
                  for row in table.column("labels").to_pylist()]
        table = table.set_column(table.schema.get_field_index("labels"), "labels", pa.array(values, labels_type))
        metadata = {**table.schema.metadata, b"mgll.schema_version": version.encode()}
        pq.write_table(table.replace_schema_metadata(metadata), shard)


def test_open_dataset_reads_an_earlier_minor_versions_label_type(tmp_path, datasets):
    """A 1.0.0 dataset's labels carry no certainty field; the trainer reads only name and status."""
    root = datasets.write_learnable(tmp_path / "old", rows=8)
    positives_now = label_matrix(pq.read_table(shard_paths(root)[0]).column("labels").to_pylist(),
                                 datasets.LEARNABLE_VOCABULARY)
    labels_column = next(c for c in schema.columns(list(datasets.LEARNABLE_GRANULARITIES)) if c.name == "labels")
    (first_minor,) = labels_column.older_types
    _rewrite_labels(root, first_minor, "1.0.0")
    info = open_dataset(root)
    assert info.schema_version == "1.0.0"
    old_labels = pq.read_table(shard_paths(root)[0]).column("labels").to_pylist()
    assert torch.equal(label_matrix(old_labels, info.vocabulary), positives_now)


def test_open_dataset_names_the_schema_version_of_a_wrong_column_type(tmp_path, datasets):
    root = datasets.write_learnable(tmp_path / "odd", rows=4)
    _rewrite_labels(root, pa.string(), "1.0.0")
    with pytest.raises(DatasetError, match=r"wrong type: \['labels'\] \(written under schema 1\.0\.0; rebuild it with "
                                           r"`mgll build --overwrite`\)"):
        open_dataset(root)


def test_label_matrix_counts_only_positive_findings():
    rows = [
        [{"name": "Cardiomegaly", "status": 1}, {"name": "Pneumothorax", "status": -1}],
        [{"name": "Pleural Effusion", "status": 0}, {"name": "Unknown", "status": 1}],
        [],
    ]
    matrix = label_matrix(rows, ["Pleural Effusion", "Cardiomegaly", "Pneumothorax"])
    assert matrix.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]


def test_text_id_is_stable_and_folds_case_and_spacing():
    assert text_id("Pleural  effusion") == text_id("pleural effusion ")
    assert text_id("pleural effusion") != text_id("cardiomegaly")
    assert text_id(None) == -1
    assert 0 <= text_id("x") < 2**63


def test_stream_covers_split_once_per_epoch_across_ranks(dataset):
    info = open_dataset(dataset)
    seen = []
    for rank in range(3):
        stream = ParquetImageText(info, TEXTS, image_size=16, rank=rank, world_size=3, epochs=1, seed=3)
        seen += _ids(stream)
    expected = [f"img-{i:05d}" for i in range(40) if i % 4 != 3 and i != 5]
    assert sorted(seen) == expected


def test_stream_with_loader_workers_has_no_duplicates_and_counts_corrupt(dataset):
    info = open_dataset(dataset)
    stream = ParquetImageText(info, TEXTS, image_size=16, tokens=_tokens(), epochs=1, shuffle_buffer=0, train=False)
    loader = build_loader(stream, Collator(), batch_size=4, workers=2)
    ids, corrupt = [], []
    for batch in loader:
        ids += batch["image_ids"]
        corrupt += batch["corrupt"]
    assert len(ids) == len(set(ids)) == 29
    assert corrupt == ["img-00005"]


def test_shuffle_changes_order_but_not_content(dataset):
    info = open_dataset(dataset)
    plain = _ids(ParquetImageText(info, TEXTS, image_size=16, epochs=1, shuffle_buffer=0, train=False))
    shuffled = _ids(ParquetImageText(info, TEXTS, image_size=16, epochs=1, shuffle_buffer=8, seed=1))
    assert plain != shuffled and sorted(plain) == sorted(shuffled)
    again = _ids(ParquetImageText(info, TEXTS, image_size=16, epochs=1, shuffle_buffer=8, seed=1))
    assert shuffled == again


def test_resume_from_a_recorded_position_continues_the_stream_exactly(dataset):
    info = open_dataset(dataset)
    full = list(ParquetImageText(info, TEXTS, image_size=16, epochs=2, seed=4, batch_size=4))
    slot, position = full[19]["position"]
    resumed = list(ParquetImageText(info, TEXTS, image_size=16, epochs=2, seed=4, resume_positions={slot: position}))
    assert _ids(resumed) == _ids(full[20:])
    assert all(torch.equal(a["pixels"], b["pixels"]) and a["view"] == b["view"] for a, b in zip(resumed, full[20:]))


def test_resume_by_batch_count_when_no_position_was_recorded(tmp_path, datasets):
    info = open_dataset(datasets.write_learnable(tmp_path, rows=24, row_group_size=8))
    full = _ids(ParquetImageText(info, TEXTS, image_size=16, epochs=2, seed=4))
    resumed = _ids(ParquetImageText(info, TEXTS, image_size=16, epochs=2, seed=4, batch_size=4, resume_batches=5))
    assert resumed == full[20:]


def test_other_split_and_empty_split(dataset):
    info = open_dataset(dataset)
    val = _ids(ParquetImageText(info, TEXTS, image_size=16, split="val", epochs=1))
    assert sorted(val) == [f"img-{i:05d}" for i in range(3, 40, 4)]
    assert _ids(ParquetImageText(info, TEXTS, image_size=16, split="test")) == []


def test_collator_sends_each_distinct_text_once_and_masks_missing_ones(dataset, datasets):
    info = open_dataset(dataset)
    granularities = ["category", "disease", "description", "explanation"]
    tokens = _tokens(max_tokens=16)
    samples = list(ParquetImageText(info, granularities, image_size=16, tokens=tokens, epochs=1, shuffle_buffer=0))[:8]
    batch = Collator(tokens.pad_id)(samples)
    assert batch["pixels"].shape == (8, 1, 16, 16) and batch["pixels"].dtype == torch.uint8
    assert batch["views"].shape == (8, 3) and batch["labels"].shape == (8, len(datasets.LEARNABLE_VOCABULARY))
    texts = [[s["texts"][k] for s in samples] for k in range(4)]
    assert batch["text_mask"].tolist() == [[t is not None for t in column] for column in texts]
    assert ((batch["text_ids"] == -1) == ~batch["text_mask"]).all()
    distinct = {t for column in texts for t in column if t is not None}
    assert batch["input_ids"].shape[0] == len(distinct) < sum(t is not None for column in texts for t in column)
    assert batch["input_ids"].shape[1] <= 16 and batch["attention_mask"].shape == batch["input_ids"].shape
    tokenizer = tokens.tokenizer
    for k, column in enumerate(texts):
        for i, text in enumerate(column):
            if text is not None:
                row = batch["text_index"][k, i]
                ids = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
                assert ids == tokenizer(text, truncation=True, max_length=16)["input_ids"]
    first, twin = next((i, j) for i in range(8) for j in range(i + 1, 8) if texts[1][i] == texts[1][j])
    assert batch["text_ids"][1, first] == batch["text_ids"][1, twin]
    assert batch["text_index"][1, first] == batch["text_index"][1, twin]


def test_a_batch_without_texts_still_feeds_the_text_tower_one_masked_row(dataset):
    info = open_dataset(dataset)
    samples = list(ParquetImageText(info, ["explanation"], image_size=16, tokens=_tokens(), epochs=1, shuffle_buffer=0))
    no_text = [s for s in samples if s["texts"] == (None,)][:2]
    batch = Collator(pad_id=0)(no_text)
    assert batch["input_ids"].shape == (1, 1) and not batch["text_mask"].any()


def test_tokenizer_is_not_pickled_into_workers():
    tokens = _tokens()
    assert tokens.pad_id == 0 and tokens._tokenizer is not None
    assert pickle.loads(pickle.dumps(tokens))._tokenizer is None


@pytest.mark.timeout(60)
def test_a_split_whose_images_all_fail_stops_instead_of_looping_forever(tmp_path, datasets):
    info = open_dataset(datasets.write_learnable(tmp_path, rows=12, corrupt_rows=tuple(range(12))))
    stream = ParquetImageText(info, TEXTS, image_size=16)
    with pytest.raises(UndecodableShare, match="none of the 9 train images"):
        next(iter(stream))


def test_split_counts_come_from_the_manifest_when_it_covers_every_row(tmp_path, datasets):
    root = datasets.write_learnable(tmp_path, rows=8)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest.pop("splits") == {"train": 6, "val": 2}
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert split_counts(open_dataset(root)) == {"train": 6, "val": 2}  # a manifest without splits: column scan
    (root / "manifest.json").write_text(json.dumps({**manifest, "splits": {"train": 5, "test": 3}}))
    assert split_counts(open_dataset(root)) == {"train": 5, "test": 3}
    (root / "manifest.json").write_text(json.dumps({**manifest, "splits": {"train": 5}}))
    assert split_counts(open_dataset(root)) == {"train": 6, "val": 2}  # stale: does not add up to the rows


def test_a_split_reads_only_its_own_shards_when_their_names_say_the_split(tmp_path, datasets):
    root = datasets.write_learnable(tmp_path / "ds", rows=12, splits=("train", "train", "val"))
    info = open_dataset(root)
    assert len(info.shards) == 2
    assert {Path(u.shard).name for u in row_group_units(info, 1, "train")} == {"train-00000.parquet"}
    assert {Path(u.shard).name for u in row_group_units(info, 1, "val")} == {"validation-00000.parquet"}
    assert len(row_group_units(info, 1)) == 2
    assert len(_ids(ParquetImageText(info, TEXTS, image_size=16, split="val", epochs=1))) == 4


def test_a_schema_1_0_dataset_with_every_split_in_one_shard_streams_each_split(tmp_path, datasets):
    root = datasets.write_learnable(tmp_path / "ds", rows=12, splits=("train", "train", "val"))
    table = pa.concat_tables(pq.read_table(shard) for shard in shard_paths(root))
    for shard in shard_paths(root):
        shard.unlink()
    pq.write_table(table, root / "data" / "part-00000.parquet", row_group_size=4)
    info = open_dataset(root)
    assert [Path(s).name for s in info.shards] == ["part-00000.parquet"]
    assert len(row_group_units(info, 1, "train")) == len(row_group_units(info, 1, "val")) == 3
    assert sorted(_ids(ParquetImageText(info, TEXTS, image_size=16, split="val", epochs=1))) == [
        f"img-{k:05d}" for k in range(2, 12, 3)
    ]
    assert len(_ids(ParquetImageText(info, TEXTS, image_size=16, split="train", epochs=1))) == 8


def test_a_dataset_with_items_puts_each_levels_items_in_the_batch(tmp_path, datasets):
    root = datasets.write_learnable(tmp_path / "ds", rows=16, items=True)
    info = open_dataset(root)
    assert info.item_vocabulary == tuple(datasets.ITEM_VOCABULARY)
    granularities = ["modality", "disease", "description"]  # modality has no items column: always empty
    tokens = _tokens(max_tokens=16)
    samples = list(ParquetImageText(info, granularities, image_size=16, tokens=tokens, epochs=1, shuffle_buffer=0))[:8]
    batch = Collator(tokens.pad_id, items=len(datasets.ITEM_VOCABULARY))(samples)
    assert batch["items"].shape == (3, 8, len(datasets.ITEM_VOCABULARY)) and batch["items"].dtype == torch.uint8
    rows = {r["image_id"]: r for shard in shard_paths(root) for r in pq.read_table(shard).to_pylist()}
    for i, sample in enumerate(samples):
        row = rows[sample["image_id"]]
        for k, column in ((1, "items_disease"), (2, "items_description")):
            got = {datasets.ITEM_VOCABULARY[j] for j in torch.nonzero(batch["items"][k, i]).flatten().tolist()}
            assert got == set(row[column] or ()), (column, row[column])
        assert batch["items"][0, i].sum() == 0
    assert "items" not in Collator(tokens.pad_id)(samples)  # a dataset without items: labels only
