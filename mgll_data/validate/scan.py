"""The streaming row scan: every row group of every shard read once, its rows tallied into a `Scan`.

Datasets can hold millions of images, so nothing is kept per row beyond what a check needs (ids and
content hashes for duplicates, patients' splits for leakage); image bytes are hashed for every row but
decoded only at a deterministic sample of positions unless `full=True`. What the tallies mean is judged in
`content`.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mgll_data import dataset, schema
from mgll_data.progress import progress_bar
from mgll_data.validate.reading import Shards
from mgll_data.validate.report import EXAMPLES, Recorder
from mgll_data.validate.structure import UsableColumns

LABEL_STATUSES = (1, 0, -1)
CHANNELS_ALLOWED = (1, 3)
IMAGE_EXTENSIONS = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg")}

# Privacy smoke checks: strings that should not survive de-identification.
PRIVACY_PATTERNS = {
    "a DICOM UID": r"\b\d+(\.\d+){6,}\b",
    "a date": r"\b(19|20)\d\d[-/.](0?[1-9]|1[0-2])[-/.](0?[1-9]|[12]\d|3[01])\b"
    r"|\b(0?[1-9]|1[0-2])/(0?[1-9]|[12]\d|3[01])/((19|20)\d\d|\d\d)\b",
    "a DICOM person name (A^B)": r"\b[A-Za-z'-]+\^[A-Za-z'-]+",
}
PSEUDONYM_PATTERN = r"^[a-z]+-[0-9a-f]{8,}$"


def _is_string(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def sample_positions(total: int, sample: int, full: bool) -> set[int]:
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
class Scan:
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
    misplaced: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # shard -> split -> rows

    def scan_placement(self, shard_name: str, table: pa.Table) -> None:
        """Rows of a contract split inside another split's shard (loaders assign splits by file name)."""
        parsed = dataset.parse_shard_name(PurePosixPath(shard_name).name)
        if parsed is None or parsed[0] is None or "split" not in table.column_names:
            return
        splits = table.column("split")
        wrong = pc.and_(pc.is_in(splits, value_set=pa.array(dataset.SPLITS)), pc.not_equal(splits, parsed[0]))
        for split in pc.filter(splits, wrong).to_pylist():
            self.misplaced[shard_name][split] += 1

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
            if image_id is not None and "image_id" in col and (
                path is None or PurePosixPath(path).stem != image_id
                or PurePosixPath(path).suffix.lower() not in (".png", ".jpg", ".jpeg")
            ):
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


def scan_shards(
    shards: Shards,
    usable: UsableColumns,
    vocabulary: list[str] | None,
    granularities: list[str],
    contract_version: str | None,
    *,
    sample: int,
    full: bool,
    progress: bool,
    out: Recorder,
) -> Scan:
    """Stream every row group of every shard into one Scan; an unreadable row group is a "shards" error and
    its rows are counted as unreadable, not scanned."""
    total = sum(s.metadata.num_rows for _, s in shards)
    out.stats["rows"] = total
    state = Scan(
        vocabulary={v for v in vocabulary or [] if isinstance(v, str)},
        granularities=granularities,
        version=contract_version or schema.CURRENT_VERSION,
        decode_at=sample_positions(total, sample, full),
    )
    state.rows_on_disk = total
    bar = progress_bar(len(state.decode_at), desc="decoding images", unit="img",
                       enabled=progress and bool(state.decode_at))
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
                out.error("shards", f"{name} row group {group} is unreadable ({type(exc).__name__})")
                state.unreadable_rows += group_rows
                offset += group_rows
                continue
            state.scan_table(table, columns, offset, bar)
            state.scan_placement(name, table)
            offset += group_rows
    bar.close()
    return state
