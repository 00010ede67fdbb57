"""Sources: every image file found is exactly one item, for each layout, with broken exports included
(missing reports, malformed Open-i XML, manifests naming missing images, unusable CSVs)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from mgll_data import pipeline as pipeline_mod
from mgll_data.records import SourceItem
from mgll_data.sources import SourceError, discover

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))
MIMIC_REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with cough

 FINDINGS:  PA and lateral views of the chest.  No focal consolidation, pleural effusion or pneumothorax.

 IMPRESSION:  No acute cardiopulmonary process.
"""


def _load(name: str, **source: object) -> pipeline_mod.Pipeline:
    loaded = pipeline_mod.load_pipeline(name)
    if not source:
        return loaded
    raw = dict(loaded.raw)
    raw["source"] = {**raw["source"], **source}
    return pipeline_mod.from_dict(raw, content_hash="test")


def _dicom(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CT_SMALL, path)


def _text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)


def _by_path(items: list[SourceItem]) -> dict[str, SourceItem]:
    paths = [item.source_path for item in items]
    assert len(paths) == len(set(paths)), "an input became more than one item"
    return dict(zip(paths, items))


# -------------------------------------------------------------------------------------------- errors


def test_unusable_root_is_a_one_line_source_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        list(discover(tmp_path / "missing", _load("mimic-cxr")))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SourceError, match="not a directory") as info:
        list(discover(tmp_path / "file.txt", _load("mimic-cxr")))
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------------------- mimic-cxr


@pytest.fixture()
def mimic_export(tmp_path) -> Path:
    files = tmp_path / "export" / "files"
    study = files / "p10" / "p10000032" / "s50414267"
    _dicom(study / "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.dcm")
    _dicom(study / "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962.dcm")
    _text(files / "p10" / "p10000032" / "s50414267.txt", MIMIC_REPORT)
    _dicom(files / "p10" / "p10000032" / "s53189527" / "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab.DCM")
    _dicom(files / "p11" / "p11000011" / "s51029426" / "9b314ad7-fbcb0422-6db62dfc-732858d0-a5527d8b.dcm")
    _text(files / "p11" / "p11000011" / "s51029426.txt", MIMIC_REPORT)
    _dicom(files / "loose-image.dcm")  # outside the expected depth
    # Debris that must be ignored: hidden files, macOS folders, non-image files.
    _dicom(files / "p10" / "p10000032" / "s50414267" / "._02aa804e.dcm")
    _dicom(files / "__MACOSX" / "p10" / "x.dcm")
    _text(files / ".DS_Store", "x")
    _text(files / "p10" / "index.csv", "a,b\n")
    return tmp_path / "export"


def test_mimic_layout_items(mimic_export):
    items = list(discover(mimic_export, _load("mimic-cxr")))
    assert [i.image_path for i in items] == sorted(i.image_path for i in items)
    by_path = _by_path(items)
    assert len(items) == 5
    first = by_path["files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.dcm"]
    assert (first.patient_id, first.study_id) == ("p10000032", "s50414267")
    assert first.report_path == "files/p10/p10000032/s50414267.txt"
    assert first.report_error is None and first.report_text is None
    assert (mimic_export / first.report_path).read_text() == MIMIC_REPORT
    upper = by_path["files/p10/p10000032/s53189527/2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab.DCM"]
    assert upper.study_id == "s53189527" and upper.report_error == "report-missing"
    loose = by_path["files/loose-image.dcm"]
    assert (loose.patient_id, loose.study_id, loose.report_error) == (None, None, "report-missing")


def test_mimic_root_may_be_the_files_folder_itself(mimic_export):
    outer = list(discover(mimic_export, _load("mimic-cxr")))
    inner = list(discover(mimic_export / "files", _load("mimic-cxr")))
    assert [i.image_path for i in inner] == [i.image_path.removeprefix("files/") for i in outer]
    assert [(i.patient_id, i.study_id, i.report_error) for i in inner] == [
        (i.patient_id, i.study_id, i.report_error) for i in outer
    ]
    assert all(not i.image_path.startswith("/") for i in inner)


def test_discovery_is_deterministic(mimic_export):
    pipe = _load("mimic-cxr")
    assert list(discover(mimic_export, pipe)) == list(discover(mimic_export, pipe))


