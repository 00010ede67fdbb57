"""Writing a dataset folder: sharded Parquet, the rejects table, the manifest and the private linkage.

Every file appears atomically (written under a temporary name, then renamed), so a killed build leaves
only whole shards behind. Each split has its own shards (the folder's names come from `dataset`), so a
Hugging Face loader finds the splits by file name. A resumed build reads the `source_key`s of the shards
and rejects already on disk and skips those inputs; each split's numbering continues after its last whole
shard.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from mgll_data import dataset, schema
from mgll_data.output_folder import OutputFolderError
from mgll_data.records import Outcome

ROW_GROUP_SIZE = 1000
SHARD_ROWS = 5000

def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = dataset.temporary_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_parquet_atomic(table: pa.Table, path: Path, **kwargs: Any) -> None:
    tmp = dataset.temporary_path(path)
    pq.write_table(table, tmp, **kwargs)
    os.replace(tmp, path)


def _compression(schema_: pa.Schema) -> dict[str, str]:
    """zstd for every column but the already-compressed image bytes."""
    return {name: ("none" if name.startswith("image") else "zstd") for name in _leaf_paths(schema_)}


def _leaf_paths(schema_: pa.Schema) -> list[str]:
    paths: list[str] = []

    def walk(prefix: str, type_: pa.DataType) -> None:
        if pa.types.is_struct(type_):
            for child in type_:
                walk(f"{prefix}.{child.name}", child.type)
        elif pa.types.is_list(type_):
            walk(f"{prefix}.list.element", type_.value_type)
        else:
            paths.append(prefix)

    for f in schema_:
        walk(f.name, f.type)
    return paths


@dataclass
class ExistingState:
    """What a previous (possibly killed) build of the same OUT already finished."""

    done_keys: set[str] = field(default_factory=set)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    next_shards: dict[str, int] = field(default_factory=dict)  # per split; absent: 0


def read_existing(out: Path, pipeline_hash: str) -> ExistingState:
    """What an earlier (possibly killed) build of OUT finished, read without changing anything; nothing for
    a new OUT.

    Refuses a dataset built with a different pipeline file (mixing settings silently would make rows
    incomparable) and one in the schema-1.0 layout (one set of shards for every split).
    """
    state = ExistingState()
    shards = dataset.shard_paths(out)
    rejects_path = out / dataset.REJECTS_FILE
    if not shards and not rejects_path.exists():
        return state
    if dataset.legacy_shards(out):
        raise OutputFolderError(
            f"{out} was built by an older mgll (schema 1.0: every split in one set of shards); pass --overwrite "
            "to rebuild it in the per-split layout"
        )
    previous = _read_pipeline_hash(out)
    if previous is not None and previous != pipeline_hash:
        raise OutputFolderError(
            f"{out} was built with a different pipeline file (hash {previous}); use --overwrite to start over"
        )
    for shard in shards:
        state.done_keys.update(pq.read_table(shard, columns=["source_key"]).column("source_key").to_pylist())
    state.next_shards = dataset.next_shard_indices(out)
    if rejects_path.exists():
        state.rejects = pq.read_table(rejects_path).to_pylist()
        state.done_keys.update(r["source_key"] for r in state.rejects)
    return state


def start_output(out: Path, linkage_path: Path, state: ExistingState) -> None:
    """Ready OUT for writing: its data folder, no stale temporary files, and a linkage journal that starts
    with the entries of the inputs `state` says are done."""
    dataset.data_dir(out).mkdir(parents=True, exist_ok=True)
    for stale in dataset.temporary_files(out):
        stale.unlink()
    _start_journal(linkage_path, _previous_linkage(linkage_path, state.done_keys) if state.done_keys else [])


def check_linkage(linkage_path: Path) -> None:
    """Refuse a linkage path that holds a file other than an mgll linkage table: a resume would misread
    it and --overwrite would delete it."""
    if not linkage_path.exists():
        return
    try:
        names = pq.read_schema(linkage_path).names
    except (OSError, pa.ArrowException):
        names = None
    if names != dataset.LINKAGE_SCHEMA.names:
        raise OutputFolderError(
            f"{linkage_path} exists and is not an mgll linkage table; choose another --linkage path"
        )


def remove_linkage(linkage_path: Path) -> None:
    """For --overwrite: the earlier build's linkage table and journal (checked to be mgll's first)."""
    check_linkage(linkage_path)
    linkage_path.unlink(missing_ok=True)
    dataset.linkage_journal_path(linkage_path).unlink(missing_ok=True)


def _previous_linkage(linkage_path: Path, done_keys: set[str]) -> list[dict[str, Any]]:
    """The linkage entries of the inputs a resumed build skips: from the last finished build's table and
    from the journal of a killed one (entries of inputs that never reached a whole shard are dropped:
    those inputs run again)."""
    entries: dict[str, dict[str, Any]] = {}
    if linkage_path.exists():
        entries.update((e["source_key"], e) for e in pq.read_table(linkage_path).to_pylist())
    journal = dataset.linkage_journal_path(linkage_path)
    if journal.exists():
        # Whole lines only: a build killed mid-write leaves a partial last line, and its input never
        # reached a shard (flush happens before the commit), so it runs again.
        *whole_lines, _partial = journal.read_bytes().split(b"\n")
        try:
            entries.update((e["source_key"], e) for e in map(json.loads, whole_lines))
        except (ValueError, KeyError, TypeError):
            raise OutputFolderError(f"{journal} is not an mgll linkage journal; move it away") from None
    return [entry for key, entry in entries.items() if key in done_keys]


def _read_pipeline_hash(out: Path) -> str | None:
    manifest = dataset.read_manifest(out)
    if manifest is not None:
        return manifest["pipeline"]["content_hash"]
    shards = dataset.shard_paths(out)
    if shards:
        return schema.read_metadata(pq.read_schema(shards[0])).get("pipeline_hash")
    return None


class _SplitShards:
    """One split's shards: rows buffered into row groups, written into a shard under its temporary name,
    the shard renamed into place only when it is complete."""

    def __init__(self, writer: ShardWriter, split: str, first_index: int):
        self.writer = writer
        self.split = split
        self.next_index = first_index
        self._parquet: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._final: Path | None = None
        self._rows_in_shard = 0
        self._buffer: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= ROW_GROUP_SIZE:
            self.flush_group()

    def _open(self) -> None:
        self._final = self.writer.data_dir / dataset.shard_name(self.split, self.next_index)
        self._tmp = dataset.temporary_path(self._final)
        self.next_index += 1
        self._parquet = pq.ParquetWriter(self._tmp, self.writer.schema, compression=self.writer.compression)
        self._rows_in_shard = 0

    def flush_group(self) -> None:
        if not self._buffer:
            return
        if self._parquet is None:
            self._open()
        table = pa.Table.from_pylist(self._buffer, schema=self.writer.schema)
        self.writer.check_required(table)
        self._parquet.write_table(table, row_group_size=ROW_GROUP_SIZE)
        self._rows_in_shard += len(self._buffer)
        self._buffer = []
        if self._rows_in_shard >= self.writer.shard_rows:
            self.close_shard()

    def close_shard(self) -> None:
        if self._parquet is None:
            return
        self._parquet.close()
        self.writer.before_commit()
        os.replace(self._tmp, self._final)
        self.writer.written.append(self._final)
        self._parquet = None


class ShardWriter:
    """Streams rows into the dataset's data shards, one set of shards per split, one row group at a time;
    a shard appears under its final name only when it is complete."""

    def __init__(
        self,
        out: Path,
        arrow_schema: pa.Schema,
        next_shards: dict[str, int] | None = None,
        shard_rows: int | None = None,
        before_commit: Callable[[], None] = lambda: None,
    ):
        self.data_dir = dataset.data_dir(out)
        self.schema = arrow_schema
        self.shard_rows = shard_rows or SHARD_ROWS
        self.before_commit = before_commit
        self.compression = _compression(arrow_schema)
        self.next_shards = dict(next_shards or {})
        self.required = schema.required_columns()
        self._splits: dict[str, _SplitShards] = {}
        self.written: list[Path] = []

    def check_required(self, table: pa.Table) -> None:
        """A row with a null where the contract requires a value is a bug upstream: stop before writing it
        (the shard schema itself is all-nullable, see `schema.arrow_schema`)."""
        for name in self.required:
            if table.column(name).null_count:
                raise ValueError(f"a row without '{name}' reached the writer; the contract requires it")

    def add(self, row: dict[str, Any]) -> None:
        split = row["split"]
        if split not in self._splits:
            self._splits[split] = _SplitShards(self, split, self.next_shards.get(split, 0))
        self._splits[split].add(row)

    def close(self) -> None:
        for shards in self._splits.values():
            shards.flush_group()
            shards.close_shard()


def write_rejects(out: Path, rejects: list[dict[str, Any]]) -> None:
    rejects_schema = schema.rejects_schema()
    table = pa.Table.from_pylist(rejects, schema=rejects_schema)
    write_parquet_atomic(table, out / dataset.REJECTS_FILE, compression="zstd")


def _start_journal(linkage_path: Path, entries: list[dict[str, Any]]) -> None:
    """A fresh journal holding only `entries`, replacing any older one atomically (mode 0600: it is
    as identifying as the linkage table itself)."""
    journal = dataset.linkage_journal_path(linkage_path)
    journal.parent.mkdir(parents=True, exist_ok=True)
    tmp = dataset.temporary_path(journal)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as file:
        file.writelines(json.dumps(entry) + "\n" for entry in entries)
    os.replace(tmp, journal)


class LinkageJournal:
    """The private linkage table, appended line by line while a build runs and turned into Parquet at the end.

    Why not a list written at the end: a million-image build would hold a gigabyte of dicts, and a build
    killed without unwinding (OOM killer, SIGKILL) lost the linkage of rows already in whole shards, which
    a resume then skips, leaving them unlinkable. `flush` runs before every shard commit, so each
    committed row's entry is on disk before its shard is.
    """

    def __init__(self, linkage_path: Path):
        self.linkage_path = linkage_path
        self.path = dataset.linkage_journal_path(linkage_path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the journal's life; finish() closes it
        self._pending: list[str] = []

    def add(self, entry: dict[str, Any]) -> None:
        self._pending.append(json.dumps(entry))

    def flush(self) -> None:
        if self._pending:
            self._file.write("\n".join(self._pending) + "\n")
            self._pending = []
        self._file.flush()
        os.fsync(self._file.fileno())

    def finish(self) -> None:
        """Write the linkage table (atomically, mode 0600) from the journal and remove the journal."""
        self.flush()
        self._file.close()
        if self.path.stat().st_size:
            options = pa_json.ParseOptions(explicit_schema=dataset.LINKAGE_SCHEMA, unexpected_field_behavior="error")
            table = pa_json.read_json(self.path, parse_options=options).select(dataset.LINKAGE_SCHEMA.names)
        else:
            table = dataset.LINKAGE_SCHEMA.empty_table()
        write_parquet_atomic(table, self.linkage_path, compression="zstd")
        os.chmod(self.linkage_path, 0o600)
        self.path.unlink()


def linkage_entry(outcome: Outcome) -> dict[str, Any]:
    entry = {name: outcome.linkage.get(name) for name in dataset.LINKAGE_SCHEMA.names}
    entry["kind"] = "row" if outcome.row is not None else "reject"
    entry["source_key"] = outcome.source_key
    return entry


def reject_entry(outcome: Outcome) -> dict[str, Any]:
    assert outcome.reject is not None
    return {
        "source_key": outcome.source_key,
        "stage": outcome.reject.stage,
        "reason": outcome.reject.reason,
        "error": outcome.reject.error,
    }


def dataset_counts(out: Path) -> dict[str, Any]:
    """Rows per split, read back from the shards on disk (so a resumed build counts earlier shards too)."""
    splits: Counter[str] = Counter()
    rows = 0
    for shard in dataset.shard_paths(out):
        column = pq.read_table(shard, columns=["split"]).column("split").to_pylist()
        splits.update(column)
        rows += len(column)
    return {"rows": rows, "splits": dict(sorted(splits.items()))}


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    atomic_write_bytes(out / dataset.MANIFEST_FILE, (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode())
