"""Check a built dataset folder against the contract in `schemas/`, before anyone trains on or shares it.

A dataset is checked as it sits on disk, independently of how it was built: a hand-edited shard, a killed
build or another tool's writer must all be caught. Shards are streamed one row group at a time (datasets
can hold millions of images), image bytes are hashed for every row but decoded only for a deterministic
sample unless `full=True`, and every problem becomes one line naming the check, the count and a few
example image ids (pseudonymous, so safe to print), never a traceback.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from mgll_data import schema
from mgll_data.writer import DATA_DIR, MANIFEST_FILE, REJECTS_FILE

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
REJECT_STAGES = ("sources", "imaging", "deid", "reports", "writer")
LABEL_STATUSES = (1, 0, -1)
CHANNELS_ALLOWED = (1, 3)
IMAGE_EXTENSIONS = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg")}
EXAMPLES = 3
READ_BUFFER = 1 << 20  # stream column chunks instead of reading each whole: lower peak memory on image columns

# Privacy smoke checks: strings that should not survive de-identification.
PRIVACY_PATTERNS = {
    "a DICOM UID": r"\b\d+(\.\d+){6,}\b",
    "a date": r"\b(19|20)\d\d[-/.](0?[1-9]|1[0-2])[-/.](0?[1-9]|[12]\d|3[01])\b"
    r"|\b(0?[1-9]|1[0-2])/(0?[1-9]|[12]\d|3[01])/((19|20)\d\d|\d\d)\b",
    "a DICOM person name (A^B)": r"\b[A-Za-z'-]+\^[A-Za-z'-]+",
}
PATH_PATTERN = r"(^|[\s'\"(=])(/[^\s/]+){2,}|\b[A-Za-z]:\\"
PSEUDONYM_PATTERN = r"^[a-z]+-[0-9a-f]{8,}$"

# The order checks are reported in; each appears once as "ok" when it found nothing.
CHECKS = (
    "layout",
    "manifest",
    "shards",
    "metadata",
    "columns",
    "nulls",
    "values",
    "labels",
    "splits",
    "image_ids",
    "images",
    "duplicates",
    "granularities",
    "rejects",
    "counts",
    "privacy",
)


class NotADatasetError(Exception):
    """The path is not a built dataset folder at all; the message is one line."""


@dataclass(frozen=True)
class Finding:
    check: str
    level: str  # "ok" | "error" | "warn" | "skip"
    message: str


@dataclass
class ValidationReport:
    dataset: str
    findings: list[Finding] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        return [f"{f.check}: {f.message}" for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[str]:
        return [f"{f.check}: {f.message}" for f in self.findings if f.level == "warn"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "ok": self.ok,
            "errors": self.errors,
            "warnings": self.warnings,
            "checks": [{"check": f.check, "level": f.level, "message": f.message} for f in self.findings],
            "stats": self.stats,
        }

    def summary_lines(self) -> list[str]:
        """One line per check (ok / ERROR / warn / skip), the coverage table, then the verdict."""
        stats = self.stats
        lines = [
            f"mgll validate {self.dataset}: {stats.get('rows', 0)} rows in {stats.get('shards', 0)} shard(s), "
            f"{stats.get('rejects', 0)} rejects, schema {stats.get('schema_version', '?')}, "
            f"pipeline {stats.get('pipeline', '?')}"
        ]
        tags = {"ok": "ok", "error": "ERROR", "warn": "warn", "skip": "skip"}
        for f in self.findings:
            lines.append(f"  {tags[f.level]:<6} {f.check:<14} {f.message}")
        coverage = stats.get("coverage", {})
        if coverage:
            splits = sorted({s for c in coverage.values() for s in c["by_split"]}, key=_split_order)
            lines.append("granularity coverage (non-null rows):")
            header = f"  {'granularity':<13} " + " ".join(f"{s:>8}" for s in splits) + f" {'all':>8} {'rows':>9}"
            lines.append(header)
            for granularity, c in coverage.items():
                cells = " ".join(f"{c['by_split'].get(s, 0.0):>8.1%}" for s in splits)
                lines.append(f"  {granularity:<13} {cells} {c['fraction']:>8.1%} {c['non_null']:>9}")
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"{verdict}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return lines


def _split_order(split: str) -> tuple[int, str]:
    known = ("train", "val", "test")
    return (known.index(split) if split in known else len(known), split)


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


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _examples(values: list[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:EXAMPLES])
    return f" (e.g. {shown})" if values else ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _verb(n: int, singular: str, plural: str) -> str:
    return singular if n == 1 else plural


def _normalise(type_: pa.DataType) -> tuple[pa.DataType, bool]:
    """The type with large_* variants mapped to their 32-bit-offset forms and nested nullability dropped,
    plus whether anything was mapped: readers accept both, the contract names the small ones."""
    if pa.types.is_large_string(type_):
        return pa.string(), True
    if pa.types.is_large_binary(type_):
        return pa.binary(), True
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        value, mapped = _normalise(type_.value_type)
        return pa.list_(value), mapped or pa.types.is_large_list(type_)
    if pa.types.is_struct(type_):
        children = [(type_.field(i).name, *_normalise(type_.field(i).type)) for i in range(type_.num_fields)]
        return pa.struct([(name, t) for name, t, _ in children]), any(m for _, _, m in children)
    return type_, False


def _is_string(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


@dataclass
class _Metadata:
    """What a shard's file metadata declares, decoded; problems are listed rather than raised."""

    values: dict[str, Any]
    problems: list[str]


