"""`mgll build` end to end for every layout other than mimic-cxr (openi, folder, folder + reports CSV,
manifest, fundus), on small exports written the way hospitals and public datasets ship them, each with the
broken inputs real exports carry (a malformed XML, an image without a report, a non-UTF-8 or empty sidecar,
a manifest row naming a missing image, blank ids).

Every build must account for every input (rows + rejects = inputs, with the right reason per file), pass
`validate_dataset`, label reports from the pipeline's own vocabulary, and produce granularity texts that
are None rather than "" when unavailable. Expectations are derived from the fixture files, not from the
builder's output. One build per layout, module-scoped, so the file stays fast.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
import SimpleITK as sitk
import yaml
from click.testing import CliRunner
from PIL import Image
from pydicom.data import get_testdata_file
from skimage import data as skdata

from mgll_data import dataset, schema
from mgll_data.build import build_dataset
from mgll_data.cli import main
from mgll_data.pipeline import PIPELINE_DIR, load_pipeline
from mgll_data.reports import vocabulary_names
from mgll_data.validate import validate_dataset

# --------------------------------------------------------------------------------------------- helpers


class Built:
    """A finished build, indexed by source path so tests can say what each input file became."""

    def __init__(self, export: Path, out: Path, summary: Any, pipeline: str | Path) -> None:
        self.export, self.out, self.summary = export, out, summary
        self.pipeline = load_pipeline(pipeline)
        self.rows = [row for shard in dataset.shard_paths(out) for row in pq.read_table(shard).to_pylist()]
        self.rejects = pq.read_table(out / "rejects.parquet").to_pylist()
        self.linkage = pq.read_table(summary.linkage).to_pylist()
        rows_by_id = {r["image_id"]: r for r in self.rows}
        rejects_by_key = {r["source_key"]: r for r in self.rejects}
        self.row: dict[str, dict] = {}
        self.reject: dict[str, dict] = {}
        for entry in self.linkage:
            if entry["kind"] == "row":
                self.row[entry["source_path"]] = rows_by_id[entry["image_id"]]
            else:
                self.reject[entry["source_path"]] = rejects_by_key[entry["source_key"]]
        self.manifest = json.loads((out / "manifest.json").read_text())

    def reasons(self) -> dict[str, str]:
        return {path: reject["reason"] for path, reject in self.reject.items()}


def _build(tmp_path_factory, export: Path, pipeline: str | Path, salt: Path) -> Built:
    out = tmp_path_factory.mktemp("built") / "ds"
    summary = build_dataset(export, out, pipeline, salt_file=salt, progress=False)
    return Built(export, out, summary, pipeline)


def _image(row: dict) -> Image.Image:
    image = Image.open(io.BytesIO(row["image"]["bytes"]))
    image.load()
    return image


def _labels(row: dict) -> dict[str, int]:
    return {label["name"]: label["status"] for label in row["labels"]}


def _gray_png(path: Path, height: int, width: int, seed: int) -> None:
    """A radiograph-like grayscale PNG: a smooth body with noise, distinct per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    body = 180 * np.exp(-(((xx - width / 2) / (width / 3)) ** 2 + ((yy - height / 2) / (height / 2.5)) ** 2))
    pixels = np.clip(body + rng.normal(0, 12, (height, width)) + 20, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "L").save(path)


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _user_pipeline(directory: Path, base: str, **changes: Any) -> Path:
    """A user's edited copy of a shipped pipeline, as the README tells them to make one."""
    raw = yaml.safe_load((PIPELINE_DIR / f"{base}.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        raw[section][key] = value
    path = directory / f"my-{base}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _dataset_strings(out: Path) -> str:
    """Every string the shareable dataset folder holds (all columns but image bytes, metadata, manifest)."""
    chunks = []
    for parquet in out.rglob("*.parquet"):
        table = pq.read_table(parquet)
        chunks.append(json.dumps({k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}))
        for row in table.to_pylist():
            if "image" in row:
                row["image"] = row["image"]["path"]
            chunks.append(json.dumps(row, default=str))
    chunks.extend(p.read_text() for p in out.rglob("*.json"))
    return "\n".join(chunks)


def _assert_common(built: Built, inputs: int, expected_reasons: dict[str, str]) -> None:
    """What every build owes its user, whatever the layout."""
    assert built.summary.inputs == inputs
    assert len(built.rows) + len(built.rejects) == inputs
    assert built.manifest["inputs"] == inputs
    assert built.manifest["rows"] == len(built.rows) and built.manifest["rejects"] == len(built.rejects)
    assert built.reasons() == expected_reasons
    assert all(r["error"] and "\n" not in r["error"] for r in built.rejects)
    report = validate_dataset(built.out)
    assert report.ok, report.errors
    vocabulary = set(vocabulary_names(built.pipeline.reports.vocabulary))
    assert set(built.manifest["label_vocabulary"]) == vocabulary
    granularities = list(built.pipeline.granularities)
    columns = [column.name for column in schema.columns(granularities)]
    columns += [schema.item_column(g) for g in schema.item_granularities(granularities)]  # schema 1.3
    for row in built.rows:
        assert list(row) == columns
        assert {label["name"] for label in row["labels"]} <= vocabulary
        assert all(label["status"] in (1, 0, -1, None) for label in row["labels"])  # None: blank under the policy
        for granularity in built.pipeline.granularities:
            text = row[schema.text_column(granularity)]
            assert text is None or (isinstance(text, str) and text.strip()), (granularity, text)
        image = _image(row)
        assert (image.height, image.width) == (row["height"], row["width"])
        assert max(image.size) == built.pipeline.image.size
        assert image.format == {"png": "PNG", "jpeg": "JPEG"}[built.pipeline.image.format]
    assert len({r["image_id"] for r in built.rows}) == len(built.rows)
    assert {r["split"] for r in built.rows} <= {"train", "val", "test"}
    haystack = _dataset_strings(built.out)
    leaked = [e["source_path"] for e in built.linkage if e["source_path"] in haystack]
    leaked += [e[k] for e in built.linkage for k in ("original_patient_id", "original_study_id")
               if e[k] and not e[k].startswith("path:") and e[k] in haystack]
    assert leaked == [], "source paths and original ids stay in the private linkage table"


@pytest.fixture(scope="module")
def salt(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("secret") / "salt"


# ------------------------------------------------------------------------------------------------ openi

OPENI_NORMAL = {
    "COMPARISON": "None.",
    "INDICATION": "XXXX-year-old male, chest pain.",
    "FINDINGS": "The cardiac silhouette and mediastinum size are within normal limits. There is no pulmonary "
                "edema. There is no focal consolidation. There are no XXXX of a pleural effusion. There is no "
                "evidence of pneumothorax.",
    "IMPRESSION": "Normal chest x-XXXX.",
}
OPENI_EFFUSION = {
    "COMPARISON": "Chest radiograph of 03/14/2013.",
    "INDICATION": "Dyspnea.",
    "FINDINGS": "Heart size is enlarged. There is a small right pleural effusion. Compared with the study of "
                "03/14/2013, no pneumothorax. XXXX sternotomy wires.",
    "IMPRESSION": "1. Cardiomegaly. 2. Small right pleural effusion. 3. Possible right lower lobe pneumonia.",
}


def _openi_xml(uid: str, sections: dict[str, str], images: list[str]) -> str:
    """An Open-i / IU X-ray report as the NLM distributes it (ecgen-radiology/<n>.xml)."""
    texts = "\n".join(f'        <AbstractText Label="{label}">{text}</AbstractText>'
                      for label, text in sections.items())
    parents = "\n".join(
        f'  <parentImage id="{name}">\n    <url>/hadoop/storage/radiology/extract/{name}.jpg</url>\n  </parentImage>'
        for name in images
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<eCitation>
  <meta type="rr"/>
  <uId id="{uid}"/>
  <pmcId id="{uid.removeprefix('CXR')}"/>
  <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
    <Article PubModel="Electronic">
      <Journal><JournalIssue><PubDate><Year>2013</Year><Month>08</Month><Day>01</Day></PubDate></JournalIssue></Journal>
      <ArticleTitle>Indiana University Chest X-ray Collection</ArticleTitle>
      <Abstract>
{texts}
      </Abstract>
    </Article>
  </MedlineCitation>
  <MeSH><major>normal</major></MeSH>
{parents}
</eCitation>
"""


@pytest.fixture(scope="module")
def openi(tmp_path_factory, salt) -> Built:
    root = tmp_path_factory.mktemp("openi")
    reports, images = root / "reports" / "ecgen-radiology", root / "NLMCXR_png"
    _write(reports / "1.xml", _openi_xml("CXR1", OPENI_NORMAL, ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]))
    _write(reports / "2.xml", _openi_xml("CXR2", OPENI_EFFUSION, ["CXR2_1_IM-0652-1001"]))
    _write(reports / "3.xml", _openi_xml("CXR3", OPENI_NORMAL, ["CXR3_1_IM-1384-1001"])[:-60])  # cut mid-tag
    _write(reports / "5.xml", _openi_xml("CXR5", {"COMPARISON": "None.", "FINDINGS": "", "IMPRESSION": ""},
                                         ["CXR5_1_IM-2001-1001"]))
    _write(reports / "6.xml", _openi_xml("CXR6", OPENI_NORMAL, ["CXR6_1_IM-2002-1001"]))
    for seed, name in enumerate(["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001", "CXR2_1_IM-0652-1001",
                                 "CXR3_1_IM-1384-1001", "CXR4_1_IM-0002-1001", "CXR5_1_IM-2001-1001"]):
        _gray_png(images / f"{name}.png", 96, 80 + 8 * seed, seed)
    full = io.BytesIO()
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(full, format="PNG")
    _write(images / "CXR6_1_IM-2002-1001.png", full.getvalue()[: len(full.getvalue()) // 2])  # truncated
    _write(root / "README.txt", "Indiana University chest X-ray collection, PNG subset.")
    return _build(tmp_path_factory, root, "openi", salt)


def test_openi_accounts_for_every_image(openi):
    _assert_common(openi, inputs=7, expected_reasons={
        "NLMCXR_png/CXR3_1_IM-1384-1001.png": "report-unreadable",   # its XML is malformed
        "NLMCXR_png/CXR4_1_IM-0002-1001.png": "report-missing",      # no XML names it
        "NLMCXR_png/CXR5_1_IM-2001-1001.png": "report-empty",        # empty findings and impression
        "NLMCXR_png/CXR6_1_IM-2002-1001.png": "truncated-file",
    })
    stages = {path: reject["stage"] for path, reject in openi.reject.items()}
    assert stages["NLMCXR_png/CXR6_1_IM-2002-1001.png"] == "imaging"


def test_openi_labels_sections_and_texts(openi):
    normal = openi.row["NLMCXR_png/CXR1_1_IM-0001-3001.png"]
    sick = openi.row["NLMCXR_png/CXR2_1_IM-0652-1001.png"]
    assert normal["report_text"].startswith("FINDINGS: The cardiac silhouette")
    assert "\nIMPRESSION: Normal chest x-XXXX." in normal["report_text"]
    assert "INDICATION" not in normal["report_text"] and "COMPARISON" not in normal["report_text"]
    assert "XXXX" in normal["report_text"], "Open-i's own anonymisation tokens stay as they are"
    normal_labels = _labels(normal)
    assert normal_labels.get("Pneumothorax") == 0 and normal_labels.get("Edema") == 0
    assert 1 not in normal_labels.values()
    assert normal["text_category"] == "normal" and normal["text_disease"] == "no finding"

    sick_labels = _labels(sick)
    assert sick_labels["Effusion"] == 1 and sick_labels["Cardiomegaly"] == 1
    # "Possible right lower lobe pneumonia": weak speculation, blank under the default uncertain policy
    assert sick_labels["Pneumonia"] is None and sick_labels["Pneumothorax"] == 0
    assert {label["name"]: label["certainty"] for label in sick["labels"]}["Pneumonia"] == "possible"
    assert sick["text_category"] == "abnormal"
    assert "pleural effusion" in sick["text_disease"] and "possible pneumonia" in sick["text_disease"]
    assert "pleural effusion" in sick["text_description"].lower()
    assert "03/14/2013" not in sick["report_text"], "dates in the report are scrubbed"
    for row in openi.rows:
        assert row["text_modality"].startswith("chest radiograph")  # default_modality CR
        assert row["modality"] == "CR" and row["channels"] == 1 and row["source_format"] == "png"


def test_openi_images_of_one_report_share_patient_and_study(openi):
    first, second = openi.row["NLMCXR_png/CXR1_1_IM-0001-3001.png"], openi.row["NLMCXR_png/CXR1_1_IM-0001-4001.png"]
    other = openi.row["NLMCXR_png/CXR2_1_IM-0652-1001.png"]
    assert first["patient_id"] == second["patient_id"] and first["study_id"] == second["study_id"]
    assert first["split"] == second["split"]
    assert other["patient_id"] != first["patient_id"]
    assert "CXR1" not in first["patient_id"] and "CXR1" not in first["study_id"]


# ----------------------------------------------------------------------------------------------- folder

FOLDER_REPORTS = {
    "plain": "FINDINGS: The heart is enlarged. No pleural effusion.\nIMPRESSION: Cardiomegaly.",
    "photo": "FINDINGS: Right upper lobe consolidation.\nIMPRESSION: Pneumonia.",
    "deep": "FINDINGS: Lungs are clear. No pneumothorax.\nIMPRESSION: No acute cardiopulmonary process.",
    "volume": "IMPRESSION: Small left pleural effusion.",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, salt) -> Built:
    root = tmp_path_factory.mktemp("folder")
    _gray_png(root / "plain.png", 100, 80, 1)
    gradient = np.tile(np.linspace(10, 240, 90), (70, 1)).astype(np.uint8)
    (root / "scans").mkdir()
    Image.fromarray(gradient, "L").save(root / "scans" / "photo.jpg", quality=92)
    # 16-bit PNG whose values all lie far above 255: a naive 8-bit cast would render it flat white.
    deep = np.tile(np.linspace(1000, 5000, 120), (60, 1)).astype(np.uint16)
    Image.fromarray(deep).save(root / "deep.png")
    # A 3-D NIfTI whose middle slice is bright on the left and every other slice bright on the right.
    volume = np.zeros((5, 48, 64), np.int16)
    volume[:, :, 32:] = 900
    volume[2] = 0
    volume[2, :, :32] = 900
    sitk.WriteImage(sitk.GetImageFromArray(volume), str(root / "volume.nii.gz"))
    for name, text in FOLDER_REPORTS.items():
        _write(root / ("scans" if name == "photo" else "") / f"{name}.txt", text)
    _gray_png(root / "scans" / "CAPS.PNG", 64, 96, 5)
    _write(root / "scans" / "CAPS.TXT", "IMPRESSION: Stable cardiomegaly.")
    _gray_png(root / "latin1.png", 64, 64, 2)
    _write(root / "latin1.txt", "Befund: Kardiomegalie, Patient M\xfcller.".encode("latin-1"))
    _gray_png(root / "empty.png", 64, 64, 3)
    _write(root / "empty.txt", "")
    _gray_png(root / "orphan.png", 64, 64, 4)
    _write(root / "notes.txt", "Export notes: a .txt beside no image, so a report without an image.")
    return _build(tmp_path_factory, root, "folder", salt)


def test_folder_accounts_for_every_image(folder):
    _assert_common(folder, inputs=9, expected_reasons={
        "latin1.png": "report-not-utf8",
        "empty.png": "report-empty",
        "orphan.png": "report-missing",
        "notes.txt": "report-without-image",
    })
    formats = {path: row["source_format"] for path, row in folder.row.items()}
    assert formats == {"plain.png": "png", "scans/photo.jpg": "jpeg", "deep.png": "png", "volume.nii.gz": "nifti",
                       "scans/CAPS.PNG": "png"}


def test_folder_images_without_ids_are_their_own_patients(folder):
    assert len({r["patient_id"] for r in folder.rows}) == len(folder.rows)
    assert len({r["study_id"] for r in folder.rows}) == len(folder.rows)


def test_folder_sidecar_reports_are_labelled(folder):
    vocabulary = load_pipeline("folder").reports.vocabulary
    assert vocabulary == "chexpert"
    plain = _labels(folder.row["plain.png"])
    assert plain["Cardiomegaly"] == 1 and plain["Pleural Effusion"] == 0
    assert _labels(folder.row["scans/photo.jpg"]).get("Pneumonia") == 1
    deep = folder.row["deep.png"]
    assert _labels(deep).get("Pneumothorax") == 0 and deep["text_category"] == "normal"
    assert _labels(folder.row["volume.nii.gz"]).get("Pleural Effusion") == 1
    assert _labels(folder.row["scans/CAPS.PNG"]).get("Cardiomegaly") == 1, "CAPS.TXT is CAPS.PNG's sidecar"
    for row in folder.rows:
        assert row["text_modality"] is None, "no header and no default_modality: no modality text"
        assert row["text_category"] in ("normal", "abnormal") and row["text_disease"]


def test_folder_sixteen_bit_png_keeps_its_contrast(folder):
    row = folder.row["deep.png"]
    assert row["bits_stored"] == 16 and (row["original_height"], row["original_width"]) == (60, 120)
    pixels = np.asarray(_image(row).convert("L"), dtype=float)
    left, right = pixels[:, : pixels.shape[1] // 8].mean(), pixels[:, -pixels.shape[1] // 8 :].mean()
    assert left < 60 and right > 195


def test_folder_nifti_stores_the_middle_slice(folder):
    row = folder.row["volume.nii.gz"]
    assert (row["original_height"], row["original_width"]) == (48, 64)
    pixels = np.asarray(_image(row).convert("L"), dtype=float)
    half = pixels.shape[1] // 2
    assert pixels[:, : half - 8].mean() > pixels[:, half + 8 :].mean() + 100


@pytest.fixture(scope="module")
def folder_csv(tmp_path_factory, salt) -> Built:
    root = tmp_path_factory.mktemp("folder_csv")
    for seed, name in enumerate(["a/one.png", "a/two.png", "b/three.png", "b/unlisted.png", "b/blank.png"]):
        _gray_png(root / name, 72, 60, 10 + seed)
    _write(root / "reports.csv", (
        "image,report,patient_id,study_id\n"
        'a/one.png,"FINDINGS: Large right pleural effusion.\nIMPRESSION: Effusion.",P-77,S-1\n'
        "a/two.png,No acute cardiopulmonary process. No pneumothorax.,P-77,S-2\n"
        "b/three.png,Mild cardiomegaly.,,\n"
        "b/blank.png,,P-9,\n"
        "b/gone.png,Cardiomegaly.,P-10,S-10\n"
    ))
    pipeline = _user_pipeline(tmp_path_factory.mktemp("pipelines"), "folder", source__reports_csv="reports.csv")
    return _build(tmp_path_factory, root, pipeline, salt)


def test_folder_reports_csv_accounts_for_images_and_rows(folder_csv):
    _assert_common(folder_csv, inputs=6, expected_reasons={
        "b/unlisted.png": "report-missing",   # on disk, not in the CSV
        "b/blank.png": "report-missing",      # in the CSV with an empty report
        "b/gone.png": "file-missing",         # in the CSV, not on disk
    })


def test_folder_reports_csv_ids_and_labels(folder_csv):
    one, two, three = (folder_csv.row[p] for p in ("a/one.png", "a/two.png", "b/three.png"))
    assert one["patient_id"] == two["patient_id"] != three["patient_id"]
    assert one["study_id"] != two["study_id"]
    assert "P-77" not in one["patient_id"]
    assert _labels(one)["Pleural Effusion"] == 1 and _labels(two).get("Pneumothorax") == 0
    assert _labels(three).get("Cardiomegaly") == 1
    assert one["report_text"] == "FINDINGS: Large right pleural effusion.\nIMPRESSION: Effusion."


# --------------------------------------------------------------------------------------------- manifest


@pytest.fixture(scope="module")
def manifest_dicom_ids() -> dict[str, str]:
    return {"PatientID": "MRN-4471902", "PatientName": "Quartermaine^Hollis",
            "StudyDescription": "CHEST 2 VIEWS", "SeriesDescription": "PA ERECT"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, salt, manifest_dicom_ids) -> Built:
    root = tmp_path_factory.mktemp("manifest")
    for seed, name in enumerate(["m1", "m2", "m3", "m5", "m7"]):
        _gray_png(root / "images" / f"{name}.png", 80, 64, 20 + seed)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, value in manifest_dicom_ids.items():
        setattr(ds, keyword, value)
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
    (root / "images").mkdir(exist_ok=True)
    ds.save_as(root / "images" / "m6.dcm")
    _write(root / "reports" / "m1.txt", "FINDINGS: Moderate cardiomegaly.\nIMPRESSION: Cardiomegaly.")
    _write(root / "manifest.csv", (
        "image,report_path,report,patient_id,study_id\n"
        "images/m1.png,reports/m1.txt,,P1,S1\n"
        'images/m2.png,,"IMPRESSION: Left lower lobe atelectasis.",P1,S2\n'
        "images/m3.png,,No pneumothorax. No pleural effusion.,,\n"
        "images/missing.png,,Cardiomegaly.,P3,S3\n"
        "images/m5.png,reports/not-there.txt,,P5,S5\n"
        'images/m6.dcm,,"FINDINGS: Right pneumothorax.",,\n'
        f"{root / 'images' / 'm7.png'},,Small right pleural effusion.,P7,S7\n"
        ",,Cardiomegaly.,P8,S8\n"
    ))
    return _build(tmp_path_factory, root, "manifest", salt)


def test_manifest_accounts_for_every_row(manifest):
    _assert_common(manifest, inputs=8, expected_reasons={
        "images/missing.png": "file-missing",
        "images/m5.png": "report-missing",
        "manifest-row-9-has-no-image-path": "file-missing",
    })
    assert _labels(manifest.row["images/m7.png"])["Pleural Effusion"] == 1, "absolute paths inside the root"


def test_manifest_reports_from_files_and_inline_text(manifest):
    assert _labels(manifest.row["images/m1.png"])["Cardiomegaly"] == 1
    assert manifest.row["images/m1.png"]["report_text"].startswith("FINDINGS: Moderate cardiomegaly.")
    assert _labels(manifest.row["images/m2.png"])["Atelectasis"] == 1
    m3 = _labels(manifest.row["images/m3.png"])
    assert m3.get("Pneumothorax") == 0 and m3.get("Pleural Effusion") == 0
    assert _labels(manifest.row["images/m6.dcm"])["Pneumothorax"] == 1


def test_manifest_ids_blank_ids_and_dicom_header_ids(manifest, manifest_dicom_ids):
    m1, m2, m3, m6 = (manifest.row[f"images/{n}"] for n in ("m1.png", "m2.png", "m3.png", "m6.dcm"))
    assert m1["patient_id"] == m2["patient_id"] and m1["study_id"] != m2["study_id"]
    assert m3["patient_id"] not in (m1["patient_id"], m6["patient_id"])
    originals = {e["source_path"]: e["original_patient_id"] for e in manifest.linkage if e["kind"] == "row"}
    assert originals["images/m6.dcm"] == manifest_dicom_ids["PatientID"], "blank ids fall back to the header"
    assert originals["images/m3.png"] != originals["images/m1.png"]
    dumped = json.dumps([{k: v for k, v in r.items() if k != "image"} for r in manifest.rows])
    assert manifest_dicom_ids["PatientID"] not in dumped and "Quartermaine" not in dumped


def test_manifest_header_granularities(manifest, manifest_dicom_ids):
    m6, m1 = manifest.row["images/m6.dcm"], manifest.row["images/m1.png"]
    assert m6["source_format"] == "dicom" and m6["modality"] == "DX"
    assert m6["text_modality"] == "chest radiograph, PA view"
    assert m6["text_study"] == manifest_dicom_ids["StudyDescription"]
    assert m6["text_series"] == manifest_dicom_ids["SeriesDescription"]
    assert m1["text_modality"] is None and m1["text_study"] is None and m1["text_series"] is None


# ----------------------------------------------------------------------------------------------- fundus

FUNDUS_REPORTS = {
    "od_1.jpg": "Moderate non-proliferative diabetic retinopathy with macular edema.",
    "os_1.png": "No diabetic retinopathy.",
    "od_2.jpg": "Cup-to-disc ratio 0.7, glaucoma suspect.",
    "os_2.tiff": "FINDINGS: Scattered drusen at the macula.\nIMPRESSION: Early dry age-related macular degeneration.",
}


def _retina(height: int, width: int, flip: bool = False) -> np.ndarray:
    image = Image.fromarray(skdata.retina()).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else image)


@pytest.fixture(scope="module")
def fundus(tmp_path_factory, salt) -> Built:
    root = tmp_path_factory.mktemp("fundus")
    Image.fromarray(_retina(200, 200)).save(root / "od_1.jpg", quality=92)
    Image.fromarray(_retina(200, 200, flip=True)).save(root / "os_1.png")
    Image.fromarray(_retina(160, 200)).save(root / "od_2.jpg", quality=92)
    Image.fromarray(_retina(180, 180, flip=True)).save(root / "os_2.tiff")
    Image.fromarray(_retina(120, 120)).save(root / "no_report.jpg", quality=92)
    for name, text in FUNDUS_REPORTS.items():
        _write(root / f"{name.rsplit('.', 1)[0]}.txt", text)
    return _build(tmp_path_factory, root, "fundus", salt)


def test_fundus_accounts_for_every_photograph(fundus):
    _assert_common(fundus, inputs=5, expected_reasons={"no_report.jpg": "report-missing"})
    assert {p: r["source_format"] for p, r in fundus.row.items()} == {
        "od_1.jpg": "jpeg", "os_1.png": "png", "od_2.jpg": "jpeg", "os_2.tiff": "tiff"}


def test_fundus_keeps_colour(fundus):
    for path, row in fundus.row.items():
        assert row["channels"] == 3
        stored = np.asarray(_image(row).convert("RGB"), dtype=float)
        source = np.asarray(Image.open(fundus.export / path).convert("RGB"), dtype=float)
        stored_means, source_means = stored.mean(axis=(0, 1)), source.mean(axis=(0, 1))
        assert stored_means[0] > stored_means[1] > stored_means[2], "a fundus is red, then green, then blue"
        assert np.abs(stored_means - source_means).max() < 8, path


def test_fundus_reports_are_labelled_with_the_fundus_vocabulary(fundus):
    assert fundus.pipeline.reports.vocabulary == "fundus"
    dr = fundus.row["od_1.jpg"]
    assert _labels(dr) == {"Diabetic Retinopathy": 1, "Diabetic Macular Edema": 1}
    assert dr["text_category"] == "abnormal"
    assert dr["text_disease"] == "diabetic retinopathy and diabetic macular edema"
    assert dr["text_explanation"].startswith("Moderate non-proliferative diabetic retinopathy")
    healthy = fundus.row["os_1.png"]
    assert _labels(healthy)["Diabetic Retinopathy"] == 0 and _labels(healthy).get("No Finding") == 1
    assert healthy["text_category"] == "normal"
    suspect = fundus.row["od_2.jpg"]
    assert _labels(suspect) == {"Glaucoma": -1} and suspect["text_disease"] == "probable glaucoma"
    assert _labels(fundus.row["os_2.tiff"])["Drusen"] == 1
    for row in fundus.rows:
        assert row["modality"] == "OP" and row["text_modality"] == "colour fundus photograph"


def test_fundus_early_stage_is_a_diagnosis_not_a_hedge(fundus):
    # "Early" stages a retinal disease (AREDS early AMD, early NPDR); the fundus vocabulary itself lists it
    # as the trigger of the mild severity text, so the finding is present, not uncertain.
    amd = fundus.row["os_2.tiff"]
    assert _labels(amd)["Age-related Macular Degeneration"] == 1
    assert "possible" not in amd["text_disease"]


# ------------------------------------------------------------------------ entries that are not files

REPORT = "FINDINGS: The heart is enlarged.\nIMPRESSION: Cardiomegaly."


def _fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


def _mimic_with_pipes(root: Path) -> dict[str, str]:
    patient = root / "files" / "p10" / "p10000001"
    for study in ("s1", "s2", "s3"):
        if study != "s2":
            _write(patient / study / f"{study}-image.dcm", Path(get_testdata_file("CT_small.dcm")).read_bytes())
        if study != "s3":
            _write(patient / f"{study}.txt", REPORT)
    _fifo(patient / "s2" / "s2-pipe-image.dcm")
    _fifo(patient / "s3.txt")
    _write(patient / "s4.txt", REPORT)  # its images never arrived
    return {"files/p10/p10000001/s2/s2-pipe-image.dcm": "not-a-regular-file",
            "files/p10/p10000001/s3/s3-image.dcm": "report-not-a-regular-file",
            "files/p10/p10000001/s4.txt": "report-without-image"}


def _openi_with_pipes(root: Path) -> dict[str, str]:
    for n in (1, 2, 4):
        _write(root / "reports" / f"{n}.xml", _openi_xml(f"CXR{n}", OPENI_EFFUSION, [f"CXR{n}_1_IM-0001-1001"]))
    _fifo(root / "reports" / "3.xml")
    _gray_png(root / "images" / "CXR1_1_IM-0001-1001.png", 64, 64, 40)
    _fifo(root / "images" / "CXR2_1_IM-0001-1001.png")
    _gray_png(root / "images" / "CXR3_1_IM-0001-1001.png", 64, 64, 41)
    return {"images/CXR2_1_IM-0001-1001.png": "not-a-regular-file",
            "images/CXR3_1_IM-0001-1001.png": "report-not-a-regular-file",  # by Open-i's naming: 3.xml is CXR3's
            "reports/4.xml": "report-without-image"}


def _folder_with_pipes(root: Path, suffix: str = "png") -> dict[str, str]:
    _gray_png(root / f"good.{suffix}", 64, 64, 42)
    _gray_png(root / f"report-pipe.{suffix}", 64, 64, 43)
    _fifo(root / f"image-pipe.{suffix}")
    _fifo(root / "report-pipe.txt")
    (root / f"folder.{suffix}").mkdir()
    (root / f"gone.{suffix}").symlink_to(root / "deleted")
    for stem in ("good", "image-pipe", "folder", "gone", "lonely"):
        _write(root / f"{stem}.txt", REPORT)
    return {f"image-pipe.{suffix}": "not-a-regular-file", f"report-pipe.{suffix}": "report-not-a-regular-file",
            f"folder.{suffix}": "not-a-regular-file", f"gone.{suffix}": "broken-symlink",
            "lonely.txt": "report-without-image"}


def _manifest_with_pipes(root: Path) -> dict[str, str]:
    _gray_png(root / "images" / "good.png", 64, 64, 44)
    _gray_png(root / "images" / "report-pipe.png", 64, 64, 45)
    _fifo(root / "images" / "image-pipe.png")
    _write(root / "reports" / "good.txt", REPORT)
    _fifo(root / "reports" / "pipe.txt")
    _write(root / "manifest.csv", "image_path,report_path,report_text\n"
           "images/good.png,reports/good.txt,\n"
           "images/image-pipe.png,reports/good.txt,\n"
           "images/report-pipe.png,reports/pipe.txt,\n")
    return {"images/image-pipe.png": "not-a-regular-file", "images/report-pipe.png": "report-not-a-regular-file"}


@pytest.mark.timeout(120)  # reading a FIFO blocks forever: a regression hangs here
@pytest.mark.parametrize("layout, write", [
    ("mimic-cxr", _mimic_with_pipes),
    ("openi", _openi_with_pipes),
    ("folder", _folder_with_pipes),
    ("manifest", _manifest_with_pipes),
    ("fundus", lambda root: _folder_with_pipes(root, "jpg")),
])
def test_fifos_folders_and_broken_links_are_rejects_never_a_hang(tmp_path_factory, salt, layout, write):
    root = tmp_path_factory.mktemp(f"pipes-{layout}")
    expected = write(root)
    built = _build(tmp_path_factory, root, layout, salt)
    _assert_common(built, inputs=1 + len(expected), expected_reasons=expected)  # one good image per export
    assert all(built.reject[path]["stage"] == "imaging" for path, r in expected.items() if not r.startswith("report"))
    counted = built.manifest["rejects_by_reason"]
    assert counted.get("report-without-image", 0) == sum(r == "report-without-image" for r in expected.values())
    resumed = build_dataset(root, built.out, layout, salt_file=salt, progress=False)
    assert (resumed.skipped, resumed.processed, resumed.rejects) == (1 + len(expected), 0, len(expected))


# -------------------------------------------------------------------------------------------------- CLI


def test_cli_build_with_a_user_pipeline_copy(tmp_path, salt):
    export = tmp_path / "export"
    _gray_png(export / "wide.png", 90, 150, 30)
    _gray_png(export / "tall.png", 140, 70, 31)
    _write(export / "wide.txt", "Cardiomegaly.")
    _write(export / "tall.txt", "No pleural effusion.")
    pipeline = _user_pipeline(tmp_path, "folder", image__size=256, image__format="jpeg")
    out, summary_json = tmp_path / "ds", tmp_path / "summary.json"
    result = CliRunner().invoke(main, [
        "build", str(export), str(out), "--pipeline", str(pipeline), "--salt-file", str(salt),
        "--quiet", "--json", str(summary_json),
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(summary_json.read_text())
    assert summary["inputs"] == 2 and summary["rows"] == 2 and summary["rejects"] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pipeline"]["content_hash"] == load_pipeline(pipeline).content_hash
    assert manifest["pipeline"]["content_hash"] != load_pipeline("folder").content_hash
    rows = [row for shard in dataset.shard_paths(out) for row in pq.read_table(shard).to_pylist()]
    sizes = set()
    for row in rows:
        assert row["image"]["bytes"][:3] == b"\xff\xd8\xff" and row["image"]["path"].endswith(".jpg")
        image = _image(row)
        assert image.format == "JPEG" and max(image.size) == 256
        sizes.add(image.size)
    assert sizes == {(256, 154), (128, 256)}
    assert validate_dataset(out).ok


def test_cli_build_with_a_missing_pipeline_file_is_one_line(tmp_path):
    export = tmp_path / "export"
    _gray_png(export / "one.png", 40, 40, 32)
    result = CliRunner().invoke(main, ["build", str(export), str(tmp_path / "ds"), "--pipeline",
                                       str(tmp_path / "my-typo.yaml"), "--quiet"])
    assert result.exit_code != 0
    assert result.output.startswith("Error: no pipeline") and result.output.count("\n") == 1
    assert "Traceback" not in result.output and not (tmp_path / "ds").exists()


# -------------------------------------------------------------------------------------- burned-in text


@pytest.fixture(scope="module")
def burned_in_export(tmp_path_factory) -> Path:
    """deid-data's real greyscale ultrasound (BurnedInAnnotation YES, text typed onto the image) beside
    pydicom's CT slice, which carries no such flag."""
    import shutil

    import deid_data

    root = tmp_path_factory.mktemp("burned-in")
    shutil.copy(Path(deid_data.__path__[0]) / "data" / "ultrasounds" / "GREYSCALE_IMAGE.dcm", root / "us.dcm")
    shutil.copy(get_testdata_file("CT_small.dcm"), root / "ct.dcm")
    _write(root / "us.txt", "IMPRESSION: Small pleural effusion.")
    _write(root / "ct.txt", "IMPRESSION: No pleural effusion.")
    return root


def test_an_image_flagged_with_burned_in_text_is_rejected_by_default(tmp_path_factory, burned_in_export, salt):
    assert pydicom.dcmread(burned_in_export / "us.dcm", stop_before_pixels=True).BurnedInAnnotation == "YES"
    built = _build(tmp_path_factory, burned_in_export, "folder", salt)
    _assert_common(built, inputs=2, expected_reasons={"us.dcm": "burned-in-annotation"})
    assert "BurnedInAnnotation" in built.reject["us.dcm"]["error"]


def test_burned_in_text_is_kept_when_the_pipeline_says_pixels_were_cleaned(tmp_path_factory, burned_in_export, salt):
    pipeline = _user_pipeline(tmp_path_factory.mktemp("pipelines"), "folder", image__burned_in_annotation="keep")
    built = _build(tmp_path_factory, burned_in_export, pipeline, salt)
    _assert_common(built, inputs=2, expected_reasons={})
    assert built.row["us.dcm"]["modality"] == "US"
