"""Write small, valid built-dataset folders directly, so tests need not run the builder.

The layout is the one `mgll_data.dataset` names for `mgll build`: per-split shards (Arrow schema from
`mgll_data.schema.arrow_schema`), the rejects table (`schema.rejects_schema()`) and the manifest.
Rows hold real PNG bytes (random noise, so every image's content is distinct) and deterministic labels and
texts, so tests can derive the counts they expect from `make_rows(...)` rather than hard-coding them.

Typical use:

    rows = make_rows(12)
    rows[3]["labels"] = [{"name": "Edema", "status": 2}]     # break one thing
    write_dataset(tmp_path / "ds", rows=rows)
"""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from mgll_data import __version__, dataset, schema

DEFAULT_GRANULARITIES = ("modality", "category", "disease", "description", "explanation", "study", "series")
DEFAULT_VOCABULARY = ("Atelectasis", "Cardiomegaly", "Edema", "Pleural Effusion", "Pneumothorax")
PATIENT_SPLITS = ("train", "train", "train", "val", "test")  # patient k gets PATIENT_SPLITS[k % 5]
REJECT_REASONS = (("imaging", "truncated-file"), ("sources", "report-missing"), ("imaging", "not-an-image"))


def png_bytes(height: int, width: int, channels: int = 1, seed: int = 0) -> bytes:
    """A PNG of random noise: distinct content per seed, real bytes for Pillow to decode."""
    rng = random.Random(seed)
    mode = "L" if channels == 1 else "RGB"
    image = Image.frombytes(mode, (width, height), rng.randbytes(height * width * channels))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _texts(index: int, positives: list[str], granularities: tuple[str, ...]) -> dict[str, str | None]:
    abnormal = bool(positives)
    disease = " and ".join(p.lower() for p in positives) if abnormal else "no finding"
    candidates: dict[str, str | None] = {
        "modality": "chest radiograph, PA view" if index % 2 == 0 else "chest radiograph, AP view",
        "category": "abnormal" if abnormal else "normal",
        "disease": disease,
        "description": f"There is {disease}." if abnormal else "No acute cardiopulmonary process.",
        "explanation": f"{disease.capitalize()} is a finding on the radiograph." if abnormal else None,
        "study": "CHEST PA AND LATERAL" if index % 3 != 2 else None,
        "series": "PA" if index % 4 == 0 else None,
    }
    return {schema.text_column(g): candidates[g] for g in granularities}


