"""Shared fixtures: one torch thread, and `datasets`, which writes built dataset folders for tests.

`datasets` writes through mgll_data's own writer (`writer.ShardWriter`, `write_rejects`, `write_manifest`,
with the layout `mgll_data.dataset` names), so a test reads the folder `mgll build` writes, not a copy
of its layout. Rows come from two recipes, both plain dicts a test can bend before writing:

- `datasets.rows(n)`: the contract's variety (five findings with 1 / 0 / -1, seven granularities with
  nulls, two image sizes, two images per patient, splits per patient), for validate, card, evaluate;
- `datasets.learnable_rows(n)`: each finding draws its own shape into the image and the texts name the
  findings, so a few dozen steps of a tiny model learn the pairing and the loss visibly falls.

A test that needs what the writer refuses (a null in a required column, an unknown split, a bent schema)
writes a valid folder and then breaks it explicitly. Typical use:

    rows = datasets.rows(12)
    rows[3]["labels"] = [{"name": "Edema", "status": 2}]
    path = datasets.write(tmp_path / "ds", rows)
"""

from __future__ import annotations

import os

# Tests never reach the network: `datasets` / `huggingface_hub` read these when first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import io
import random
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from mgll_data import __version__, dataset, schema, writer

Rows = list[dict[str, Any]]


