"""The demo export: layout, decodable DICOMs, planted PHI, reports that match their ground truth,
determinism, learnable image patterns, planted broken inputs, and the `mgll demo` CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut

from mgll_data import cli
from mgll_data.commands.demo import DEMO_STEPS
from mgll_data.demo import DemoError, write_demo_export
from mgll_data.demo.broken import BROKEN_KINDS
from mgll_data.demo.findings import CHEXPERT, PlantedFinding
from mgll_data.demo.packaged import locate
from mgll_data.demo.run import DemoRunSettings, DemoStep, format_results, run_demo
from mgll_data.demo.synthetic import draw_frontal

STUDIES = 40
SEED = 3


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "export"
    write_demo_export(out, studies=STUDIES, seed=SEED, broken=True, packaged=True, progress=False)
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_writes_the_mimic_layout(export: Path) -> None:
    images = _csv(export / "demo_images.csv")
    on_disk = {p.relative_to(export).as_posix() for p in (export / "files").rglob("*.dcm")}
    assert on_disk == {row["image_path"] for row in images}
    pattern = re.compile(r"files/(p1\d)/(p1\d{7})/(s5\d{7})/[0-9a-f]{8}(-[0-9a-f]{8}){4}\.dcm")
    for row in images:
        match = pattern.fullmatch(row["image_path"])
        assert match, row["image_path"]
        assert match.group(1) == match.group(2)[:3]
        assert (match.group(2), match.group(3)) == (row["subject"], row["study"])
    truth = _csv(export / "ground_truth.csv")
    assert len([r for r in truth if r["source"] == "synthetic"]) == STUDIES
    for row in truth:
        assert row["report_path"] == f"files/{row['subject'][:3]}/{row['subject']}/{row['study']}.txt"
        assert (export / row["report_path"]).is_file()
    views = {row["view"] for row in images if row["source"] == "synthetic"}
    assert {"PA", "LATERAL"} <= views


def test_every_valid_dicom_decodes_and_the_encodings_vary(export: Path) -> None:
    rows = [r for r in _csv(export / "demo_images.csv") if r["expect"] in ("row", "report-missing", "report-not-utf8")]
    for row in rows:
        ds = pydicom.dcmread(export / row["image_path"])
        pixels = ds.pixel_array
        assert pixels.shape == (int(row["rows"]), int(row["columns"])), row["image_path"]
        assert ds.file_meta.TransferSyntaxUID.name == row["transfer_syntax"]
        if row["source"] == "synthetic":
            assert ds.Modality in ("CR", "DX") and ds.BodyPartExamined == "CHEST"
            assert ds.PhotometricInterpretation == row["photometric"]
            assert int(ds.BitsStored) == int(row["bits_stored"])
            assert pixels.std() > 0
    synthetic = [r for r in rows if r["source"] == "synthetic"]
    assert len({r["transfer_syntax"] for r in synthetic}) >= 6
    assert {r["photometric"] for r in synthetic} == {"MONOCHROME1", "MONOCHROME2"}
    assert {"8", "12", "16"} <= {r["bits_stored"] for r in synthetic}
    assert {r["sop_class"] for r in synthetic} == {"CR", "DX-presentation", "DX-processing"}
    assert any(r["rescale"] for r in synthetic) and any(r["padding"] == "1" for r in synthetic)
    assert {"sigmoid", "linear"} <= {r["window"] for r in synthetic}


def test_headers_carry_fake_phi_for_the_builder_to_remove(export: Path) -> None:
    phi: dict[str, set[str]] = {}
    for row in _csv(export / "planted_phi.csv"):
        phi.setdefault(row["study"], set()).add(row["value"])
    descriptions_with_names = 0
    for row in _csv(export / "demo_images.csv"):
        if row["source"] != "synthetic" or row["expect"] != "row":
            continue
        ds = pydicom.dcmread(export / row["image_path"], stop_before_pixels=True)
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "AccessionNumber",
                        "ReferringPhysicianName", "StudyDate", "DeviceSerialNumber"):
            assert str(ds.get(keyword, "")).strip(), keyword
        planted = phi[row["study"]]
        assert {ds.PatientID, ds.AccessionNumber, ds.InstitutionName, ds.DeviceSerialNumber} <= planted
        assert ds.PatientName.family_name in planted
        descriptions = f"{ds.StudyDescription} {ds.SeriesDescription}"
        descriptions_with_names += any(name in descriptions for name in planted if name.isalpha())
    assert descriptions_with_names > 0


_KEYWORDS = {
    "Enlarged Cardiomediastinum": r"mediastin",
    "Cardiomegaly": r"cardiomegaly|heart is enlarged|cardiac silhouette is enlarged|heart size",
    "Lung Opacity": r"opacity",
    "Lung Lesion": r"nodule|mass",
    "Edema": r"edema",
    "Consolidation": r"consolidation",
    "Pneumonia": r"pneumonia",
    "Atelectasis": r"atelectasis",
    "Pneumothorax": r"pneumothorax",
    "Pleural Effusion": r"effusion",
    "Pleural Other": r"pleural thickening",
    "Fracture": r"fracture",
    "Support Devices": r"tube|catheter|pacemaker",
}
_HEDGE = r"possible|cannot exclude|cannot be excluded|questionable|may |borderline"


def _report_body(text: str) -> str:
    """The report without its indication and sign-off (which may mention findings or carry PHI)."""
    keep = [line for line in text.splitlines()
            if not line.strip().startswith(("INDICATION", "Dictated by", "NOTIFICATION", "EXAMINATION"))]
    return "\n".join(keep).lower()


def test_reports_say_what_ground_truth_says(export: Path) -> None:
    phi: dict[str, set[str]] = {}
    for row in _csv(export / "planted_phi.csv"):
        phi.setdefault(row["study"], set()).add(row["value"])
    truth = [r for r in _csv(export / "ground_truth.csv") if r["source"] == "synthetic"]
    statuses = {value for row in truth for value in (row[name] for name in CHEXPERT)}
    assert {"1", "0", "-1", ""} <= statuses
    assert sum(row["No Finding"] == "1" for row in truth) >= STUDIES // 5
    for row in truth:
        text = (export / row["report_path"]).read_text(encoding="utf-8")
        assert any(value in text for value in phi[row["study"]]), "the report carries fake PHI"
        body = _report_body(text)
        for name, pattern in _KEYWORDS.items():
            mentioned = re.search(pattern, body) is not None
            assert mentioned == (row[name] != ""), (row["study"], name, body)
        for sentence in re.split(r"(?<=\.)\s+", body):
            for name, pattern in _KEYWORDS.items():
                if row[name] == "-1" and re.search(pattern, sentence):
                    assert re.search(_HEDGE, sentence), (name, sentence)


def test_same_seed_same_bytes_and_more_studies_extend_fewer(tmp_path: Path) -> None:
    first = write_demo_export(tmp_path / "a", studies=4, seed=7, broken=True, packaged=False, progress=False)
    write_demo_export(tmp_path / "b", studies=4, seed=7, broken=True, packaged=False, progress=False)
    write_demo_export(tmp_path / "c", studies=4, seed=8, broken=True, packaged=False, progress=False)
    write_demo_export(tmp_path / "d", studies=2, seed=7, packaged=False, progress=False)
    a, b, c = _hashes(tmp_path / "a"), _hashes(tmp_path / "b"), _hashes(tmp_path / "c")
    assert a == b
    assert len(a) == first.images + first.reports + 4
    assert {path for path, _ in set(a.items()) & set(c.items())} == {"README.txt"}
    d = {k: v for k, v in _hashes(tmp_path / "d").items() if k.startswith("files/")}
    assert d and set(d.items()) <= set(a.items())


def _display(path: Path) -> np.ndarray:
    """What a viewer shows: modality LUT, padding ignored, MONOCHROME1 inverted, 1-99% window, 64x64."""
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    values = apply_modality_lut(stored, ds).astype(np.float64)
    valid = stored != ds.PixelPaddingValue if "PixelPaddingValue" in ds else np.ones(stored.shape, bool)
    low, high = np.percentile(values[valid], [1, 99])
    shown = np.clip((values - low) / (high - low), 0, 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        shown = 1 - shown
    return np.asarray(Image.fromarray((shown * 255).astype(np.uint8)).resize((64, 64), Image.BILINEAR)) / 255.0


def test_effusion_positive_images_have_whiter_lung_bases(export: Path) -> None:
    truth = {r["study"]: r for r in _csv(export / "ground_truth.csv") if r["source"] == "synthetic"}
    positive, negative = [], []
    for row in _csv(export / "demo_images.csv"):
        if row["study"] not in truth or row["view"] not in ("PA", "AP"):
            continue
        status = truth[row["study"]]["Pleural Effusion"]
        if status == "-1":
            continue
        shown = _display(export / row["image_path"])
        bases = np.concatenate([shown[40:52, 8:27].ravel(), shown[40:52, 37:56].ravel()]).mean()
        (positive if status == "1" else negative).append(bases)
    assert len(positive) >= 3 and len(negative) >= 10
    assert np.mean(positive) > np.mean(negative) + 0.05


@pytest.mark.parametrize(
    ("finding", "rows", "cols"),
    [
        (PlantedFinding(1, side="bilateral", size="moderate"), slice(62, 76), slice(15, 40)),  # Pleural Effusion
        (PlantedFinding(1, size="moderate"), slice(60, 68), slice(70, 77)),  # Cardiomegaly
        (PlantedFinding(1, side="bilateral"), slice(40, 55), slice(28, 42)),  # Edema
        (PlantedFinding(1, side="left", size="large"), slice(25, 75), slice(55, 85)),  # Consolidation
    ],
    ids=["Pleural Effusion", "Cardiomegaly", "Edema", "Consolidation"],
)
def test_each_finding_draws_a_denser_region(request, finding: PlantedFinding, rows: slice, cols: slice) -> None:
    name = request.node.callspec.id
    without = draw_frontal(np.random.default_rng(11), {}, (100, 100))
    with_finding = draw_frontal(np.random.default_rng(11), {name: finding}, (100, 100))
    assert with_finding[rows, cols].mean() > without[rows, cols].mean() + 0.04


def test_broken_flag_plants_each_bad_input_once(export: Path) -> None:
    rows = _csv(export / "demo_images.csv")
    planted = {row["expect"]: row for row in rows if row["expect"] != "row"}
    assert sorted(planted) == sorted(BROKEN_KINDS.values())
    assert sum(row["expect"] != "row" for row in rows) == len(BROKEN_KINDS)
    assert (export / planted["empty-file"]["image_path"]).stat().st_size == 0
    with pytest.raises(InvalidDicomError):
        pydicom.dcmread(export / planted["not-an-image"]["image_path"])
    truncated = pydicom.dcmread(export / planted["truncated-file"]["image_path"])
    with pytest.raises(ValueError, match="pixel data is less than expected"):
        truncated.convert_pixel_data()
    assert "PixelData" not in pydicom.dcmread(export / planted["no-pixel-data"]["image_path"])
    missing = planted["report-missing"]
    assert not (export / f"files/{missing['subject'][:3]}/{missing['subject']}/{missing['study']}.txt").exists()
    bad = planted["report-not-utf8"]
    raw = (export / f"files/{bad['subject'][:3]}/{bad['subject']}/{bad['study']}.txt").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    truth_studies = {row["study"] for row in _csv(export / "ground_truth.csv")}
    assert not truth_studies & {row["study"] for row in planted.values()}


def test_no_broken_inputs_without_the_flag(tmp_path: Path) -> None:
    summary = write_demo_export(tmp_path / "x", studies=3, seed=1, packaged=False, progress=False)
    assert summary.broken == {} and summary.expected_rows == summary.images
    assert {row["expect"] for row in _csv(tmp_path / "x" / "demo_images.csv")} == {"row"}


def test_packaged_files_are_copied_byte_for_byte(export: Path) -> None:
    copies = [r for r in _csv(export / "demo_images.csv") if r["source"] != "synthetic"]
    assert copies, "pydicom-data / deid-data are dev dependencies and should be installed"
    for row in copies:
        source = locate(row["source"])
        assert source is not None
        assert (export / row["image_path"]).read_bytes() == source.read_bytes()
    cat = [r for r in copies if r["source"] == "deid-data:animals/cat.dcm"]
    assert cat and str(pydicom.dcmread(export / cat[0]["image_path"], stop_before_pixels=True).PatientName)


def test_refuses_a_folder_that_is_not_a_demo_export(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not empty"):
        write_demo_export(tmp_path, studies=1, packaged=False, progress=False)
    with pytest.raises(DemoError, match="not a demo export"):
        write_demo_export(tmp_path, studies=1, packaged=False, progress=False, overwrite=True)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_cli_help_and_export(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["demo", "--help"], ["demo", "export", "--help"], ["demo", "run", "--help"]):
        result = runner.invoke(cli.main, args)
        assert result.exit_code == 0, result.output
        assert "Example" in result.output
    out = tmp_path / "cli-export"
    result = runner.invoke(cli.main, ["demo", "export", str(out), "--studies", "2", "--no-packaged", "--broken",
                                      "--quiet", "--json", "-"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["synthetic_studies"] == 2 and len(summary["broken"]) == len(BROKEN_KINDS)
    again = runner.invoke(cli.main, ["demo", "export", str(out), "--studies", "2", "--no-packaged", "--quiet"])
    assert again.exit_code == 1 and "not empty" in again.output and "Traceback" not in again.output
    replaced = runner.invoke(cli.main, ["demo", "export", str(out), "--studies", "1", "--no-packaged", "--quiet",
                                        "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert len(_csv(out / "ground_truth.csv")) == 1


def test_run_reports_missing_libraries_as_skipped_and_goes_on(tmp_path: Path) -> None:
    steps = [replace(step, module="mgll_data.not_written_yet") if step.name == "build" else step for step in DEMO_STEPS]
    results = run_demo(tmp_path / "demo", steps, DemoRunSettings(studies=2), progress=False, echo=lambda _: None)
    status = {r.step: (r.status, r.detail) for r in results}
    assert status["export"][0] == "ok"
    assert status["build"][0] == "skipped" and "not available" in status["build"][1]
    for step in ("validate", "card", "pretrain"):
        assert status[step] == ("skipped", "needs build, which did not finish")
    assert status["evaluate"][0] == "skipped"
    saved = json.loads((tmp_path / "demo" / "demo_run.json").read_text())
    assert [r["step"] for r in saved] == ["export", "build", "validate", "card", "pretrain", "evaluate"]
    table = format_results(results)
    assert all(step in table for step in status)
    rerun = run_demo(tmp_path / "demo", steps, DemoRunSettings(studies=1), progress=False, echo=lambda _: None)
    assert rerun[0].status == "ok"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DemoError, match="not made by"):
        run_demo(foreign, DEMO_STEPS, DemoRunSettings(studies=1), progress=False)


def test_a_failing_step_is_one_line_and_a_missing_package_skips_its_step(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "needs_absent_package.py").write_text("import absent_package_for_the_demo_test\n")
    (tmp_path / "broken_on_import.py").write_text("from json import no_such_name\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def fails(*_):
        raise ValueError("the first line\nand a second one")

    steps = [DemoStep("first", fails), DemoStep("second", fails, needs="first"),
             DemoStep("third", fails, module="needs_absent_package"),
             DemoStep("fourth", fails, module="broken_on_import")]
    results = run_demo(tmp_path / "demo", steps, progress=False, echo=lambda _: None)
    assert [(r.step, r.status, r.detail) for r in results] == [
        ("first", "failed", "ValueError: the first line"),
        ("second", "skipped", "needs first, which did not finish"),
        ("third", "skipped", "not available (needs absent_package_for_the_demo_test, which is not installed; "
                             "run `make install`)"),
        ("fourth", "failed", "ImportError: cannot import name 'no_such_name' from 'json' "
                             f"({json.__file__})"),
    ]


@pytest.mark.slow
def test_the_whole_demo_into_a_log_has_no_carriage_returns(tmp_path: Path) -> None:
    """`make demo > log` at toy size: every step runs, its output is not a terminal, so progress comes as
    whole lines and the log holds no carriage return (a bar redrawn per image made 613 of them)."""
    log = tmp_path / "demo.log"
    with open(log, "wb") as handle:
        done = subprocess.run(
            [sys.executable, "-c", "from mgll_data.cli import main; main()", "demo", "run", str(tmp_path / "demo"),
             "--studies", "6", "--steps", "2"],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=280,
        )
    text = log.read_text(encoding="utf-8")
    assert done.returncode == 0, text[-3000:]
    assert "\r" not in text
    steps = json.loads((tmp_path / "demo" / "demo_run.json").read_text())
    assert [(s["step"], s["status"]) for s in steps] == [
        (name, "ok") for name in ("export", "build", "validate", "card", "pretrain", "evaluate")]
    assert re.search(r"^build: \d+/\d+ img \(100%\)", text, flags=re.M)  # the build's last progress line
    assert text.count("\n") < 120
