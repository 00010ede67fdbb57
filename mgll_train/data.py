"""A built mgll dataset as the trainer reads it: the shards checked against the contract once, before any
worker starts (`open_dataset` -> `DatasetInfo`, one-line `DatasetError`s), the rows per split, the image
column to decode, and what a row's labels and texts become for the loss (the label matrix, text ids).

Reading the folder goes through `mgll_data.dataset`; streaming samples and batches out of it is `stream`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import torch

from mgll_data import dataset, schema


class DatasetError(Exception):
    """A dataset folder the trainer cannot read (message is one line)."""


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
    # every item an items_<granularity> column may hold (schema 1.3); empty for datasets without items
    item_vocabulary: tuple[str, ...] = ()


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
    rebuild = f"(written under schema {meta['schema_version']}; rebuild it with `mgll build --overwrite`)"
    missing = [c.name for c in expected if c.name not in names]
    if missing:
        raise DatasetError(f"shard {shard.name} is missing the columns {missing} {rebuild}")
    # an earlier minor version's type is fine: the trainer reads no field that a later minor version added
    wrong = [c.name for c in expected if not any(arrow.field(c.name).type.equals(t) for t in (c.type, *c.older_types))]
    if wrong:
        raise DatasetError(f"shard {shard.name} has columns of the wrong type: {wrong} {rebuild}")
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
        item_vocabulary=_item_vocabulary(shards, first_meta),
    )


def _item_vocabulary(shards: tuple[Path, ...], meta: dict[str, Any]) -> tuple[str, ...]:
    """The dataset's item vocabulary when every shard has the item columns of its granularities, else ()."""
    vocabulary = tuple(meta.get("item_vocabulary") or ())
    wanted = [schema.item_column(g) for g in schema.item_granularities(list(meta["granularities"]))]
    if not vocabulary or not wanted:
        return ()
    everywhere = all(set(wanted) <= set(pq.ParquetFile(s).schema_arrow.names) for s in shards)
    return vocabulary if everywhere else ()


def split_counts(info: DatasetInfo) -> dict[str, int]:
    """Rows per split: from the manifest's `splits` when they cover every row (what `mgll build` writes, so
    start-up reads no shard), else from the `split` column (no image bytes are read, but every shard is)."""
    splits = (dataset.read_manifest(info.root) or {}).get("splits")
    if isinstance(splits, dict) and sum(int(n) for n in splits.values()) == info.num_rows:
        return {str(name): int(n) for name, n in splits.items()}
    table = pads.dataset([str(s) for s in info.shards], format="parquet").to_table(columns=["split"])
    counts = table.column("split").value_counts().to_pylist()
    return {c["values"]: int(c["counts"]) for c in counts}


def image_column(info: DatasetInfo, requested: str = "auto") -> str:
    """The column the loader decodes: "auto" takes the training copy (`image_train`, JPEG, written when the
    pipeline sets image.training_format) when every shard has it, else the archival `image`."""
    if requested not in ("auto", "image", schema.TRAINING_IMAGE):
        raise DatasetError(f"image column must be auto, image or {schema.TRAINING_IMAGE}, got {requested!r}")
    everywhere = all(schema.TRAINING_IMAGE in pq.ParquetFile(s).schema_arrow.names for s in info.shards)
    if requested == schema.TRAINING_IMAGE and not everywhere:
        raise DatasetError(
            f"the dataset has no {schema.TRAINING_IMAGE} column in every shard; "
            "build it with image.training_format: jpeg"
        )
    if requested == "auto":
        return schema.TRAINING_IMAGE if everywhere else "image"
    return requested


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