class DatasetFactory:
    """Rows and dataset folders for tests (the `datasets` fixture; benchmarks instantiate it directly)."""

    VOCABULARY = ("Atelectasis", "Cardiomegaly", "Edema", "Pleural Effusion", "Pneumothorax")
    GRANULARITIES = ("modality", "category", "disease", "description", "explanation", "study", "series")
    PATIENT_SPLITS = ("train", "train", "train", "val", "test")  # patient k gets PATIENT_SPLITS[k % 5]
    REJECT_REASONS = (("imaging", "truncated-file"), ("sources", "report-missing"), ("imaging", "not-an-image"))
    PIPELINE_HASH = "0" * 64

    LEARNABLE_VOCABULARY = ("Pleural Effusion", "Cardiomegaly", "Pneumothorax")
    LEARNABLE_GRANULARITIES = ("modality", "category", "disease", "description", "explanation")
    ITEM_VOCABULARY = ("normal", "abnormal", "no finding", *LEARNABLE_VOCABULARY, "Pleural Effusion|left",
                       "Pleural Effusion|right")
    _EXPLANATIONS = {
        "Pleural Effusion": "fluid collecting in the pleural space around the lung",
        "Cardiomegaly": "an enlarged cardiac silhouette",
    }
    # (positive findings, other labels) per learnable row; rows cycle through them
    _PATTERNS = (
        ((), (("Pneumothorax", 0),)),
        (("Pleural Effusion",), (("Pneumothorax", -1),)),
        (("Cardiomegaly",), ()),
        (("Pleural Effusion", "Cardiomegaly"), (("Pneumothorax", 0),)),
    )

    # -- writing --------------------------------------------------------------------------------------------

    def write(
        self,
        path: Path,
        rows: int | Rows = 12,
        *,
        rejects: int | list[dict[str, str]] = 2,
        granularities: tuple[str, ...] = GRANULARITIES,
        vocabulary: tuple[str, ...] = VOCABULARY,
        item_vocabulary: tuple[str, ...] | None = None,
        pipeline: str = "mimic-cxr",
        shards: int = 1,
        row_group_size: int | None = None,
    ) -> Path:
        """Write a dataset folder at `path` through `mgll_data.writer` and return `path`.

        `rows` / `rejects` are counts (`self.rows(n)` / `self.rejects(n)`) or explicit lists. Each split's
        rows go into `shards` shards in order. `row_group_size` lowers the writer's row-group size for this
        write (its constant is sized for real builds; streaming tests need several groups in a few dozen
        rows). The manifest is the one a build writes, its counts read back from the shards.
        """
        path = Path(path)
        if isinstance(rows, int):
            rows = self.rows(rows, granularities=granularities, vocabulary=vocabulary)
        reject_list = self.rejects(rejects) if isinstance(rejects, int) else rejects
        arrow_schema = schema.arrow_schema(
            list(granularities), list(vocabulary), pipeline, pipeline_hash=self.PIPELINE_HASH,
            item_vocabulary=list(item_vocabulary) if item_vocabulary is not None else None,
        )
        by_split: dict[str, Rows] = {}
        for row in rows:
            by_split.setdefault(row["split"], []).append(row)
        dataset.data_dir(path).mkdir(parents=True, exist_ok=True)
        with mock.patch.object(writer, "ROW_GROUP_SIZE", row_group_size or writer.ROW_GROUP_SIZE):
            for split, in_split in by_split.items():
                per_shard = -(-len(in_split) // shards)
                for index, start in enumerate(range(0, len(in_split), per_shard)):
                    shard = writer.ShardWriter(path, arrow_schema, next_shards={split: index})
                    for row in in_split[start : start + per_shard]:
                        shard.add(row)
                    shard.close()
        writer.write_rejects(path, reject_list)
        counts = writer.dataset_counts(path)
        writer.write_manifest(path, {
            "schema_version": schema.schema_version(),
            "tool_version": __version__,
            "pipeline": {"name": pipeline, "content_hash": self.PIPELINE_HASH, "layout": "mimic-cxr"},
            "created": "2026-01-01T00:00:00+00:00",
            "engine": "local",
            "workers": 1,
            "inputs": counts["rows"] + len(reject_list),
            "rows": counts["rows"],
            "rejects": len(reject_list),
            "rejects_by_reason": dict(Counter(r["reason"] for r in reject_list).most_common()),
            "splits": counts["splits"],
            "label_vocabulary": list(vocabulary),
            "granularities": list(granularities),
            "license": dataset.DEFAULT_LICENSE,
            "shards": [dataset.relative_name(path, p) for p in dataset.shard_paths(path)],
            "timings": {"seconds": 1.0, "images_per_second": float(counts["rows"]), "processed": counts["rows"],
                        "cpu_count": 1},
        })
        return path

    def write_learnable(
        self,
        path: Path,
        rows: int = 64,
        *,
        items: bool = False,
        granularities: tuple[str, ...] = LEARNABLE_GRANULARITIES,
        shards: int = 1,
        row_group_size: int = 16,
        **row_options: Any,
    ) -> Path:
        """`learnable_rows(rows, ...)` written with their vocabulary (and, with `items`, the item vocabulary);
        no rejects."""
        row_list = self.learnable_rows(rows, items=items, granularities=granularities, **row_options)
        return self.write(
            path, row_list, rejects=0, granularities=granularities, vocabulary=self.LEARNABLE_VOCABULARY,
            item_vocabulary=self.ITEM_VOCABULARY if items else None, pipeline="test-fixture", shards=shards,
            row_group_size=row_group_size,
        )

    # -- the contract's variety ----------------------------------------------------------------------------

    def rows(
        self,
        n: int = 12,
        *,
        granularities: tuple[str, ...] = GRANULARITIES,
        vocabulary: tuple[str, ...] = VOCABULARY,
        seed: int = 0,
    ) -> Rows:
        """`n` valid rows: two images per patient, splits per patient, mixed labels, some null texts."""
        rng = random.Random(seed)
        rows = []
        for i in range(n):
            patient = i // 2
            height, width = (24, 32) if i % 3 else (32, 24)
            labels = [{"name": name, "status": rng.choice((1, 0, -1))} for name in vocabulary if rng.random() < 0.6]
            positives = [label["name"] for label in labels if label["status"] == 1]
            impression = "There is " + ", ".join(p.lower() for p in positives) if positives else "Normal"
            image_id = f"img-{seed:04x}{i:016x}"
            rows.append({
                "image_id": image_id,
                "patient_id": f"pat-{seed:04x}{patient:016x}",
                "study_id": f"stu-{seed:04x}{patient:016x}",
                "split": self.PATIENT_SPLITS[patient % len(self.PATIENT_SPLITS)],
                "image": {"bytes": self.png(height, width, 1, seed * 100_003 + i), "path": f"{image_id}.png"},
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
                **self._contract_texts(i, positives, granularities),
            })
        return rows

    def rejects(self, n: int = 2) -> list[dict[str, str]]:
        return [
            {
                "source_key": f"src-rej{i:016x}",
                "stage": self.REJECT_REASONS[i % len(self.REJECT_REASONS)][0],
                "reason": self.REJECT_REASONS[i % len(self.REJECT_REASONS)][1],
                "error": "the file ends before its pixel data",
            }
            for i in range(n)
        ]

    @staticmethod
    def png(height: int, width: int, channels: int = 1, seed: int = 0) -> bytes:
        """A PNG of random noise: distinct content per seed, real bytes for Pillow to decode."""
        rng = random.Random(seed)
        mode = "L" if channels == 1 else "RGB"
        image = Image.frombytes(mode, (width, height), rng.randbytes(height * width * channels))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    @staticmethod
    def _contract_texts(index: int, positives: list[str], granularities: tuple[str, ...]) -> dict[str, str | None]:
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

    # -- learnable rows -------------------------------------------------------------------------------------

    def learnable_rows(
        self,
        n: int = 64,
        *,
        items: bool = False,
        granularities: tuple[str, ...] = LEARNABLE_GRANULARITIES,
        splits: tuple[str, ...] = ("train", "train", "train", "val"),
        corrupt_rows: tuple[int, ...] = (),
        seed: int = 0,
        image_size: int = 64,
    ) -> Rows:
        """`n` rows cycling through four finding patterns; row k is `img-{k:05d}`, in split
        `splits[k % len(splits)]`; the images of `corrupt_rows` are cut short (they do not decode). `items`
        adds the schema-1.3 items_<granularity> columns."""
        rng = np.random.default_rng(seed)
        rows = []
        for k in range(n):
            findings, others = self._PATTERNS[k % len(self._PATTERNS)]
            image = self.pattern_png(findings, rng, image_size)
            if k in corrupt_rows:
                image = image[: len(image) // 3]
            texts = self._learnable_texts(findings, k)
            row = {
                "image_id": f"img-{k:05d}",
                "patient_id": f"pat-{k // 2:05d}",
                "study_id": f"stu-{k:05d}",
                "split": splits[k % len(splits)],
                "image": {"bytes": image, "path": f"img-{k:05d}.png"},
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
                "source_key": f"src-{k:05d}",
                "labels": [{"name": f, "status": 1} for f in findings] + [{"name": o, "status": s} for o, s in others],
                "report_text": f"FINDINGS: {texts['description'] or 'unremarkable.'}",
            }
            row.update({schema.text_column(g): texts[g] for g in granularities})
            if items:
                level_items = self._learnable_items(findings, k, texts)
                row.update({schema.item_column(g): level_items[g] for g in schema.item_granularities(granularities)})
            rows.append(row)
        return rows

    @staticmethod
    def pattern_png(findings: tuple[str, ...], rng: np.random.Generator, size: int = 64) -> bytes:
        """Noise plus a bright band at the bottom for an effusion and a bright central disc for cardiomegaly."""
        pixels = rng.normal(60, 12, (size, size))
        yy, xx = np.mgrid[:size, :size]
        if "Pleural Effusion" in findings:
            pixels[int(size * 0.75) :, :] += 140
        if "Cardiomegaly" in findings:
            pixels[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 5) ** 2] += 140
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue()

    def _learnable_texts(self, findings: tuple[str, ...], k: int) -> dict[str, str | None]:
        disease = " and ".join(f.lower() for f in findings) or "no finding"
        return {
            "modality": "chest radiograph, PA view",
            "category": "abnormal" if findings else "normal",
            "disease": disease,
            "description": f"there is {disease}." if findings else ("lungs are clear." if k % 2 else None),
            "explanation": "; ".join(self._EXPLANATIONS[f] for f in findings) or None,
        }

    @staticmethod
    def _learnable_items(findings: tuple[str, ...], k: int, texts: dict[str, str | None]) -> dict[str, list | None]:
        """Per-level items as a 1.3 build writes them: the effusion's side alternates by row."""
        side = "left" if k % 8 < 4 else "right"
        sided = [f"{f}|{side}" if f == "Pleural Effusion" else f for f in findings]
        items = {
            "category": ["abnormal" if findings else "normal"],
            "disease": list(findings) or ["no finding"],
            "description": sided or ["normal"],
            "explanation": list(findings) or ["normal"],
        }
        return {g: (items[g] if texts[g] is not None else None) for g in items}


@pytest.fixture(scope="session")
def datasets() -> DatasetFactory:
    """Writes built dataset folders through mgll_data's writer; see `DatasetFactory`."""
    return DatasetFactory()


@pytest.fixture()
def one_torch_thread():
    """Two cores shared by many jobs: one torch thread is several times faster than oversubscribed two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