def test_mimic_reports_without_images_are_items_after_the_images(mimic_export):
    files = mimic_export / "files"
    _text(files / "p12" / "p12000012" / "s59000001.txt", MIMIC_REPORT)  # its study folder never arrived
    _text(files / "README.txt", "export notes")  # not a study report by MIMIC's naming
    items = list(discover(mimic_export, _load("mimic-cxr")))
    assert len(items) == 6 and all(i.image_path for i in items[:5])
    orphan = items[-1]
    assert (orphan.image_path, orphan.report_path) == (None, "files/p12/p12000012/s59000001.txt")
    assert (orphan.patient_id, orphan.study_id, orphan.report_error) == (
        "p12000012",
        "s59000001",
        "report-without-image",
    )


# --------------------------------------------------------------------------------------------- openi

OPENI_XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
   <meta type="rr"/>
   <uId id="CXR{n}"/>
   <pmcId id="{n}"/>
   <docSource>CXR</docSource>
   <IUXRId id="{n}"/>
   <licenseType>open-access</licenseType>
   <articleDate>2013-08-01</articleDate>
   <publisher>Indiana University</publisher>
   <title>Indiana University Chest X-ray Collection</title>
   <MedlineCitation Owner="Indiana University" Status="supplied by publisher">
      <Article PubModel="Electronic">
         <ArticleTitle>Indiana University Chest X-ray Collection</ArticleTitle>
         <Abstract>
            <AbstractText Label="COMPARISON">None.</AbstractText>
            <AbstractText Label="INDICATION">Positive TB test</AbstractText>
            <AbstractText Label="FINDINGS">{findings}</AbstractText>
            <AbstractText Label="IMPRESSION">{impression}</AbstractText>
         </Abstract>
      </Article>
   </MedlineCitation>
   <MeSH><major>normal</major></MeSH>
   {images}
