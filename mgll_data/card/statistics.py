"""What a dataset card shows, gathered in one streaming pass over the shards' non-image columns.

Every count of rows, labels and texts is computed from the shards themselves (image bytes never read), not
copied from the manifest, so the card cannot disagree with the data it describes; only the build's
provenance (pipeline, hash, date, timings, licence) comes from the manifest.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mgll_data import dataset, schema

STATUS_NAMES = {1: "positive", 0: "negative", -1: "uncertain"}
SIZE_COLUMNS = ("height", "width", "original_height", "original_width")
DISTRIBUTION_COLUMNS = ("modality", "view_position", "body_part", "source_format", "channels")


@dataclass
class CardStats:
    """Everything the card shows, gathered in one streaming pass over the shards' non-image columns."""

    rows: int = 0
    shards: int = 0
    granularities: list[str] = field(default_factory=list)
    vocabulary: list[str] = field(default_factory=list)
    schema_version: str | None = None
    pipeline: str | None = None
    split_rows: Counter[str] = field(default_factory=Counter)
    split_patients: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    split_studies: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    labels: dict[str, dict[str, Counter[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Counter))
    )  # finding -> split -> status -> rows
    coverage: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    train_examples: dict[str, str] = field(default_factory=dict)
    any_examples: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))  # chunks, 0 = null
    distributions: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    image_formats: Counter[str] = field(default_factory=Counter)
    rejects: Counter[tuple[str, str]] = field(default_factory=Counter)
    manifest: dict[str, Any] = field(default_factory=dict)
    data_files: dict[str, str] = field(default_factory=dict)  # Hugging Face split -> glob, for the front matter

    def size_values(self, column: str) -> np.ndarray:
        chunks = self.sizes.get(column)
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)

    def example(self, granularity: str) -> str | None:
        """A text from a train row when there is one (the split users look at), else from any row."""
        return self.train_examples.get(granularity) or self.any_examples.get(granularity)

    def splits(self) -> list[str]:
        return dataset.ordered_splits(self.split_rows)


def collect(path: Path) -> CardStats:
    """Stream the shards (never the image bytes) and the rejects table into CardStats."""
    root = dataset.require_dataset(Path(path))
    stats = CardStats(manifest=dataset.read_manifest(root) or {})
    stats.shards = len(dataset.shard_paths(root))
    stats.data_files = dataset.split_file_patterns(root)
    declared = dataset.read_metadata(root)
    stats.granularities = list(declared.granularities)
    stats.vocabulary = list(declared.vocabulary)
    stats.schema_version = declared.schema_version
    stats.pipeline = declared.pipeline
    text_columns = [schema.text_column(g) for g in stats.granularities]
    columns = ["split", "patient_id", "study_id", "labels", "image.path", *SIZE_COLUMNS, *DISTRIBUTION_COLUMNS,
               *text_columns]
    for table in dataset.iter_row_groups(root, columns):
        _add_row_group(stats, table)
    rejects_path = root / dataset.REJECTS_FILE
    if rejects_path.is_file():
        rejects = pq.ParquetFile(rejects_path).read(columns=["stage", "reason"]).to_pylist()
        stats.rejects.update((r["stage"], r["reason"]) for r in rejects)
    return stats


def _counts(table: pa.Table, keys: list[str]) -> list[dict[str, Any]]:
    """Row counts per distinct combination of `keys` (nulls included as None)."""
    return table.group_by(keys).aggregate([([], "count_all")]).to_pylist()


def _add_row_group(stats: CardStats, table: pa.Table) -> None:
    """Aggregate one row group with Arrow group-bys: Python touches distinct values, not rows."""
    n = table.num_rows
    stats.rows += n
    names = set(table.column_names)
    split = pc.fill_null(table.column("split"), "(null)") if "split" in names else pa.chunked_array(
        [pa.array(["(none)"] * n, pa.string())]
    )
    for entry in _counts(pa.table({"split": split}), ["split"]):
        stats.split_rows[entry["split"]] += entry["count_all"]
    for key, target in (("patient_id", stats.split_patients), ("study_id", stats.split_studies)):
        if key in names:
            pairs = pa.table({"split": split, key: table.column(key)}).group_by(["split", key]).aggregate([])
            for s, value in zip(pairs.column("split").to_pylist(), pairs.column(key).to_pylist()):
                target[s].add(value)
    if "labels" in names:
        labels = table.column("labels").combine_chunks()
        flat = pc.list_flatten(labels)
        if len(flat):
            per_label = pa.table(
                {
                    "split": pc.take(split, pc.list_parent_indices(labels)),
                    "name": pc.struct_field(flat, "name"),
                    "status": pc.struct_field(flat, "status"),
                }
            )
            per_label = per_label.filter(pc.is_valid(per_label.column("name")))
            for entry in _counts(per_label, ["name", "split", "status"]):
                stats.labels[entry["name"]][entry["split"]][entry["status"]] += entry["count_all"]
    text_columns = {g: schema.text_column(g) for g in stats.granularities if schema.text_column(g) in names}
    if text_columns:
        counted = pa.table({"split": split, **{g: table.column(c) for g, c in text_columns.items()}})
        aggregated = counted.group_by("split").aggregate([(g, "count") for g in text_columns]).to_pylist()
        for entry in aggregated:
            for g in text_columns:
                stats.coverage[g][entry["split"]] += entry[f"{g}_count"]
    for g, column in text_columns.items():
        if g in stats.train_examples:
            continue
        values = table.column(column)
        in_train = pc.filter(values, pc.and_(pc.equal(split, "train"), pc.is_valid(values)))
        if len(in_train):
            stats.train_examples[g] = in_train[0].as_py()
        elif g not in stats.any_examples and values.null_count < n:
            stats.any_examples[g] = pc.drop_null(values)[0].as_py()
    for column in SIZE_COLUMNS:
        if column in names:
            stats.sizes[column].append(pc.fill_null(table.column(column), 0).to_numpy())
    for column in DISTRIBUTION_COLUMNS:
        if column in names:
            for entry in _counts(table.select([column]), [column]):
                value = entry[column]
                stats.distributions[column]["(missing)" if value is None else str(value)] += entry["count_all"]
    if "image" in names:
        paths = pc.struct_field(table.column("image"), "path")
        extensions = pc.utf8_upper(pc.struct_field(pc.extract_regex(paths, r"\.(?P<ext>[^./]+)$"), "ext"))
        for entry in _counts(pa.table({"ext": extensions}), ["ext"]):
            stats.image_formats[entry["ext"] or "(none)"] += entry["count_all"]


def label_counts(stats: CardStats, finding: str, split: str | None) -> dict[str, int]:
    """positive / negative / uncertain / unmentioned row counts of one finding in one split (None: all)."""
    splits = stats.splits() if split is None else [split]
    counts = Counter()
    for s in splits:
        counts.update(stats.labels[finding][s])
    total = sum(stats.split_rows[s] for s in splits)
    out = {name: counts[status] for status, name in STATUS_NAMES.items()}
    out["unmentioned"] = total - sum(out.values())
    return out


def findings(stats: CardStats) -> list[str]:
    """The vocabulary's findings, in its order, then any other name the labels hold."""
    return list(stats.vocabulary) + sorted(set(stats.labels) - set(stats.vocabulary))
