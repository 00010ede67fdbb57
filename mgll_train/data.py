"""Streaming image-text batches out of a built mgll dataset (`DATASET/data/*.parquet`).

The stream is cut by Parquet row group, and each row group belongs to exactly one (rank, worker) slot per
epoch, so no image is seen twice in an epoch however many GPUs and loader workers read it. Every random
choice (row-group order, shuffle buffer, augmentation) is seeded from (seed, slot, epoch or sample index),
which makes the stream reproducible and lets `--resume` skip to where a run stopped without decoding the
skipped images.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch
from PIL import Image, ImageFile
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mgll_data import dataset, schema

# A truncated PNG must fail loudly (and be counted), never decode as a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_LOCAL_FS = pafs.LocalFileSystem()
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DatasetError(Exception):
    """A dataset folder the trainer cannot read (message is one line)."""


class CorruptImage(ValueError):
    """Image bytes inside a shard that do not decode."""


@dataclass(frozen=True)
class DatasetInfo:
    root: Path
    shards: tuple[Path, ...]
    vocabulary: tuple[str, ...]
    granularities: tuple[str, ...]
    pipeline: str
    schema_version: str
    num_rows: int
    fingerprint: str


@dataclass(frozen=True)
class Unit:
    """A slice of the data one slot reads: a row group, or every `parts`-th row of one when row groups are few."""

    shard: str
    row_group: int
    part: int = 0
    parts: int = 1


def _check_shard_schema(shard: Path, arrow: pa.Schema) -> dict[str, Any]:
    meta = schema.read_metadata(arrow)
    missing_keys = [k for k in ("schema_version", "label_vocabulary", "granularities") if k not in meta]
    if missing_keys:
        raise DatasetError(f"shard {shard.name} lacks the mgll metadata {missing_keys}; rebuild it with `mgll build`")
    major = meta["schema_version"].split(".")[0]
    if major != schema.CURRENT_VERSION:
        raise DatasetError(
            f"shard {shard.name} has schema version {meta['schema_version']}; this trainer reads version "
            f"{schema.CURRENT_VERSION}.x"
        )
    try:
        expected = schema.columns(list(meta["granularities"]))
    except ValueError as exc:
        raise DatasetError(f"shard {shard.name}: {exc}") from None
    names = set(arrow.names)
    missing = [c.name for c in expected if c.name not in names]
    if missing:
        raise DatasetError(f"shard {shard.name} is missing the columns {missing}")
    wrong = [c.name for c in expected if not arrow.field(c.name).type.equals(c.type)]
    if wrong:
        raise DatasetError(f"shard {shard.name} has columns of the wrong type: {wrong}")
    return meta


def open_dataset(path: Path) -> DatasetInfo:
    """Check a dataset folder against the contract before any worker starts, so bad input fails in one line."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    shards = tuple(dataset.shard_paths(root))
    if not shards:
        raise DatasetError(f"no data shards in {dataset.data_dir(root)} (build the dataset with `mgll build`)")
    first_meta: dict[str, Any] | None = None
    rows = 0
    digest = hashlib.sha256()
    for shard in shards:
        try:
            parquet = pq.ParquetFile(shard)
        except (pa.ArrowException, OSError):
            raise DatasetError(f"shard {shard.name} is not a readable Parquet file") from None
        meta = _check_shard_schema(shard, parquet.schema_arrow)
        if first_meta is None:
            first_meta = meta
        elif (meta["label_vocabulary"], meta["granularities"]) != (
            first_meta["label_vocabulary"],
            first_meta["granularities"],
        ):
            raise DatasetError(f"shard {shard.name} has another vocabulary or granularity list than {shards[0].name}")
        rows += parquet.metadata.num_rows
        digest.update(f"{shard.name}:{shard.stat().st_size}:{parquet.metadata.num_rows};".encode())
    manifest = dataset.manifest_bytes(root)
    if manifest is not None:
        digest.update(manifest)
    assert first_meta is not None
    return DatasetInfo(
        root=root,
        shards=shards,
        vocabulary=tuple(first_meta["label_vocabulary"]),
        granularities=tuple(first_meta["granularities"]),
        pipeline=first_meta.get("pipeline", ""),
        schema_version=first_meta["schema_version"],
        num_rows=rows,
        fingerprint=digest.hexdigest()[:16],
    )


def split_counts(info: DatasetInfo) -> dict[str, int]:
    """Rows per split, from the `split` column only (cheap: no image bytes are read)."""
    table = pads.dataset([str(s) for s in info.shards], format="parquet").to_table(columns=["split"])
    counts = table.column("split").value_counts().to_pylist()
    return {c["values"]: int(c["counts"]) for c in counts}


def row_group_units(info: DatasetInfo, slots: int) -> list[Unit]:
    """Row groups as read units; when there are fewer than slots, each is cut into row-strided parts."""
    groups = [(str(s), i) for s in info.shards for i in range(pq.ParquetFile(s).metadata.num_row_groups)]
    parts = max(1, math.ceil(slots / max(1, len(groups))))
    return [Unit(shard, rg, p, parts) for shard, rg in groups for p in range(parts)]


