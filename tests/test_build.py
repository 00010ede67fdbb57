"""`mgll build` end to end on a MIMIC-shaped export of real and synthetic DICOMs with planted PHI and
broken files: every input accounted for, radiographs rendered like an independent reference, no PHI in
anything the dataset folder holds, resumable, and the same rows whatever the worker count."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from click.testing import CliRunner
from PIL import Image

from mgll_data import dataset, imaging, schema
from mgll_data.build import build_dataset
from mgll_data.cli import main
from mgll_data.demo import write_demo_export
from mgll_data.pipeline import load_pipeline

PHI_KEYWORDS = [
    "PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName", "InstitutionAddress",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "StudyInstanceUID",
    "SeriesInstanceUID", "SOPInstanceUID", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
    "DeviceSerialNumber", "StationName", "StudyID", "OtherPatientIDs",
]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    write_demo_export(root, studies=6, seed=3, broken=True)
    return root


@pytest.fixture(scope="module")
def salt(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("secret") / "salt"


@pytest.fixture(scope="module")
def built(export, salt, tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "ds"
    summary = build_dataset(export, out, "mimic-cxr", salt_file=salt, progress=False)
    return out, summary


def _dicoms(export: Path) -> list[Path]:
    return sorted(p for p in export.rglob("*.dcm"))


def _rows(out: Path) -> list[dict]:
    return [r for shard in dataset.shard_paths(out) for r in pq.read_table(shard).to_pylist()]


def _header_phi(path: Path) -> set[str]:
    """Identifying strings from a header, read independently of the builder's de-identification."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return set()
    found: set[str] = set()
    for keyword in PHI_KEYWORDS:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        values = value if isinstance(value, pydicom.multival.MultiValue) else [value]
        for v in values:
            text = str(v)
            found.add(text)
            found.update(part for part in re.split(r"[\^ ,]+", text) if len(part) >= 4)
    return {s for s in found if len(s) >= 4 and not s.isspace()}


def _all_strings(out: Path) -> str:
    """Every string the dataset folder holds: every column of every file, metadata, manifest, card."""
    chunks = []
    for parquet in out.rglob("*.parquet"):
        table = pq.read_table(parquet)
        chunks.append(json.dumps({k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}))
        for row in table.drop_columns([c for c in ["image"] if c in table.column_names]).to_pylist():
            chunks.append(json.dumps(row, default=str))
        if "image" in table.column_names:
            chunks.extend(r["path"] for r in table.column("image").to_pylist())
    for other in out.rglob("*"):
        if other.is_file() and other.suffix in {".json", ".md", ".txt", ".yaml"}:
            chunks.append(other.read_text())
    return "\n".join(chunks)


def test_every_input_is_a_row_or_a_reject(export, built):
    out, summary = built
    inputs = len(_dicoms(export))
    rows, rejects = _rows(out), pq.read_table(out / "rejects.parquet").to_pylist()
    assert summary.inputs == inputs
    assert len(rows) + len(rejects) == inputs
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == inputs and manifest["rows"] == len(rows) and manifest["rejects"] == len(rejects)
    reasons = {r["reason"] for r in rejects}
    assert {"truncated-file", "empty-file", "not-an-image"} <= reasons | {"decode-failed"} and reasons
    assert "report-missing" in reasons and "report-not-utf8" in reasons
    assert all(r["error"] and "\n" not in r["error"] for r in rejects)
    assert len({r["image_id"] for r in rows}) == len(rows)


def test_no_phi_leaves_the_builder(export, built):
    out, _ = built
    phi = set().union(*(_header_phi(p) for p in _dicoms(export)))
    assert len(phi) > 20, "the export must carry PHI for this test to mean anything"
    haystack = _all_strings(out)
    # whole-word matches: a short id like "7677" may occur inside a random pseudonym's hex digits
    leaked = sorted(s for s in phi if re.search(rf"(?<![\w]){re.escape(s)}(?![\w])", haystack))
    assert leaked == []
    for rel in [p.relative_to(export).as_posix() for p in _dicoms(export)]:
        assert rel not in haystack, "source paths stay in the private linkage table"


