"""Reading shards' file metadata as they are on disk, problems listed rather than raised."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# Each readable shard as (its path relative to the dataset root, the open file), in path order.
Shards = list[tuple[str, pq.ParquetFile]]


@dataclass
class DecodedMetadata:
    """What a shard's file metadata declares, decoded; problems are listed rather than raised."""

    values: dict[str, Any]
    problems: list[str]


def decode_metadata(arrow_schema: pa.Schema, required: list[str]) -> DecodedMetadata:
    """The shard's `mgll.*` metadata keys, the JSON lists parsed; a missing key or bad JSON is a problem."""
    raw = arrow_schema.metadata or {}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key in required:
        if key.encode() not in raw:
            problems.append(f"key {key} missing")
    for key, raw_value in raw.items():
        name = key.decode(errors="replace")
        if not name.startswith("mgll."):
            continue
        text = raw_value.decode(errors="replace")
        if name in ("mgll.label_vocabulary", "mgll.granularities"):
            try:
                parsed = json.loads(text)
            except ValueError:
                problems.append(f"{name} is not valid JSON")
                continue
            if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
                problems.append(f"{name} is not a JSON list of strings")
                continue
            values[name] = parsed
        else:
            values[name] = text
    return DecodedMetadata(values, problems)
