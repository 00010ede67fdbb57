"""The per-input stage: one `SourceItem` in, one `Outcome` (row or reject) out.

This is the only function the engines schedule. It runs the stages of the architecture in order
(imaging → deid → reports) and turns any failure into a reject with the stage and a reason code, so a
bad input never stops a build and is never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgll_data import deid, imaging, reports, schema, sources
from mgll_data.pipeline import Pipeline
from mgll_data.records import Outcome, Reject, SourceItem, StageError
from mgll_data.split import assign_split

MAX_REPORT_BYTES = 1_000_000


@dataclass(frozen=True)
class BuildContext:
    export_root: Path
    pipeline: Pipeline
    salt: bytes


def process_item(item: SourceItem, ctx: BuildContext) -> Outcome:
    source_key = deid.source_key(ctx.salt, item.source_path)
    linkage: dict[str, Any] = {
        "source_key": source_key,
        "source_path": item.source_path,
        "report_path": item.report_path,
    }
    counts: dict[str, int] = {}
    try:
        row = _build_row(item, ctx, source_key, linkage, counts)
    except StageError as exc:
        linkage["error_detail"] = exc.reject.error
        return Outcome(source_key, reject=exc.reject, linkage=linkage, counts=counts)
    except Exception as exc:  # a bug or an input no stage anticipated: still one reject, never a crash
        linkage["error_detail"] = f"{type(exc).__name__}: {exc}"
        reject = Reject(stage="internal", reason="internal-error", error=f"unexpected {type(exc).__name__}")
        return Outcome(source_key, reject=reject, linkage=linkage)
    return Outcome(source_key, row=row, linkage=linkage, counts=counts)


def read_report(item: SourceItem, export_root: Path) -> str:
    """The raw report text for an item, or a StageError saying why there is none."""
    if item.report_error:
        raise StageError("sources", item.report_error, _REPORT_ERRORS.get(item.report_error, "report unusable"))
    if item.report_text is not None:
        text = item.report_text
    elif item.report_path is not None:
        path = export_root / item.report_path
        try:
            problem = sources.report_file_problem(path)  # before opening: reading a FIFO blocks forever
            if problem:
                raise StageError("reports", *problem)
            raw = path.read_bytes()
        except FileNotFoundError:
            raise StageError("reports", sources.REPORT_MISSING, "the report file does not exist") from None
        except OSError as exc:
            raise StageError(
                "reports", "report-unreadable", f"the report file cannot be read ({type(exc).__name__})"
            ) from None
        if len(raw) > MAX_REPORT_BYTES:
            raise StageError("reports", "report-too-large", f"the report is over {MAX_REPORT_BYTES} bytes")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise StageError("reports", "report-not-utf8", "the report is not valid UTF-8") from None
    else:
        raise StageError("sources", "report-missing", "no report found for this image")
    if not text.strip():
        raise StageError("reports", "report-empty", "the report is empty")
    return text


_REPORT_ERRORS = {
    sources.REPORT_MISSING: "no report found for this image",
    sources.REPORT_UNREADABLE: "the report could not be parsed",
    "report-not-utf8": "the report is not valid UTF-8",
    sources.REPORT_NOT_REGULAR: "the report is not a regular file (a FIFO, socket, device or directory)",
    sources.REPORT_BROKEN_LINK: "the report is a symbolic link whose target does not exist",
    sources.REPORT_WITHOUT_IMAGE: "no image of the export belongs to this report",
}


def _build_row(
    item: SourceItem, ctx: BuildContext, source_key: str, linkage: dict[str, Any], counts: dict[str, int]
) -> dict[str, Any]:
    if item.image_path is None:  # a report-only input: its reason is the report's own problem, if any
        reason = item.report_error or sources.REPORT_WITHOUT_IMAGE
        raise StageError("sources", reason, _REPORT_ERRORS.get(reason, "report unusable"))
    raw_report, control_chars = deid.strip_control_characters(read_report(item, ctx.export_root))
    if control_chars:
        counts.update(reports_with_control_characters=1, control_characters_stripped=control_chars)
    if not raw_report.strip():
        raise StageError("reports", "report-empty", "the report is empty")
    rendered = imaging.render_file(ctx.export_root / item.image_path, ctx.pipeline.image)
    deid.refuse_burned_in_text(rendered.header, ctx.pipeline.image.burned_in_annotation)

    header_ids = deid.header_ids(rendered.header) if rendered.header is not None else {}
    original_patient = item.patient_id or header_ids.get("patient_id") or f"path:{item.image_path}"
    original_study = item.study_id or header_ids.get("study_id") or f"path:{item.image_path}"
    patient_id = deid.pseudonym(ctx.salt, "patient", original_patient)
    study_id = deid.pseudonym(ctx.salt, "study", original_study)
    image_id = deid.image_id(ctx.salt, rendered.content_sha256, item.image_path)
    linkage.update(
        image_id=image_id,
        original_patient_id=original_patient,
        original_study_id=original_study,
        patient_id=patient_id,
        study_id=study_id,
    )

    metadata = deid.header_metadata(rendered.header, ctx.pipeline.image.default_modality)
    known_phi = deid.header_phi(rendered.header) if rendered.header is not None else []
    known_phi = [*known_phi, *(v for v in (item.patient_id, item.study_id) if v)]
    try:
        report_text = deid.scrub_text(raw_report, known_phi)
        understood = reports.understand(report_text, metadata, ctx.pipeline)
        if understood.truncated_chars:
            counts.update(reports_truncated=1, report_characters_not_read=understood.truncated_chars)
    except StageError:
        raise
    except Exception as exc:
        raise StageError("reports", "report-failed", f"report understanding failed ({type(exc).__name__})") from exc

    extension = "png" if rendered.format == "png" else "jpg"
    row: dict[str, Any] = {
        "image_id": image_id,
        "patient_id": patient_id,
        "study_id": study_id,
        "split": assign_split(patient_id, ctx.pipeline.split),
        "image": {"bytes": rendered.data, "path": f"{image_id}.{extension}"},
        "height": rendered.height,
        "width": rendered.width,
        "original_height": rendered.original_height,
        "original_width": rendered.original_width,
        "channels": rendered.channels,
        "modality": metadata.get("modality"),
        "view_position": metadata.get("view_position"),
        "body_part": metadata.get("body_part"),
        "photometric_interpretation": rendered.photometric_interpretation,
        "bits_stored": rendered.bits_stored,
        "pixel_spacing_mm": metadata.get("pixel_spacing_mm"),
        "manufacturer_model": metadata.get("manufacturer_model"),
        "source_format": rendered.source_format,
        "source_key": source_key,
        "labels": [
            {"name": name, "status": status, "certainty": certainty} for name, status, certainty in understood.labels
        ],
        "report_text": understood.report_text,
    }
    for granularity in ctx.pipeline.granularities:
        row[schema.text_column(granularity)] = understood.texts.get(granularity)
    for granularity in schema.item_granularities(list(ctx.pipeline.granularities)):
        row[schema.item_column(granularity)] = understood.items.get(granularity)
    if rendered.training_data is not None:
        row[schema.TRAINING_IMAGE] = {"bytes": rendered.training_data, "path": f"{image_id}.jpg"}
    return row
