"""The built dataset folder: the one module that knows its layout, and the one way to read it.

The writer writes through these names, `mgll validate`, `mgll card` and the trainer read through these
functions, so a change of layout happens here and nowhere else. Numpy and pyarrow only: `mgll_train`
imports this module, and `mgll build` must not import torch.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mgll_data import schema

DATA_DIR = "data"
MANIFEST_FILE = "manifest.json"
REJECTS_FILE = "rejects.parquet"
CARD_FILE = "README.md"
CHARTS_DIR = "charts"
CHARTS = {"labels": "label_prevalence.png", "coverage": "granularity_coverage.png", "sizes": "image_sizes.png"}
# The card's first line after its front matter: how `--overwrite` and `mgll card` tell a card mgll wrote
# from a README.md a person wrote (which they never delete or overwrite).
CARD_MARKER = "<!-- dataset card written by `mgll card`; it is rewritten on every run -->"
# The Hub's licence value for "none of the standard ones": the data's terms come from the source
# institution, which the builder cannot know; a site records its own with `mgll build --license`.
DEFAULT_LICENSE = "other"
# Held (flock) by a build for its whole run; hidden, so neither dataset loaders nor validate read it.
LOCK_FILE = ".mgll-build.lock"
SHARD_DIGITS = 5

# The private linkage table (image ↔ source path and original ids) lives outside the dataset folder,
# beside it by default; a build journals it line by line and locks it like OUT.
LINKAGE_SUFFIX = ".linkage.parquet"
LINKAGE_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string()),  # "row" | "reject"
        pa.field("source_key", pa.string()),
        pa.field("source_path", pa.string()),
        pa.field("report_path", pa.string()),
        pa.field("image_id", pa.string()),
        pa.field("patient_id", pa.string()),
        pa.field("study_id", pa.string()),
        pa.field("original_patient_id", pa.string()),
        pa.field("original_study_id", pa.string()),
        pa.field("error_detail", pa.string()),
    ]
)

READ_BUFFER = 1 << 20  # stream column chunks instead of reading each whole: lower peak memory on image columns

SPLITS = ("train", "val", "test")  # the `split` column's values, in the order every table shows them
# Shards are named by the Hugging Face split their rows belong to (`datasets` maps file names starting
# with these to its standard splits), so `load_dataset(OUT)` finds the three splits with no card at all.
HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}
_SHARD_NAME = re.compile(rf"({'|'.join(HF_SPLITS.values())})-(\d{{{SHARD_DIGITS}}})\.parquet")
# Schema 1.0 wrote every split into data/part-NNNNN.parquet: still read, and deleted by --overwrite.
_LEGACY_PREFIX = "part"
_LEGACY_SHARD_NAME = re.compile(rf"{_LEGACY_PREFIX}-(\d{{{SHARD_DIGITS}}})\.parquet")


class NotADatasetError(Exception):
    """The path is not a built dataset folder at all; the message is one line."""


def split_order(split: str) -> tuple[int, str]:
    """Sort key: train, val, test first, any other split after them by name."""
    return (SPLITS.index(split) if split in SPLITS else len(SPLITS), split)


def ordered_splits(splits: Iterator[str] | Sequence[str] | set[str]) -> list[str]:
    """The given split names, each once, in `split_order`."""
    return sorted(set(splits), key=split_order)


def shard_name(split: str, index: int) -> str:
    """The file name of the `index`-th shard of `split` (a `split` column value: train, val, test)."""
    if split not in HF_SPLITS:
        raise ValueError(f"unknown split {split!r}; a dataset has {', '.join(SPLITS)}")
    return f"{HF_SPLITS[split]}-{index:0{SHARD_DIGITS}d}.parquet"


def parse_shard_name(name: str) -> tuple[str | None, int] | None:
    """(split, index) from a shard's file name; split is None for a schema-1.0 shard (`part-NNNNN`, every
    split mixed); None for a name mgll does not give a shard."""
    match = _SHARD_NAME.fullmatch(name)
    if match:
        split = next(s for s, hf in HF_SPLITS.items() if hf == match.group(1))
        return split, int(match.group(2))
    legacy = _LEGACY_SHARD_NAME.fullmatch(name)
    return (None, int(legacy.group(1))) if legacy else None


def hf_split(split: str) -> str:
    """The Hugging Face split name of a `split` column value (val → validation)."""
    return HF_SPLITS.get(split, split)


def temporary_path(path: Path) -> Path:
    """Where a file is written before it is renamed into place (hidden, so no reader picks it up)."""
    return path.with_name(f".{path.name}.tmp")


def temporary_files(root: Path) -> list[Path]:
    """Temporary files an interrupted build left beside the manifest and rejects or among the shards
    (only those of names mgll writes: a hidden `.x.tmp` of someone else's is not ours)."""
    root = Path(root)
    found = [temporary_path(root / name) for name in (MANIFEST_FILE, REJECTS_FILE, CARD_FILE)]
    if _own_folder(data_dir(root)):
        found += [p for p in data_dir(root).glob(".*.tmp") if parse_shard_name(p.name[1:-4]) is not None]
    return sorted(p for p in found if p.is_file())


def is_card(path: Path) -> bool:
    """Whether `path` is a card `mgll card` wrote (it carries CARD_MARKER near its top)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            head = file.read(4096)
    except OSError:
        return False
    return CARD_MARKER in head


def written_files(root: Path) -> list[Path]:
    """The files in `root` that a build or `mgll card` wrote, recognised by name (and the card by its
    marker): everything `--overwrite` may delete. Anything else is someone else's and stays; so does
    anything inside a linked folder (deleting there would delete elsewhere)."""
    root = Path(root)
    found = [root / name for name in (MANIFEST_FILE, REJECTS_FILE) if (root / name).is_file()]
    found += temporary_files(root)
    if _own_folder(data_dir(root)):
        found += shard_paths(root)
    if is_card(root / CARD_FILE):
        found.append(root / CARD_FILE)
    if _own_folder(root / CHARTS_DIR):
        found += [root / CHARTS_DIR / name for name in CHARTS.values() if (root / CHARTS_DIR / name).is_file()]
    return sorted(found)


def foreign_entries(root: Path) -> list[Path]:
    """What `root` holds that neither a build nor `mgll card` wrote (the lock file and the build's folders
    are the build's; a folder counts as foreign only through its foreign contents)."""
    root = Path(root)
    if not root.is_dir():
        return []
    ours = set(written_files(root)) | {root / LOCK_FILE, data_dir(root), root / CHARTS_DIR}
    foreign = [p for p in root.iterdir() if p not in ours]
    for folder in (data_dir(root), root / CHARTS_DIR):
        if _own_folder(folder):
            foreign += [p for p in folder.iterdir() if p not in ours]
        elif folder.exists():
            foreign.append(folder)
    return sorted(foreign)


def default_linkage_path(root: Path) -> Path:
    """Where the linkage table goes unless --linkage says otherwise: beside the dataset, never inside it."""
    root = Path(root)
    return root.parent / f"{root.name}{LINKAGE_SUFFIX}"


def linkage_journal_path(linkage: Path) -> Path:
    """The journal a running (or killed) build appends linkage entries to."""
    return linkage.with_name(linkage.name + ".journal")


def linkage_lock_path(linkage: Path) -> Path:
    """The lock file guarding a linkage table and its journal (beside them, like the journal)."""
    return linkage.with_name(linkage.name + ".lock")


class LockHeld(Exception):
    """Another process holds the lock; `holder` is its pid as it wrote it ("" when unreadable)."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder

    @property
    def by(self) -> str:
        """" (process N)" for a message, or nothing when the holder's pid is unknown."""
        return f" (process {self.holder})" if self.holder.isdigit() else ""


def acquire_lock(path: Path) -> int:
    """An exclusive flock on `path` (created, mode 0600) holding this process's pid; the descriptor, whose
    closing drops the lock. Raises LockHeld at once when another holds it, OSError when `path` cannot be
    opened. The build holds one on its dataset folder and linkage, the trainer one on its run folder. The
    kernel drops it however the holder ends (kill -9 included), so a stale lock never blocks a resume; the
    file stays, since removing it would let a process holding the old file and one creating a new one
    both "hold" the lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise LockHeld(holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _own_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def data_dir(root: Path) -> Path:
    return Path(root) / DATA_DIR


def relative_name(root: Path, path: Path) -> str:
    """A file's name relative to the dataset root, as the manifest lists it ("data/part-00000.parquet")."""
    return Path(path).relative_to(root).as_posix()


def shard_paths(root: Path, split: str | None = None) -> list[Path]:
    """The data shards the writer named, whole ones only (temporary files excluded), in split order then
    index order; with `split`, only that split's (schema-1.0 shards, which mix splits, are then left out)."""
    folder = data_dir(root)
    if not folder.is_dir():
        return []
    named = []
    for path in folder.iterdir():
        parsed = parse_shard_name(path.name)
        if parsed is not None and path.is_file() and (split is None or parsed[0] == split):
            shard_split, index = parsed
            order = split_order(shard_split) if shard_split is not None else (len(SPLITS) + 1, "")
            named.append((order, index, path))
    return [path for _, _, path in sorted(named)]


def split_file_patterns(root: Path) -> dict[str, str]:
    """Per Hugging Face split present, the glob (relative to the root) of its shards: the `data_files` of a
    dataset card's `configs`. A schema-1.0 dataset's single set of shards is one `train` split."""
    patterns: dict[str, str] = {}
    for path in shard_paths(root):
        split, _ = parse_shard_name(path.name)
        hf, prefix = (HF_SPLITS[split], HF_SPLITS[split]) if split is not None else ("train", _LEGACY_PREFIX)
        patterns.setdefault(hf, f"{DATA_DIR}/{prefix}-*.parquet")
    return patterns


def legacy_shards(root: Path) -> list[Path]:
    """Schema-1.0 shards (`part-NNNNN`, every split in one set of files)."""
    return [p for p in shard_paths(root) if parse_shard_name(p.name)[0] is None]


def next_shard_indices(root: Path) -> dict[str, int]:
    """Per split, the index the next shard of a resumed build takes (after the last whole one)."""
    following = {split: 0 for split in SPLITS}
    for path in shard_paths(root):
        split, index = parse_shard_name(path.name)
        if split is not None:
            following[split] = max(following[split], index + 1)
    return following


def data_files(root: Path) -> list[Path]:
    """Every Parquet file a reader globbing `data/**/*.parquet` would pick up, whoever wrote it
    (temporary files excluded): what `mgll validate` checks."""
    folder = data_dir(root)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith("."))


def require_dataset(path: Path) -> Path:
    """The dataset root, or NotADatasetError for a path that is no dataset folder at all."""
    root = Path(path)
    if not root.exists():
        raise NotADatasetError(f"{root} does not exist")
    if not root.is_dir():
        raise NotADatasetError(f"{root} is a file, not a dataset folder")
    if not (root / MANIFEST_FILE).is_file() and not data_dir(root).is_dir():
        raise NotADatasetError(f"{root} is not an mgll dataset (no {MANIFEST_FILE} and no {DATA_DIR}/ folder)")
    return root


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest as a dict, or None when it is missing or not a JSON object."""
    try:
        manifest = json.loads((Path(root) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def manifest_bytes(root: Path) -> bytes | None:
    """The manifest file's raw bytes (for fingerprints), or None when there is none."""
    path = Path(root) / MANIFEST_FILE
    return path.read_bytes() if path.is_file() else None


@dataclass(frozen=True)
class Metadata:
    """What a dataset declares about itself: from its first shard's file metadata, else its manifest."""

    vocabulary: tuple[str, ...]
    granularities: tuple[str, ...]
    schema_version: str | None
    pipeline: str | None
    pipeline_hash: str | None


def read_metadata(root: Path) -> Metadata:
    """The dataset's vocabulary, granularities, schema version and pipeline (shards first, then manifest).

    Raises OSError / pyarrow.ArrowException when the first shard cannot be read."""
    shards = shard_paths(root)
    meta = schema.read_metadata(pq.read_schema(shards[0])) if shards else {}
    manifest = read_manifest(root) or {}
    pipeline = manifest.get("pipeline") if isinstance(manifest.get("pipeline"), dict) else {}
    return Metadata(
        vocabulary=tuple(meta.get("label_vocabulary") or manifest.get("label_vocabulary") or ()),
        granularities=tuple(meta.get("granularities") or manifest.get("granularities") or ()),
        schema_version=meta.get("schema_version") or manifest.get("schema_version"),
        pipeline=meta.get("pipeline") or pipeline.get("name"),
        pipeline_hash=meta.get("pipeline_hash") or pipeline.get("content_hash"),
    )


def iter_row_groups(root: Path, columns: list[str]) -> Iterator[pa.Table]:
    """The requested columns (those present) of every row group of every shard, one group at a time."""
    for path in shard_paths(root):
        shard = pq.ParquetFile(path, buffer_size=READ_BUFFER)
        names = set(shard.schema_arrow.names)
        wanted = [c for c in columns if c.split(".", 1)[0] in names]
        for group in range(shard.num_row_groups):
            yield shard.read_row_group(group, columns=wanted)


def label_matrix(
    labels_column: Sequence[Sequence[dict[str, Any]] | None], vocabulary: Sequence[str]
) -> tuple[np.ndarray, int]:
    """The `labels` column as an [N, len(vocabulary)] int8 matrix of statuses (1, 0, -1; 0 where a finding
    is unmentioned), plus how many label entries named a finding outside `vocabulary` (ignored).

    Callers pick their reading: the trainer takes `== 1` as its multi-hot positives (uncertain is not
    evidence of a finding), evaluation masks `-1` per label."""
    index = {name: j for j, name in enumerate(vocabulary)}
    matrix = np.zeros((len(labels_column), len(vocabulary)), dtype=np.int8)
    outside = 0
    for i, labels in enumerate(labels_column):
        for item in labels or ():
            j = index.get(item["name"])
            if j is None:
                outside += 1
            elif item["status"] in (1, 0, -1):
                matrix[i, j] = item["status"]
    return matrix, outside
