import io

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from mgll_train.data import (
    Collator,
    CorruptImage,
    DatasetError,
    ParquetImageText,
    build_loader,
    decode_image,
    label_matrix,
    open_dataset,
    split_counts,
    text_id,
)
from mgll_train.model import default_text_folder
from tests.train_fixtures import GRANULARITIES, VOCABULARY, write_dataset

TEXTS = ["category", "disease", "description"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), rows=40, row_group_size=8, shards=2, corrupt_rows=(5,))


def _ids(stream):
    return [sample["image_id"] for sample in stream]


def test_open_dataset_reads_contract_metadata(dataset):
    info = open_dataset(dataset)
    assert info.vocabulary == tuple(VOCABULARY)
    assert info.granularities == tuple(GRANULARITIES)
    assert info.num_rows == 40 and len(info.shards) == 2
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


def test_open_dataset_rejects_missing_column_and_metadata(tmp_path):
    write_dataset(tmp_path / "a", rows=4)
    table = pq.read_table(tmp_path / "a" / "data" / "part-00000.parquet")
    pq.write_table(table.drop_columns(["text_disease"]), tmp_path / "a" / "data" / "part-00000.parquet")
    with pytest.raises(DatasetError, match="missing the columns \\['text_disease'\\]"):
        open_dataset(tmp_path / "a")
    write_dataset(tmp_path / "b", rows=4)
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "b" / "data" / "part-00000.parquet")
    with pytest.raises(DatasetError, match="lacks the mgll metadata"):
        open_dataset(tmp_path / "b")


def test_label_matrix_counts_only_positive_findings():
    rows = [
        [{"name": "Cardiomegaly", "status": 1}, {"name": "Pneumothorax", "status": -1}],
        [{"name": "Pleural Effusion", "status": 0}, {"name": "Unknown", "status": 1}],
        [],
    ]
    matrix = label_matrix(rows, VOCABULARY)
    assert matrix.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]


def test_text_id_is_stable_and_folds_case_and_spacing():
    assert text_id("Pleural  effusion") == text_id("pleural effusion ")
    assert text_id("pleural effusion") != text_id("cardiomegaly")
    assert text_id(None) == -1
    assert 0 <= text_id("x") < 2**63


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decode_image_grayscale_colour_and_16_bit():
    gray = decode_image(_png(np.full((40, 30), 255, np.uint8)), 32, train=False, mean=(0, 0, 0), std=(1, 1, 1))
    assert gray.shape == (3, 32, 32) and torch.allclose(gray, torch.ones_like(gray))
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[..., 0] = 255
    colour = decode_image(_png(rgb), 16, train=False, mean=(0, 0, 0), std=(1, 1, 1))
    assert colour[0].min() == 1.0 and colour[1].max() == 0.0
    deep = decode_image(_png(np.full((8, 8), 65535, np.uint16)), 8, train=False, mean=(0, 0, 0), std=(1, 1, 1))
    assert torch.allclose(deep, torch.ones_like(deep))


def test_decode_image_augmentation_is_seeded_and_rejects_bad_bytes():
    data = _png(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    one = decode_image(data, 32, train=True, rng=np.random.default_rng(1))
    again = decode_image(data, 32, train=True, rng=np.random.default_rng(1))
    other = decode_image(data, 32, train=True, rng=np.random.default_rng(2))
    assert torch.equal(one, again) and not torch.equal(one, other)
    with pytest.raises(CorruptImage):
        decode_image(data[:100], 32, train=False)
    with pytest.raises(CorruptImage):
        decode_image(b"", 32, train=False)


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
    stream = ParquetImageText(info, TEXTS, image_size=16, epochs=1, shuffle_buffer=0, train=False)
    loader = build_loader(stream, Collator(str(default_text_folder())), batch_size=4, workers=2)
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
    assert all(torch.equal(a["pixel_values"], b["pixel_values"]) for a, b in zip(resumed, full[20:]))


def test_resume_by_batch_count_when_no_position_was_recorded(tmp_path):
    info = open_dataset(write_dataset(tmp_path, rows=24, row_group_size=8))
    full = _ids(ParquetImageText(info, TEXTS, image_size=16, epochs=2, seed=4))
    resumed = _ids(ParquetImageText(info, TEXTS, image_size=16, epochs=2, seed=4, batch_size=4, resume_batches=5))
    assert resumed == full[20:]


def test_other_split_and_empty_split(dataset):
    info = open_dataset(dataset)
    val = _ids(ParquetImageText(info, TEXTS, image_size=16, split="val", epochs=1))
    assert sorted(val) == [f"img-{i:05d}" for i in range(3, 40, 4)]
    assert _ids(ParquetImageText(info, TEXTS, image_size=16, split="test")) == []


def test_collator_tokenises_and_masks_missing_texts(dataset):
    info = open_dataset(dataset)
    samples = list(ParquetImageText(info, ["disease", "description", "explanation"], image_size=16, epochs=1, shuffle_buffer=0))[:8]
    batch = Collator(str(default_text_folder()), max_tokens=16)(samples)
    assert batch["pixel_values"].shape == (8, 3, 16, 16)
    assert batch["labels"].shape == (8, len(VOCABULARY))
    k, n, length = batch["input_ids"].shape
    assert (k, n) == (3, 8) and length <= 16
    expected_mask = [[t is not None for t in (s["texts"][g] for s in samples)] for g in range(3)]
    assert batch["text_mask"].tolist() == expected_mask
    assert ((batch["text_ids"] == -1) == ~batch["text_mask"]).all()
    disease = [s["texts"][0] for s in samples]
    first, twin = next((i, j) for i in range(8) for j in range(i + 1, 8) if disease[i] == disease[j])
    assert batch["text_ids"][0, first] == batch["text_ids"][0, twin]
