"""The layouts: how each kind of export pairs images with reports and ids (see `pipelines/*.yaml`)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from mgll_data.pipeline import Pipeline
from mgll_data.records import SourceItem
from mgll_data.sources import files as export
from mgll_data.sources import tables
from mgll_data.sources.inputs import (
    REPORT_MISSING,
    REPORT_UNREADABLE,
    REPORT_WITHOUT_IMAGE,
    report_file_problem,
    report_without_image,
)

_MIMIC_PATIENT = re.compile(r"p\d+")
_MIMIC_STUDY = re.compile(r"s\d+")


# ---------------------------------------------------------------------------------------- mimic-cxr


def mimic(root: Path, pipeline: Pipeline) -> Iterator[SourceItem]:
    # The root may be the folder holding files/ or files/ itself; reports sit beside each study folder:
    # files/p10/p10000032/s50414267/<dicom_id>.dcm  +  files/p10/p10000032/s50414267.txt
    files, folders = export.walk(root)
    entries = set(files) | set(folders)  # a folder named like a report is rejected by kind when read
    used: set[str] = set()
    for image in export.images(files, folders, pipeline):
        parts = image.split("/")
        study = parts[-2] if len(parts) >= 2 and _MIMIC_STUDY.fullmatch(parts[-2]) else None
        patient = parts[-3] if study and len(parts) >= 3 and _MIMIC_PATIENT.fullmatch(parts[-3]) else None
        if study is None:
            yield SourceItem(image_path=image, report_error=REPORT_MISSING)
            continue
        report = "/".join([*parts[:-2], f"{study}.txt"])
        used.add(report)
        yield SourceItem(
            image_path=image,
            patient_id=patient,
            study_id=study,
            report_path=report,
            report_error=None if report in entries else REPORT_MISSING,
        )
    for report in files:
        parts = report.split("/")
        study = parts[-1][: -len(".txt")] if parts[-1].endswith(".txt") else ""
        if report not in used and _MIMIC_STUDY.fullmatch(study):
            patient = parts[-2] if len(parts) >= 2 and _MIMIC_PATIENT.fullmatch(parts[-2]) else None
            yield report_without_image(report, patient_id=patient, study_id=study)


# -------------------------------------------------------------------------------------------- openi


def openi(root: Path, pipeline: Pipeline) -> Iterator[SourceItem]:
    files, folders = export.walk(root)
    reports_dir = str(pipeline.source.get("reports_dir") or "").strip("/")
    xml_files = [f for f in files if f.lower().endswith(".xml")]
    if reports_dir and (root / reports_dir).is_dir():
        prefix = PurePosixPath(Path(reports_dir).as_posix())
        xml_files = [f for f in xml_files if PurePosixPath(f).is_relative_to(prefix)]
    reports: dict[str, tuple[str, str, str]] = {}  # image stem -> (study id, text, xml path); first wins
    unusable: dict[str, tuple[str, str]] = {}  # study uid -> (xml path, reason)
    for xml_path in xml_files:
        problem = report_file_problem(root / xml_path)
        parsed = None if problem else _parse_openi(root / xml_path, pipeline.reports.sections)
        if parsed is None:
            # The image names are inside the unusable file; fall back to Open-i's naming convention
            # (report 1.xml / CXR1.xml describes images CXR1_*.png) so its images get the right reason.
            reason = problem[0] if problem else REPORT_UNREADABLE
            unusable.setdefault(_openi_uid(export.stem(xml_path)), (xml_path, reason))
            continue
        study_id, report_text, image_stems = parsed
        for image_stem in image_stems:
            reports.setdefault(image_stem, (study_id or export.stem(xml_path), report_text, xml_path))
    used: set[str] = set()
    for image in export.images(files, folders, pipeline):
        stem = export.stem(image)
        if stem in reports:
            study_id, report_text, xml_path = reports[stem]
            used.add(xml_path)
            # Open-i has no patient ids: each report (study) stands for its own patient.
            yield SourceItem(image_path=image, patient_id=study_id, study_id=study_id, report_text=report_text)
        elif (uid := stem.split("_", 1)[0]) in unusable:
            xml_path, reason = unusable[uid]
            used.add(xml_path)
            yield SourceItem(image_path=image, report_error=reason)
        else:
            yield SourceItem(image_path=image, report_error=REPORT_MISSING)
    reasons = {xml_path: reason for xml_path, reason in unusable.values()}
    for xml_path in xml_files:
        if xml_path not in used:  # an unusable report keeps its own reason: whether it has images is unknown
            yield report_without_image(xml_path, reason=reasons.get(xml_path, REPORT_WITHOUT_IMAGE))


def _openi_uid(stem: str) -> str:
    return stem if stem.upper().startswith("CXR") else f"CXR{stem}"


def _parse_openi(path: Path, wanted: tuple[str, ...]) -> tuple[str | None, str, list[str]] | None:
    """(study id, report text, image stems) of one Open-i report; None when unparsable.

    The text holds every labelled section ("COMPARISON: …\\nINDICATION: …\\nFINDINGS: …\\nIMPRESSION: …")
    in document order, or "" when none of the `wanted` sections has text, so an Open-i report with an
    empty findings and impression becomes a report-empty reject instead of a row without a report.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError, UnicodeError, ValueError):
        return None
    study_id = None
    for tag in ("uId", "pmcId"):
        node = root.find(f".//{tag}")
        if node is not None and (node.get("id") or "").strip():
            study_id = node.get("id").strip()
            break
    sections = []
    has_wanted = not wanted
    for node in root.iter("AbstractText"):
        label = (node.get("Label") or "").strip().upper()
        text = " ".join("".join(node.itertext()).split())
        if label and text:
            sections.append(f"{label}: {text}")
            has_wanted = has_wanted or label.lower() in wanted
    images = [n.get("id").strip() for n in root.iter("parentImage") if (n.get("id") or "").strip()]
    return study_id, "\n".join(sections) if has_wanted else "", images


