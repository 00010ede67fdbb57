"""The dataset contract, read from `schemas/dataset-v<N>.json`.

The JSON file is the single source of truth: the writer builds its Arrow schema and the Hugging Face
`datasets` features from it, `mgll validate` checks against it, and the trainer reads it to know which
columns to expect. Nothing here hard-codes a column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
CURRENT_VERSION = "1"

META_SCHEMA_VERSION = b"mgll.schema_version"
META_VOCABULARY = b"mgll.label_vocabulary"
META_GRANULARITIES = b"mgll.granularities"
META_PIPELINE = b"mgll.pipeline"
META_PIPELINE_HASH = b"mgll.pipeline_hash"
META_HUGGINGFACE = b"huggingface"  # where `datasets` looks for a Parquet file's Features
META_ITEMS = b"mgll.item_vocabulary"  # optional (1.3.0): every item an items_<granularity> column may hold
# Optional column: a lossy copy of `image` for fast training loaders (pipeline `image.training_format`).
TRAINING_IMAGE = "image_train"

_SCALARS = {
    "string": pa.string(),
    "binary": pa.binary(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    nullable: bool
    allowed: tuple[str, ...] | None = None
    # the column's type in datasets written by an earlier minor version (struct fields marked "since")
    older_types: tuple[pa.DataType, ...] = ()


def _feature(spec: Any) -> Any:
    """The `datasets` feature (its JSON form) of a contract type. A list is written in the one-element-list
    form, which every `datasets` release from 2.x on reads (4.x calls it `List`)."""
    if isinstance(spec, str):
        return {"dtype": spec, "_type": "Value"}
    if "struct" in spec:
        return {f["name"]: _feature(f["type"]) for f in spec["struct"]}
    if "list" in spec:
        return [_feature(spec["list"])]
    raise ValueError(f"unknown type in schema file: {spec!r}")


def _arrow_type(spec: Any, as_first_minor: bool = False) -> pa.DataType:
    """The Arrow type of a schema spec; `as_first_minor` leaves out struct fields a later minor version
    added (marked "since"), which is the type older datasets of the same major version carry."""
    if isinstance(spec, str):
        return _SCALARS[spec]
    if "struct" in spec:
        fields = [f for f in spec["struct"] if not (as_first_minor and "since" in f)]
        return pa.struct([pa.field(f["name"], _arrow_type(f["type"], as_first_minor)) for f in fields])
    if "list" in spec:
        return pa.list_(_arrow_type(spec["list"], as_first_minor))
    raise ValueError(f"unknown type in schema file: {spec!r}")


def _column(spec: dict[str, Any]) -> Column:
    current, first = _arrow_type(spec["type"]), _arrow_type(spec["type"], as_first_minor=True)
    return Column(spec["name"], current, bool(spec["nullable"]),
                  tuple(spec["allowed"]) if "allowed" in spec else None, () if first.equals(current) else (first,))


@cache
def contract(version: str = CURRENT_VERSION) -> dict[str, Any]:
    """The raw JSON contract for a schema major version."""
    path = SCHEMA_DIR / f"dataset-v{version}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def schema_version(version: str = CURRENT_VERSION) -> str:
    return contract(version)["version"]


def known_granularities(version: str = CURRENT_VERSION) -> list[str]:
    return list(contract(version)["granularities"])


def text_column(granularity: str, version: str = CURRENT_VERSION) -> str:
    return contract(version)["granularity_column_prefix"] + granularity


def item_column(granularity: str, version: str = CURRENT_VERSION) -> str:
    return contract(version)["granularity_items_prefix"] + granularity


def item_granularities(granularities: list[str], version: str = CURRENT_VERSION) -> list[str]:
    """The granularities, in order, that carry an optional items column (the report-derived ones)."""
    known = set(contract(version).get("item_granularities", ()))
    return [g for g in granularities if g in known]


def base_columns(version: str = CURRENT_VERSION) -> list[Column]:
    return [_column(c) for c in contract(version)["columns"]]


def columns(granularities: list[str], version: str = CURRENT_VERSION) -> list[Column]:
    """Every column of a dataset that carries these granularities, in file order."""
    unknown = sorted(set(granularities) - set(known_granularities(version)))
    if unknown:
        raise ValueError(f"unknown granularities {unknown}; known: {known_granularities(version)}")
    texts = [Column(text_column(g, version), pa.string(), True) for g in granularities]
    return base_columns(version) + texts


def huggingface_features(granularities: list[str], version: str = CURRENT_VERSION) -> dict[str, Any]:
    """The Hugging Face `datasets` Features (as `Features.to_dict()` writes them) of a dataset with these
    granularities: a column's `huggingface` entry in the contract names a special feature (`Image`),
    every other column maps type by type."""
    columns(granularities, version)  # refuses unknown granularities
    features = {
        c["name"]: {"_type": c["huggingface"]} if "huggingface" in c else _feature(c["type"])
        for c in contract(version)["columns"]
    }
    features.update({text_column(g, version): _feature("string") for g in granularities})
    return features


def arrow_schema(
    granularities: list[str],
    vocabulary: list[str],
    pipeline: str,
    version: str = CURRENT_VERSION,
    pipeline_hash: str = "",
    training_image: bool = False,
    item_vocabulary: list[str] | None = None,
) -> pa.Schema:
    """The Arrow schema of the data shards, with the contract's file metadata and the Hugging Face features
    attached; `training_image` adds the optional `image_train` column (the image's type and feature),
    `item_vocabulary` the optional `items_<granularity>` columns and the key listing every item.

    Every field is declared nullable, as `datasets` declares them: it applies a shard's features (the
    `Image` of `image`) only to fields equal to its own, nullability included. The contract's required
    columns are enforced by the writer (`required_columns`) and checked by `mgll validate`."""
    fields = [pa.field(c.name, c.type) for c in columns(granularities, version)]
    features = huggingface_features(granularities, version)
    if training_image:
        fields.append(pa.field(TRAINING_IMAGE, next(f.type for f in fields if f.name == "image")))
        features[TRAINING_IMAGE] = features["image"]
    if item_vocabulary is not None:
        for granularity in item_granularities(granularities, version):
            fields.append(pa.field(item_column(granularity, version), pa.list_(pa.string())))
            features[item_column(granularity, version)] = [_feature("string")]
    metadata = {
        META_SCHEMA_VERSION: schema_version(version).encode(),
        META_VOCABULARY: json.dumps(list(vocabulary)).encode(),
        META_GRANULARITIES: json.dumps(list(granularities)).encode(),
        META_PIPELINE: pipeline.encode(),
        META_PIPELINE_HASH: pipeline_hash.encode(),
        META_HUGGINGFACE: json.dumps({"info": {"features": features}}).encode(),
    }
    if item_vocabulary is not None:
        metadata[META_ITEMS] = json.dumps(list(item_vocabulary)).encode()
    return pa.schema(fields, metadata=metadata)


def required_columns(version: str = CURRENT_VERSION) -> list[str]:
    """The columns the contract says may never be null."""
    return [c.name for c in base_columns(version) if not c.nullable]


def rejects_schema(version: str = CURRENT_VERSION) -> pa.Schema:
    return pa.schema(
        [
            pa.field(c["name"], _arrow_type(c["type"]), nullable=bool(c["nullable"]))
            for c in contract(version)["rejects"]
        ]
    )


def read_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The contract's metadata keys decoded from a shard's schema (missing keys are absent)."""
    raw = schema.metadata or {}
    out: dict[str, Any] = {}
    if META_SCHEMA_VERSION in raw:
        out["schema_version"] = raw[META_SCHEMA_VERSION].decode()
    if META_VOCABULARY in raw:
        out["label_vocabulary"] = json.loads(raw[META_VOCABULARY])
    if META_GRANULARITIES in raw:
        out["granularities"] = json.loads(raw[META_GRANULARITIES])
    if META_PIPELINE in raw:
        out["pipeline"] = raw[META_PIPELINE].decode()
    if META_PIPELINE_HASH in raw:
        out["pipeline_hash"] = raw[META_PIPELINE_HASH].decode()
    if META_ITEMS in raw:
        out["item_vocabulary"] = json.loads(raw[META_ITEMS])
    if META_HUGGINGFACE in raw:
        try:
            out["huggingface_features"] = json.loads(raw[META_HUGGINGFACE])["info"]["features"]
        except (ValueError, KeyError, TypeError):
            out["huggingface_features"] = None
    return out