def make_rows(
    n: int = 12,
    *,
    granularities: tuple[str, ...] = DEFAULT_GRANULARITIES,
    vocabulary: tuple[str, ...] = DEFAULT_VOCABULARY,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """`n` valid rows: two images per patient, splits per patient, mixed labels, some null texts."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        patient = i // 2
        height, width = (24, 32) if i % 3 else (32, 24)
        labels = [
            {"name": name, "status": rng.choice((1, 0, -1))} for name in vocabulary if rng.random() < 0.6
        ]
        positives = [label["name"] for label in labels if label["status"] == 1]
        impression = "There is " + ", ".join(p.lower() for p in positives) if positives else "Normal"
        image_id = f"img-{seed:04x}{i:016x}"
        rows.append(
            {
                "image_id": image_id,
                "patient_id": f"pat-{seed:04x}{patient:016x}",
                "study_id": f"stu-{seed:04x}{patient:016x}",
                "split": PATIENT_SPLITS[patient % len(PATIENT_SPLITS)],
                "image": {"bytes": png_bytes(height, width, 1, seed * 100_003 + i), "path": f"{image_id}.png"},
                "height": height,
                "width": width,
                "original_height": height * 80,
                "original_width": width * 80,
                "channels": 1,
                "modality": "DX" if i % 4 else "CR",
                "view_position": "PA" if i % 2 == 0 else "AP",
                "body_part": "CHEST",
                "photometric_interpretation": "MONOCHROME2",
                "bits_stored": 12,
                "pixel_spacing_mm": 0.139,
                "manufacturer_model": None,
                "source_format": "dicom",
                "source_key": f"src-{seed:04x}{i:016x}",
                "labels": labels,
                "report_text": f"FINDINGS: Study {i}.\nIMPRESSION: {impression}.",
                **_texts(i, positives, granularities),
            }
        )
    return rows


def make_rejects(n: int = 2) -> list[dict[str, str]]:
    return [
        {
            "source_key": f"src-rej{i:016x}",
            "stage": REJECT_REASONS[i % len(REJECT_REASONS)][0],
            "reason": REJECT_REASONS[i % len(REJECT_REASONS)][1],
            "error": "the file ends before its pixel data",
        }
        for i in range(n)
    ]


def contract_schema(
    *,
    granularities: tuple[str, ...] = DEFAULT_GRANULARITIES,
    vocabulary: tuple[str, ...] = DEFAULT_VOCABULARY,
    pipeline: str = "mimic-cxr",
    drop: tuple[str, ...] = (),
    retype: dict[str, pa.DataType] | None = None,
    all_nullable: bool = False,
    drop_metadata: tuple[str, ...] = (),
) -> pa.Schema:
    """The contract's shard schema, optionally bent: columns dropped or retyped, nullability relaxed (so a
    null can be written into a required column), metadata keys removed."""
    base = schema.arrow_schema(list(granularities), list(vocabulary), pipeline, pipeline_hash="0" * 64)
    fields = [
        pa.field(f.name, (retype or {}).get(f.name, f.type), nullable=all_nullable or f.nullable)
        for f in base
        if f.name not in drop
    ]
    metadata = {k: v for k, v in base.metadata.items() if k.decode() not in drop_metadata}
    return pa.schema(fields, metadata=metadata)


def write_dataset(
    path: Path,
    rows: int | list[dict[str, Any]] = 12,
    *,
    rejects: int | list[dict[str, str]] = 2,
    granularities: tuple[str, ...] = DEFAULT_GRANULARITIES,
    vocabulary: tuple[str, ...] = DEFAULT_VOCABULARY,
    pipeline: str = "mimic-cxr",
    shards: int = 1,
    row_group_size: int = 1000,
    arrow_schema: pa.Schema | None = None,
) -> Path:
    """Write a dataset folder at `path` and return `path`.

    `rows`/`rejects` are counts (generated) or explicit lists (e.g. hand-broken rows); `arrow_schema`
    overrides the contract's schema (e.g. to write a wrong column type). Each split's rows are spread over
    `shards` files in order (a row whose split is not a contract split goes with train, as a hand-broken
    value); the manifest's counts are computed from what is written.
    """
    path = Path(path)
    row_list = make_rows(rows, granularities=granularities, vocabulary=vocabulary) if isinstance(rows, int) else rows
    reject_list = make_rejects(rejects) if isinstance(rejects, int) else rejects
    pipeline_hash = "0" * 64
    shard_schema = arrow_schema or schema.arrow_schema(
        list(granularities), list(vocabulary), pipeline, pipeline_hash=pipeline_hash
    )

    dataset.data_dir(path).mkdir(parents=True, exist_ok=True)
    shard_names = []
    for split in dataset.SPLITS:
        in_split = [r for r in row_list if (r.get("split") if r.get("split") in dataset.SPLITS else "train") == split]
        per_shard = max(1, -(-len(in_split) // shards))
        for k, start in enumerate(range(0, len(in_split), per_shard)):
            shard = dataset.data_dir(path) / dataset.shard_name(split, k)
            table = pa.Table.from_pylist(in_split[start : start + per_shard], schema=shard_schema)
            pq.write_table(table, shard, row_group_size=row_group_size, compression="zstd")
            shard_names.append(dataset.relative_name(path, shard))
    pq.write_table(pa.Table.from_pylist(reject_list, schema=schema.rejects_schema()), path / dataset.REJECTS_FILE)

    manifest = {
        "schema_version": schema.schema_version(),
        "tool_version": __version__,
        "pipeline": {"name": pipeline, "content_hash": pipeline_hash, "layout": "mimic-cxr"},
        "created": "2026-01-01T00:00:00Z",
        "engine": "local",
        "workers": 1,
        "inputs": len(row_list) + len(reject_list),
        "rows": len(row_list),
        "rejects": len(reject_list),
        "rejects_by_reason": dict(Counter(r["reason"] for r in reject_list)),
        "splits": dict(Counter(r["split"] for r in row_list)),
        "label_vocabulary": list(vocabulary),
        "granularities": list(granularities),
        "shards": shard_names,
        "timings": {"seconds": 1.0, "images_per_second": float(len(row_list))},
    }
    write_manifest(path, manifest)
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / dataset.MANIFEST_FILE).read_text(encoding="utf-8"))


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    (Path(path) / dataset.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
