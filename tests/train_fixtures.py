"""A small, valid, learnable mgll dataset written straight into a folder, for the training tests.

Each finding draws its own shape into the image (effusion: a bright band at the bottom, cardiomegaly: a
bright disc in the middle), and the texts name the findings, so a few dozen steps of a tiny model can
learn the image-text pairing and the loss visibly falls.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from mgll_data import schema

VOCABULARY = ["Pleural Effusion", "Cardiomegaly", "Pneumothorax"]
GRANULARITIES = ["modality", "category", "disease", "description", "explanation"]
EXPLANATIONS = {
    "Pleural Effusion": "fluid collecting in the pleural space around the lung",
    "Cardiomegaly": "an enlarged cardiac silhouette",
}
# (positive findings, other labels) per pattern; rows cycle through them.
PATTERNS = [
    ([], [("Pneumothorax", 0)]),
    (["Pleural Effusion"], [("Pneumothorax", -1)]),
    (["Cardiomegaly"], []),
    (["Pleural Effusion", "Cardiomegaly"], [("Pneumothorax", 0)]),
]


def pattern_image(findings: list[str], rng: np.random.Generator, size: int = 64) -> bytes:
    pixels = rng.normal(60, 12, (size, size))
    yy, xx = np.mgrid[:size, :size]
    if "Pleural Effusion" in findings:
        pixels[int(size * 0.75) :, :] += 140
    if "Cardiomegaly" in findings:
        pixels[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 5) ** 2] += 140
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _texts(findings: list[str], row: int) -> dict[str, str | None]:
    disease = " and ".join(f.lower() for f in findings) or "no finding"
    return {
        "modality": "chest radiograph, PA view",
        "category": "abnormal" if findings else "normal",
        "disease": disease,
        "description": f"there is {disease}." if findings else ("lungs are clear." if row % 2 else None),
        "explanation": "; ".join(EXPLANATIONS[f] for f in findings) or None,
    }


def _items(findings: list[str], row: int, texts: dict[str, str | None]) -> dict[str, list[str] | None]:
    """Per-level items as a 1.3 build writes them: the effusion's side alternates by row."""
    sided = [f"{f}|{'left' if row % 8 < 4 else 'right'}" if f == "Pleural Effusion" else f for f in findings]
    items = {
        "category": ["abnormal" if findings else "normal"],
        "disease": list(findings) or ["no finding"],
        "description": sided or ["normal"],
        "explanation": list(findings) or ["normal"],
    }
    return {g: (items[g] if texts[g] is not None else None) for g in items}


ITEM_VOCABULARY = ["normal", "abnormal", "no finding", *VOCABULARY, "Pleural Effusion|left", "Pleural Effusion|right"]


def write_dataset(
    root: Path,
    rows: int = 64,
    *,
    items: bool = False,
    granularities: list[str] = GRANULARITIES,
    splits: tuple[str, ...] = ("train", "train", "train", "val"),
    corrupt_rows: tuple[int, ...] = (),
    row_group_size: int = 16,
    shards: int = 1,
    seed: int = 0,
    image_size: int = 64,
) -> Path:
    """Write `rows` rows into root/data/part-*.parquet plus a manifest.json; return root. `items` adds the
    schema-1.3 items_<granularity> columns and the item vocabulary."""
    rng = np.random.default_rng(seed)
    records = []
    for row in range(rows):
        findings, others = PATTERNS[row % len(PATTERNS)]
        image = pattern_image(findings, rng, image_size)
        if row in corrupt_rows:
            image = image[: len(image) // 3]
        texts = _texts(findings, row)
        record = {
            "image_id": f"img-{row:05d}",
            "patient_id": f"pat-{row // 2:05d}",
            "study_id": f"stu-{row:05d}",
            "split": splits[row % len(splits)],
            "image": {"bytes": image, "path": f"img-{row:05d}.png"},
            "height": image_size,
            "width": image_size,
            "original_height": 256,
            "original_width": 256,
            "channels": 1,
            "modality": "DX",
            "view_position": "PA",
            "body_part": "CHEST",
            "photometric_interpretation": "MONOCHROME2",
            "bits_stored": 8,
            "pixel_spacing_mm": 0.5,
            "manufacturer_model": None,
            "source_format": "png",
            "source_key": f"src-{row:05d}",
            "labels": [{"name": f, "status": 1} for f in findings] + [{"name": n, "status": s} for n, s in others],
            "report_text": f"FINDINGS: {texts['description'] or 'unremarkable.'}",
        }
        for g in granularities:
            record[schema.text_column(g)] = texts[g]
        if items:
            level_items = _items(findings, row, texts)
            for g in schema.item_granularities(granularities):
                record[schema.item_column(g)] = level_items[g]
        records.append(record)
    arrow = schema.arrow_schema(
        granularities, VOCABULARY, "test-fixture", item_vocabulary=ITEM_VOCABULARY if items else None
    )
    data_dir = Path(root) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    per_shard = -(-rows // shards)
    names = []
    for index in range(shards):
        chunk = records[index * per_shard : (index + 1) * per_shard]
        name = f"data/part-{index:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(chunk, schema=arrow), Path(root) / name, row_group_size=row_group_size)
        names.append(name)
    manifest = {
        "schema_version": schema.schema_version(),
        "rows": rows,
        "label_vocabulary": VOCABULARY,
        "granularities": list(granularities),
        "shards": names,
    }
    (Path(root) / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return Path(root)