</eCitation>
"""


def _openi_report(path: Path, n: int, image_ids: list[str], findings: str, impression: str) -> None:
    images = "\n   ".join(
        f'<parentImage id="{i}"><figureId>F1</figureId><caption>Xray Chest PA and Lateral</caption>'
        f"<panel type=\"single\"><url>/hadoop/storage/radiology/extract/{i}.png</url></panel></parentImage>"
        for i in image_ids
    )
    _text(path, OPENI_XML.format(n=n, findings=findings, impression=impression, images=images))


@pytest.fixture()
def openi_export(tmp_path) -> Path:
    root = tmp_path / "iu-xray"
    _openi_report(root / "reports" / "1.xml", 1, ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"],
                  "The cardiac silhouette and mediastinum size are within normal limits. There is no pulmonary "
                  "edema. There are no XXXX of a pleural effusion.", "Normal chest x-XXXX.")
    _text(root / "reports" / "2.xml", "<eCitation><uId id=\"CXR2\"/><Abstract><AbstractText Label=\"FINDINGS\">"
                                      "Borderline cardiomegaly.</AbstractText>")  # truncated: malformed
    _openi_report(root / "reports" / "4.xml", 4, ["CXR4_IM-2050-1001"], "", "")
    for stem in ("CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001", "CXR2_IM-0652-1001", "CXR3_IM-1384-2001",
                 "CXR4_IM-2050-1001"):
        _png(root / "images" / f"{stem}.png")
    return root


def test_openi_layout_items(openi_export):
    items = list(discover(openi_export, _load("openi")))
    by_path = _by_path(items)
    assert sorted(by_path) == sorted(
        f"images/{p.name}" for p in (openi_export / "images").iterdir()
    )
    frontal = by_path["images/CXR1_1_IM-0001-3001.png"]
    lateral = by_path["images/CXR1_1_IM-0001-4001.png"]
    assert frontal.study_id == lateral.study_id == "CXR1" and frontal.patient_id == "CXR1"
    assert frontal.report_error is None and frontal.report_path is None
    text = frontal.report_text
    assert "FINDINGS: The cardiac silhouette and mediastinum size are within normal limits." in text
    assert "\nIMPRESSION: Normal chest x-XXXX." in text
    assert text.index("FINDINGS:") < text.index("IMPRESSION:")
    assert by_path["images/CXR2_IM-0652-1001.png"].report_error == "report-unreadable"
    assert by_path["images/CXR3_IM-1384-2001.png"].report_error == "report-missing"
    empty = by_path["images/CXR4_IM-2050-1001.png"]
    assert empty.report_error is None and empty.report_text == ""  # the build rejects it as report-empty


def test_openi_searches_everywhere_when_reports_dir_is_absent(openi_export):
    (openi_export / "reports").rename(openi_export / "ecgen-radiology")
    items = _by_path(list(discover(openi_export, _load("openi"))))
    assert items["images/CXR1_1_IM-0001-3001.png"].study_id == "CXR1"
    assert items["images/CXR2_IM-0652-1001.png"].report_error == "report-unreadable"


# -------------------------------------------------------------------------------------------- folder


def test_folder_layout_with_sidecar_reports(tmp_path):
    root = tmp_path / "fundus"
    _png(root / "left" / "eye_001.png")
    _text(root / "left" / "eye_001.txt", "FINDINGS: Mild nonproliferative diabetic retinopathy.")
    _png(root / "left" / "eye_002.JPG")
    _text(root / "left" / "eye_002.TXT", "FINDINGS: Normal fundus.")
    _png(root / "right" / "eye_003.tif")  # no report
    _png(root / "volumes" / "scan.nii.gz")
    _text(root / "volumes" / "scan.txt", "IMPRESSION: Normal.")
    _text(root / "notes.txt", "not an image and not a sidecar")
    items = _by_path(list(discover(root, _load("fundus"))))
    images = {"left/eye_001.png", "left/eye_002.JPG", "right/eye_003.tif"}
    assert set(items) == images | {"notes.txt", "volumes/scan.txt"}
    assert items["left/eye_001.png"].report_path == "left/eye_001.txt"
    assert items["left/eye_002.JPG"].report_path == "left/eye_002.TXT"
    assert items["right/eye_003.tif"].report_error == "report-missing"
    assert all(i.patient_id is None and i.study_id is None for i in items.values())
    # fundus takes no .nii.gz: scan.txt is then, like notes.txt, a sidecar of no image, counted not dropped
    for report in ("notes.txt", "volumes/scan.txt"):
        assert (items[report].image_path, items[report].report_path) == (None, report)
        assert items[report].report_error == "report-without-image"
    assert list(items)[-2:] == ["notes.txt", "volumes/scan.txt"], "reports without images come after the images"
    nifti = _by_path(list(discover(root, _load("folder"))))
    assert nifti["volumes/scan.nii.gz"].report_path == "volumes/scan.txt"
    assert nifti["notes.txt"].report_error == "report-without-image" and "volumes/scan.txt" not in nifti


def test_catch_all_pattern_finds_extensionless_dicom_but_never_reports(tmp_path):
    root = tmp_path / "pacs-dump"
    _dicom(root / "STUDY1" / "IM0001")
    _text(root / "STUDY1" / "IM0001.txt", "FINDINGS: Normal.")
    _text(root / "STUDY1" / "metadata.json", "{}")
    _dicom(root / "DICOMDIR")
    items = list(discover(root, _load("folder", image_patterns=["*"])))
    assert [(i.image_path, i.report_path) for i in items] == [("STUDY1/IM0001", "STUDY1/IM0001.txt")]


def test_folder_layout_with_reports_csv(tmp_path):
    root = tmp_path / "export"
    _png(root / "img" / "a.png")
    _png(root / "img" / "b.png")
    _png(root / "img" / "c.png")
    _text(root / "reports.csv",
          "image,report,patient_id,study_id\n"
          'img/a.png,"FINDINGS: Small left pleural effusion.\nIMPRESSION: Effusion.",P001,S001\n'
          "b.png,FINDINGS: Clear lungs.,,\n"
          "img/gone.png,FINDINGS: Listed but not exported.,P009,S009\n")
    items = _by_path(list(discover(root, _load("folder", reports_csv="reports.csv"))))
    assert set(items) == {"img/a.png", "img/b.png", "img/c.png", "img/gone.png"}
    a = items["img/a.png"]
    assert (a.patient_id, a.study_id) == ("P001", "S001")
    assert a.report_text == "FINDINGS: Small left pleural effusion.\nIMPRESSION: Effusion."
    assert items["img/b.png"].report_text == "FINDINGS: Clear lungs." and items["img/b.png"].patient_id is None
    assert items["img/c.png"].report_error == "report-missing"
    assert items["img/gone.png"].report_text  # kept: imaging rejects it as file-missing


def test_folder_reports_csv_lacking_columns(tmp_path):
    _png(tmp_path / "a.png")
    _text(tmp_path / "reports.csv", "file,text\na.png,x\n")
    with pytest.raises(SourceError, match="lacks required column"):
        list(discover(tmp_path, _load("folder", reports_csv="reports.csv")))


# ------------------------------------------------------------------------------------------ manifest


def _manifest_export(tmp_path: Path, csv_text: str, encoding: str = "utf-8") -> Path:
    root = tmp_path / "export"
    _dicom(root / "dicom" / "1.dcm")
    _dicom(root / "dicom" / "2.dcm")
    _dicom(root / "dicom" / "3.dcm")
    _text(root / "reports" / "1.txt", MIMIC_REPORT)
    (root / "manifest.csv").write_bytes(csv_text.encode(encoding))
    return root


def test_manifest_layout_items(tmp_path):
    csv_text = (
        "image,report_path,report,patient_id,study_id\n"
        "dicom/1.dcm,reports/1.txt,,PAT-1,ACC-1\n"
        'dicom/2.dcm,,"FINDINGS: Right lower lobe opacity, possibly pneumonia.",PAT-1, \n'
        "dicom/3.dcm,reports/missing.txt,,,\n"
        "dicom/not-exported.dcm,,FINDINGS: Normal.,PAT-2,ACC-2\n"
        "\n"
        ",,FINDINGS: a row without an image path,PAT-3,ACC-3\n"
    )
    root = _manifest_export(tmp_path, csv_text)
    items = list(discover(root, _load("manifest")))
    assert len(items) == 5  # one item per manifest row, none dropped
    one, two, three, gone, blank = items
    assert (one.image_path, one.report_path) == ("dicom/1.dcm", "reports/1.txt")
    assert (one.patient_id, one.study_id) == ("PAT-1", "ACC-1")
    assert one.report_error is None and one.report_text is None
    assert two.report_text.startswith("FINDINGS: Right lower lobe") and two.study_id is None
    assert three.report_error == "report-missing" and three.patient_id is None
    assert gone.image_path == "dicom/not-exported.dcm" and gone.report_error is None
    assert blank.image_path and blank.report_error is None and not (root / blank.image_path).exists()


def test_manifest_with_bom_semicolons_absolute_paths_and_the_old_column_names(tmp_path):
    root = tmp_path / "export"
    csv_text = f"\ufeffImage_Path;Report_Text;Patient_ID;Study_ID\n{root / 'dicom' / '1.dcm'};Clear lungs.;P1;S1\n"
    root = _manifest_export(tmp_path, csv_text)
    (item,) = discover(root, _load("manifest"))
    assert item.image_path == "dicom/1.dcm" and item.report_text == "Clear lungs." and item.patient_id == "P1"


def test_manifest_given_by_absolute_path(tmp_path):
    root = _manifest_export(tmp_path, "image_path,report_text\ndicom/2.dcm,Normal.\n")
    elsewhere = tmp_path / "lists" / "cohort.csv"
    elsewhere.parent.mkdir()
    shutil.move(root / "manifest.csv", elsewhere)
    (item,) = discover(root, _load("manifest", manifest=str(elsewhere)))
    assert item.image_path == "dicom/2.dcm"


@pytest.mark.parametrize(
    "csv_text, encoding, message",
    [
        ("path,report\ndicom/1.dcm,x\n", "utf-8", "lacks required column.*image"),
        ("image,patient_id\ndicom/1.dcm,P1\n", "utf-8", "report_path or report"),
        ("image_path,report_text\ndicom/1.dcm,Épanchement pleural à droite\n", "latin-1", "not UTF-8"),
        ("", "utf-8", "empty"),
    ],
    ids=["no-image-column", "no-report-column", "latin-1", "empty"],
)
def test_unusable_manifest_is_a_source_error(tmp_path, csv_text, encoding, message):
    root = _manifest_export(tmp_path, csv_text, encoding)
    with pytest.raises(SourceError, match=message) as info:
        list(discover(root, _load("manifest")))
    assert "\n" not in str(info.value)


def test_a_current_column_name_wins_over_its_old_name(tmp_path):
    root = _manifest_export(tmp_path, "image_path,image,report_text,report\ndicom/1.dcm,dicom/2.dcm,Old.,New.\n")
    (item,) = discover(root, _load("manifest"))
    assert (item.image_path, item.report_text) == ("dicom/2.dcm", "New.")


def test_missing_manifest_is_a_source_error(tmp_path):
    root = _manifest_export(tmp_path, "image_path,report_text\n")
    (root / "manifest.csv").unlink()
    with pytest.raises(SourceError, match="manifest .* not found"):
        list(discover(root, _load("manifest")))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("layout, csv_name", [("manifest", "manifest.csv"), ("folder", "reports.csv")])
def test_a_manifest_or_reports_csv_that_is_a_fifo_is_a_source_error_not_a_hang(tmp_path, layout, csv_name):
    root = tmp_path / "export"
    _png(root / "a.png")
    os.mkfifo(root / csv_name)
    pipeline = _load(layout, reports_csv=csv_name) if layout == "folder" else _load(layout)
    with pytest.raises(SourceError, match=r"is a named pipe \(FIFO\), not a regular file"):
        list(discover(root, pipeline))