def _decode_metadata(arrow_schema: pa.Schema, required: list[str]) -> _Metadata:
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
    return _Metadata(values, problems)


class _Validator:
    def __init__(self, root: Path, full: bool, sample: int, progress: bool):
        self.root = root
        self.full = full
        self.sample = sample
        self.progress = progress
        self.report = ValidationReport(dataset=str(root))
        self.stats = self.report.stats
        self.ok_messages: dict[str, str] = {}

    def add(self, check: str, level: str, message: str) -> None:
        self.report.findings.append(Finding(check, level, message))

    def error(self, check: str, message: str) -> None:
        self.add(check, "error", message)

    def warn(self, check: str, message: str) -> None:
        self.add(check, "warn", message)

    def skip(self, check: str, message: str) -> None:
        self.add(check, "skip", message)

    def passed(self, check: str, message: str) -> None:
        """What the check reports when it found nothing (decided at the end: a later stage can still add a
        problem to an earlier check, e.g. an unreadable row group to "shards")."""
        self.ok_messages[check] = message

    # -- the run -------------------------------------------------------------------------------------------

    def run(self) -> ValidationReport:
        manifest = self.check_layout_and_manifest()
        shards = self.check_shards(manifest)
        contract_version, metadata = self.check_metadata(shards, manifest)
        usable = self.check_columns(shards, contract_version, metadata)
        vocabulary = metadata.get("mgll.label_vocabulary")
        if vocabulary is None and manifest and isinstance(manifest.get("label_vocabulary"), list):
            vocabulary = manifest["label_vocabulary"]
        granularities = self.granularities(metadata, manifest, contract_version)
        scan = self.scan(shards, usable, vocabulary, granularities, contract_version)
        rejects = self.check_rejects()
        self.check_counts(manifest, metadata, scan, rejects)
        reported = {f.check for f in self.report.findings}
        for check, message in self.ok_messages.items():
            if check not in reported:
                self.add(check, "ok", message)
        self.report.findings.sort(key=lambda f: CHECKS.index(f.check))
        return self.report

    # -- files ---------------------------------------------------------------------------------------------

    def check_layout_and_manifest(self) -> dict[str, Any] | None:
        path = self.root / MANIFEST_FILE
        manifest = None
        if not path.is_file():
            self.error("manifest", f"{MANIFEST_FILE} is missing")
        else:
            manifest = read_manifest(self.root)
            if manifest is None:
                self.error("manifest", f"{MANIFEST_FILE} is not a JSON object")
        if not (self.root / DATA_DIR).is_dir():
            self.error("layout", f"{DATA_DIR}/ folder is missing")
        stale = sorted(p.name for p in (self.root / DATA_DIR).glob(".*.tmp")) if (self.root / DATA_DIR).is_dir() else []
        if stale:
            self.warn("layout", f"{_plural(len(stale), 'temporary file')} left in {DATA_DIR}/ by an interrupted build"
                      f"{_examples(stale)}")
        self.passed("layout", f"{DATA_DIR}/ folder present")
        if manifest is None:
            return None
        missing = [k for k in MANIFEST_KEYS if k not in manifest]
        if missing:
            self.error("manifest", f"{MANIFEST_FILE} lacks keys: {', '.join(missing)}")
        for key in ("inputs", "rows", "rejects", "workers"):
            if key in manifest and not (isinstance(manifest[key], int) and not isinstance(manifest[key], bool)
                                        and manifest[key] >= 0):
                self.error("manifest", f"{MANIFEST_FILE} '{key}' is not a non-negative integer")
        for key in ("splits", "rejects_by_reason", "pipeline", "timings"):
            if key in manifest and not isinstance(manifest[key], dict):
                self.error("manifest", f"{MANIFEST_FILE} '{key}' is not an object")
        for key in ("shards", "label_vocabulary", "granularities"):
            if key in manifest and not isinstance(manifest[key], list):
                self.error("manifest", f"{MANIFEST_FILE} '{key}' is not a list")
        version = manifest.get("schema_version")
        if isinstance(version, str) and not self.contract_known(version):
            self.error("manifest", f"{MANIFEST_FILE} schema_version {version} is unknown to this tool "
                                   f"(knows {schema.schema_version()})")
        self.passed("manifest", f"{MANIFEST_FILE} has every key ({len(MANIFEST_KEYS)})")
        return manifest

    @staticmethod
    def contract_known(version: str) -> bool:
        if not re.fullmatch(r"\d+(\.\d+)*", version):
            return False
        try:
            schema.contract(_major(version))
        except (OSError, ValueError):
            return False
        return True

    def check_shards(self, manifest: dict[str, Any] | None) -> list[tuple[str, pq.ParquetFile]]:
        on_disk = {_relative(self.root, p): p for p in shards_on_disk(self.root)}
        listed = manifest.get("shards") if manifest else None
        if isinstance(listed, list):
            names = [s for s in listed if isinstance(s, str)]
            outside = [s for s in names if PurePosixPath(s).is_absolute() or ".." in PurePosixPath(s).parts]
            if outside or len(names) != len(listed):
                self.error("shards", f"manifest lists {_plural(len(outside) + len(listed) - len(names), 'shard')} "
                                     f"that are not relative paths inside the dataset{_examples(outside)}")
            missing = sorted(s for s in names if s not in on_disk and s not in outside)
            extra = sorted(set(on_disk) - set(names))
            if missing:
                self.error("shards", f"{_plural(len(missing), 'shard')} listed in the manifest missing on disk"
                                     f"{_examples(missing)}")
            if extra:
                self.error("shards", f"{_plural(len(extra), 'shard')} on disk not listed in the manifest"
                                     f"{_examples(extra)}")
            duplicated = sorted(s for s, n in Counter(names).items() if n > 1)
            if duplicated:
                self.error("shards", f"manifest lists a shard twice{_examples(duplicated)}")
        opened: list[tuple[str, pq.ParquetFile]] = []
        for name, path in on_disk.items():
            try:
                opened.append((name, pq.ParquetFile(path, buffer_size=READ_BUFFER)))
            except (OSError, pa.ArrowException):
                self.error("shards", f"{name} is not a readable Parquet file")
        if not on_disk:
            self.warn("shards", f"no data shards in {DATA_DIR}/ (every input rejected?)")
        if len(opened) > 1:
            first_name, first = opened[0]
            for name, shard in opened[1:]:
                if not shard.schema_arrow.equals(first.schema_arrow, check_metadata=True):
                    self.error("shards", f"{name} has a different schema from {first_name}: "
                                         f"{_schema_difference(first.schema_arrow, shard.schema_arrow)}")
        self.stats["shards"] = len(on_disk)
        self.stats["row_groups"] = sum(s.num_row_groups for _, s in opened)
        listing = "all listed in the manifest" if isinstance(listed, list) else "no manifest listing to compare"
        self.passed("shards", f"{_plural(len(opened), 'shard')} on disk, {listing}, one schema")
        return opened

    # -- schema --------------------------------------------------------------------------------------------

    def check_metadata(
        self, shards: list[tuple[str, pq.ParquetFile]], manifest: dict[str, Any] | None
    ) -> tuple[str | None, dict[str, Any]]:
        """Decode every shard's file metadata; return the contract major version to check against and the
        metadata of the first shard (the reference the others were compared with)."""
        required = list(schema.contract()["metadata_keys"])
        reference: dict[str, Any] = {}
        problems: Counter[str] = Counter()
        for i, (_, shard) in enumerate(shards):
            decoded = _decode_metadata(shard.schema_arrow, required)
            problems.update(decoded.problems)
            if i == 0:
                reference = decoded.values
        if not shards:
            self.skip("metadata", "no readable shards")
        for problem, n in sorted(problems.items()):
            self.error("metadata", f"{problem} in {n} of {_plural(len(shards), 'shard')}")
        version = reference.get("mgll.schema_version") or (manifest or {}).get("schema_version")
        self.stats["schema_version"] = version
        manifest_pipeline = (manifest or {}).get("pipeline")
        self.stats["pipeline"] = reference.get("mgll.pipeline") or (
            manifest_pipeline.get("name") if isinstance(manifest_pipeline, dict) else None
        )
        contract_version: str | None = None
        if isinstance(version, str):
            if not self.contract_known(version):
                self.error("metadata", f"schema version {version} is unknown to this tool "
                                       f"(knows {schema.schema_version()}); columns not checked")
            else:
                contract_version = _major(version)
                known = schema.schema_version(contract_version)
                if _version_tuple(version) > _version_tuple(known):
                    self.warn("metadata", f"schema version {version} is newer than this tool's {known}")
        elif shards:
            contract_version = schema.CURRENT_VERSION
        vocabulary = reference.get("mgll.label_vocabulary")
        if vocabulary is not None:
            repeated = sorted(n for n, c in Counter(vocabulary).items() if c > 1)
            if repeated:
                self.error("metadata", f"mgll.label_vocabulary repeats names{_examples(repeated)}")
            if not vocabulary:
                self.warn("metadata", "mgll.label_vocabulary is empty: no labels can be stored")
        granularities = reference.get("mgll.granularities")
        if granularities is not None:
            repeated = sorted(g for g, c in Counter(granularities).items() if c > 1)
            if repeated:
                self.error("metadata", f"mgll.granularities repeats names{_examples(repeated)}")
        if granularities is not None and contract_version is not None:
            unknown = sorted(set(granularities) - set(schema.known_granularities(contract_version)))
            if unknown:
                self.error("metadata", f"mgll.granularities names unknown granularities{_examples(unknown)}")
        self.passed("metadata", f"keys present ({', '.join(required)}); schema version {version} known")
        return contract_version, reference

    def granularities(
        self, metadata: dict[str, Any], manifest: dict[str, Any] | None, contract_version: str | None
    ) -> list[str]:
        declared = metadata.get("mgll.granularities")
        if declared is None and manifest and isinstance(manifest.get("granularities"), list):
            declared = manifest["granularities"]
        known = schema.known_granularities(contract_version or schema.CURRENT_VERSION)
        return [g for g in dict.fromkeys(declared or []) if g in known]

    def check_columns(
        self,
        shards: list[tuple[str, pq.ParquetFile]],
        contract_version: str | None,
        metadata: dict[str, Any],
    ) -> dict[str, dict[str, schema.Column]]:
        """Per shard, the contract columns that are present with the right type: only those are checked
        row by row (a wrong type is reported here once, not as a cascade of confusing value errors)."""
        usable: dict[str, dict[str, schema.Column]] = {}
        if not shards:
            self.skip("columns", "no readable shards")
            return usable
        if contract_version is None:
            self.skip("columns", "no known schema version to check columns against")
            return {name: {} for name, _ in shards}
        granularities = self.granularities(metadata, None, contract_version)
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
                actual, mapped = _normalise(arrow_schema.field(index).type)
                if not actual.equals(column.type):
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
            self.error("columns", problem + where)
        for column_name in sorted(large):
            self.warn("columns", f"'{column_name}' uses a 64-bit-offset (large_*) Arrow type; the contract "
                                 "names the 32-bit one (readers accept both)")
        extra = {f.name for _, s in shards for f in s.schema_arrow} - {c.name for c in expected}
        self.stats["extra_columns"] = sorted(c for c in extra if not c.startswith(prefix))
        self.passed("columns", f"all {len(expected)} contract columns present with the right types")
        return usable

    # -- rows ----------------------------------------------------------------------------------------------

    def scan(
        self,
        shards: list[tuple[str, pq.ParquetFile]],
        usable: dict[str, dict[str, schema.Column]],
        vocabulary: list[str] | None,
        granularities: list[str],
        contract_version: str | None,
    ) -> _Scan:
        total = sum(s.metadata.num_rows for _, s in shards)
        self.stats["rows"] = total
        state = _Scan(
            vocabulary={v for v in vocabulary or [] if isinstance(v, str)},
            granularities=granularities,
            version=contract_version or schema.CURRENT_VERSION,
            decode_at=_sample_positions(total, self.sample, self.full),
        )
        state.rows_on_disk = total
        bar = tqdm(total=len(state.decode_at), desc="decoding images", unit="img", file=sys.stderr,
                   disable=not self.progress or not state.decode_at)
        offset = 0
        for name, shard in shards:
            columns = usable.get(name, {})
            # Strings outside the contract are read too, for the privacy smoke checks.
            strings = {f.name for f in shard.schema_arrow if _is_string(f.type)}
            read = sorted(set(columns) | strings)
            for group in range(shard.num_row_groups):
                group_rows = shard.metadata.row_group(group).num_rows
                try:
                    table = shard.read_row_group(group, columns=read)
                except (OSError, pa.ArrowException) as exc:
                    self.error("shards", f"{name} row group {group} is unreadable ({type(exc).__name__})")
                    state.unreadable_rows += group_rows
                    offset += group_rows
                    continue
                state.scan_table(table, columns, offset, bar)
                offset += group_rows
        bar.close()
        self.report_scan(state, usable)
        return state

    def report_scan(self, state: _Scan, usable: dict[str, dict[str, schema.Column]]) -> None:
        present = set().union(*usable.values()) if usable else set()
        self.report_nulls_and_values(state, present)
        self.report_labels(state, present)
        self.report_splits(state, present)
        self.report_images(state, present)
        self.report_texts(state, present)
        self.report_privacy(state)

    def report_nulls_and_values(self, state: _Scan, present: set[str]) -> None:
        """Nulls, empty ids and out-of-range values in the required columns."""
        for column, n in sorted(state.nulls.items()):
            self.error("nulls", f"{_plural(n, 'null')} in required column '{column}'")
        for column, n in sorted(state.empty_ids.items()):
            self.error("nulls", f"{_plural(n, 'empty string')} in required column '{column}'")
        if state.rows_on_disk and not present:
            self.skip("nulls", "no usable columns")
        self.passed("nulls", "required columns hold no nulls")

        for column, (n, values) in sorted(state.disallowed.items()):
            self.error("values", f"{_plural(n, 'row')} with '{column}' outside the allowed values{_examples(values)}")
        for column, n in sorted(state.non_positive.items()):
            self.error("values", f"{_plural(n, 'row')} with '{column}' not a positive number")
        if state.bad_channels:
            self.error("values", f"{_plural(state.bad_channels, 'row')} with 'channels' not in {CHANNELS_ALLOWED}")
        if state.empty_reports:
            self.warn("values", f"{_plural(state.empty_reports, 'row')} with an empty report_text")
        self.passed("values", "split, sizes and channels within their allowed values")

    def report_labels(self, state: _Scan, present: set[str]) -> None:
        """Label statuses, names outside the vocabulary, a finding listed twice."""
        if "labels" not in present and state.rows_on_disk:
            self.skip("labels", "labels column unusable (see columns)")
        if state.bad_status:
            found = ", ".join(str(v) for v in sorted(state.bad_status_values))
            self.error("labels", f"{_plural(state.bad_status, 'label')} with a status outside {{1, 0, -1}} "
                                 f"(found {found})")
        if state.unknown_names:
            names = [n for n, _ in state.unknown_names.most_common()]
            n = sum(state.unknown_names.values())
            self.error("labels", f"{_plural(n, 'label')} {_verb(n, 'names a finding', 'name findings')} outside "
                                 f"mgll.label_vocabulary{_examples(names)}")
        if state.repeated_labels:
            self.error("labels", f"{_plural(state.repeated_labels, 'row')} "
                                 f"{_verb(state.repeated_labels, 'lists', 'list')} the same finding twice"
                                 f"{_examples(state.repeated_label_ids)}")
        self.passed("labels", f"statuses in {{1, 0, -1}}, names within the {len(state.vocabulary)}-name vocabulary")

    def report_splits(self, state: _Scan, present: set[str]) -> None:
        """Split leakage (a patient in two splits) and the per-split counts."""
        leaked = sorted(p for p, splits in state.patient_splits.items() if len(splits) > 1)
        if leaked:
            examples = [f"{p} in {'+'.join(sorted(state.patient_splits[p], key=_split_order))}" for p in leaked]
            self.error("splits", f"{_plural(len(leaked), 'patient')} "
                                 f"{_verb(len(leaked), 'appears', 'appear')} in more than one split"
                                 f"{_examples(examples)}")
        self.stats["splits"] = dict(sorted(state.split_rows.items(), key=lambda kv: _split_order(kv[0])))
        patients_by_split: Counter[str] = Counter()
        for splits in state.patient_splits.values():
            patients_by_split.update(splits)
        self.stats["patients"] = dict(sorted(patients_by_split.items(), key=lambda kv: _split_order(kv[0])))
        if {"patient_id", "split"} - present and state.rows_on_disk:
            self.skip("splits", "patient_id or split column unusable")
        self.passed("splits", f"{len(state.patient_splits)} patients, each in one split")

    def report_images(self, state: _Scan, present: set[str]) -> None:
        """Image ids, decoding of the sampled images and duplicate content."""
        if state.duplicate_ids:
            self.error("image_ids", f"{_plural(sum(state.duplicate_ids.values()), 'duplicate image_id')}"
                                    f"{_examples(list(state.duplicate_ids))}")
        if state.path_mismatch:
            self.error("image_ids", f"{_plural(state.path_mismatch, 'row')} whose image.path is not "
                                    f"'<image_id>.png|.jpg'{_examples(state.path_mismatch_ids)}")
        self.passed("image_ids", f"{len(state.image_ids)} unique image ids")

        checked = state.decoded
        self.stats["images_checked"] = checked
        self.stats["images_failed"] = state.image_failure_count
        scope = "all" if checked == state.rows_scanned else "sampled"
        if state.image_failure_count:
            self.error("images", f"{state.image_failure_count} of {checked} {scope} images failed: "
                                 + "; ".join(state.image_failures))
        if {"image", "height", "width", "channels"} - present and state.rows_on_disk:
            self.skip("images", "image, height, width or channels column unusable (see columns)")
        elif not state.decode_at and state.rows_on_disk:
            self.skip("images", "no image decoded (--sample 0)")
        self.passed("images", f"{scope} {checked} image(s) decode to their stored size and channels"
                    if scope == "all" else f"{checked} sampled images decode to their stored size and channels")

        n = state.duplicate_content_count
        if n:
            pairs = [f"{a} = {b}" for a, b in state.duplicate_content]
            self.warn("duplicates", f"{_plural(n, 'image')} {_verb(n, 'shares its', 'share their')} bytes with an "
                                    f"earlier row{_examples(pairs)}")
        self.stats["duplicate_content"] = n
        self.passed("duplicates", "no two rows hold the same image bytes")

    def report_texts(self, state: _Scan, present: set[str]) -> None:
        """Granularity coverage and empty texts."""
        coverage: dict[str, Any] = {}
        for granularity in state.granularities:
            column = schema.text_column(granularity, state.version)
            if column not in present:
                continue
            non_null = sum(state.text_counts[s][column] for s in state.split_rows)
            coverage[granularity] = {
                "column": column,
                "non_null": non_null,
                "fraction": non_null / state.rows_scanned if state.rows_scanned else 0.0,
                "by_split": {
                    s: state.text_counts[s][column] / n for s, n in sorted(state.split_rows.items()) if n
                },
            }
            if state.empty_texts[column]:
                self.error("granularities", f"{_plural(state.empty_texts[column], 'empty string')} in '{column}' "
                                            "(use null for an unavailable text)")
            if state.rows_scanned and non_null == 0:
                self.warn("granularities", f"'{column}' is null in every row")
        self.stats["coverage"] = coverage
        self.passed("granularities", f"{len(coverage)} text columns, no empty strings")

    def report_privacy(self, state: _Scan) -> None:
        """The privacy smoke checks over string columns."""
        for (column, what), n in sorted(state.privacy.items()):
            self.warn("privacy", f"{_plural(n, 'value')} in '{column}' {_verb(n, 'looks', 'look')} like {what}")
        for column, (n, example) in sorted(state.not_pseudonyms.items()):
            self.warn("privacy", f"{_plural(n, 'value')} in '{column}' {_verb(n, 'does', 'do')} not look like "
                                 f"keyed pseudonyms (<kind>-<hex>), e.g. {example!r}")
        self.passed("privacy", "no UID-, date- or name-like strings; ids look like keyed pseudonyms")

    # -- rejects and counts --------------------------------------------------------------------------------

    def check_rejects(self) -> list[dict[str, Any]] | None:
        path = self.root / REJECTS_FILE
        if not path.is_file():
            self.error("rejects", f"{REJECTS_FILE} is missing (an empty table is expected when nothing was rejected)")
            return None
        try:
            table = pq.ParquetFile(path).read()
        except (OSError, pa.ArrowException):
            self.error("rejects", f"{REJECTS_FILE} is not a readable Parquet file")
            return None
        expected = schema.rejects_schema()
        usable = []
        for field_ in expected:
            index = table.schema.get_field_index(field_.name)
            if index < 0:
                self.error("rejects", f"{REJECTS_FILE} lacks column '{field_.name}'")
            elif not _normalise(table.schema.field(index).type)[0].equals(field_.type):
                self.error("rejects", f"{REJECTS_FILE} column '{field_.name}' is {table.schema.field(index).type}, "
                                      f"expected {field_.type}")
            else:
                usable.append(field_.name)
                if not field_.nullable and table.column(field_.name).null_count:
                    self.error("rejects", f"{_plural(table.column(field_.name).null_count, 'null')} in "
                                          f"{REJECTS_FILE} column '{field_.name}'")
        rows = table.select(usable).to_pylist()
        if "stage" in usable:
            unknown = sorted({r["stage"] for r in rows if r["stage"] is not None} - set(REJECT_STAGES))
            if unknown:
                self.warn("rejects", f"unknown reject stages{_examples(unknown)}")
        if "error" in usable:
            column = table.column("error")
            for what, pattern in {**PRIVACY_PATTERNS, "a file path": PATH_PATTERN}.items():
                n = pc.sum(pc.match_substring_regex(column, pattern)).as_py() or 0
                if n:
                    verb = _verb(n, "looks like it holds", "look like they hold")
                    self.warn("privacy", f"{_plural(n, 'reject error')} {verb} {what}")
        if "source_key" in usable:
            repeated = sum(n - 1 for n in Counter(r["source_key"] for r in rows).values() if n > 1)
            if repeated:
                self.error("rejects", f"{_plural(repeated, 'duplicate source_key')} in {REJECTS_FILE}")
        self.stats["rejects"] = len(rows)
        self.stats["rejects_by_reason"] = dict(Counter(r["reason"] for r in rows if "reason" in usable).most_common())
        self.passed("rejects", f"{REJECTS_FILE}: {_plural(len(rows), 'row')}, schema as in the contract")
        return rows

    def check_counts(
        self,
        manifest: dict[str, Any] | None,
        metadata: dict[str, Any],
        scan: _Scan,
        rejects: list[dict[str, Any]] | None,
    ) -> None:
        data_rows = scan.rows_on_disk
        self.stats["inputs"] = manifest.get("inputs") if manifest else None
        if manifest is None:
            self.skip("counts", f"no usable {MANIFEST_FILE} to compare counts with")
            return
        m_inputs, m_rows, m_rejects = manifest.get("inputs"), manifest.get("rows"), manifest.get("rejects")
        if isinstance(m_rows, int) and m_rows != data_rows:
            self.error("counts", f"manifest says {m_rows} rows, the shards hold {data_rows}")
        if rejects is not None and isinstance(m_rejects, int) and m_rejects != len(rejects):
            self.error("counts", f"manifest says {m_rejects} rejects, {REJECTS_FILE} holds {len(rejects)}")
        if isinstance(m_inputs, int) and isinstance(m_rows, int) and isinstance(m_rejects, int) \
                and m_rows + m_rejects != m_inputs:
            self.error("counts", f"rows + rejects = {m_rows} + {m_rejects} = {m_rows + m_rejects}, "
                                 f"but manifest inputs = {m_inputs}")
        if rejects is not None and isinstance(m_inputs, int) and data_rows + len(rejects) != m_inputs:
            self.error("counts", f"data rows + rejects on disk = {data_rows} + {len(rejects)} = "
                                 f"{data_rows + len(rejects)}, but manifest inputs = {m_inputs}")
        splits = manifest.get("splits")
        if isinstance(splits, dict) and not scan.unreadable_rows:
            actual = {k: v for k, v in scan.split_rows.items() if v}
            stated = {k: v for k, v in splits.items() if v}
            if actual != stated and "split" in scan.seen_columns:
                self.error("counts", f"manifest splits {stated} differ from the data's {actual}")
        by_reason = manifest.get("rejects_by_reason")
        if isinstance(by_reason, dict) and rejects is not None:
            actual_reasons = dict(Counter(r.get("reason") for r in rejects))
            stated_reasons = {k: v for k, v in by_reason.items() if v}
            if actual_reasons != stated_reasons:
                self.error("counts", f"manifest rejects_by_reason {stated_reasons} differs from "
                                     f"{REJECTS_FILE}'s {actual_reasons}")
        comparisons = (
            ("label_vocabulary", "mgll.label_vocabulary", manifest.get("label_vocabulary")),
            ("granularities", "mgll.granularities", manifest.get("granularities")),
            ("schema_version", "mgll.schema_version", manifest.get("schema_version")),
            ("pipeline.name", "mgll.pipeline", (manifest.get("pipeline") or {}).get("name")
             if isinstance(manifest.get("pipeline"), dict) else None),
            ("pipeline.content_hash", "mgll.pipeline_hash", (manifest.get("pipeline") or {}).get("content_hash")
             if isinstance(manifest.get("pipeline"), dict) else None),
        )
        for manifest_key, metadata_key, stated in comparisons:
            recorded = metadata.get(metadata_key)
            if recorded not in (None, "") and stated is not None and recorded != stated:
                self.error("counts", f"manifest {manifest_key} differs from the shards' {metadata_key}")
        self.passed("counts", f"rows + rejects = inputs ({data_rows} + {len(rejects or [])} = {m_inputs}); "
                              "manifest counts match the data")


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


