"""The checks that need no row read: folder layout, manifest, shard listing, file metadata, column types.

They run first and decide what the row scan may trust: the contract version to check against and, per
shard, the columns present with the right type.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mgll_data import dataset, schema
from mgll_data.dataset import DATA_DIR, MANIFEST_FILE, READ_BUFFER
from mgll_data.validate.reading import Shards, decode_metadata
from mgll_data.validate.report import EXAMPLES, Recorder, examples, plural

MANIFEST_KEYS = (
    "schema_version",
    "tool_version",
    "pipeline",
    "created",
    "engine",
    "workers",
    "inputs",
    "rows",
    "rejects",
    "rejects_by_reason",
    "splits",
    "label_vocabulary",
    "granularities",
    "shards",
    "timings",
)

# Per shard name, the contract columns present with the right type: the only ones checked row by row.
UsableColumns = dict[str, dict[str, schema.Column]]


def normalise_type(type_: pa.DataType) -> tuple[pa.DataType, bool]:
    """The type with large_* variants mapped to their 32-bit-offset forms and nested nullability dropped,
    plus whether anything was mapped: readers accept both, the contract names the small ones."""
    if pa.types.is_large_string(type_):
        return pa.string(), True
    if pa.types.is_large_binary(type_):
        return pa.binary(), True
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        value, mapped = normalise_type(type_.value_type)
        return pa.list_(value), mapped or pa.types.is_large_list(type_)
    if pa.types.is_struct(type_):
        children = [(type_.field(i).name, *normalise_type(type_.field(i).type)) for i in range(type_.num_fields)]
        return pa.struct([(name, t) for name, t, _ in children]), any(m for _, _, m in children)
    return type_, False


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def _contract_known(version: str) -> bool:
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        return False
    try:
        schema.contract(_major(version))
    except (OSError, ValueError):
        return False
    return True


def check_layout_and_manifest(root: Path, out: Recorder) -> dict[str, Any] | None:
    """The data/ folder and the manifest's keys and value types; the manifest, or None when unusable."""
    path = root / MANIFEST_FILE
    manifest = None
    if not path.is_file():
        out.error("manifest", f"{MANIFEST_FILE} is missing")
    else:
        manifest = dataset.read_manifest(root)
        if manifest is None:
            out.error("manifest", f"{MANIFEST_FILE} is not a JSON object")
    if not (root / DATA_DIR).is_dir():
        out.error("layout", f"{DATA_DIR}/ folder is missing")
    stale = [dataset.relative_name(root, p) for p in dataset.temporary_files(root)]
    if stale:
        out.warn("layout", f"{plural(len(stale), 'temporary file')} left by an interrupted build"
                 f"{examples(stale)}")
    out.passed("layout", f"{DATA_DIR}/ folder present")
    if manifest is None:
        return None
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        out.error("manifest", f"{MANIFEST_FILE} lacks keys: {', '.join(missing)}")
    for key in ("inputs", "rows", "rejects", "workers"):
        if key in manifest and not (isinstance(manifest[key], int) and not isinstance(manifest[key], bool)
                                    and manifest[key] >= 0):
            out.error("manifest", f"{MANIFEST_FILE} '{key}' is not a non-negative integer")
    for key in ("splits", "rejects_by_reason", "pipeline", "timings"):
        if key in manifest and not isinstance(manifest[key], dict):
            out.error("manifest", f"{MANIFEST_FILE} '{key}' is not an object")
    for key in ("shards", "label_vocabulary", "granularities"):
        if key in manifest and not isinstance(manifest[key], list):
            out.error("manifest", f"{MANIFEST_FILE} '{key}' is not a list")
    version = manifest.get("schema_version")
    if isinstance(version, str) and not _contract_known(version):
        out.error("manifest", f"{MANIFEST_FILE} schema_version {version} is unknown to this tool "
                              f"(knows {schema.schema_version()})")
    out.passed("manifest", f"{MANIFEST_FILE} has every key ({len(MANIFEST_KEYS)})")
    return manifest