# ------------------------------------------------------------------------------------------- folder


def folder(root: Path, pipeline: Pipeline) -> Iterator[SourceItem]:
    files, folders = export.walk(root)
    images = export.images(files, folders, pipeline)
    reports_csv = pipeline.source.get("reports_csv")
    if reports_csv:
        yield from _folder_with_csv(root, images, tables.resolve(root, str(reports_csv)))
        return
    # Every .txt is a sidecar report (a folder named like one is rejected by kind when read).
    sidecars = [f for f in files if f.lower().endswith(".txt")]
    reports = {f.lower(): f for f in [*sidecars, *(f for f in folders if f.lower().endswith(".txt"))]}
    used: set[str] = set()
    for image in images:
        folder = image.rsplit("/", 1)[0] + "/" if "/" in image else ""
        report = reports.get(f"{folder}{export.stem(image)}.txt".lower())
        if report:
            used.add(report)
        yield SourceItem(
            image_path=image,
            report_path=report,
            report_error=None if report else REPORT_MISSING,
        )
    for report in sidecars:
        if report not in used:
            yield report_without_image(report)


def _folder_with_csv(root: Path, images: list[str], csv_path: Path) -> Iterator[SourceItem]:
    rows = tables.read_csv(csv_path, required=[("image",), ("report",)], what="reports CSV")
    by_path: dict[str, dict[str, str]] = {}
    by_name: dict[str, list[str]] = {}
    for row in rows:
        key = tables.relative(root, row["image"])
        if key:
            by_path.setdefault(key, row)
            by_name.setdefault(key.rsplit("/", 1)[-1], []).append(key)
    used: set[str] = set()
    for image in images:
        key = image if image in by_path else None
        if key is None:  # the CSV may name files by bare file name
            candidates = by_name.get(image.rsplit("/", 1)[-1], [])
            key = candidates[0] if len(candidates) == 1 and "/" not in candidates[0] else None
        if key is None:
            yield SourceItem(image_path=image, report_error=REPORT_MISSING)
            continue
        used.add(key)
        yield _csv_item(image, by_path[key], text_column="report")
    found = set(images)
    for key, row in by_path.items():
        if key not in used and key not in found:
            # A CSV row naming an image that is not there is still an input (imaging rejects it as
            # file-missing): never silently drop a row the user listed.
            yield _csv_item(key, row, text_column="report")


def _csv_item(image: str, row: dict[str, str], text_column: str) -> SourceItem:
    text = row.get(text_column) or ""
    return SourceItem(
        image_path=image,
        patient_id=tables.blank_to_none(row.get("patient_id")),
        study_id=tables.blank_to_none(row.get("study_id")),
        report_text=text if text.strip() else None,
        report_error=None if text.strip() else REPORT_MISSING,
    )


# ----------------------------------------------------------------------------------------- manifest


def manifest(root: Path, pipeline: Pipeline) -> Iterator[SourceItem]:
    name = pipeline.source.get("manifest") or "manifest.csv"
    required = [("image",), ("report_path", "report")]
    rows = tables.read_csv(tables.resolve(root, str(name)), required=required, what="manifest")
    for number, row in enumerate(rows, start=2):
        # A row without an image path still counts as an input (imaging rejects it as file-missing).
        image = tables.relative(root, row.get("image") or "") or f"manifest-row-{number}-has-no-image-path"
        text = row.get("report") or ""
        report_path = tables.relative(root, row.get("report_path") or "")
        report_error = None
        if text.strip():
            report_path = None
        elif report_path:
            text = ""
            problem = report_file_problem(root / report_path)
            report_error = problem[0] if problem else None
        else:
            report_error = REPORT_MISSING
        yield SourceItem(
            image_path=image,
            patient_id=tables.blank_to_none(row.get("patient_id")),
            study_id=tables.blank_to_none(row.get("study_id")),
            report_path=report_path or None,
            report_text=text if text.strip() else None,
            report_error=report_error,
        )