def _sample_positions(total: int, sample: int, full: bool) -> set[int]:
    """Evenly spaced global row positions: deterministic, and spread over every shard and row group."""
    if full or sample >= total:
        return set(range(total))
    if sample <= 0:
        return set()
    return {int(i) for i in np.unique(np.linspace(0, total - 1, num=sample).round().astype(np.int64))}


def _channel_count(mode: str, bands: int) -> int:
    return 3 if mode == "P" else bands


def image_problem(
    data: bytes | pa.Buffer | None, path: str | None, height: int, width: int, channels: int
) -> str | None:
    """Why stored image bytes do not match their row, or None when they do."""
    from PIL import Image

    if data is None or not len(data):
        return "holds no bytes"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            fmt, size, mode, bands = image.format, image.size, image.mode, len(image.getbands())
    except Exception as exc:  # Pillow signals damaged bytes with many exception types; all mean "corrupt"
        return f"does not decode ({type(exc).__name__})"
    if fmt not in IMAGE_EXTENSIONS:
        return f"is {fmt}, not PNG or JPEG"
    if size != (width, height):
        return f"decodes to {size[1]}x{size[0]}, columns say {height}x{width}"
    if _channel_count(mode, bands) != channels:
        return f"has {_channel_count(mode, bands)} channel(s) ({mode}), column says {channels}"
    if path and not path.lower().endswith(IMAGE_EXTENSIONS[fmt]):
        return f"is {fmt} but image.path ends in {PurePosixPath(path).suffix or 'no extension'}"
    return None


