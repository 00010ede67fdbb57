"""Downstream data for evaluation: a dataset built by `mgll build`, or a plain CSV of images + labels.

Both become one `Downstream` table held as plain arrays (labels, splits, texts) while image bytes stay on
disk and are streamed on demand, so a large test set never sits in memory as encoded images.

Label encoding (multi-label): 1 positive, 0 negative *or absent* (a finding the report never mentions is
taken as negative, as in the CheXpert protocol), -1 uncertain — excluded per label from every metric and
from probe/finetune training. A CSV whose only label column holds class names is a multi-class task.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mgll_data import dataset, schema
from mgll_data.dataset import SPLITS

IMAGE_COLUMNS = ("image", "image_path", "path", "file", "filename")
NON_LABEL_COLUMNS = {"split", "patient_id", "study_id", "image_id", "report_text", "source_key"}
CSV_SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


class EvaluationError(Exception):
    """An input evaluation cannot use (dataset, CSV, run, option); the message is one line."""


@dataclass
class Downstream:
    """Rows to evaluate on. `labels` is [N, L] int8 (multilabel) or [N] int64 class index (multiclass)."""

    source: str
    kind: str
    label_names: list[str]
    labels: np.ndarray
    splits: np.ndarray
    image_ids: list[str]
    texts: dict[str, list[str | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    patients: list[str] | None = None  # per row; None: each image is its own patient
    _locations: list[tuple[int, int, int]] = field(default_factory=list, repr=False)
    _files: list[Path] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.splits)

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def groups(self, rows: np.ndarray) -> np.ndarray:
        """The patient of each given row, for bootstraps that resample patients (images without a
        patient id count as their own patient)."""
        if self.patients is None:
            return np.asarray([f"image:{i}" for i in rows], dtype=object)
        return np.asarray([self.patients[i] or f"image:{i}" for i in rows], dtype=object)

    def split_counts(self) -> dict[str, int]:
        return {s: int((self.splits == s).sum()) for s in SPLITS}

    def multilabel_matrix(self) -> np.ndarray:
        """Labels as [N, L] in {1, 0, -1}: a multi-class task becomes one-vs-rest columns."""
        if self.kind == "multilabel":
            return self.labels
        return np.eye(len(self.label_names), dtype=np.int8)[self.labels]

    def image_bytes(self, indices: np.ndarray) -> Iterator[tuple[int, bytes]]:
        """(row index, encoded image bytes) for the given rows, in ascending row order."""
        wanted = np.unique(np.asarray(indices, dtype=np.int64))
        if self.source == "csv":
            for i in wanted:
                yield int(i), self._files[i].read_bytes()
            return
        by_group: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for i in wanted:
            file_index, group, offset = self._locations[i]
            by_group.setdefault((file_index, group), []).append((int(i), offset))
        for (file_index, group), members in sorted(by_group.items()):
            column = pq.ParquetFile(self._files[file_index]).read_row_group(group, columns=["image"]).column("image")
            for i, offset in members:
                yield i, column[offset].as_py()["bytes"]


def load_downstream(path: Path, *, labels: list[str] | None = None, image_column: str | None = None) -> Downstream:
    """A built dataset folder (has `data/*.parquet`) or a CSV file of images and labels."""
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"downstream data not found: {path}")
    if path.is_dir():
        return _load_parquet(path, labels)
    if path.suffix.lower() in (".csv", ".tsv"):
        return _load_csv(path, labels, image_column)
    raise EvaluationError(f"{path} is neither a dataset folder (data/*.parquet) nor a .csv file")


def _load_parquet(root: Path, wanted_labels: list[str] | None) -> Downstream:
    files = dataset.shard_paths(root)
    if not files:
        raise EvaluationError(
            f"{root} has no {dataset.DATA_DIR}/*.parquet shards; is it a dataset built by `mgll build`?"
        )
    try:
        first = pq.ParquetFile(files[0])
    except Exception as exc:  # pyarrow raises several types for a non-Parquet file
        raise EvaluationError(f"{files[0].name} is not a readable Parquet file ({type(exc).__name__})") from None
    declared = dataset.read_metadata(root)
    vocabulary = declared.vocabulary
    if not vocabulary:
        raise EvaluationError(f"{root} carries no label vocabulary (in the shards' metadata or the manifest)")
    text_columns = [schema.text_column(g) for g in declared.granularities]
    needed = ["image_id", "split", "labels"]
    missing = [c for c in needed + ["image"] if c not in first.schema_arrow.names]
    if missing:
        raise EvaluationError(f"{files[0].name} lacks required column(s) {missing}; not a dataset-v1 shard")
    present_texts = [c for c in text_columns if c in first.schema_arrow.names]
    patient_column = ["patient_id"] if "patient_id" in first.schema_arrow.names else []

    ids, splits, label_lists, patients, texts = [], [], [], [], {c: [] for c in present_texts}
    locations: list[tuple[int, int, int]] = []
    for file_index, file in enumerate(files):
        shard = pq.ParquetFile(file)
        for group in range(shard.num_row_groups):
            table = shard.read_row_group(group, columns=needed + present_texts + patient_column)
            ids.extend(table.column("image_id").to_pylist())
            patients.extend(table.column("patient_id").to_pylist() if patient_column else [])
            splits.extend(table.column("split").to_pylist())
            label_lists.extend(table.column("labels").to_pylist())
            for c in present_texts:
                texts[c].extend(table.column(c).to_pylist())
            locations.extend((file_index, group, k) for k in range(table.num_rows))

    names = list(vocabulary)
    if wanted_labels:
        unknown = [w for w in wanted_labels if w not in names]
        if unknown:
            raise EvaluationError(f"--labels {unknown} not in the dataset's vocabulary {names}")
        names = list(wanted_labels)
    matrix, outside = dataset.label_matrix(label_lists, names)
    notes = []
    if outside and not wanted_labels:
        notes.append(f"{outside} label entries name findings outside the vocabulary and were ignored")
    return Downstream(
        source="parquet",
        kind="multilabel",
        label_names=names,
        labels=matrix,
        splits=np.asarray(splits, dtype=object),
        image_ids=ids,
        texts={c[len(schema.text_column("")) :]: v for c, v in texts.items()},
        notes=notes,
        patients=patients if patient_column else None,
        _locations=locations,
        _files=files,
    )


def _load_csv(path: Path, wanted_labels: list[str] | None, image_column: str | None) -> Downstream:
    try:
        frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise EvaluationError(f"{path.name} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    column = image_column or next((c for c in IMAGE_COLUMNS if c in frame.columns), None)
    if column is None or column not in frame.columns:
        raise EvaluationError(
            f"{path.name} needs an image path column (one of {list(IMAGE_COLUMNS)} or --image-column)"
        )
    if frame.empty:
        raise EvaluationError(f"{path.name} has no rows")
    prefix = schema.text_column("")
    label_columns = wanted_labels or [
        c for c in frame.columns if c != column and c not in NON_LABEL_COLUMNS and not c.startswith(prefix)
    ]
    missing = [c for c in label_columns if c not in frame.columns]
    if missing or not label_columns:
        raise EvaluationError(
            f"{path.name}: label column(s) {missing or '(none)'} not found; columns: {list(frame.columns)}"
        )

    files = [(path.parent / p).resolve() if not Path(p).is_absolute() else Path(p) for p in frame[column]]
    absent = [k for k, f in enumerate(files) if not f.is_file()]
    if absent:
        raise EvaluationError(
            f"{len(absent)} image file(s) listed in {path.name} do not exist "
            f"(first: row {absent[0] + 2}, {frame[column].iloc[absent[0]]})"
        )

    kind, names, labels = _csv_labels(frame, label_columns, path.name)
    notes = []
    if "split" in frame.columns:
        splits = frame["split"].str.strip().str.lower().to_numpy(dtype=object)
        bad = sorted(set(splits) - set(SPLITS))
        if bad:
            raise EvaluationError(f"{path.name}: split values must be train/val/test, found {bad[:3]}")
    else:
        group = frame["patient_id"] if "patient_id" in frame.columns else frame[column]
        splits = np.asarray([_hash_split(str(g)) for g in group], dtype=object)
        by = "patient_id" if "patient_id" in frame.columns else "image path"
        notes.append(f"no split column: rows assigned 60/20/20 train/val/test by a hash of the {by}")
    texts = {c[len(prefix) :]: [v if v else None for v in frame[c]] for c in frame.columns if c.startswith(prefix)}
    return Downstream(
        source="csv",
        kind=kind,
        label_names=names,
        labels=labels,
        splits=splits,
        image_ids=[str(p) for p in frame[column]],
        texts=texts,
        notes=notes,
        patients=list(frame["patient_id"]) if "patient_id" in frame.columns else None,
        _files=files,
    )


def _csv_labels(frame: pd.DataFrame, columns: list[str], name: str) -> tuple[str, list[str], np.ndarray]:
    binary_values = {"1", "0", "-1", "", "1.0", "0.0", "-1.0"}
    non_binary = [c for c in columns if not set(frame[c].str.strip()) <= binary_values]
    if not non_binary:
        matrix = np.zeros((len(frame), len(columns)), dtype=np.int8)
        for j, c in enumerate(columns):
            values = frame[c].str.strip().replace("", "0")
            matrix[:, j] = values.astype(float).astype(np.int8)
        return "multilabel", list(columns), matrix
    if len(columns) == 1:
        values = frame[columns[0]].str.strip()
        if (values == "").any():
            raise EvaluationError(
                f"{name}: class column '{columns[0]}' is empty on row {int(np.argmax(values == '')) + 2}"
            )
        classes = sorted(set(values))
        if len(classes) < 2:
            raise EvaluationError(f"{name}: class column '{columns[0]}' holds a single class ({classes[0]})")
        index = {c: k for k, c in enumerate(classes)}
        return "multiclass", classes, np.asarray([index[v] for v in values], dtype=np.int64)
    raise EvaluationError(
        f"{name}: column(s) {non_binary} hold values other than 1/0/-1; give a single class column, "
        "or --labels to choose columns"
    )


def _hash_split(key: str) -> str:
    """Deterministic split of a row with no split column (a fixed hash, never Python's salted hash())."""
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    train, val, _ = CSV_SPLIT_FRACTIONS
    return "train" if u < train else "val" if u < train + val else "test"