def check_shards(root: Path, manifest: dict[str, Any] | None, out: Recorder) -> Shards:
    """The shards on disk against the manifest's listing, each opened, all with one schema; the readable
    ones."""
    on_disk = {dataset.relative_name(root, p): p for p in dataset.data_files(root)}
    listed = manifest.get("shards") if manifest else None
    if isinstance(listed, list):
        names = [s for s in listed if isinstance(s, str)]
        outside = [s for s in names if PurePosixPath(s).is_absolute() or ".." in PurePosixPath(s).parts]
        if outside or len(names) != len(listed):
            out.error("shards", f"manifest lists {plural(len(outside) + len(listed) - len(names), 'shard')} "
                                f"that are not relative paths inside the dataset{examples(outside)}")
        missing = sorted(s for s in names if s not in on_disk and s not in outside)
        extra = sorted(set(on_disk) - set(names))
        if missing:
            out.error("shards", f"{plural(len(missing), 'shard')} listed in the manifest missing on disk"
                                f"{examples(missing)}")
        if extra:
            out.error("shards", f"{plural(len(extra), 'shard')} on disk not listed in the manifest"
                                f"{examples(extra)}")
        duplicated = sorted(s for s, n in Counter(names).items() if n > 1)
        if duplicated:
            out.error("shards", f"manifest lists a shard twice{examples(duplicated)}")
    opened: Shards = []
    for name, path in on_disk.items():
        try:
            opened.append((name, pq.ParquetFile(path, buffer_size=READ_BUFFER)))
        except (OSError, pa.ArrowException):
            out.error("shards", f"{name} is not a readable Parquet file")
    if not on_disk:
        out.warn("shards", f"no data shards in {DATA_DIR}/ (every input rejected?)")
    if len(opened) > 1:
        first_name, first = opened[0]
        for name, shard in opened[1:]:
            if not shard.schema_arrow.equals(first.schema_arrow, check_metadata=True):
                out.error("shards", f"{name} has a different schema from {first_name}: "
                                    f"{_schema_difference(first.schema_arrow, shard.schema_arrow)}")
    out.stats["shards"] = len(on_disk)
    out.stats["row_groups"] = sum(s.num_row_groups for _, s in opened)
    listing = "all listed in the manifest" if isinstance(listed, list) else "no manifest listing to compare"
    out.passed("shards", f"{plural(len(opened), 'shard')} on disk, {listing}, one schema")
    return opened


def _schema_difference(a: pa.Schema, b: pa.Schema) -> str:
    if a.names != b.names:
        only_a = [n for n in a.names if n not in b.names]
        only_b = [n for n in b.names if n not in a.names]
        parts = []
        if only_a:
            parts.append(f"lacks {', '.join(only_a[:EXAMPLES])}")
        if only_b:
            parts.append(f"adds {', '.join(only_b[:EXAMPLES])}")
        return "; ".join(parts) or "columns in another order"
    for fa, fb in zip(a, b):
        if not fa.type.equals(fb.type):
            return f"column '{fa.name}' is {fb.type} instead of {fa.type}"
    return "file metadata differs"


def check_metadata(
    shards: Shards, manifest: dict[str, Any] | None, out: Recorder
) -> tuple[str | None, dict[str, Any]]:
    """Decode every shard's file metadata; return the contract major version to check against and the
    metadata of the first shard (the reference the others were compared with)."""
    required = list(schema.contract()["metadata_keys"])
    reference: dict[str, Any] = {}
    problems: Counter[str] = Counter()
    for i, (_, shard) in enumerate(shards):
        decoded = decode_metadata(shard.schema_arrow, required)
        problems.update(decoded.problems)
        if i == 0:
            reference = decoded.values
    if not shards:
        out.skip("metadata", "no readable shards")
    for problem, n in sorted(problems.items()):
        out.error("metadata", f"{problem} in {n} of {plural(len(shards), 'shard')}")
    version = reference.get("mgll.schema_version") or (manifest or {}).get("schema_version")
    out.stats["schema_version"] = version
    manifest_pipeline = (manifest or {}).get("pipeline")
    out.stats["pipeline"] = reference.get("mgll.pipeline") or (
        manifest_pipeline.get("name") if isinstance(manifest_pipeline, dict) else None
    )
    contract_version: str | None = None
    if isinstance(version, str):
        if not _contract_known(version):
            out.error("metadata", f"schema version {version} is unknown to this tool "
                                  f"(knows {schema.schema_version()}); columns not checked")
        else:
            contract_version = _major(version)
            known = schema.schema_version(contract_version)
            if _version_tuple(version) > _version_tuple(known):
                out.warn("metadata", f"schema version {version} is newer than this tool's {known}")
    elif shards:
        contract_version = schema.CURRENT_VERSION
    vocabulary = reference.get("mgll.label_vocabulary")
    if vocabulary is not None:
        repeated = sorted(n for n, c in Counter(vocabulary).items() if c > 1)
        if repeated:
            out.error("metadata", f"mgll.label_vocabulary repeats names{examples(repeated)}")
        if not vocabulary:
            out.warn("metadata", "mgll.label_vocabulary is empty: no labels can be stored")
    granularities = reference.get("mgll.granularities")
    if granularities is not None:
        repeated = sorted(g for g, c in Counter(granularities).items() if c > 1)
        if repeated:
            out.error("metadata", f"mgll.granularities repeats names{examples(repeated)}")
    if granularities is not None and contract_version is not None:
        unknown = sorted(set(granularities) - set(schema.known_granularities(contract_version)))
        if unknown:
            out.error("metadata", f"mgll.granularities names unknown granularities{examples(unknown)}")
    out.passed("metadata", f"keys present ({', '.join(required)}); schema version {version} known")
    return contract_version, reference