def test_linkage_is_outside_the_dataset_and_links_back(export, built):
    out, summary = built
    assert summary.linkage.parent == out.parent and summary.linkage.exists()
    linkage = pq.read_table(summary.linkage).to_pylist()
    assert len(linkage) == len(_dicoms(export))
    assert {e["source_path"] for e in linkage} == {p.relative_to(export).as_posix() for p in _dicoms(export)}


def test_stored_images_are_the_imaging_stage_output(export, built):
    out, summary = built
    by_id = {e["image_id"]: e["source_path"] for e in pq.read_table(summary.linkage).to_pylist() if e["kind"] == "row"}
    settings = load_pipeline("mimic-cxr").image
    for row in _rows(out)[:5]:
        rendered = imaging.render_file(export / by_id[row["image_id"]], settings)
        assert row["image"]["bytes"] == rendered.data
        image = Image.open(io.BytesIO(row["image"]["bytes"]))
        assert (image.height, image.width) == (row["height"], row["width"])
        assert max(row["height"], row["width"]) == settings.size


def test_monochrome1_radiograph_renders_like_an_independent_reference(export, built):
    out, summary = built
    linkage = pq.read_table(summary.linkage).to_pylist()
    rows = {r["image_id"]: r for r in _rows(out)}
    checked = 0
    for entry in linkage:
        if entry["kind"] != "row":
            continue
        ds = pydicom.dcmread(export / entry["source_path"])
        if ds.PhotometricInterpretation != "MONOCHROME1" or "WindowCenter" in ds or "VOILUTSequence" in ds:
            continue
        pixels = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(
            ds.get("RescaleIntercept", 0)
        )
        lo, hi = np.percentile(pixels, [0.5, 99.5])
        reference = 1.0 - np.clip((pixels - lo) / (hi - lo), 0, 1)
        stored = Image.open(io.BytesIO(rows[entry["image_id"]]["image"]["bytes"]))
        reference_img = Image.fromarray((reference * 255).round().astype(np.uint8)).resize(stored.size, Image.LANCZOS)
        diff = np.abs(np.asarray(stored, dtype=np.float64) - np.asarray(reference_img, dtype=np.float64))
        assert diff.mean() < 4.0, f"mean abs difference {diff.mean():.2f} grey levels"
        checked += 1
    assert checked >= 1, "the export holds a real MONOCHROME1 CR without a window"


def test_rerun_resumes_and_overwrite_starts_over(export, built, salt, tmp_path):
    out, first = built
    again = build_dataset(export, out, "mimic-cxr", salt_file=salt, progress=False)
    assert again.skipped == first.inputs and again.processed == 0
    assert again.rows == first.rows and again.rejects == first.rejects

    copy = tmp_path / "ds"
    build_dataset(export, copy, "mimic-cxr", salt_file=salt, progress=False)
    shard = dataset.shard_paths(copy)[-1]
    shard.unlink()
    resumed = build_dataset(export, copy, "mimic-cxr", salt_file=salt, progress=False)
    assert resumed.processed > 0 and resumed.rows == first.rows
    assert sorted(r["image_id"] for r in _rows(copy)) == sorted(r["image_id"] for r in _rows(out))
    fresh = build_dataset(export, copy, "mimic-cxr", salt_file=salt, progress=False, overwrite=True)
    assert fresh.skipped == 0 and fresh.rows == first.rows


