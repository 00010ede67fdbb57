"""Streaming image-text batches out of a built mgll dataset (its shards, opened by `data.open_dataset`).

The stream is cut by Parquet row group, and each row group belongs to exactly one (rank, worker) slot per
epoch, so no image is seen twice in an epoch however many GPUs and loader workers read it. Every random
choice (row-group order, shuffle buffer, augmentation) is seeded from (seed, slot, epoch or sample index),
which makes the stream reproducible and lets `--resume` skip to where a run stopped without decoding the
skipped images.

Per-sample work is kept to the decode and one resampling (`transform.load_pixels`); everything that can
be done once per row group is: the split filter (one small column read first), the label matrix, the
text ids and the tokenisation of each distinct text. The collator hands each distinct token sequence of
a batch to the model once (`text_index` points every sample and granularity at its row), with 8-bit
pixels and the views' draws, which `transform.finish_batch` applies on the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mgll_data import dataset, schema
from mgll_train.data import DatasetError, DatasetInfo, label_matrix, text_id
from mgll_train.transform import CorruptImage, load_pixels, stack_pixels, view_tensor


class UndecodableShare(DatasetError):
    """A loader slot read its whole share of the split once and not one image decoded."""


@dataclass(frozen=True)
class Unit:
    """A slice of the data one slot reads: a row group, or every `parts`-th row of one when row groups are few."""

    shard: str
    row_group: int
    part: int = 0
    parts: int = 1


def row_group_units(info: DatasetInfo, slots: int, split: str | None = None) -> list[Unit]:
    """Row groups as read units; when there are fewer than slots, each is cut into row-strided parts. With
    `split`, shards whose name says they hold another split are left out (schema-1.0 shards mix splits)."""
    shards = [
        s for s in info.shards if split is None or (dataset.parse_shard_name(s.name) or (None,))[0] in (None, split)
    ]
    groups = [(str(s), i) for s in shards for i in range(pq.ParquetFile(s).metadata.num_row_groups)]
    parts = max(1, math.ceil(slots / max(1, len(groups))))
    return [Unit(shard, rg, p, parts) for shard, rg in groups for p in range(parts)]


class TextTokens:
    """Token ids of texts, from a tokenizer loaded lazily in each process (so it pickles into loader workers
    cheaply); `load` is a picklable callable returning a `transformers` tokenizer."""

    def __init__(self, load: Callable[[], Any], max_tokens: int = 128) -> None:
        self.load = load
        self.max_tokens = max_tokens
        self._tokenizer = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = self.load()
        return self._tokenizer

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tokenizer": None}

    def __call__(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(texts, truncation=True, max_length=self.max_tokens)["input_ids"]


@dataclass(frozen=True)
class Row:
    """One stored row as the stream carries it, before its image is decoded."""

    image_id: str
    image: bytes | None
    labels: torch.Tensor
    texts: tuple[str | None, ...]
    tokens: tuple[list[int] | None, ...]
    text_ids: tuple[int, ...]
    items: tuple[tuple[int, ...], ...] | None = None  # per granularity, item indices (None: no items)


class ParquetImageText(IterableDataset):
    """Samples {pixels, view, labels, texts, tokens, text_ids, image_id, corrupt_before, position} streamed
    from the shards; corrupt_before lists the ids of undecodable rows skipped just before this sample.

    With schema-1.3 item columns, samples also carry `items`: per granularity the indices of its items in
    the dataset's item vocabulary (empty for a granularity without items).

    `position` is (slot, rows of the stream handed out so far): what a checkpoint stores so a resumed run
    continues each slot's stream exactly (`resume_positions`), corrupt rows included.

    `train` turns augmentation on; `shuffle_buffer` > 1 shuffles row-group order and rows (0: file order).
    `epochs=None` streams forever (the trainer counts steps, so every DDP rank stops at the same step and
    none waits on a rank that ran out); `resume_batches` estimates the position when no exact one is known.
    Without `tokens` the samples carry texts but no token ids (the collator needs them).
    """

    def __init__(
        self,
        info: DatasetInfo,
        granularities: Sequence[str],
        *,
        image_size: int,
        tokens: TextTokens | None = None,
        image_column: str = "image",
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
    ) -> None:
        super().__init__()
        self.info = info
        self.granularities = tuple(granularities)
        self.image_size = image_size
        self.tokens = tokens
        self.image_column = image_column
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
        self.text_columns = [schema.text_column(g) for g in self.granularities]
        with_items = set(schema.item_granularities(list(self.granularities))) if info.item_vocabulary else set()
        self.item_columns = {g: schema.item_column(g) for g in self.granularities if g in with_items}
        self.item_index = {item: j for j, item in enumerate(info.item_vocabulary)}

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

    def _read_table(self, unit: Unit) -> tuple[pa.Table | None, np.ndarray]:
        """(the row group's columns, the indices of this unit's rows of the split). The split column is read
        first, so a row group without any of them costs no image read. Memory-mapped, threads off: a loader
        worker is one process per core already, and pyarrow's threads only fight the others."""
        with pq.ParquetFile(unit.shard, memory_map=True) as parquet:
            wanted = np.arange(parquet.metadata.row_group(unit.row_group).num_rows)
            if self.split:
                split = parquet.read_row_group(unit.row_group, columns=["split"], use_threads=False).column(0)
                wanted = np.flatnonzero(pc.equal(split, self.split).to_numpy(zero_copy_only=False))
            wanted = wanted[unit.part :: unit.parts]
            if len(wanted) == 0:
                return None, wanted
            columns = ["image_id", self.image_column, "labels", *self.text_columns, *self.item_columns.values()]
            return parquet.read_row_group(unit.row_group, columns=columns, use_threads=False), wanted

    def _read_unit(self, unit: Unit) -> list[Row]:
        """The unit's rows of this split, with labels, text ids and token ids made once per row group."""
        table, wanted = self._read_table(unit)
        if table is None:
            return []
        images = table.column(self.image_column).combine_chunks().field("bytes")
        small = table.drop_columns([self.image_column]).take(pa.array(wanted))
        labels = label_matrix(small.column("labels").to_pylist(), self.info.vocabulary)
        texts = list(zip(*(small.column(c).to_pylist() for c in self.text_columns))) or [()] * len(wanted)
        distinct = list(dict.fromkeys(t for row in texts for t in row if t is not None))
        ids = dict(zip(distinct, self.tokens(distinct))) if self.tokens is not None else {}
        hashes = {t: text_id(t) for t in distinct}
        items = self._item_rows(small) if self.item_columns else [None] * len(wanted)
        return [
            Row(
                image_id=image_id,
                image=images[int(index)].as_py(),
                labels=labels[i],
                texts=row,
                tokens=tuple(ids.get(t) if t is not None else None for t in row),
                text_ids=tuple(hashes[t] if t is not None else -1 for t in row),
                items=items[i],
            )
            for i, (index, image_id, row) in enumerate(zip(wanted, small.column("image_id").to_pylist(), texts))
        ]

    def _item_rows(self, table: pa.Table) -> list[tuple[tuple[int, ...], ...]]:
        """Per row, per granularity, the indices of its items (items outside the vocabulary are dropped)."""
        columns = {g: table.column(c).to_pylist() for g, c in self.item_columns.items()}
        empty = [()] * table.num_rows
        per_level = [
            [tuple(self.item_index[x] for x in (items or ()) if x in self.item_index) for items in columns[g]]
            if g in columns else empty
            for g in self.granularities
        ]
        return list(zip(*per_level))

    def _epoch_rows(self, units: list[Unit], slot: int, slots: int, epoch: int) -> Iterator[Row]:
        shuffled = self.shuffle_buffer > 1
        order = np.random.default_rng([self.seed, epoch]).permutation(len(units)) if shuffled else range(len(units))
        mine = [units[k] for n, k in enumerate(order) if n % slots == slot]
        rng = np.random.default_rng([self.seed, slot, epoch, 7])
        buffer: list[Row] = []
        for unit in mine:
            for row in self._read_unit(unit):
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

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, slots, worker_id = self._slot()
        skip = self._rows_to_skip(slot, worker_id, slots // self.world_size)
        units = row_group_units(self.info, slots, self.split)
        corrupt: list[str] = []
        index = epoch = 0
        while self.epochs is None or epoch < self.epochs:
            read = failed = 0
            for row in self._epoch_rows(units, slot, slots, epoch):
                index += 1
                read += 1
                if index <= skip:
                    continue
                rng = np.random.default_rng([self.seed, slot, index - 1]) if self.train else None
                try:
                    pixels, view = load_pixels(row.image or b"", self.image_size, rng)
                except CorruptImage:
                    corrupt.append(row.image_id)
                    failed += 1
                    continue
                yield {
                    "pixels": pixels,
                    "view": view,
                    "labels": row.labels,
                    "texts": row.texts,
                    "tokens": row.tokens,
                    "text_ids": row.text_ids,
                    "items": row.items,
                    "image_id": row.image_id,
                    "corrupt_before": corrupt,
                    "position": (slot, index),
                }
                corrupt = []
            if read == 0:
                return
            if failed == read:
                # Without this the slot would loop over undecodable rows forever and never yield a batch.
                raise UndecodableShare(
                    f"none of the {read} {self.split or 'dataset'} images of one loader slot's share decodes; "
                    "check the data with `mgll validate --full`"
                )
            epoch += 1


class Collator:
    """Stacks samples into a batch and lays out each distinct token sequence once.

    input_ids / attention_mask [U, L] hold the U distinct texts of the batch (coarse granularities repeat:
    "normal", "no finding"), text_index [K, N] points each sample's granularity at its row and text_mask
    [K, N] says which exist; a batch without any text gets one placeholder row, masked out, so the text
    tower always runs (DDP needs every parameter in the graph).
    """

    def __init__(self, pad_id: int = 0, items: int = 0) -> None:
        self.pad_id = pad_id
        self.items = items  # size of the dataset's item vocabulary; 0: the batch carries no items

    def _items(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """items [K, N, M] uint8: multi-hot per granularity over the item vocabulary (the same columns on
        every rank, so the loss can gather them)."""
        if not self.items:
            return {}
        multi_hot = torch.zeros((len(samples[0]["tokens"]), len(samples), self.items), dtype=torch.uint8)
        for i, sample in enumerate(samples):
            for k, indices in enumerate(sample["items"] or ()):
                multi_hot[k, i, list(indices)] = 1
        return {"items": multi_hot}

    def _texts(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        granularities, batch = len(samples[0]["tokens"]), len(samples)
        rows: dict[tuple[int, ...], int] = {}
        index = [[0] * batch for _ in range(granularities)]
        present = [[False] * batch for _ in range(granularities)]
        for i, sample in enumerate(samples):
            for k, ids in enumerate(sample["tokens"]):
                if ids is not None:
                    index[k][i] = rows.setdefault(tuple(ids), len(rows))
                    present[k][i] = True
        sequences = list(rows) or [(self.pad_id,)]
        length = max(len(seq) for seq in sequences)
        input_ids = np.full((len(sequences), length), self.pad_id, dtype=np.int64)
        attention = np.zeros((len(sequences), length), dtype=np.int64)
        for row, seq in enumerate(sequences):
            input_ids[row, : len(seq)] = seq
            attention[row, : len(seq)] = 1
        return {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention),
            "text_index": torch.tensor(index, dtype=torch.long),
            "text_mask": torch.tensor(present, dtype=torch.bool),
            "text_ids": torch.tensor(
                [[s["text_ids"][k] for s in samples] for k in range(granularities)], dtype=torch.long
            ),
        }

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        positions = [s["position"] for s in samples]
        return {
            "pixels": stack_pixels([s["pixels"] for s in samples]),
            "views": view_tensor([s["view"] for s in samples]),
            "labels": torch.stack([s["labels"] for s in samples]),
            **self._texts(samples),
            **self._items(samples),
            "image_ids": [s["image_id"] for s in samples],
            "corrupt": [image_id for s in samples for image_id in s["corrupt_before"]],
            "positions": {slot: max(p for q, p in positions if q == slot) for slot, _ in positions},
        }


def build_loader(
    dataset: ParquetImageText, collator: Collator, *, batch_size: int, workers: int, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader over the stream; batches are formed per worker, so each is one slot's rows, pinned for
    non-blocking copies when asked. The trainer's stream never ends, so one iterator (and its workers)
    lives for the whole run: `persistent_workers` would only keep them alive after it is dropped."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        collate_fn=collator,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=dataset.epochs is None,
        prefetch_factor=2 if workers > 0 else None,
    )
