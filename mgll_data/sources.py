"""Sources: turn a raw export folder into `SourceItem`s, one per image file, following a pipeline's layout.

Rules every layout keeps, because "rows + rejects = inputs" depends on them:
- every image file found (by the pipeline's `image_patterns`, matched case-insensitively on the file
  name) is exactly one item, in a deterministic order; nothing is dropped here. A missing or unparsable
  report is recorded as `report_error` so the build turns the image into a reject with that reason;
- only regular files can be read, but every entry named like an image is an item whatever it is (a FIFO,
  a socket, a device, a broken symbolic link, a folder named `x.png`): the imaging stage rejects it with
  its own reason. Nothing here opens a file that is not regular (reading a FIFO blocks forever);
- a report that no image found belongs to is an item too (`image_path` None, reason
  `report-without-image`), after the images: it cannot become a row, but images lost on the way to the
  export show up exactly this way, so it is counted and listed, never skipped. Which files are reports is
  the layout's own rule (MIMIC's `p…/s….txt`, an Open-i XML, a folder's `.txt` sidecar);
- files that are not images by pattern are ignored, and so are report/metadata files (.txt, .xml,
  .csv, .json, DICOMDIR) even under a catch-all pattern like "*", hidden files and folders (".*"),
  and macOS debris (`__MACOSX`);
- report files are not read here (workers read them and check UTF-8); only their existence is checked.
  Layouts that carry the text inline (Open-i XML, CSVs) put it in `report_text`;
- paths are POSIX, relative to the export root (a manifest may name absolute paths outside the root:
  those are kept absolute).

Layouts: mimic-cxr, openi, folder, manifest (see `pipelines/*.yaml`). An export that cannot be used at
all (root missing, unusable CSV) raises `SourceError` with a one-line message.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from mgll_data import filekind
from mgll_data.pipeline import Pipeline
from mgll_data.records import SourceItem

REPORT_MISSING = "report-missing"
REPORT_UNREADABLE = "report-unreadable"
REPORT_NOT_REGULAR = "report-not-a-regular-file"
REPORT_BROKEN_LINK = "report-broken-symlink"
REPORT_WITHOUT_IMAGE = "report-without-image"
# A folder is an input only when named like one of these (and matching the pipeline's patterns): DICOM
# series folders are often named by UID ("1.2.840…"), which a catch-all pattern would otherwise take.
IMAGE_SUFFIXES = (".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
NOT_IMAGE_SUFFIXES = (".txt", ".xml", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".md", ".parquet")
SKIPPED_DIRS = ("__MACOSX",)
MAX_CSV_BYTES = 2_000_000_000

_MIMIC_PATIENT = re.compile(r"p\d+")
_MIMIC_STUDY = re.compile(r"s\d+")


class SourceError(Exception):
    """An export that cannot be used at all; the message is one line for the user."""


def discover(export_root: Path, pipeline: Pipeline) -> Iterator[SourceItem]:
    """Every image of the export as a `SourceItem`, sorted, following `pipeline.layout`."""
    root = Path(export_root)
    if not root.exists():
        raise SourceError(f"export root {root} does not exist")
    if not root.is_dir():
        raise SourceError(f"export root {root} is not a directory")
    layouts = {"mimic-cxr": _mimic, "openi": _openi, "folder": _folder, "manifest": _manifest}
    if pipeline.layout not in layouts:
        raise SourceError(f"unknown layout {pipeline.layout!r}; known: {', '.join(layouts)}")
    yield from layouts[pipeline.layout](root, pipeline)


# ----------------------------------------------------------------------------------------- walking


def _walk(root: Path) -> tuple[list[str], list[str]]:
    """(every entry that is not a folder, every folder) under root, following folder symlinks once, as
    sorted relative POSIX paths. The first list holds FIFOs, sockets, devices and broken links too: the
    stages reject them by kind instead of opening them."""
    found: list[str] = []
    folders: list[str] = []
    seen: set[tuple[int, int]] = set()

    def onerror(exc: OSError) -> None:
        raise SourceError(f"cannot list {exc.filename}: {exc.strerror or type(exc).__name__}")

    for folder, dirs, files in os.walk(root, followlinks=True, onerror=onerror):
        try:
            stat = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (stat.st_dev, stat.st_ino) in seen:  # a symlink loop
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirs[:] = sorted(d for d in dirs if not _skipped(d))
        rel_folder = PurePosixPath(Path(folder).relative_to(root).as_posix())
        found.extend(_join(rel_folder, name) for name in files if not _skipped(name))
        folders.extend(_join(rel_folder, name) for name in dirs)
    return sorted(found), sorted(folders)


def _join(folder: PurePosixPath, name: str) -> str:
    return str(folder / name) if str(folder) != "." else name


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in SKIPPED_DIRS or name == "Thumbs.db"


def _image_matcher(pipeline: Pipeline) -> re.Pattern[str]:
    patterns = pipeline.image_patterns() or ["*.dcm", "*.png", "*.jpg", "*.jpeg"]
    regexes = [fnmatch.translate(p.lower()) for p in patterns]
    return re.compile("|".join(f"(?:{r})" for r in regexes))


def _images(files: list[str], folders: list[str], pipeline: Pipeline) -> list[str]:
    """The entries the pipeline takes for images: files by pattern, and folders named like an image file
    (so a folder `x.png` is rejected as not a regular file instead of vanishing), sorted."""
    matcher = _image_matcher(pipeline)

    def named_like_image(path: str) -> bool:
        name = path.rsplit("/", 1)[-1].lower()
        return not name.endswith(NOT_IMAGE_SUFFIXES) and name != "dicomdir" and bool(matcher.match(name))

    images = [path for path in files if named_like_image(path)]
    images += [path for path in folders if path.lower().endswith(IMAGE_SUFFIXES) and named_like_image(path)]
    return sorted(images)


def _stem(path: str) -> str:
    """File name without its image extension; `.nii.gz` counts as one extension."""
    name = path.rsplit("/", 1)[-1]
    lower = name.lower()
    for double in (".nii.gz", ".tar.gz"):
        if lower.endswith(double):
            return name[: -len(double)]
    return name.rsplit(".", 1)[0] if "." in name[1:] else name


# ---------------------------------------------------------------------------------------- mimic-cxr


def _mimic(root: Path, pipeline: Pipeline) -> Iterator[SourceItem]:
    # The root may be the folder holding files/ or files/ itself; reports sit beside each study folder:
    # files/p10/p10000032/s50414267/<dicom_id>.dcm  +  files/p10/p10000032/s50414267.txt
    files, folders = _walk(root)
    entries = set(files) | set(folders)  # a folder named like a report is rejected by kind when read
    used: set[str] = set()
    for image in _images(files, folders, pipeline):
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
            yield _report_without_image(report, patient_id=patient, study_id=study)


def _report_without_image(report: str, patient_id: str | None = None, study_id: str | None = None,
                          reason: str = REPORT_WITHOUT_IMAGE) -> SourceItem:
    return SourceItem(image_path=None, patient_id=patient_id, study_id=study_id, report_path=report, report_error=reason)


# -------------------------------------------------------------------------------------------- openi


def _openi(root: Path, pipeline: Pipeline) -> Iterator[SourceItem]:
    files, folders = _walk(root)
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
            unusable.setdefault(_openi_uid(_stem(xml_path)), (xml_path, problem[0] if problem else REPORT_UNREADABLE))
            continue
        study_id, report_text, image_stems = parsed
        for image_stem in image_stems:
            reports.setdefault(image_stem, (study_id or _stem(xml_path), report_text, xml_path))
    used: set[str] = set()
    for image in _images(files, folders, pipeline):
        stem = _stem(image)
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
            yield _report_without_image(xml_path, reason=reasons.get(xml_path, REPORT_WITHOUT_IMAGE))


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


def _folder(root: Path, pipeline: Pipeline) -> Iterator[SourceItem]:
    files, folders = _walk(root)
    images = _images(files, folders, pipeline)
    reports_csv = pipeline.source.get("reports_csv")
    if reports_csv:
        yield from _folder_with_csv(root, images, _resolve(root, str(reports_csv)))
        return
    # Every .txt is a sidecar report (a folder named like one is rejected by kind when read).
    sidecars = [f for f in files if f.lower().endswith(".txt")]
    reports = {f.lower(): f for f in [*sidecars, *(f for f in folders if f.lower().endswith(".txt"))]}
    used: set[str] = set()
    for image in images:
        folder = image.rsplit("/", 1)[0] + "/" if "/" in image else ""
        report = reports.get(f"{folder}{_stem(image)}.txt".lower())
        if report:
            used.add(report)
        yield SourceItem(
            image_path=image,
            report_path=report,
            report_error=None if report else REPORT_MISSING,
        )
    for report in sidecars:
        if report not in used:
            yield _report_without_image(report)


def _folder_with_csv(root: Path, images: list[str], csv_path: Path) -> Iterator[SourceItem]:
    rows = _read_csv(csv_path, required=[("image",), ("report",)], what="reports CSV")
    by_path: dict[str, dict[str, str]] = {}
    by_name: dict[str, list[str]] = {}
    for row in rows:
        key = _relative(root, row["image"])
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
        patient_id=_blank_to_none(row.get("patient_id")),
        study_id=_blank_to_none(row.get("study_id")),
        report_text=text if text.strip() else None,
        report_error=None if text.strip() else REPORT_MISSING,
    )


# ----------------------------------------------------------------------------------------- manifest


def _manifest(root: Path, pipeline: Pipeline) -> Iterator[SourceItem]:
    name = pipeline.source.get("manifest") or "manifest.csv"
    required = [("image_path",), ("report_path", "report_text")]
    rows = _read_csv(_resolve(root, str(name)), required=required, what="manifest")
    for number, row in enumerate(rows, start=2):
        # A row without an image path still counts as an input (imaging rejects it as file-missing).
        image = _relative(root, row.get("image_path") or "") or f"manifest-row-{number}-has-no-image-path"
        text = row.get("report_text") or ""
        report_path = _relative(root, row.get("report_path") or "")
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
            patient_id=_blank_to_none(row.get("patient_id")),
            study_id=_blank_to_none(row.get("study_id")),
            report_path=report_path or None,
            report_text=text if text.strip() else None,
            report_error=report_error,
        )


# ---------------------------------------------------------------------------------------------- CSV


def report_file_problem(path: Path) -> tuple[str, str] | None:
    """(reason, message) when a report path cannot be read as a regular file, None when it can; never
    opens it."""
    try:
        kind = filekind.entry_kind(path)
    except OSError as exc:
        return REPORT_UNREADABLE, f"the report file cannot be examined ({type(exc).__name__})"
    if kind == filekind.REGULAR:
        return None
    if kind == filekind.MISSING:
        return REPORT_MISSING, "the report file does not exist"
    if kind == filekind.BROKEN_LINK:
        return REPORT_BROKEN_LINK, "the report is a symbolic link whose target does not exist"
    return REPORT_NOT_REGULAR, f"the report is a {kind}, not a regular file"


def _resolve(root: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else root / path


def _read_csv(path: Path, required: list[tuple[str, ...]], what: str) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV with normalised (stripped, lower-case) headers; SourceError when unusable.

    `required` lists column groups: at least one column of each group must be present.
    """
    try:
        kind = filekind.entry_kind(path)
    except OSError as exc:
        raise SourceError(f"{what} {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    if kind in (filekind.MISSING, filekind.BROKEN_LINK):
        raise SourceError(f"{what} {path} not found")
    if kind != filekind.REGULAR:
        raise SourceError(f"{what} {path} is a {kind}, not a regular file")
    try:
        size = path.stat().st_size
        if size > MAX_CSV_BYTES:
            raise SourceError(f"{what} {path} is too large ({size} bytes)")
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{what} {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{what} {path} is not UTF-8 (bad byte at offset {exc.start}); re-save it as UTF-8"
        ) from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t") if text.strip() else csv.excel
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader, None)
        if not header:
            raise SourceError(f"{what} {path} is empty")
        columns = [h.strip().lower() for h in header]
        missing = [" or ".join(group) for group in required if not any(c in columns for c in group)]
        if missing:
            raise SourceError(
                f"{what} {path} lacks required column(s): {', '.join(missing)} (has: {', '.join(columns)})"
            )
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            rows.append({c: (values[i] if i < len(values) else "") for i, c in enumerate(columns)})
    except csv.Error as exc:
        raise SourceError(f"{what} {path} is not a readable CSV (line {reader.line_num}: {exc})") from None
    return rows


def _relative(root: Path, value: str) -> str:
    """A CSV path as a POSIX path relative to root (absolute paths outside the root stay absolute)."""
    value = value.strip()
    if not value:
        return ""
    path = Path(value.replace("\\", "/"))
    if path.is_absolute():
        try:
            return path.relative_to(root.resolve()).as_posix()
        except ValueError:
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                return path.as_posix()
    return PurePosixPath(path.as_posix()).as_posix().removeprefix("./")


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None