def test_interrupted_build_resumes_to_the_same_rows(export, built, salt, tmp_path, monkeypatch):
    import mgll_data.build as build_module
    from mgll_data.engines.local import run_local

    def dies_after_three(items, ctx, workers):
        for n, outcome in enumerate(run_local(items, ctx, workers)):
            if n == 3:
                raise KeyboardInterrupt
            yield outcome

    out = tmp_path / "ds"
    monkeypatch.setattr(build_module, "get_engine", lambda name, **kw: dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(export, out, "mimic-cxr", salt_file=salt, progress=False)
    assert not (out / "manifest.json").exists()
    monkeypatch.undo()
    resumed = build_dataset(export, out, "mimic-cxr", salt_file=salt, progress=False)
    assert resumed.skipped == 3
    reference, _ = built
    assert sorted((r["image_id"], r["image"]["bytes"]) for r in _rows(out)) == sorted(
        (r["image_id"], r["image"]["bytes"]) for r in _rows(reference)
    )


KILLED_BUILD = """
import os, sys
from pathlib import Path
import mgll_data.build as build_module
from mgll_data import writer
from mgll_data.engines.local import run_local

writer.ROW_GROUP_SIZE, writer.SHARD_ROWS = 1, 2

def killed_after_seven(items, ctx, workers):
    for n, outcome in enumerate(run_local(items, ctx, workers)):
        if n == 7:
            os._exit(137)  # like the OOM killer: no finally, no atexit
        yield outcome

build_module.get_engine = lambda name, **kw: killed_after_seven
build_module.build_dataset(Path(sys.argv[1]), Path(sys.argv[2]), "mimic-cxr", salt_file=Path(sys.argv[3]),
                           progress=False)
"""


@pytest.mark.slow
def test_a_killed_build_keeps_the_linkage_of_every_committed_row(export, built, salt, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "ds"
    killed = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(export), str(out), str(salt)], capture_output=True)
    assert killed.returncode == 137, killed.stderr.decode()[-2000:]
    assert _rows(out), "the killed build committed some shards"
    resumed = build_dataset(export, out, "mimic-cxr", salt_file=salt, progress=False)
    assert 0 < resumed.skipped < resumed.inputs

    reference, first = built
    fields = ["kind", "source_key", "source_path", "report_path", "image_id", "patient_id", "study_id",
              "original_patient_id", "original_study_id"]  # fmt: skip
    linkage = pq.read_table(resumed.linkage, columns=fields).to_pylist()
    assert len(linkage) == resumed.inputs, "one linkage entry per input, none lost and none twice"
    assert sorted(linkage, key=lambda e: e["source_key"]) == sorted(
        pq.read_table(first.linkage, columns=fields).to_pylist(), key=lambda e: e["source_key"]
    )
    assert {e["image_id"] for e in linkage if e["kind"] == "row"} == {r["image_id"] for r in _rows(out)}


@pytest.mark.slow
def test_two_workers_give_the_same_rows(export, built, salt, tmp_path):
    reference, _ = built
    out = tmp_path / "ds2"
    build_dataset(export, out, "mimic-cxr", salt_file=salt, workers=2, progress=False)
    assert _rows(out) == _rows(reference)


def test_cli_summary_json_and_reject_rate_exit_code(export, salt, tmp_path):
    runner = CliRunner()
    out = tmp_path / "ds"
    result = runner.invoke(main, ["build", str(export), str(out), "--salt-file", str(salt), "--quiet",
                                  "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "rows +" in result.output and "rejects by reason" in result.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["rows"] + summary["rejects"] == summary["inputs"]
    strict = runner.invoke(main, ["build", str(export), str(out), "--salt-file", str(salt), "--quiet",
                                  "--max-reject-rate", "0.01"])
    assert strict.exit_code == 1 and "max-reject-rate" in strict.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["/no/such/export", "OUT"], "export"),
        (["EXPORT", "OUT", "--pipeline", "nope"], "no pipeline"),
        (["EXPORT", "OUT", "--linkage", "OUT/inside.parquet"], "outside the dataset"),
    ],
)
def test_usage_errors_are_one_line(export, salt, tmp_path, args, message):
    args = [a.replace("EXPORT", str(export)).replace("OUT", str(tmp_path / "ds")) for a in args]
    result = CliRunner().invoke(main, ["build", *args, "--salt-file", str(salt), "--quiet"])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_every_row_carries_the_items_of_its_texts(built):
    """Schema 1.3: items_<granularity> beside the report-derived texts, drawn from the declared vocabulary."""
    out, _ = built
    shard = dataset.shard_paths(out)[0]
    declared = set(schema.read_metadata(pq.read_schema(shard))["item_vocabulary"])
    rows = _rows(out)
    for row in rows:
        for granularity in ("category", "disease", "description", "explanation"):
            items, text = row[f"items_{granularity}"], row[f"text_{granularity}"]
            assert (items is None) == (text is None), (granularity, text, items)
            assert set(items or ()) <= declared
        if row["text_category"] == "normal":
            assert row["items_description"] == ["normal"]
    positives = [r for r in rows if any(label["status"] == 1 for label in r["labels"] if label["name"] != "No Finding")]
    assert positives and any("|" in item for r in positives for item in r["items_description"] or ())