def declared_granularities(
    metadata: dict[str, Any], manifest: dict[str, Any] | None, contract_version: str | None
) -> list[str]:
    """The known granularities the shards' metadata declares (else the manifest's), once each, in order."""
    declared = metadata.get("mgll.granularities")
    if declared is None and manifest and isinstance(manifest.get("granularities"), list):
        declared = manifest["granularities"]
    known = schema.known_granularities(contract_version or schema.CURRENT_VERSION)
    return [g for g in dict.fromkeys(declared or []) if g in known]


def check_columns(
    shards: Shards, contract_version: str | None, metadata: dict[str, Any], out: Recorder
) -> UsableColumns:
    """Per shard, the contract columns that are present with the right type: only those are checked
    row by row (a wrong type is reported here once, not as a cascade of confusing value errors)."""
    usable: UsableColumns = {}
    if not shards:
        out.skip("columns", "no readable shards")
        return usable
    if contract_version is None:
        out.skip("columns", "no known schema version to check columns against")
        return {name: {} for name, _ in shards}
    granularities = declared_granularities(metadata, None, contract_version)
    expected = schema.columns(granularities, contract_version)
    prefix = schema.text_column("", contract_version)
    problems: dict[str, list[str]] = defaultdict(list)
    large: set[str] = set()
    for name, shard in shards:
        arrow_schema = shard.schema_arrow
        usable[name] = {}
        for column in expected:
            index = arrow_schema.get_field_index(column.name)
            if index < 0:
                problems[f"missing column '{column.name}'"].append(name)
                continue
            actual, mapped = normalise_type(arrow_schema.field(index).type)
            if not any(actual.equals(t) for t in (column.type, *column.older_types)):
                problems[f"column '{column.name}' is {arrow_schema.field(index).type}, expected {column.type}"
                         ].append(name)
                continue
            if mapped:
                large.add(column.name)
            usable[name][column.name] = column
        declared = {c.name for c in expected}
        for field_ in arrow_schema:
            if field_.name.startswith(prefix) and field_.name not in declared:
                problems[f"column '{field_.name}' is not declared in mgll.granularities"].append(name)
        repeated = sorted(n for n, c in Counter(arrow_schema.names).items() if c > 1)
        for column_name in repeated:
            problems[f"column '{column_name}' appears twice"].append(name)
    for problem, names in problems.items():
        where = f" (in {len(names)} of {len(shards)} shards)" if len(shards) > 1 else ""
        out.error("columns", problem + where)
    for column_name in sorted(large):
        out.warn("columns", f"'{column_name}' uses a 64-bit-offset (large_*) Arrow type; the contract "
                            "names the 32-bit one (readers accept both)")
    extra = {f.name for _, s in shards for f in s.schema_arrow} - {c.name for c in expected}
    out.stats["extra_columns"] = sorted(c for c in extra if not c.startswith(prefix))
    out.passed("columns", f"all {len(expected)} contract columns present with the right types")
    return usable
