"""Reading a dataset folder as it sits on disk: its root, manifest, shards, row groups and file metadata.

Shared by the checks and by `mgll card`, so both read the same shards (temporary files of an interrupted
build excluded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from mgll_data.validate.report import NotADatasetError
from mgll_data.writer import DATA_DIR, MANIFEST_FILE

READ_BUFFER = 1 << 20  # stream column chunks instead of reading each whole: lower peak memory on image columns

# Each readable shard as (its path relative to the dataset root, the open file), in path order.
Shards = list[tuple[str, pq.ParquetFile]]


def require_dataset(path: Path) -> Path:
    """The dataset root, or NotADatasetError for a path that is no dataset folder at all."""
    root = Path(path)
    if not root.exists():
        raise NotADatasetError(f"{root} does not exist")
    if not root.is_dir():
        raise NotADatasetError(f"{root} is a file, not a dataset folder")
    if not (root / MANIFEST_FILE).is_file() and not (root / DATA_DIR).is_dir():
        raise NotADatasetError(f"{root} is not an mgll dataset (no {MANIFEST_FILE} and no {DATA_DIR}/ folder)")
    return root


def shards_on_disk(root: Path) -> list[Path]:
    """Every data shard a reader globbing `data/**/*.parquet` would pick up (temporary files excluded)."""
    data = root / DATA_DIR
    if not data.is_dir():
        return []
    return sorted(p for p in data.rglob("*.parquet") if not p.name.startswith("."))


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest as a dict, or None when it is missing or not a JSON object."""
    try:
        manifest = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def iter_row_groups(root: Path, columns: list[str]) -> Iterator[pa.Table]:
    """The requested columns (those present) of every row group of every shard, one group at a time."""
    for path in shards_on_disk(root):
        shard = pq.ParquetFile(path, buffer_size=READ_BUFFER)
        names = set(shard.schema_arrow.names)
        wanted = [c for c in columns if c.split(".", 1)[0] in names]
        for group in range(shard.num_row_groups):
            yield shard.read_row_group(group, columns=wanted)


@dataclass
class Metadata:
    """What a shard's file metadata declares, decoded; problems are listed rather than raised."""

    values: dict[str, Any]
    problems: list[str]


def decode_metadata(arrow_schema: pa.Schema, required: list[str]) -> Metadata:
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
    return Metadata(values, problems)
