"""The Hugging Face layout: shards named by split, and the `datasets` features written into every shard.

`datasets.load_dataset(DATASET)` takes each shard's split from its file name and its column types from the
shard's `huggingface` metadata, so a shard named for no split lands in train, and one without features
gives `image` as a plain struct instead of an Image. A schema-1.0 dataset (one set of shards for every
split, no features) still reads everywhere else: for it these are warnings, not errors.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from mgll_data import dataset, schema
from mgll_data.validate.reading import Shards
from mgll_data.validate.report import Recorder, examples, plural, verb

PER_SPLIT_SINCE = (1, 1)  # the schema version that laid shards out per split, with features


def check_huggingface(data_files: list[str], shards: Shards, granularities: list[str], version: str | None,
                      out: Recorder) -> None:
    """Shard names (every data file, readable or not) and the features of every readable shard."""
    report = out.error if _per_split(version) else out.warn
    parsed = {name: dataset.parse_shard_name(PurePosixPath(name).name) for name in data_files}
    unnamed = sorted(name for name, p in parsed.items() if p is None or PurePosixPath(name).parent.name !=
                     dataset.DATA_DIR)
    if unnamed:
        n = len(unnamed)
        out.error("huggingface", f"{plural(n, 'data file')} {verb(n, 'is', 'are')} not named <split>-NNNNN.parquet "
                                 f"directly in {dataset.DATA_DIR}/: loaders would put {verb(n, 'it', 'them')} in "
                                 f"the wrong split{examples(unnamed)}")
    legacy = sorted(name for name, p in parsed.items() if p is not None and p[0] is None)
    if legacy:
        report("huggingface", f"{plural(len(legacy), 'shard')} in the schema-1.0 layout (every split in one set "
                              f"of shards): the Hugging Face loader sees one split; rebuild with --overwrite"
                              f"{examples(legacy)}")
    expected = schema.huggingface_features(granularities)
    problems: dict[str, list[str]] = {}
    for name, shard in shards:
        problem = _features_problem(shard.schema_arrow.metadata or {}, shard.schema_arrow.names, expected)
        if problem:
            problems.setdefault(problem, []).append(name)
    for problem, names in sorted(problems.items()):
        report("huggingface", f"{problem} in {len(names)} of {plural(len(shards), 'shard')}{examples(names)}")
    out.passed("huggingface", "shards named by split, each with the Hugging Face features of the contract "
                              "(image: Image)")


def _features_problem(metadata: dict[bytes, bytes], columns: list[str], expected: dict[str, Any]) -> str | None:
    raw = metadata.get(schema.META_HUGGINGFACE)
    if raw is None:
        return f"no '{schema.META_HUGGINGFACE.decode()}' features metadata (image loads as a plain struct)"
    try:
        features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return "unreadable Hugging Face features metadata"
    if not isinstance(features, dict) or set(features) != set(columns):
        return "Hugging Face features that do not name the shard's columns (loading fails)"
    wrong = sorted(name for name, feature in expected.items() if name in features and features[name] != feature)
    if wrong:
        return f"Hugging Face features that differ from the contract's for {', '.join(wrong)}"
    return None


def _per_split(version: str | None) -> bool:
    if not isinstance(version, str):
        return True
    try:
        return tuple(int(p) for p in version.split(".")[:2]) >= PER_SPLIT_SINCE
    except ValueError:
        return True
