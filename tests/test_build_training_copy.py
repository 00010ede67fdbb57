"""The optional training copy: `image.training_format: jpeg` stores `image_train` (JPEG q95 of the same
pixels) next to the lossless `image`, and the trainer's loader reads it when every shard has it."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from mgll_data.build import build_dataset
from mgll_data.demo import write_demo_export
from mgll_data.pipeline import PIPELINE_DIR, PipelineError, from_dict
from mgll_data.validate import validate_dataset
from mgll_train.data import DatasetError, image_column, open_dataset
from mgll_train.stream import ParquetImageText


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("copy")
    write_demo_export(root / "export", studies=4, seed=5, progress=False)
    raw = yaml.safe_load((PIPELINE_DIR / "mimic-cxr.yaml").read_text())
    raw["image"]["training_format"] = "jpeg"
    (root / "train-copy.yaml").write_text(yaml.safe_dump(raw))
    build_dataset(root / "export", root / "with", root / "train-copy.yaml", salt_file=root / "salt", progress=False)
    build_dataset(root / "export", root / "without", "mimic-cxr", salt_file=root / "salt", progress=False)
    return root


def test_the_copy_is_a_jpeg_of_the_same_pixels(built):
    table = pq.read_table(built / "with" / "data", columns=["image_id", "image", "image_train"])
    assert table.num_rows > 0
    for row in table.to_pylist():
        png = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])), dtype=float)
        jpeg = Image.open(io.BytesIO(row["image_train"]["bytes"]))
        assert jpeg.format == "JPEG" and row["image_train"]["path"] == f"{row['image_id']}.jpg"
        assert np.abs(np.asarray(jpeg, dtype=float) - png).mean() < 2.0
    without = pq.read_table(built / "without" / "data")
    assert "image_train" not in without.column_names
    assert without.column("image").to_pylist() == table.column("image").to_pylist()


def test_a_dataset_with_the_copy_still_validates(built):
    report = validate_dataset(built / "with", full=True)
    assert report.ok, report.errors


def test_the_loader_takes_the_copy_when_every_shard_has_it(built):
    with_copy, without = open_dataset(built / "with"), open_dataset(built / "without")
    assert image_column(with_copy) == "image_train" and image_column(with_copy, "image") == "image"
    assert image_column(without) == "image"
    with pytest.raises(DatasetError, match="no image_train column"):
        image_column(without, "image_train")
    samples = list(
        ParquetImageText(with_copy, ["disease"], image_size=32, image_column="image_train", epochs=1, split=None)
    )
    assert len(samples) == with_copy.num_rows


def test_only_jpeg_is_a_training_format():
    with pytest.raises(PipelineError, match="image.training_format must be jpeg"):
        from_dict({"source": {"layout": "mimic-cxr"}, "image": {"training_format": "webp"}})


def test_hugging_face_decodes_the_copy_as_an_image(built, tmp_path):
    import datasets

    loaded = datasets.load_dataset(str(built / "with"), cache_dir=str(tmp_path))
    split = next(iter(loaded.values()))
    assert isinstance(split.features["image_train"], datasets.Image)
    assert split[0]["image_train"].format == "JPEG" and split[0]["image_train"].size == split[0]["image"].size
