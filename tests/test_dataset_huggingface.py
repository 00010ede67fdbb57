"""A built dataset is a Hugging Face dataset: `datasets.load_dataset` finds the three splits by the shards'
names and decodes `image` as an `Image` from the features every shard carries, with no cast."""

from __future__ import annotations

import hashlib
from pathlib import Path

import datasets
import huggingface_hub
import pytest
import yaml

from mgll_data import dataset
from mgll_data.build import build_dataset
from mgll_data.demo import write_demo_export
from mgll_data.pipeline import PIPELINE_DIR

HF_SPLITS = {"train": "train", "validation": "val", "test": "test"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A small build whose salt (fixed) and ratios put patients in all three splits."""
    root = tmp_path_factory.mktemp("hf")
    write_demo_export(root / "export", studies=3, seed=11, progress=False)
    pipeline = yaml.safe_load((PIPELINE_DIR / "mimic-cxr.yaml").read_text())
    pipeline["split"] = {"train": 0.4, "val": 0.3, "test": 0.3}
    pipeline["image"]["size"] = 64
    (root / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    (root / "salt").write_text(hashlib.sha256(b"mgll-test-salt-5").hexdigest() + "\n")
    summary = build_dataset(root / "export", root / "ds", root / "pipeline.yaml", salt_file=root / "salt",
                            progress=False)
    assert set(summary.splits) == set(dataset.SPLITS), f"the fixture needs all three splits: {summary.splits}"
    return root / "ds"


def check_splits_and_images(loaded, out: Path) -> None:
    manifest = dataset.read_manifest(out)
    assert set(loaded) == set(HF_SPLITS)
    for hf_split, split in HF_SPLITS.items():
        part = loaded[hf_split]
        assert isinstance(part.features["image"], datasets.Image), part.features["image"]
        assert part.num_rows == manifest["splits"][split]
        assert set(part["split"]) == {split}
        row = part[0]
        assert row["image"].size == (row["width"], row["height"])  # a decoded PIL image
        assert {label["status"] for r in part for label in r["labels"]} <= {
            1,
            0,
            -1,
            None,
        }  # None: blank under the uncertain policy


def test_load_dataset_on_the_folder_finds_three_splits_and_an_image_column(built: Path, tmp_path: Path) -> None:
    check_splits_and_images(datasets.load_dataset(str(built), cache_dir=str(tmp_path)), built)


def test_the_parquet_loader_on_the_data_folder_does_too(built: Path, tmp_path: Path) -> None:
    loaded = datasets.load_dataset("parquet", data_dir=str(dataset.data_dir(built)), cache_dir=str(tmp_path))
    check_splits_and_images(loaded, built)


def test_with_the_card_at_its_root_the_loader_reads_the_cards_configs_not_the_charts(built: Path, tmp_path: Path):
    from mgll_data.card import write_card

    readme = write_card(built)
    assert readme == built / dataset.CARD_FILE and list((built / dataset.CHARTS_DIR).glob("*.png"))
    check_splits_and_images(datasets.load_dataset(str(built), cache_dir=str(tmp_path)), built)
    card = huggingface_hub.DatasetCard.load(readme)  # the Hub's own parser of the front matter
    assert card.data.license == "other"
    assert {entry["split"] for entry in card.data.configs[0]["data_files"]} == set(HF_SPLITS)