def text_id(text: str | None) -> int:
    """A stable 63-bit id for a text so identical strings (after case and whitespace folding) share soft targets."""
    if text is None:
        return -1
    folded = " ".join(text.lower().split())
    return int.from_bytes(hashlib.blake2b(folded.encode("utf-8"), digest_size=8).digest(), "little") & (2**63 - 1)


def label_matrix(labels_column: Sequence[Sequence[dict[str, Any]] | None], vocabulary: Sequence[str]) -> torch.Tensor:
    """Multi-hot positives over the vocabulary: status 1 only, since uncertain (-1) is not evidence of a finding."""
    statuses, _ = dataset.label_matrix(labels_column, vocabulary)
    return torch.from_numpy(statuses == 1).to(torch.float32)


def _to_unit_float(img: Image.Image) -> Image.Image:
    """Grayscale of any bit depth as mode F in [0, 1], colour as RGB, so the geometry ops below work on both."""
    if img.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
        return img.convert("RGB")
    if img.mode == "LA":
        img = img.convert("L")
    array = np.asarray(img)
    if array.dtype == np.uint8:
        scale = 255.0
    elif array.dtype == np.uint16 or img.mode.startswith("I;16"):
        scale = 65535.0
    elif array.dtype == np.bool_:
        scale = 1.0
    else:
        scale = float(max(array.max(), 1))
    return Image.fromarray(array.astype(np.float32) / scale)


def _random_resized_crop(img: Image.Image, rng: np.random.Generator, scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3)):
    width, height = img.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return img.crop((left, top, left + w, top + h))
    return img