@dataclass
class _Scan:
    """Everything accumulated while streaming the row groups."""

    vocabulary: set[str]
    granularities: list[str]
    version: str
    decode_at: set[int]
    rows_on_disk: int = 0
    rows_scanned: int = 0
    unreadable_rows: int = 0
    seen_columns: set[str] = field(default_factory=set)
    nulls: Counter[str] = field(default_factory=Counter)
    empty_ids: Counter[str] = field(default_factory=Counter)
    disallowed: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    non_positive: Counter[str] = field(default_factory=Counter)
    bad_channels: int = 0
    empty_reports: int = 0
    bad_status: int = 0
    bad_status_values: set[int] = field(default_factory=set)
    unknown_names: Counter[str] = field(default_factory=Counter)
    repeated_labels: int = 0
    repeated_label_ids: list[str] = field(default_factory=list)
    patient_splits: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    split_rows: Counter[str] = field(default_factory=Counter)
    image_ids: set[str] = field(default_factory=set)
    duplicate_ids: Counter[str] = field(default_factory=Counter)
    path_mismatch: int = 0
    path_mismatch_ids: list[str] = field(default_factory=list)
    content_first: dict[bytes, str] = field(default_factory=dict)
    duplicate_content_count: int = 0
    duplicate_content: list[tuple[str, str]] = field(default_factory=list)  # the first few, as examples
    decoded: int = 0
    image_failure_count: int = 0
    image_failures: list[str] = field(default_factory=list)  # the first few, as examples
    text_counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    empty_texts: Counter[str] = field(default_factory=Counter)
    privacy: Counter[tuple[str, str]] = field(default_factory=Counter)
    not_pseudonyms: dict[str, tuple[int, str]] = field(default_factory=dict)

    def scan_table(self, table: pa.Table, columns: dict[str, schema.Column], offset: int, bar: Any) -> None:
        n = table.num_rows
        self.rows_scanned += n
        self.seen_columns.update(columns)
        col = {name: table.column(name) for name in columns if name in table.column_names}
        ids = col["image_id"].to_pylist() if "image_id" in col else [f"row {offset + i}" for i in range(n)]

        for name, column in columns.items():
            if name not in col or column.nullable:
                continue
            data = col[name]
            if data.null_count:
                self.nulls[name] += data.null_count
            if pa.types.is_string(column.type):
                empty = pc.sum(pc.equal(pc.utf8_length(data), 0)).as_py() or 0
                if empty and name != "report_text":
                    self.empty_ids[name] += empty
            if column.allowed:
                bad = pc.and_(pc.invert(pc.is_in(data, value_set=pa.array(column.allowed))), pc.is_valid(data))
                count = pc.sum(bad).as_py() or 0
                if count:
                    previous, values = self.disallowed.get(name, (0, []))
                    found = sorted(set(pc.filter(data, bad).to_pylist()) - set(values), key=str)
                    self.disallowed[name] = (previous + count, (values + found)[:EXAMPLES])

        for name in ("height", "width", "original_height", "original_width"):
            if name in col:
                self.non_positive[name] += pc.sum(pc.less_equal(col[name], 0)).as_py() or 0
        self.non_positive = +self.non_positive
        if "channels" in col:
            allowed = pc.is_in(col["channels"], value_set=pa.array(CHANNELS_ALLOWED, pa.int8()))
            self.bad_channels += pc.sum(pc.and_(pc.invert(allowed), pc.is_valid(col["channels"]))).as_py() or 0
        if "report_text" in col:
            self.empty_reports += pc.sum(pc.match_substring_regex(col["report_text"], r"^\s*$")).as_py() or 0

        if "labels" in col:
            self.scan_labels(col["labels"].combine_chunks(), ids)
        if "patient_id" in col and "split" in col:
            pairs = pa.table({"p": col["patient_id"], "s": col["split"]}).group_by(["p", "s"]).aggregate([])
            for patient, split in zip(pairs.column("p").to_pylist(), pairs.column("s").to_pylist()):
                if patient is not None and split is not None:
                    self.patient_splits[patient].add(split)
        if "split" in col:
            splits = ["(null)" if v is None else v for v in col["split"].to_pylist()]
        else:
            splits = ["(no split)"] * n
        self.split_rows.update(splits)
        for granularity in self.granularities:
            name = schema.text_column(granularity, self.version)
            if name not in col:
                continue
            present = pc.is_valid(col[name]).to_pylist()
            self.text_counts_update(name, splits, present)
            self.empty_texts[name] += pc.sum(pc.match_substring_regex(col[name], r"^\s*$")).as_py() or 0

        if "image_id" in col:
            for image_id in ids:
                if image_id is None:
                    continue
                if image_id in self.image_ids:
                    self.duplicate_ids[image_id] += 1
                self.image_ids.add(image_id)
        if "image" in col:
            self.scan_images(col, ids, offset, bar)
        self.scan_privacy(table, columns)

    def text_counts_update(self, column: str, splits: list[str], present: list[bool]) -> None:
        for split, valid in zip(splits, present):
            if valid:
                self.text_counts[split][column] += 1

    def scan_labels(self, labels: pa.Array, ids: list[str]) -> None:
        flat = pc.list_flatten(labels)
        if not len(flat):
            return
        statuses = pc.struct_field(flat, "status")
        names = pc.struct_field(flat, "name")
        bad = pc.invert(pc.is_in(statuses, value_set=pa.array(LABEL_STATUSES, pa.int8())))
        bad = pc.and_(bad, pc.is_valid(statuses))
        count = pc.sum(bad).as_py() or 0
        if count:
            self.bad_status += count
            self.bad_status_values.update(pc.unique(pc.filter(statuses, bad)).to_pylist())
        outside = pc.invert(pc.is_in(names, value_set=pa.array(sorted(self.vocabulary), pa.string())))
        outside = pc.and_(outside, pc.is_valid(names))
        if pc.sum(outside).as_py():
            self.unknown_names.update(pc.filter(names, outside).to_pylist())
        parents = pc.list_parent_indices(labels)
        counted = pa.table({"row": parents, "name": names}).group_by(["row", "name"]).aggregate([("name", "count")])
        repeated = pc.filter(counted.column("row"), pc.greater(counted.column("name_count"), 1))
        rows = sorted(set(repeated.to_pylist()))
        self.repeated_labels += len(rows)
        self.repeated_label_ids.extend(str(ids[r]) for r in rows[: EXAMPLES - len(self.repeated_label_ids)])

    def scan_images(self, col: dict[str, pa.ChunkedArray], ids: list[str], offset: int, bar: Any) -> None:
        image = col["image"]
        blobs = pc.struct_field(image, "bytes")
        paths = pc.struct_field(image, "path").to_pylist()
        if blobs.null_count:
            self.nulls["image.bytes"] += blobs.null_count
        data = (blob.as_buffer() for chunk in blobs.chunks for blob in chunk)  # zero-copy views, not bytes
        sizes = {name: col[name].to_pylist() for name in ("height", "width", "channels") if name in col}
        for i, (blob, path, image_id) in enumerate(zip(data, paths, ids)):
            if blob is not None and blob.size:
                digest = hashlib.blake2b(blob, digest_size=16).digest()
                first = self.content_first.setdefault(digest, str(image_id))
                if first != str(image_id):
                    self.duplicate_content_count += 1
                    if len(self.duplicate_content) < EXAMPLES:
                        self.duplicate_content.append((str(image_id), first))
            if image_id is not None and "image_id" in col:
                if path is None or PurePosixPath(path).stem != image_id or \
                        PurePosixPath(path).suffix.lower() not in (".png", ".jpg", ".jpeg"):
                    self.path_mismatch += 1
                    if len(self.path_mismatch_ids) < EXAMPLES:
                        self.path_mismatch_ids.append(image_id)
            if offset + i not in self.decode_at or len(sizes) < 3:
                continue
            self.decoded += 1
            bar.update(1)
            problem = image_problem(blob, path, sizes["height"][i], sizes["width"][i], sizes["channels"][i])
            if problem:
                self.image_failure_count += 1
                if len(self.image_failures) < EXAMPLES:
                    self.image_failures.append(f"{image_id} {problem}")

    def scan_privacy(self, table: pa.Table, columns: dict[str, schema.Column]) -> None:
        for name in table.column_names:
            data = table.column(name)
            if pa.types.is_struct(data.type) and name == "image":
                data, name = pc.struct_field(data, "path"), "image.path"
            if not _is_string(data.type):
                continue
            for what, pattern in PRIVACY_PATTERNS.items():
                n = pc.sum(pc.match_substring_regex(data, pattern)).as_py() or 0
                if n:
                    self.privacy[(name, what)] += n
        for name in ("patient_id", "study_id"):
            if name not in columns or name not in table.column_names:
                continue
            data = table.column(name)
            odd = pc.and_(pc.invert(pc.match_substring_regex(data, PSEUDONYM_PATTERN)), pc.is_valid(data))
            n = pc.sum(odd).as_py() or 0
            if n:
                previous, example = self.not_pseudonyms.get(name, (0, pc.filter(data, odd)[0].as_py()))
                self.not_pseudonyms[name] = (previous + n, example)


def validate_dataset(path: Path, full: bool = False, sample: int = 200, *, progress: bool = False) -> ValidationReport:
    """Check the dataset folder at `path`; never raises for a broken dataset, only for a path that is not one.

    `sample` images (evenly spread, so the same rows every run) are decoded, or all with `full=True`;
    every other check reads every row. Raises NotADatasetError (one-line message) when `path` is not a
    dataset folder.
    """
    root = require_dataset(Path(path))
    return _Validator(root, full=full, sample=sample, progress=progress).run()


def iter_row_groups(root: Path, columns: list[str]) -> Iterator[pa.Table]:
    """The requested columns (those present) of every row group of every shard, one group at a time."""
    for path in shards_on_disk(root):
        shard = pq.ParquetFile(path, buffer_size=READ_BUFFER)
        names = set(shard.schema_arrow.names)
        wanted = [c for c in columns if c.split(".", 1)[0] in names]
        for group in range(shard.num_row_groups):
            yield shard.read_row_group(group, columns=wanted)