def decode_image(
    data: bytes,
    image_size: int,
    train: bool,
    *,
    rng: np.random.Generator | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """PNG/JPEG bytes to a normalised FloatTensor[3, H, W].

    Training augmentation is a random resized crop, a small rotation and brightness/contrast jitter; there is
    no horizontal flip because laterality (left/right findings, the heart's side) is part of the label.
    """
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
        img = _to_unit_float(img)
    except Exception as exc:  # PIL raises many unrelated types for bad bytes
        raise CorruptImage(f"image bytes do not decode ({type(exc).__name__})") from None
    if train:
        rng = rng or np.random.default_rng()
        img = _random_resized_crop(img, rng)
        angle = float(rng.uniform(-7.0, 7.0))
        img = img.rotate(angle, resample=Image.BILINEAR, fillcolor=0)
    img = img.resize((image_size, image_size), resample=Image.BILINEAR)
    array = np.asarray(img, dtype=np.float32)
    if img.mode == "RGB":
        array = array / 255.0
        pixels = torch.from_numpy(array.copy()).permute(2, 0, 1)
    else:
        pixels = torch.from_numpy(array.copy()).unsqueeze(0).expand(3, -1, -1).clone()
    if train:
        contrast = float(rng.uniform(0.8, 1.2))
        brightness = float(rng.uniform(0.8, 1.2))
        pixels = ((pixels - pixels.mean()) * contrast + pixels.mean()) * brightness
        pixels = pixels.clamp_(0.0, 1.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (pixels - mean_t) / std_t


class ParquetImageText(IterableDataset):
    """Samples {pixel_values, labels, texts, image_id, corrupt_before, position} streamed from the shards;
    corrupt_before lists the ids of undecodable rows skipped just before this sample.

    `position` is (slot, rows of the stream handed out so far): what a checkpoint stores so a resumed run
    continues each slot's stream exactly (`resume_positions`), corrupt rows included.

    `train` turns augmentation on; `shuffle_buffer` > 1 shuffles row-group order and rows (0: file order).
    `epochs=None` streams forever (the trainer counts steps, so every DDP rank stops at the same step and
    none waits on a rank that ran out); `resume_batches` estimates the position when no exact one is known.
    """

    def __init__(
        self,
        info: DatasetInfo,
        granularities: Sequence[str],
        *,
        image_size: int,
        split: str | None = "train",
        train: bool = True,
        shuffle_buffer: int = 256,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epochs: int | None = None,
        resume_batches: int = 0,
        resume_positions: dict[int, int] | None = None,
        batch_size: int = 1,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.info = info
        self.granularities = tuple(granularities)
        self.image_size = image_size
        self.split = split
        self.train = train
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epochs = epochs
        self.resume_batches = resume_batches
        self.resume_positions = dict(resume_positions or {})
        self.batch_size = batch_size
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.columns = ["image_id", "image", "labels"] + [schema.text_column(g) for g in self.granularities]

    def _slot(self) -> tuple[int, int, int]:
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        return self.rank * workers + worker_id, self.world_size * workers, worker_id if worker else 0

    def _rows_to_skip(self, slot: int, worker_id: int, workers: int) -> int:
        """Rows this slot already handed out: the exact stream position a checkpoint recorded when it has one
        (corrupt rows included), else estimated from consumed batches (the DataLoader takes workers in turn)."""
        if slot in self.resume_positions:
            return self.resume_positions[slot]
        batches = max(0, self.resume_batches - worker_id + workers - 1) // workers
        return batches * self.batch_size

    def _read_unit(self, unit: Unit) -> Iterator[tuple]:
        fragment = pads.ParquetFileFormat().make_fragment(unit.shard, filesystem=_LOCAL_FS, row_groups=[unit.row_group])
        condition = pads.field("split") == self.split if self.split else None
        table = fragment.to_table(columns=self.columns, filter=condition)
        if unit.parts > 1:
            table = table.take(np.arange(unit.part, table.num_rows, unit.parts))
        images = table.column("image").combine_chunks().field("bytes").to_pylist()
        ids = table.column("image_id").to_pylist()
        labels = table.column("labels").to_pylist()
        texts = [table.column(schema.text_column(g)).to_pylist() for g in self.granularities]
        for i in range(table.num_rows):
            yield ids[i], images[i], labels[i], tuple(t[i] for t in texts)

    def _raw_rows(self, slot: int, slots: int) -> Iterator[tuple]:
        units = row_group_units(self.info, slots)
        epoch = 0
        while self.epochs is None or epoch < self.epochs:
            shuffled = self.shuffle_buffer > 1
            order = np.random.default_rng([self.seed, epoch]).permutation(len(units)) if shuffled else range(len(units))
            mine = [units[k] for n, k in enumerate(order) if n % slots == slot]
            rng = np.random.default_rng([self.seed, slot, epoch, 7])
            buffer: list[tuple] = []
            produced = 0
            for unit in mine:
                for row in self._read_unit(unit):
                    produced += 1
                    if not shuffled:
                        yield row
                        continue
                    if len(buffer) < self.shuffle_buffer:
                        buffer.append(row)
                        continue
                    pick = int(rng.integers(len(buffer)))
                    buffer[pick], row = row, buffer[pick]
                    yield row
            rng.shuffle(buffer)
            yield from buffer
            if produced == 0:
                return
            epoch += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, slots, worker_id = self._slot()
        skip = self._rows_to_skip(slot, worker_id, slots // self.world_size)
        corrupt: list[str] = []
        for index, (image_id, data, labels, texts) in enumerate(self._raw_rows(slot, slots)):
            if index < skip:
                continue
            rng = np.random.default_rng([self.seed, slot, index]) if self.train else None
            try:
                pixels = decode_image(
                    data or b"", self.image_size, self.train, rng=rng, mean=self.mean, std=self.std
                )
            except CorruptImage:
                corrupt.append(image_id)
                continue
            yield {
                "pixel_values": pixels,
                "labels": label_matrix([labels], self.info.vocabulary)[0],
                "texts": texts,
                "image_id": image_id,
                "corrupt_before": corrupt,
                "position": (slot, index + 1),
            }
            corrupt = []


class Collator:
    """Stacks samples and tokenises every granularity's texts in the loader worker, not the training loop.

    The tokenizer is loaded lazily by folder so the collator pickles cheaply into worker processes.
    """

    def __init__(self, tokenizer_dir: str, max_tokens: int = 128) -> None:
        self.tokenizer_dir = tokenizer_dir
        self.max_tokens = max_tokens
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from mgll_train.model import load_tokenizer

            self._tokenizer = load_tokenizer(self.tokenizer_dir)
        return self._tokenizer

    def __getstate__(self) -> dict[str, Any]:
        return {"tokenizer_dir": self.tokenizer_dir, "max_tokens": self.max_tokens, "_tokenizer": None}

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        granularities = len(samples[0]["texts"])
        batch = len(samples)
        texts = [[s["texts"][k] for s in samples] for k in range(granularities)]
        flat = [t if t is not None else "" for column in texts for t in column]
        tokens = self.tokenizer(
            flat, padding="longest", truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        length = tokens["input_ids"].shape[-1]
        positions = [s["position"] for s in samples]
        return {
            "pixel_values": torch.stack([s["pixel_values"] for s in samples]),
            "labels": torch.stack([s["labels"] for s in samples]),
            "input_ids": tokens["input_ids"].view(granularities, batch, length),
            "attention_mask": tokens["attention_mask"].view(granularities, batch, length),
            "text_mask": torch.tensor([[t is not None for t in column] for column in texts], dtype=torch.bool),
            "text_ids": torch.tensor([[text_id(t) for t in column] for column in texts], dtype=torch.long),
            "image_ids": [s["image_id"] for s in samples],
            "corrupt": [image_id for s in samples for image_id in s["corrupt_before"]],
            "positions": {slot: max(p for q, p in positions if q == slot) for slot, _ in positions},
        }


def build_loader(
    dataset: ParquetImageText, collator: Collator, *, batch_size: int, workers: int, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader over the stream; batches are formed per worker, so each is one slot's rows."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        collate_fn=collator,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=dataset.epochs is None,
        persistent_workers=False,
        prefetch_factor=2 if workers > 0 else None,
    )

